//! The store contract: the same tests against every backend — the embedded SQLite file and
//! PostgreSQL (a fresh schema per test, see `support/pg.rs`). Round trips of every kind of row,
//! multi-row changes that are all or nothing when the store fails half-way (the fault hook of
//! each backend), concurrent writers, the change feed another process sees, and migrations
//! (including data directories from before migrations existed, and a schema newer than the
//! binary, which is refused).

#[path = "support/pg.rs"]
mod pg;

use presence_gateway::model::contact::{Phones, Profile};
use presence_gateway::model::contacts::{Contact, ContactList};
use presence_gateway::model::rights::{AccessLevel, Member, RightsEntry};
use presence_gateway::model::sources::{ManualKind, ManualState, Note};
use presence_gateway::store::faults::Faults;
use presence_gateway::store::postgres::PostgresStore;
use presence_gateway::store::sqlite::SqliteStore;
use presence_gateway::store::{
    Change, PresenceUpdate, RightsWrite, Store, StoreError, StoredImage, StoredPresence, StoredTicket, UserRecord,
};
use std::sync::Arc;
use std::time::Duration;

/// One backend under test, with what is needed to open a second process's view of it.
enum Fixture {
    Sqlite { store: Arc<SqliteStore>, dir: tempfile::TempDir },
    Postgres { store: Arc<PostgresStore>, schema: pg::PgSchema },
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture::Sqlite { store: Arc::new(SqliteStore::open(dir.path()).await.unwrap()), dir }
    }

    async fn postgres() -> Fixture {
        let schema = pg::PgSchema::create().await;
        Fixture::Postgres { store: Arc::new(PostgresStore::connect(&schema.url()).await.unwrap()), schema }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Fixture::Sqlite { store, .. } => store.clone(),
            Fixture::Postgres { store, .. } => store.clone(),
        }
    }

    fn faults(&self) -> &Faults {
        match self {
            Fixture::Sqlite { store, .. } => &store.faults,
            Fixture::Postgres { store, .. } => &store.faults,
        }
    }

    /// The same store as another process opens it.
    async fn reopen(&self) -> Arc<dyn Store> {
        match self {
            Fixture::Sqlite { dir, .. } => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Fixture::Postgres { schema, .. } => Arc::new(PostgresStore::connect(&schema.url()).await.unwrap()),
        }
    }
}

impl Fixture {
    /// Writes a notice as a process of the first notice format did (an origin without the
    /// format after it), straight into the backend's feed.
    async fn announce_as_format_one(&self, kind: &str, key: &str) {
        match self {
            Fixture::Sqlite { dir, .. } => {
                let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query("INSERT INTO changes (kind, key, origin) VALUES ($1, $2, '00000000deadbeef')")
                    .bind(kind)
                    .bind(key)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Fixture::Postgres { schema, .. } => {
                let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(format!("presence_gateway_{}", schema.name))
                    .bind(format!("00000000deadbeef\t{kind}\t{key}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }
}

fn user(uri: &str) -> UserRecord {
    let profile = Profile {
        uri: uri.into(),
        display_name: format!("Name of {uri}"),
        title: Some("Engineer".into()),
        phones: Phones { work: Some("tel:+1".into()), ..Phones::default() },
        groups: vec!["r-and-d".into()],
        ..Profile::default()
    };
    UserRecord { profile, password_hash: Some("$argon2id$hash".into()) }
}

fn entry(member: Member, level: AccessLevel) -> RightsEntry {
    RightsEntry { member, level }
}

fn list_with(uri: &str) -> ContactList {
    let mut list = ContactList::default();
    list.contacts.push(Contact { uri: uri.into(), name: "C".into(), subscribed: true, tag: false, groups: vec![1] });
    list.delta_num = 1;
    list
}

async fn every_row_round_trips(f: Fixture) {
    let s = f.store();
    s.upsert_user(&user("sip:a@x.test")).await.unwrap();
    s.upsert_user(&user("sip:b@x.test")).await.unwrap();
    assert_eq!(s.user("sip:a@x.test").await.unwrap(), Some(user("sip:a@x.test")));
    let mut renamed = user("sip:a@x.test");
    renamed.profile.display_name = "Renamed".into();
    renamed.password_hash = None;
    s.upsert_user(&renamed).await.unwrap();
    let stored = s.user("sip:a@x.test").await.unwrap().unwrap();
    assert_eq!(stored.profile.display_name, "Renamed");
    assert_eq!(stored.password_hash.as_deref(), Some("$argon2id$hash"), "a None hash keeps the password");
    assert!(s.set_password("sip:a@x.test", "$argon2id$new").await.unwrap());
    assert!(!s.set_password("sip:nobody@x.test", "h").await.unwrap());
    assert_eq!(s.users().await.unwrap().len(), 2);

    let presence = StoredPresence {
        manual: Some(ManualState { text: Some("in a meeting".into()), ..ManualState::simple(ManualKind::DoNotDisturb) }),
        note: Some(Note { text: "hello".into(), expires: None }),
    };
    assert_eq!(s.update_presence("sip:a@x.test", &PresenceUpdate::whole(&presence)).await.unwrap(), presence);
    assert_eq!(s.presence("sip:a@x.test").await.unwrap(), Some(presence.clone()));
    assert_eq!(s.presences().await.unwrap(), vec![("sip:a@x.test".to_string(), presence.clone())]);
    // An update sets only the parts it names and answers the whole stand.
    let note_only = PresenceUpdate { manual: None, note: Some(Some(Note { text: "bye".into(), expires: None })), only_if: None };
    let stands = s.update_presence("sip:a@x.test", &note_only).await.unwrap();
    assert_eq!(stands.manual, presence.manual, "the manual state is kept");
    assert_eq!(stands.note.as_ref().map(|n| n.text.as_str()), Some("bye"));
    let cleared =
        s.update_presence("sip:a@x.test", &PresenceUpdate { manual: Some(None), note: None, only_if: None }).await.unwrap();
    assert_eq!(cleared, StoredPresence { manual: None, note: stands.note.clone() }, "the manual state is cleared, the note kept");
    assert_eq!(s.presence("sip:a@x.test").await.unwrap(), Some(cleared));
    assert!(s.update_presence("sip:nobody@x.test", &note_only).await.is_err(), "no presence without a user");
    assert_eq!(s.presence("sip:nobody@x.test").await.unwrap(), None);
    s.update_presence("sip:a@x.test", &PresenceUpdate::whole(&presence)).await.unwrap();

    let members = [
        Member::Uri("sip:b@x.test".into()),
        Member::Domain("y.test".into()),
        Member::Group("r-and-d".into()),
        Member::SameEnterprise,
        Member::Federated,
        Member::PublicCloud,
        Member::Everyone,
    ];
    let writes: Vec<RightsWrite> = members.iter().map(|m| RightsWrite::Set(entry(m.clone(), AccessLevel::Team))).collect();
    s.apply_rights("sip:a@x.test", &writes).await.unwrap();
    s.apply_rights("sip:a@x.test", &[RightsWrite::Set(entry(Member::Everyone, AccessLevel::Blocked))]).await.unwrap();
    let rights = s.rights_of("sip:a@x.test").await.unwrap();
    assert_eq!(rights.len(), members.len(), "one level per member: {rights:?}");
    assert!(rights.contains(&entry(Member::Everyone, AccessLevel::Blocked)));
    assert!(rights.contains(&entry(Member::Group("r-and-d".into()), AccessLevel::Team)));
    assert_eq!(s.rights().await.unwrap().len(), members.len());

    s.set_global_right(&entry(Member::Group("r-and-d".into()), AccessLevel::Personal)).await.unwrap();
    assert_eq!(s.global_rights().await.unwrap(), vec![entry(Member::Group("r-and-d".into()), AccessLevel::Personal)]);
    assert!(s.remove_global_right(&Member::Group("r-and-d".into())).await.unwrap());
    assert!(s.global_rights().await.unwrap().is_empty());

    // A list written only if the store holds the one it was made from: none stored is the default.
    s.upsert_user(&user("sip:c@x.test")).await.unwrap();
    let default = ContactList::default();
    assert!(s
        .save_contact_list("sip:a@x.test", Some(&default), &list_with("sip:b@x.test"), &["sip:b@x.test".into()])
        .await
        .unwrap());
    assert_eq!(s.contact_list("sip:a@x.test").await.unwrap(), Some(list_with("sip:b@x.test")));
    let (other, subscribes) = (list_with("sip:c@x.test"), ["sip:c@x.test".to_string()]);
    let refused = s.save_contact_list("sip:a@x.test", Some(&default), &other, &subscribes).await.unwrap();
    assert!(!refused, "the store holds another list than the one expected");
    assert_eq!(s.contact_list("sip:a@x.test").await.unwrap(), Some(list_with("sip:b@x.test")), "nothing written");
    assert!(s.subscribers_of("sip:c@x.test").await.unwrap().is_empty(), "nor its subscriber rows");
    assert_eq!(s.subscribers_of("sip:b@x.test").await.unwrap(), vec![("sip:a@x.test".to_string(), false)]);
    assert_eq!(s.subscriber("sip:b@x.test", "sip:a@x.test").await.unwrap(), Some(false));
    s.save_subscribers(&[("sip:b@x.test", "sip:a@x.test")], true).await.unwrap();
    assert_eq!(s.subscriber("sip:b@x.test", "sip:a@x.test").await.unwrap(), Some(true));
    assert_eq!(s.subscriber("sip:a@x.test", "sip:b@x.test").await.unwrap(), None);
    assert_eq!(s.subscribers().await.unwrap(), vec![("sip:b@x.test".into(), "sip:a@x.test".into(), true)]);

    let image = StoredImage { content_type: "image/png".into(), bytes: vec![0, 1, 2, 255], hash: "h1".into() };
    s.save_image("sip:a@x.test", false, &image).await.unwrap();
    s.save_image("sip:a@x.test", true, &StoredImage { hash: "h2".into(), ..image.clone() }).await.unwrap();
    assert_eq!(s.image("sip:a@x.test", false).await.unwrap(), Some(image));
    assert_eq!(s.image_hashes().await.unwrap(), vec![("sip:a@x.test".to_string(), "h1".to_string())]);
    assert!(s.remove_image("sip:a@x.test", true).await.unwrap());
    assert!(!s.remove_image("sip:a@x.test", true).await.unwrap());

    let raw = |name: &str, instance: u32| presence_gateway::model::raw::RawCategory {
        name: name.into(),
        namespace: "urn:x".into(),
        instance,
        level: AccessLevel::Company,
        expire_type: "user".into(),
        content: "<a/>".into(),
    };
    assert!(s.save_raw_categories("sip:a@x.test", &[], &[raw("z", 1), raw("a", 0)]).await.unwrap());
    assert_eq!(s.raw_categories_of("sip:a@x.test").await.unwrap(), vec![raw("z", 1), raw("a", 0)], "in published order");
    assert_eq!(s.raw_categories().await.unwrap().len(), 1);
    // A write expecting what is no longer there (another process wrote since the read) writes nothing.
    let stale = [raw("z", 1)];
    assert!(!s.save_raw_categories("sip:a@x.test", &stale, &[raw("b", 0)]).await.unwrap(), "refused");
    assert!(!s.save_raw_categories("sip:a@x.test", &[raw("a", 0), raw("z", 1)], &[]).await.unwrap(), "order counts");
    assert_eq!(s.raw_categories_of("sip:a@x.test").await.unwrap(), vec![raw("z", 1), raw("a", 0)], "kept");

    // Removing a user removes everything they own, and their place in others' subscribers.
    assert!(s.remove_user("sip:a@x.test").await.unwrap());
    assert!(!s.remove_user("sip:a@x.test").await.unwrap());
    assert_eq!(s.user("sip:a@x.test").await.unwrap(), None);
    assert!(s.presences().await.unwrap().is_empty());
    assert!(s.rights().await.unwrap().is_empty());
    assert_eq!(s.contact_list("sip:a@x.test").await.unwrap(), None);
    assert!(s.subscribers().await.unwrap().is_empty());
    assert!(s.image_hashes().await.unwrap().is_empty());
    assert!(s.raw_categories().await.unwrap().is_empty());
    s.ping().await.unwrap();
}

async fn a_failure_half_way_leaves_nothing_half_written(f: Fixture) {
    let s = f.store();
    s.upsert_user(&user("sip:a@x.test")).await.unwrap();
    s.upsert_user(&user("sip:b@x.test")).await.unwrap();
    s.apply_rights("sip:a@x.test", &[RightsWrite::Set(entry(Member::Everyone, AccessLevel::Public))]).await.unwrap();
    let before = s.rights_of("sip:a@x.test").await.unwrap();

    // Rights: the second of three statements fails.
    f.faults().fail_after(1);
    let writes = [
        RightsWrite::Set(entry(Member::Uri("sip:b@x.test".into()), AccessLevel::Personal)),
        RightsWrite::Remove { member: Member::Everyone, level: Some(AccessLevel::Public) },
        RightsWrite::Set(entry(Member::Domain("y.test".into()), AccessLevel::Blocked)),
    ];
    let error = s.apply_rights("sip:a@x.test", &writes).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(s.rights_of("sip:a@x.test").await.unwrap(), before, "nothing of the failed change was kept");
    s.apply_rights("sip:a@x.test", &writes).await.unwrap();
    assert_eq!(s.rights_of("sip:a@x.test").await.unwrap().len(), 2, "the retry applies all of it");

    // A contact list and the subscriber row it implies.
    f.faults().fail_after(1);
    assert!(s.save_contact_list("sip:a@x.test", None, &list_with("sip:b@x.test"), &["sip:b@x.test".into()]).await.is_err());
    assert_eq!(s.contact_list("sip:a@x.test").await.unwrap(), None);
    assert!(s.subscribers().await.unwrap().is_empty());

    // Removing a user with everything they own.
    s.save_contact_list("sip:a@x.test", None, &list_with("sip:b@x.test"), &["sip:b@x.test".into()]).await.unwrap();
    f.faults().fail_after(0);
    assert!(s.remove_user("sip:a@x.test").await.unwrap_err().is_retryable());
    assert!(s.user("sip:a@x.test").await.unwrap().is_some());
    assert_eq!(s.rights_of("sip:a@x.test").await.unwrap().len(), 2);
    assert!(s.contact_list("sip:a@x.test").await.unwrap().is_some());
    assert_eq!(s.subscribers().await.unwrap().len(), 1);

    // Creating a user: the notice after the insert fails, and neither is kept.
    f.faults().fail_after(0);
    assert!(s.create_user(&user("sip:new@x.test")).await.unwrap_err().is_retryable());
    assert_eq!(s.user("sip:new@x.test").await.unwrap(), None);
    assert!(s.create_user(&user("sip:new@x.test")).await.unwrap(), "the retry creates her");

    // A store that is down refuses every write until it is back.
    f.faults().fail_always();
    assert!(s.upsert_user(&user("sip:c@x.test")).await.unwrap_err().is_retryable());
    assert!(s.update_presence("sip:a@x.test", &PresenceUpdate::whole(&StoredPresence::default())).await.is_err());
    f.faults().heal();
    assert_eq!(s.user("sip:c@x.test").await.unwrap(), None);
    s.upsert_user(&user("sip:c@x.test")).await.unwrap();
}

async fn concurrent_writers_lose_nothing(f: Fixture) {
    let s = f.store();
    s.upsert_user(&user("sip:owner@x.test")).await.unwrap();
    let other = f.reopen().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = if i % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let uri = format!("sip:u{i}@x.test");
            store.upsert_user(&user(&uri)).await.unwrap();
            let write = RightsWrite::Set(entry(Member::Uri(uri.clone()), AccessLevel::Team));
            store.apply_rights("sip:owner@x.test", &[write]).await.unwrap();
            store.save_subscribers(&[("sip:owner@x.test", &uri)], i % 3 == 0).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(s.users().await.unwrap().len(), 25);
    assert_eq!(s.rights_of("sip:owner@x.test").await.unwrap().len(), 24);
    assert_eq!(s.subscribers_of("sip:owner@x.test").await.unwrap().len(), 24);

    // Raw categories written by read, add one, write-if-unchanged (again on a refusal), from
    // both processes at once: every one is kept.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let category = raw_category(&format!("c{i}"));
            loop {
                let read = store.raw_categories_of("sip:owner@x.test").await.unwrap();
                let next: Vec<_> = read.iter().cloned().chain([category.clone()]).collect();
                if store.save_raw_categories("sip:owner@x.test", &read, &next).await.unwrap() {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(s.raw_categories_of("sip:owner@x.test").await.unwrap().len(), 12);
}

/// A removal that names a level takes the member out of that level only: an entry the store holds
/// at another level stays (another process moved the member meanwhile); one without a level
/// removes the entry at any level. Each write returns the owner's entries as they then stand, its
/// own writes included.
async fn a_rights_removal_takes_the_member_out_of_that_level_only(f: Fixture) {
    let s = f.store();
    s.upsert_user(&user("sip:a@x.test")).await.unwrap();
    let (bob, carol) = (Member::Uri("sip:b@x.test".into()), Member::Uri("sip:c@x.test".into()));
    let set = |member: &Member, level| RightsWrite::Set(entry(member.clone(), level));
    let stored =
        s.apply_rights("sip:a@x.test", &[set(&bob, AccessLevel::Team), set(&carol, AccessLevel::Blocked)]).await.unwrap();
    assert_eq!(stored, s.rights_of("sip:a@x.test").await.unwrap(), "the entries as they then stand");
    assert_eq!(stored.len(), 2);

    let remove = |member: &Member, level| RightsWrite::Remove { member: member.clone(), level };
    let stored = s
        .apply_rights("sip:a@x.test", &[remove(&bob, Some(AccessLevel::Personal)), remove(&carol, Some(AccessLevel::Blocked))])
        .await
        .unwrap();
    assert_eq!(stored, vec![entry(bob.clone(), AccessLevel::Team)], "Bob is not at Personal, so he stays at Team");

    // Within one call the writes apply in order.
    let stored = s
        .apply_rights("sip:a@x.test", &[set(&carol, AccessLevel::Public), remove(&carol, Some(AccessLevel::Public))])
        .await
        .unwrap();
    assert_eq!(stored, vec![entry(bob.clone(), AccessLevel::Team)]);

    // Without a level, the entry goes at whatever level it is.
    let stored = s.apply_rights("sip:a@x.test", &[remove(&bob, None)]).await.unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}

/// Creating a user the store holds already — from this process or another — writes nothing.
async fn creating_a_user_that_exists_changes_nothing(f: Fixture) {
    let (here, there) = (f.store(), f.reopen().await);
    assert!(here.create_user(&user("sip:n@x.test")).await.unwrap());
    let mut again = user("sip:n@x.test");
    again.profile.display_name = "Someone else".into();
    again.password_hash = Some("another hash".into());
    assert!(!there.create_user(&again).await.unwrap(), "the other process is told she exists");
    assert_eq!(here.user("sip:n@x.test").await.unwrap(), Some(user("sip:n@x.test")), "her record stays as created");
}

/// Which of many URIs name stored users is answered whole past one statement's share of them;
/// a URI with SQL in it is only a value.
async fn users_among_many_uris_are_all_found(f: Fixture) {
    let s = f.store();
    for uri in ["sip:a@x.test", "sip:b@x.test", "sip:z@x.test"] {
        s.upsert_user(&user(uri)).await.unwrap();
    }
    assert!(s.users_among(&[]).await.unwrap().is_empty());
    let absent: Vec<String> = (0..2_400).map(|i| format!("sip:nobody{i}@x.test")).collect();
    let mut asked: Vec<&str> = absent.iter().map(String::as_str).collect();
    asked.insert(5, "sip:a@x.test");
    asked.insert(1_500, "sip:z@x.test");
    asked.extend(["sip:a@x.test", "sip:x@x.test' OR '1'='1"]);
    let mut found = s.users_among(&asked).await.unwrap();
    found.sort_unstable();
    found.dedup();
    assert_eq!(found, ["sip:a@x.test", "sip:z@x.test"]);
}

/// Two users add each other at the same moment, from two processes, many times: each list write
/// locks its owner and writes a subscriber row naming the other, and neither waits for the other's
/// lock (no deadlock, no error).
async fn users_adding_each_other_at_once_both_succeed(f: Fixture) {
    let here = f.store();
    let there = f.reopen().await;
    let users: Vec<String> = (0..8).map(|i| format!("sip:m{i}@x.test")).collect();
    for uri in &users {
        here.upsert_user(&user(uri)).await.unwrap();
    }
    for round in 0..25 {
        let mut tasks = Vec::new();
        for pair in users.chunks(2) {
            for (store, owner, other) in [(here.clone(), &pair[0], &pair[1]), (there.clone(), &pair[1], &pair[0])] {
                let (owner, other) = (owner.clone(), other.clone());
                tasks.push(tokio::spawn(async move {
                    let list = list_with(&other);
                    let subscribes = [other.clone()];
                    let expected = (round > 0).then(|| list.clone());
                    store.save_contact_list(&owner, expected.as_ref(), &list, &subscribes).await
                }));
            }
        }
        for task in tasks {
            assert!(task.await.unwrap().unwrap(), "round {round}: both writes succeed");
        }
    }
}

fn raw_category(name: &str) -> presence_gateway::model::raw::RawCategory {
    presence_gateway::model::raw::RawCategory {
        name: name.into(),
        namespace: "urn:x".into(),
        instance: 0,
        level: AccessLevel::Company,
        expire_type: "user".into(),
        content: "<a/>".into(),
    }
}

/// Waits (bounded) for the next change on a feed.
async fn next_change(feed: &mut presence_gateway::store::ChangeFeed) -> Change {
    tokio::time::timeout(Duration::from_secs(10), feed.recv()).await.expect("a change arrives").expect("the feed is open")
}

async fn changes_reach_the_other_processes_only(f: Fixture) {
    let here = f.store();
    let there = f.reopen().await;
    let mut feed_here = here.changes().await.unwrap();
    let mut feed_there = there.changes().await.unwrap();
    there.upsert_user(&user("sip:new@x.test")).await.unwrap();
    assert_eq!(next_change(&mut feed_here).await, Change::User("sip:new@x.test".into()));
    there.apply_rights("sip:new@x.test", &[RightsWrite::Set(entry(Member::Everyone, AccessLevel::Team))]).await.unwrap();
    assert_eq!(next_change(&mut feed_here).await, Change::Rights("sip:new@x.test".into()));
    there.set_global_right(&entry(Member::Everyone, AccessLevel::Team)).await.unwrap();
    assert_eq!(next_change(&mut feed_here).await, Change::GlobalRights);
    there.upsert_user(&user("sip:two@x.test")).await.unwrap();
    assert_eq!(next_change(&mut feed_here).await, Change::User("sip:two@x.test".into()));
    there.save_subscribers(&[("sip:new@x.test", "sip:two@x.test")], false).await.unwrap();
    let one_subscriber = Change::Subscriber("sip:new@x.test".into(), "sip:two@x.test".into());
    assert_eq!(next_change(&mut feed_here).await, one_subscriber, "a subscriber's notice names owner and watcher");
    here.save_image("sip:new@x.test", false, &StoredImage { content_type: "image/png".into(), bytes: vec![1], hash: "h".into() })
        .await
        .unwrap();
    assert_eq!(next_change(&mut feed_there).await, Change::Image("sip:new@x.test".into()), "its own writes are not echoed");
    // A failed write announces nothing: the next change seen is the one after it.
    f.faults().fail_after(0);
    assert!(here.remove_user("sip:new@x.test").await.is_err());
    here.update_presence("sip:new@x.test", &PresenceUpdate::whole(&StoredPresence::default())).await.unwrap();
    assert_eq!(next_change(&mut feed_there).await, Change::Presence("sip:new@x.test".into()));
}

/// A conditional update sets a part only where the store still holds what the caller read, so a
/// timed end read before another process's change does not clear that change; an unconditional
/// part of the same update and the parts not named are unaffected by the condition.
async fn a_conditional_update_keeps_a_part_changed_since_it_was_read(f: Fixture) {
    let s = f.store();
    let uri = "sip:a@x.test";
    s.upsert_user(&user(uri)).await.unwrap();
    let until = chrono::Utc::now();
    let timed = StoredPresence {
        manual: Some(ManualState { to: Some(until), ..ManualState::simple(ManualKind::Busy) }),
        note: Some(Note { text: "in a meeting".into(), expires: Some(until) }),
    };
    s.update_presence(uri, &PresenceUpdate::whole(&timed)).await.unwrap();
    let ended = PresenceUpdate::ended(&timed, until + chrono::Duration::seconds(1));
    assert_eq!((ended.manual.clone(), ended.note.clone()), (Some(None), Some(None)), "both parts are over");

    // The note changed since it was read: it stays; the manual state, unchanged, is cleared.
    let newer = Note { text: "back at the desk".into(), expires: None };
    s.update_presence(uri, &PresenceUpdate { manual: None, note: Some(Some(newer.clone())), only_if: None }).await.unwrap();
    let stands = s.update_presence(uri, &ended).await.unwrap();
    assert_eq!(stands, StoredPresence { manual: None, note: Some(newer.clone()) });
    assert_eq!(s.presence(uri).await.unwrap(), Some(stands));

    // Unchanged since read: cleared, including a part read as absent that is still absent.
    let read = s.presence(uri).await.unwrap().unwrap();
    let clear_both = PresenceUpdate { manual: Some(None), note: Some(None), only_if: Some(read) };
    assert_eq!(s.update_presence(uri, &clear_both).await.unwrap(), StoredPresence::default());
}

async fn a_presence_notice_names_the_part_that_changed(f: Fixture) {
    let here = f.store();
    let there = f.reopen().await;
    let mut feed = there.changes().await.unwrap();
    let uri = "sip:a@x.test";
    here.upsert_user(&user(uri)).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::User(uri.into()));
    let noted = StoredPresence { manual: None, note: Some(Note { text: "at lunch".into(), expires: None }) };
    here.update_presence(uri, &PresenceUpdate::whole(&noted)).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Presence(uri.into()), "a note is a live input");
    let category = presence_gateway::model::raw::RawCategory {
        name: "gps".into(),
        namespace: "urn:x".into(),
        instance: 0,
        level: AccessLevel::Company,
        expire_type: "user".into(),
        content: "<a/>".into(),
    };
    assert!(here.save_raw_categories(uri, &[], &[category]).await.unwrap());
    assert_eq!(next_change(&mut feed).await, Change::RawCategories(uri.into()));
    assert!(!here.remove_source_report(uri, "pbx").await.unwrap());
    assert_eq!(next_change(&mut feed).await, Change::Presence(uri.into()), "a report is a live input");
    // A process not yet upgraded (a rolling upgrade) announces either part as `presence`: both.
    f.announce_as_format_one("presence", uri).await;
    assert_eq!(next_change(&mut feed).await, Change::Presence(uri.into()));
    assert_eq!(next_change(&mut feed).await, Change::RawCategories(uri.into()));
}

/// A moment with whole milliseconds, as the store keeps it.
fn at(offset_seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(1_800_000_000_000 + offset_seconds * 1000).unwrap()
}

async fn logins_and_ticket_values_round_trip_and_end(f: Fixture) {
    let s = f.store();
    for uri in ["sip:a@x.test", "sip:b@x.test", "sip:c@x.test"] {
        s.upsert_user(&user(uri)).await.unwrap();
    }
    let (first, second) = ([1u8; 32], [2u8; 32]);
    let id = s.create_login("sip:a@x.test", &first, at(0), at(3600)).await.unwrap();
    let found = s.ticket(&first).await.unwrap().unwrap();
    let expected = StoredTicket { login: id, user: "sip:a@x.test".into(), expires: at(3600), rotated: at(0), last_used: at(0) };
    assert_eq!(found, expected);
    assert_eq!(s.ticket(&[9u8; 32]).await.unwrap(), None);
    let other = s.create_login("sip:a@x.test", &[3u8; 32], at(0), at(3600)).await.unwrap();
    assert_ne!(id, other, "every login has its own id");
    assert_eq!(s.login_ids("sip:a@x.test").await.unwrap(), vec![id.min(other), id.max(other)]);
    assert!(s.login_ids("sip:b@x.test").await.unwrap().is_empty());

    // Rotation is compare-and-set on the newest value's time: a second rotation of the same
    // period (another process) writes nothing.
    assert!(s.rotate_login(id, at(0), &second, at(60)).await.unwrap());
    assert!(!s.rotate_login(id, at(0), &[4u8; 32], at(61)).await.unwrap());
    assert_eq!(s.ticket(&[4u8; 32]).await.unwrap(), None);
    let rotated = s.ticket(&second).await.unwrap().unwrap();
    assert_eq!((rotated.login, rotated.rotated, rotated.last_used), (id, at(60), at(60)));
    assert_eq!(s.ticket(&first).await.unwrap().unwrap().rotated, at(60), "the login's time, seen from every value");

    // Recorded uses only move forward.
    s.record_ticket_uses(&[(first, at(300)), (second, at(30))]).await.unwrap();
    assert_eq!(s.ticket(&first).await.unwrap().unwrap().last_used, at(300));
    assert_eq!(s.ticket(&second).await.unwrap().unwrap().last_used, at(60));

    // Sweep: values unused since a moment, then logins left without values, then ended logins.
    assert_eq!(s.sweep_tickets(at(400), at(100)).await.unwrap(), 2, "the second value and login `other`'s only one");
    assert!(s.ticket(&first).await.unwrap().is_some());
    assert_eq!(s.ticket(&[3u8; 32]).await.unwrap(), None);
    s.sweep_tickets(at(3600), at(0)).await.unwrap();
    assert_eq!(s.ticket(&first).await.unwrap(), None, "past the login's lifetime");

    // Passwords and removal end logins; the same password applied again does not.
    s.create_login("sip:a@x.test", &first, at(0), at(3600)).await.unwrap();
    s.create_login("sip:b@x.test", &second, at(0), at(3600)).await.unwrap();
    s.create_login("sip:c@x.test", &[5u8; 32], at(0), at(3600)).await.unwrap();
    s.upsert_user(&user("sip:a@x.test")).await.unwrap();
    s.upsert_user(&UserRecord { password_hash: None, ..user("sip:a@x.test") }).await.unwrap();
    assert!(s.ticket(&first).await.unwrap().is_some(), "no new password");
    s.upsert_user(&UserRecord { password_hash: Some("$argon2id$other".into()), ..user("sip:a@x.test") }).await.unwrap();
    assert_eq!(s.ticket(&first).await.unwrap(), None, "a new password through upsert");
    assert!(s.set_password("sip:b@x.test", "$argon2id$new").await.unwrap());
    assert_eq!(s.ticket(&second).await.unwrap(), None, "a new password");
    assert!(s.remove_user("sip:c@x.test").await.unwrap());
    assert_eq!(s.ticket(&[5u8; 32]).await.unwrap(), None, "the user removed");
    // A login for a user that is gone is refused.
    assert!(s.create_login("sip:c@x.test", &[6u8; 32], at(0), at(3600)).await.is_err());
}

async fn a_login_failing_half_way_keeps_nothing(f: Fixture) {
    let s = f.store();
    s.upsert_user(&user("sip:a@x.test")).await.unwrap();
    f.faults().fail_after(1);
    assert!(s.create_login("sip:a@x.test", &[1u8; 32], at(0), at(3600)).await.unwrap_err().is_retryable());
    assert_eq!(s.ticket(&[1u8; 32]).await.unwrap(), None);
    assert_eq!(s.sweep_tickets(at(0), at(-1)).await.unwrap(), 0);
    let id = s.create_login("sip:a@x.test", &[1u8; 32], at(0), at(3600)).await.unwrap();

    // A rotation whose new value fails: the login's rotation time is not moved either.
    f.faults().fail_after(1);
    assert!(s.rotate_login(id, at(0), &[2u8; 32], at(60)).await.unwrap_err().is_retryable());
    assert_eq!(s.ticket(&[2u8; 32]).await.unwrap(), None);
    assert_eq!(s.ticket(&[1u8; 32]).await.unwrap().unwrap().rotated, at(0));
    assert!(s.rotate_login(id, at(0), &[2u8; 32], at(60)).await.unwrap(), "the retry rotates");

    // A new password failing half-way leaves the old password and its logins.
    f.faults().fail_after(1);
    assert!(s.set_password("sip:a@x.test", "$argon2id$new").await.is_err());
    assert_eq!(s.user("sip:a@x.test").await.unwrap().unwrap().password_hash.as_deref(), Some("$argon2id$hash"));
    assert!(s.ticket(&[1u8; 32]).await.unwrap().is_some());
    // A store that is down cannot be asked for a ticket: the error is retryable, not "unknown".
    f.faults().fail_always();
    assert!(s.ticket(&[1u8; 32]).await.unwrap_err().is_retryable());
    f.faults().heal();
}

async fn source_reports_keep_their_expiry(f: Fixture) {
    use presence_gateway::model::reports::{CallsData, ComputerData, ReportData, SourceReport};
    use presence_gateway::model::sources::ComputerState;
    let s = f.store();
    let there = f.reopen().await;
    let mut feed = there.changes().await.unwrap();
    s.upsert_user(&user("sip:a@x.test")).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::User("sip:a@x.test".into()));
    let computer = SourceReport { data: ReportData::Computer(ComputerData { state: ComputerState::Locked }), expires: None };
    let headset = SourceReport { data: ReportData::Bluetooth(CallsData::default()), expires: Some(at(60)) };
    s.save_source_report("sip:a@x.test", "pc", &computer).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Presence("sip:a@x.test".into()), "other processes hear of it");
    s.save_source_report("sip:a@x.test", "headset", &headset).await.unwrap();
    let both = vec![("headset".to_string(), headset.clone()), ("pc".to_string(), computer.clone())];
    assert_eq!(s.source_reports_of("sip:a@x.test", at(0)).await.unwrap(), both);
    assert_eq!(s.source_reports_of("sip:a@x.test", at(60)).await.unwrap(), vec![("pc".to_string(), computer.clone())], "expired");
    assert_eq!(s.source_reports(at(0)).await.unwrap().len(), 2);
    assert_eq!(s.sweep_source_reports(at(60)).await.unwrap(), 1);
    assert_eq!(s.source_reports_of("sip:a@x.test", at(0)).await.unwrap().len(), 1, "swept");
    // A replaced report keeps one row; a withdrawn one is gone; a removed user takes theirs along.
    let unlocked =
        SourceReport { data: ReportData::Computer(ComputerData { state: ComputerState::LoggedIn }), expires: Some(at(90)) };
    s.save_source_report("sip:a@x.test", "pc", &unlocked).await.unwrap();
    assert_eq!(s.source_reports(at(0)).await.unwrap(), vec![("sip:a@x.test".into(), "pc".into(), unlocked)]);
    f.faults().fail_after(0);
    assert!(s.remove_source_report("sip:a@x.test", "pc").await.unwrap_err().is_retryable());
    assert_eq!(s.source_reports(at(0)).await.unwrap().len(), 1, "a failed withdrawal keeps it");
    assert!(s.remove_source_report("sip:a@x.test", "pc").await.unwrap());
    assert!(!s.remove_source_report("sip:a@x.test", "pc").await.unwrap());
    s.save_source_report("sip:a@x.test", "pc", &computer).await.unwrap();
    s.remove_user("sip:a@x.test").await.unwrap();
    assert!(s.source_reports(at(0)).await.unwrap().is_empty());
}

async fn a_newer_schema_is_refused(f: Fixture) {
    let s = f.store();
    s.ping().await.unwrap();
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                  VALUES (99999, 'from the future', TRUE, X'00', 0)";
    match &f {
        Fixture::Sqlite { dir, .. } => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("gateway.db").display())).await.unwrap();
            sqlx::query(insert).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Fixture::Postgres { schema, .. } => {
            let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
            sqlx::query(&insert.replace("X'00'", "'\\x00'::bytea")).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let error = match &f {
        Fixture::Sqlite { dir, .. } => SqliteStore::open(dir.path()).await.err(),
        Fixture::Postgres { schema, .. } => PostgresStore::connect(&schema.url()).await.err(),
    };
    let error = error.expect("a newer schema is refused");
    assert!(matches!(error, StoreError::SchemaTooNew { found: 99999, .. }), "{error}");
    assert!(error.to_string().contains("newer than this presence-gateway knows"), "{error}");
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::postgres().await).await })*
        }
    };
}

contract!(
    every_row_round_trips,
    a_failure_half_way_leaves_nothing_half_written,
    concurrent_writers_lose_nothing,
    users_adding_each_other_at_once_both_succeed,
    a_rights_removal_takes_the_member_out_of_that_level_only,
    creating_a_user_that_exists_changes_nothing,
    users_among_many_uris_are_all_found,
    changes_reach_the_other_processes_only,
    a_presence_notice_names_the_part_that_changed,
    a_conditional_update_keeps_a_part_changed_since_it_was_read,
    logins_and_ticket_values_round_trip_and_end,
    a_login_failing_half_way_keeps_nothing,
    source_reports_keep_their_expiry,
    a_newer_schema_is_refused,
);

/// Pooled PostgreSQL connections the server ends (a restart, an administrator's
/// `pg_terminate_backend`) are replaced: a write on one of them fails with the retryable error,
/// at most once per pooled connection, and a write after that succeeds. The store signs in as a
/// role of the test's own, so that only its connections are ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_the_server_ended_are_replaced() {
    use sqlx::Connection;
    let schema = pg::PgSchema::create().await;
    let role = format!("r{}", schema.name);
    let mut admin = sqlx::PgConnection::connect(schema.admin_url()).await.unwrap();
    for statement in [format!("CREATE ROLE {role} LOGIN"), format!("GRANT ALL ON SCHEMA {} TO {role}", schema.name)] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    let store = PostgresStore::connect(&schema.url_as(&role)).await.unwrap();
    store.upsert_user(&user("sip:a@x.test")).await.unwrap();
    let note =
        |text: &str| PresenceUpdate { manual: None, note: Some(Some(Note { text: text.into(), expires: None })), only_if: None };
    // Several connections in the pool, all just used.
    let updates: Vec<PresenceUpdate> = (0..4).map(|i| note(&format!("before {i}"))).collect();
    let writes = updates.iter().map(|update| store.update_presence("sip:a@x.test", update));
    for written in futures_util::future::join_all(writes).await {
        written.unwrap();
    }

    let ended: Vec<bool> = sqlx::query_scalar("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1")
        .bind(&role)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert!(!ended.is_empty() && ended.iter().all(|e| *e), "the store's connections were ended: {ended:?}");
    let mut failures = 0;
    let stands = loop {
        match store.update_presence("sip:a@x.test", &note("after")).await {
            Ok(stands) => break stands,
            Err(error) => {
                assert!(error.is_retryable(), "a connection the server ended is a retryable failure: {error}");
                failures += 1;
                assert!(failures <= ended.len(), "{failures} failures for {} ended connections", ended.len());
            }
        }
    };
    assert_eq!(stands.note.map(|n| n.text).as_deref(), Some("after"));
    let stored: Option<String> =
        sqlx::query_scalar(&format!("SELECT note FROM {}.presence", schema.name)).fetch_one(&mut admin).await.unwrap();
    assert!(stored.is_some_and(|n| n.contains("after")), "the write that succeeded is stored");

    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {} CASCADE", schema.name)).execute(&mut admin).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}")).execute(&mut admin).await.unwrap();
}

/// A data directory made before migrations existed (tables created with IF NOT EXISTS, rights
/// members as JSON text in the key) opens, is migrated, and reads back the same data.
#[tokio::test]
async fn a_data_directory_from_before_migrations_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let legacy = include_str!("../migrations/sqlite/0001_initial.sql");
    sqlx::raw_sql(legacy).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        r#"INSERT INTO users VALUES ('sip:a@x.test', '{"uri":"sip:a@x.test","display_name":"A","phones":{"work":"tel:1"},"groups":["g"]}', '$argon2id$h');
           INSERT INTO users VALUES ('sip:b@x.test', '{"uri":"sip:b@x.test","display_name":"B","phones":{},"groups":[]}', NULL);
           INSERT INTO presence VALUES ('sip:a@x.test', '{"kind":"busy","text":"t","reachability":"normal"}', '{"text":"n"}');
           INSERT INTO rights VALUES ('sip:a@x.test', '{"type":"uri","value":"sip:b@x.test"}', 'team');
           INSERT INTO rights VALUES ('sip:a@x.test', '{"type":"sameEnterprise"}', 'blocked');
           INSERT INTO global_rights VALUES ('{"type":"group","value":"g"}', 'personal');
           INSERT INTO contact_lists VALUES ('sip:a@x.test', '{"groups":[{"id":1,"name":"~"}],"contacts":[],"delta_num":4}');
           INSERT INTO subscribers VALUES ('sip:a@x.test', 'sip:b@x.test', 1);
           INSERT INTO images VALUES ('sip:a@x.test', 0, 'image/png', X'0102', 'h');"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let s = SqliteStore::open(dir.path()).await.unwrap();
    let a = s.user("sip:a@x.test").await.unwrap().unwrap();
    assert_eq!((a.profile.display_name.as_str(), a.profile.phones.work.as_deref()), ("A", Some("tel:1")));
    assert_eq!(a.password_hash.as_deref(), Some("$argon2id$h"));
    let mut rights = s.rights_of("sip:a@x.test").await.unwrap();
    rights.sort_by_key(|e| e.level);
    assert_eq!(
        rights,
        vec![entry(Member::SameEnterprise, AccessLevel::Blocked), entry(Member::Uri("sip:b@x.test".into()), AccessLevel::Team)]
    );
    assert_eq!(s.global_rights().await.unwrap(), vec![entry(Member::Group("g".into()), AccessLevel::Personal)]);
    assert_eq!(s.presence("sip:a@x.test").await.unwrap().unwrap().manual.unwrap().kind, ManualKind::Busy);
    assert_eq!(s.contact_list("sip:a@x.test").await.unwrap().unwrap().delta_num, 4);
    assert_eq!(s.subscribers().await.unwrap(), vec![("sip:a@x.test".into(), "sip:b@x.test".into(), true)]);
    assert_eq!(s.image_hashes().await.unwrap(), vec![("sip:a@x.test".to_string(), "h".to_string())]);
    // New writes use the new rows, and opening again changes nothing.
    s.apply_rights("sip:a@x.test", &[RightsWrite::Remove { member: Member::SameEnterprise, level: Some(AccessLevel::Blocked) }])
        .await
        .unwrap();
    s.close().await;
    let s = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(s.rights_of("sip:a@x.test").await.unwrap().len(), 1);
}
