//! Manual state, note and raw categories on gateways sharing a store, against both backends,
//! with real gateways on 127.0.0.1:0 (no backplane unless a test names one): what a user publishes
//! on one gateway reaches watchers on the other through the store's change feed, and the other
//! gateway re-reads only the part the notice names (docs/architecture.md §5, "The store feed") —
//! seen through a store that counts the reads of a user's presence the feed makes; and a change of
//! one part made while the other gateway's change of the other part has not reached it yet keeps
//! both — seen through a store whose change feed the test holds back. On a shared Redis backplane
//! as well, rights written on one gateway take effect on the other before a note set after them,
//! even while that gateway's store notices are held back.

mod common;
#[path = "support/nodes.rs"]
#[macro_use]
mod nodes;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;

use common::*;
use nodes::{Backend, Node};
use presence_gateway::config::{ApiRole, ApiToken, Config};
use presence_gateway::cwa::xml::Element;
use presence_gateway::model::contacts::ContactList;
use presence_gateway::model::raw::RawCategory;
use presence_gateway::model::reports::SourceReport;
use presence_gateway::model::rights::{AccessLevel, Member, RightsEntry};
use presence_gateway::model::sources::Timestamp;
use presence_gateway::service::clock::Clock;
use presence_gateway::store::{
    Change, ChangeFeed, PresenceUpdate, RightsWrite, Store, StoreError, StoreResult, StoredImage, StoredPresence, StoredTicket,
    UserRecord,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const BOB: &str = "sip:bob@example.com";
const ZOE: &str = "sip:zoe@example.com";
const CAROL: &str = "sip:carol@example.com";

/// A store that counts the per-user presence reads (the ones the change feed makes), delivers
/// its change feed only while the test lets it, and otherwise passes every call on.
struct Counting {
    inner: Arc<dyn Store>,
    /// Reads of a user's manual state and note.
    inputs_read: AtomicUsize,
    /// Reads of a user's raw categories.
    raw_read: AtomicUsize,
    /// Whether the change feed delivers (true) or holds its notices back.
    feed_open: tokio::sync::watch::Sender<bool>,
    /// The next read of this owner's rights waits until the test releases it.
    held_rights: std::sync::Mutex<Option<HeldRead>>,
    /// The next read of this owner's rights fails as an unreachable store would.
    failing_rights: std::sync::Mutex<Option<String>>,
    /// The next read of this user's profile returns only when the test releases it.
    held_profile: std::sync::Mutex<Option<HeldRead>>,
    /// Puts a notice into the gateway's feed past the hold (set once the gateway opened it).
    feed_injector: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Change>>>,
}

/// A read the test holds: `reached` is told when it starts, and it goes on once `release` is.
struct HeldRead {
    owner: String,
    reached: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Counting {
    fn new(inner: Arc<dyn Store>) -> Counting {
        Counting {
            inner,
            inputs_read: 0.into(),
            raw_read: 0.into(),
            feed_open: tokio::sync::watch::Sender::new(true),
            held_rights: std::sync::Mutex::new(None),
            failing_rights: std::sync::Mutex::new(None),
            held_profile: std::sync::Mutex::new(None),
            feed_injector: std::sync::Mutex::new(None),
        }
    }

    /// The next read of `owner`'s rights fails (the store went away half-way through a read-in).
    fn fail_next_rights_read(&self, owner: &str) {
        *self.failing_rights.lock().unwrap() = Some(owner.to_string());
    }

    /// The feed tells the gateway it may have missed notices (as after a lost connection): the
    /// gateway re-reads everything, while the notices themselves stay held back.
    fn feed_says_everything(&self) {
        let injector = self.feed_injector.lock().unwrap().clone().expect("the gateway opened the feed");
        injector.try_send(Change::Everything).unwrap();
    }

    /// Holds the next read of `owner`'s rights; returns (told when it starts, to release it).
    fn hold_next_rights_read(&self, owner: &str) -> (Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
        let (reached, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let held = HeldRead { owner: owner.to_string(), reached: reached.clone(), release: release.clone() };
        *self.held_rights.lock().unwrap() = Some(held);
        (reached, release)
    }

    /// Holds the next read of `uri`'s profile once it has read the store, so that it returns what
    /// the store held then; returns (told when it has read, to let it return).
    fn hold_next_profile_read(&self, uri: &str) -> (Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
        let (reached, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let held = HeldRead { owner: uri.to_string(), reached: reached.clone(), release: release.clone() };
        *self.held_profile.lock().unwrap() = Some(held);
        (reached, release)
    }

    /// Holds the change feed's notices back (false) or lets them through, in order (true).
    fn deliver_feed(&self, open: bool) {
        self.feed_open.send_replace(open);
    }

    /// (live-input reads, raw-category reads) so far.
    fn reads(&self) -> (usize, usize) {
        (self.inputs_read.load(Ordering::SeqCst), self.raw_read.load(Ordering::SeqCst))
    }
}

#[async_trait::async_trait]
impl Store for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.inner.upsert_user(user).await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<bool> {
        self.inner.create_user(user).await
    }

    async fn set_password(&self, uri: &str, hash: &str) -> StoreResult<bool> {
        self.inner.set_password(uri, hash).await
    }

    async fn remove_user(&self, uri: &str) -> StoreResult<bool> {
        self.inner.remove_user(uri).await
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        self.inner.users().await
    }

    async fn user(&self, uri: &str) -> StoreResult<Option<UserRecord>> {
        let read = self.inner.user(uri).await;
        let held = self.held_profile.lock().unwrap().take_if(|held| held.owner == uri);
        if let Some(held) = held {
            held.reached.notify_one();
            held.release.notified().await;
        }
        read
    }

    async fn users_among(&self, uris: &[&str]) -> StoreResult<Vec<String>> {
        self.inner.users_among(uris).await
    }

    async fn update_presence(&self, uri: &str, update: &PresenceUpdate) -> StoreResult<StoredPresence> {
        self.inner.update_presence(uri, update).await
    }

    async fn presence(&self, uri: &str) -> StoreResult<Option<StoredPresence>> {
        self.inputs_read.fetch_add(1, Ordering::SeqCst);
        self.inner.presence(uri).await
    }

    async fn presences(&self) -> StoreResult<Vec<(String, StoredPresence)>> {
        self.inner.presences().await
    }

    async fn apply_rights(&self, owner: &str, writes: &[RightsWrite]) -> StoreResult<Vec<RightsEntry>> {
        self.inner.apply_rights(owner, writes).await
    }

    async fn rights(&self) -> StoreResult<Vec<(String, RightsEntry)>> {
        self.inner.rights().await
    }

    async fn rights_of(&self, owner: &str) -> StoreResult<Vec<RightsEntry>> {
        if self.failing_rights.lock().unwrap().take_if(|failing| failing == owner).is_some() {
            return Err(StoreError::Unavailable("the test took the store away".into()));
        }
        let held = self.held_rights.lock().unwrap().take_if(|held| held.owner == owner);
        if let Some(held) = held {
            held.reached.notify_one();
            held.release.notified().await;
        }
        self.inner.rights_of(owner).await
    }

    async fn set_global_right(&self, entry: &RightsEntry) -> StoreResult<()> {
        self.inner.set_global_right(entry).await
    }

    async fn remove_global_right(&self, member: &Member) -> StoreResult<bool> {
        self.inner.remove_global_right(member).await
    }

    async fn global_rights(&self) -> StoreResult<Vec<RightsEntry>> {
        self.inner.global_rights().await
    }

    async fn save_contact_list(
        &self,
        owner: &str,
        expected: Option<&ContactList>,
        list: &ContactList,
        subscribes_to: &[String],
    ) -> StoreResult<bool> {
        self.inner.save_contact_list(owner, expected, list, subscribes_to).await
    }

    async fn contact_list(&self, owner: &str) -> StoreResult<Option<ContactList>> {
        self.inner.contact_list(owner).await
    }

    async fn contact_lists(&self) -> StoreResult<Vec<(String, ContactList)>> {
        self.inner.contact_lists().await
    }

    async fn save_subscribers(&self, pairs: &[(&str, &str)], acknowledged: bool) -> StoreResult<()> {
        self.inner.save_subscribers(pairs, acknowledged).await
    }

    async fn subscribers(&self) -> StoreResult<Vec<(String, String, bool)>> {
        self.inner.subscribers().await
    }

    async fn subscribers_of(&self, owner: &str) -> StoreResult<Vec<(String, bool)>> {
        self.inner.subscribers_of(owner).await
    }

    async fn subscriber(&self, owner: &str, watcher: &str) -> StoreResult<Option<bool>> {
        self.inner.subscriber(owner, watcher).await
    }

    async fn save_image(&self, uri: &str, large: bool, image: &StoredImage) -> StoreResult<()> {
        self.inner.save_image(uri, large, image).await
    }

    async fn image(&self, uri: &str, large: bool) -> StoreResult<Option<StoredImage>> {
        self.inner.image(uri, large).await
    }

    async fn remove_image(&self, uri: &str, large: bool) -> StoreResult<bool> {
        self.inner.remove_image(uri, large).await
    }

    async fn image_hashes(&self) -> StoreResult<Vec<(String, String)>> {
        self.inner.image_hashes().await
    }

    async fn save_raw_categories(&self, uri: &str, expected: &[RawCategory], categories: &[RawCategory]) -> StoreResult<bool> {
        self.inner.save_raw_categories(uri, expected, categories).await
    }

    async fn raw_categories(&self) -> StoreResult<Vec<(String, Vec<RawCategory>)>> {
        self.inner.raw_categories().await
    }

    async fn raw_categories_of(&self, uri: &str) -> StoreResult<Vec<RawCategory>> {
        self.raw_read.fetch_add(1, Ordering::SeqCst);
        self.inner.raw_categories_of(uri).await
    }

    async fn create_login(&self, user: &str, first: &[u8; 32], now: Timestamp, expires: Timestamp) -> StoreResult<u64> {
        self.inner.create_login(user, first, now, expires).await
    }

    async fn login_ids(&self, user: &str) -> StoreResult<Vec<u64>> {
        self.inner.login_ids(user).await
    }

    async fn ticket(&self, hash: &[u8; 32]) -> StoreResult<Option<StoredTicket>> {
        self.inner.ticket(hash).await
    }

    async fn rotate_login(&self, login: u64, rotated: Timestamp, fresh: &[u8; 32], now: Timestamp) -> StoreResult<bool> {
        self.inner.rotate_login(login, rotated, fresh, now).await
    }

    async fn record_ticket_uses(&self, uses: &[([u8; 32], Timestamp)]) -> StoreResult<()> {
        self.inner.record_ticket_uses(uses).await
    }

    async fn sweep_tickets(&self, now: Timestamp, unused_since: Timestamp) -> StoreResult<u64> {
        self.inner.sweep_tickets(now, unused_since).await
    }

    async fn save_source_report(&self, uri: &str, source: &str, report: &SourceReport) -> StoreResult<()> {
        self.inner.save_source_report(uri, source, report).await
    }

    async fn remove_source_report(&self, uri: &str, source: &str) -> StoreResult<bool> {
        self.inner.remove_source_report(uri, source).await
    }

    async fn source_reports(&self, now: Timestamp) -> StoreResult<Vec<(String, String, SourceReport)>> {
        self.inner.source_reports(now).await
    }

    async fn source_reports_of(&self, uri: &str, now: Timestamp) -> StoreResult<Vec<(String, SourceReport)>> {
        self.inner.source_reports_of(uri, now).await
    }

    async fn sweep_source_reports(&self, now: Timestamp) -> StoreResult<u64> {
        self.inner.sweep_source_reports(now).await
    }

    async fn changes(&self) -> StoreResult<ChangeFeed> {
        let mut inner = self.inner.changes().await?;
        let mut open = self.feed_open.subscribe();
        let (send, feed) = tokio::sync::mpsc::channel(1024);
        *self.feed_injector.lock().unwrap() = Some(send.clone());
        tokio::spawn(async move {
            while let Some(change) = inner.recv().await {
                if open.wait_for(|open| *open).await.is_err() || send.send(change).await.is_err() {
                    return;
                }
            }
        });
        Ok(feed)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}

async fn publish_raw(client: &mut Client, text: &str) -> Reply {
    publish_raw_named(client, "GPSPosition", text).await
}

/// Publishes the raw category `name` (in the GPS namespace) with the GPS text `text`.
async fn publish_raw_named(client: &mut Client, name: &str, text: &str) -> Reply {
    let rid = client.next_rid();
    client
        .command(&format!(
            r#"<publishRawCategories rid="{rid}"><rawCategory name="{name}" nameSpace="urn:example:gps" instanceMask="0" container="300" expireType="user"><gps xmlns="urn:example:gps" lat="48.1"><note>{text}</note></gps></rawCategory></publishRawCategories>"#
        ))
        .await
}

/// The text of the GPSPosition raw category in a `user` element of a `userRawCategories` event.
fn gps_text(user: &Element) -> Option<String> {
    let category = user.children_named("rawCategory").find(|c| c.attr("name") == Some("GPSPosition"))?;
    Some(category.child("gps")?.child("note")?.text.clone())
}

/// Whether `event` carries Bob's raw categories with the GPS text `text`.
fn has_raw(event: &Event, text: &str) -> bool {
    event.name == "userRawCategories"
        && event.users().iter().any(|u| u.attr("uri") == Some(BOB) && gps_text(u).as_deref() == Some(text))
}

/// Polls until Bob's raw categories arrive with the GPS text `text`.
async fn sees_raw(client: &mut Client, text: &str) {
    client.wait_for(&format!("Bob's raw categories with {text}"), |e| has_raw(e, text)).await;
}

/// A session of Bob's on the gateway at `base` (sessions are not shared without a backplane).
async fn signed_in_bob(base: &str) -> Client {
    let mut bob = Client::sign_in(base, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    bob
}

/// Two gateways on `backend`, the second on a [`Counting`] store, and Alice's session on the
/// second, subscribed to Bob.
async fn two_gateways_alice_watching_bob_on_the_second(backend: &Backend) -> (Node, Node, Arc<Counting>, Client) {
    let one = Node::on(backend, test_config()).await;
    let counting = Arc::new(Counting::new(backend.open().await));
    let two = Node::start(counting.clone(), test_config()).await;
    let mut alice = Client::sign_in(&two.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.subscribe(&[BOB]).await;
    (one, two, counting, alice)
}

async fn each_part_reaches_the_other_gateway_and_only_it_is_read_again(backend: Backend) {
    let (one, node_two, counting, mut alice) = two_gateways_alice_watching_bob_on_the_second(&backend).await;
    let two = node_two.base.clone();
    // Bob is online there (sessions are not shared without a backplane) and publishes here.
    Client::sign_in(&two, "bob@example.com", "pw").await.unwrap().initiate().await;
    alice.wait_for_user(BOB, |u| seen(u).availability == 3500).await;
    let mut bob = Client::sign_in(&one.base, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;

    // A note: the other gateway re-reads the manual state and note, never the raw categories.
    let before = counting.reads();
    assert!(bob.publish_note("at the desk").await.body.contains("requestAccepted"));
    alice.wait_for_user(BOB, |u| seen(u).note == "at the desk").await;
    let after = counting.reads();
    assert!(after.0 > before.0, "the note was read from the store: {before:?} → {after:?}");
    assert_eq!(after.1, before.1, "a note change reads no raw categories: {before:?} → {after:?}");

    // Raw categories: only they are re-read, and they reach the watcher there.
    assert!(publish_raw(&mut bob, "in the lab").await.body.contains("requestAccepted"));
    sees_raw(&mut alice, "in the lab").await;
    let last = counting.reads();
    assert!(last.1 > after.1, "the raw categories were read from the store: {after:?} → {last:?}");
    assert_eq!(last.0, after.0, "a raw-category change reads no manual state or note: {after:?} → {last:?}");

    // Both parts stay: a later note keeps the raw categories, and the reverse.
    assert!(bob.publish_note("back at the desk").await.body.contains("requestAccepted"));
    alice.wait_for_user(BOB, |u| seen(u).note == "back at the desk").await;
    assert!(publish_raw(&mut bob, "in the canteen").await.body.contains("requestAccepted"));
    sees_raw(&mut alice, "in the canteen").await;
    let mut late = Client::sign_in(&two, "alice@example.com", "pw").await.unwrap();
    late.initiate().await;
    late.subscribe(&[BOB]).await;
    let events = late.events_until("Bob's raw categories", |e| has_raw(e, "in the canteen")).await;
    let note = |e: &Event| e.name == "userPresence" && e.users().iter().any(|u| seen(u).note == "back at the desk");
    assert!(events.iter().any(note), "a new watcher there gets the note with the raw categories");
}

/// Bob's note is set on one gateway; before that gateway's notice reaches the other, Bob's
/// manual state is set there. The store keeps both, and watchers on either gateway see both.
async fn a_part_changed_on_one_gateway_keeps_the_other_part_changed_on_another(backend: Backend) {
    let (one, node_two, counting, mut alice) = two_gateways_alice_watching_bob_on_the_second(&backend).await;
    let two = node_two.base.clone();
    let (mut bob_there, mut bob_here) = (signed_in_bob(&two).await, signed_in_bob(&one.base).await);

    counting.deliver_feed(false);
    assert!(bob_here.publish_note("at the desk").await.body.contains("requestAccepted"));
    assert!(bob_there.publish_state(6500).await.body.contains("requestAccepted"));
    counting.deliver_feed(true);

    let both = |u: &Element| seen(u).availability == 6500 && seen(u).note == "at the desk";
    alice.wait_for_user(BOB, both).await;
    let stored = backend.open().await.presence(BOB).await.unwrap().expect("Bob's presence is stored");
    assert_eq!(stored.note.map(|n| n.text).as_deref(), Some("at the desk"), "the note is kept");
    assert!(stored.manual.is_some(), "the manual state is kept");
    let mut watcher_here = Client::sign_in(&one.base, "alice@example.com", "pw").await.unwrap();
    watcher_here.initiate().await;
    watcher_here.subscribe(&[BOB]).await;
    watcher_here.wait_for_user(BOB, both).await;
}

/// Bob's note ends at a set time. Before it does, Bob writes a new note on one gateway, and that
/// gateway's notice has not reached the other when the old note's time comes there. The other
/// gateway's end of the old note must not clear the new one: the store keeps the new note, and the
/// watcher there is shown it.
async fn a_timed_end_on_one_gateway_keeps_a_note_written_on_another_since(backend: Backend) {
    let (one, node_two, counting, mut alice) = two_gateways_alice_watching_bob_on_the_second(&backend).await;
    let two = node_two.base.clone();
    let (bob_there, mut bob_here) = (signed_in_bob(&two).await, signed_in_bob(&one.base).await);

    let expires = (node_two.clock.now() + chrono::Duration::seconds(10)).to_rfc3339();
    let timed = bob_there
        .http
        .put(format!("{two}/api/v1/users/{BOB}/note"))
        .header("CWA-Ticket", &bob_there.ticket)
        .json(&serde_json::json!({"text": "in a meeting", "expires": expires}))
        .send()
        .await
        .unwrap();
    assert_eq!(timed.status(), 200);
    alice.wait_for_user(BOB, |u| seen(u).note == "in a meeting").await;

    counting.deliver_feed(false);
    assert!(bob_here.publish_note("back at the desk").await.body.contains("requestAccepted"));
    node_two.clock.advance(chrono::Duration::seconds(11));
    let shown = alice.wait_for_user(BOB, |u| seen(u).note != "in a meeting").await;

    let stored = backend.open().await.presence(BOB).await.unwrap().expect("Bob's presence is stored");
    assert_eq!(stored.note.map(|n| n.text).as_deref(), Some("back at the desk"), "the newer note is kept");
    assert_eq!(seen(&shown).note, "back at the desk", "the watcher there is shown the note that stands");
    counting.deliver_feed(true);
}

/// Bob publishes one raw category on one gateway; before that gateway's notice reaches the
/// other, he publishes another raw category there. The store keeps both: a publication is applied
/// to the raw categories the store holds, not to a gateway's copy that lags behind.
async fn raw_categories_published_on_two_gateways_at_once_are_both_kept(backend: Backend) {
    let (one, node_two, counting, _alice) = two_gateways_alice_watching_bob_on_the_second(&backend).await;
    let (mut bob_there, mut bob_here) = (signed_in_bob(&node_two.base).await, signed_in_bob(&one.base).await);

    counting.deliver_feed(false);
    assert!(publish_raw_named(&mut bob_here, "GPSPosition", "in the lab").await.body.contains("requestAccepted"));
    assert!(publish_raw_named(&mut bob_there, "DeskPosition", "at the desk").await.body.contains("requestAccepted"));
    counting.deliver_feed(true);

    let stored = backend.open().await.raw_categories_of(BOB).await.unwrap();
    let mut names: Vec<&str> = stored.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["DeskPosition", "GPSPosition"], "both publications are kept");
}

/// Bob adds a group on one gateway; before that gateway's notice reaches the other, he adds
/// another group there. The stored list keeps both, and his session there is shown both.
async fn contact_lists_changed_on_two_gateways_at_once_keep_both_changes(backend: Backend) {
    let (one, node_two, counting, _alice) = two_gateways_alice_watching_bob_on_the_second(&backend).await;
    let (mut bob_there, mut bob_here) = (signed_in_bob(&node_two.base).await, signed_in_bob(&one.base).await);
    let add_group = |rid: String, name: &str| format!(r#"<addGroup rid="{rid}"><group name="{name}"/></addGroup>"#);

    counting.deliver_feed(false);
    let rid = bob_here.next_rid();
    assert!(bob_here.command(&add_group(rid, "Lab")).await.body.contains("requestAccepted"));
    let rid = bob_there.next_rid();
    assert!(bob_there.command(&add_group(rid, "Desk")).await.body.contains("requestAccepted"));
    counting.deliver_feed(true);

    let stored = backend.open().await.contact_list(BOB).await.unwrap().expect("Bob's list is stored");
    let mut names: Vec<&str> = stored.groups.iter().map(|g| g.name.as_str()).collect();
    names.sort_unstable();
    assert!(names.contains(&"Lab") && names.contains(&"Desk"), "both groups are kept: {names:?}");
    let ids: std::collections::BTreeSet<u32> = stored.groups.iter().map(|g| g.id).collect();
    assert_eq!(ids.len(), stored.groups.len(), "every group has an id of its own");
}

/// Bob blocks Alice on one gateway; before that gateway's notice reaches the other, he takes her
/// out of the blocked container there. The other gateway's copy does not hold the entry yet, but
/// the store does: the removal is made there all the same, and both gateways end without it.
async fn a_rights_entry_removed_on_one_gateway_before_its_addition_reached_it_is_removed(backend: Backend) {
    let (one, node_two, counting, _alice) = two_gateways_alice_watching_bob_on_the_second(&backend).await;
    let (mut bob_there, mut bob_here) = (signed_in_bob(&node_two.base).await, signed_in_bob(&one.base).await);
    let blocked = |rid: String, verb: &str| {
        format!(
            r#"<updateContainer rid="{rid}"><container id="32000"><{verb} type="uri" value="sip:alice@example.com"/></container></updateContainer>"#
        )
    };
    let alice_blocked = |entries: &[RightsEntry]| {
        entries.iter().any(|e| e.member == Member::Uri("sip:alice@example.com".into()) && e.level == AccessLevel::Blocked)
    };

    counting.deliver_feed(false);
    let rid = bob_here.next_rid();
    assert!(bob_here.command(&blocked(rid, "addMember")).await.body.contains("requestAccepted"));
    let rid = bob_there.next_rid();
    assert!(bob_there.command(&blocked(rid, "deleteMember")).await.body.contains("requestAccepted"));
    let stored = backend.open().await.rights_of(BOB).await.unwrap();
    assert!(!alice_blocked(&stored), "the removal reached the store: {stored:?}");
    counting.deliver_feed(true);

    // The gateway that added her hears of the removal and shows Alice's session there Bob again.
    let mut alice_here = Client::sign_in(&one.base, "alice@example.com", "pw").await.unwrap();
    alice_here.initiate().await;
    alice_here.subscribe(&[BOB]).await;
    alice_here.wait_for_user(BOB, |u| seen(u).availability > 0).await;
}

const ADMIN: &str = "admin-token-0123456789";

/// The test configuration with an admin token ([`ADMIN`]) for the JSON API.
fn with_admin_token() -> Config {
    let tokens = vec![ApiToken { name: "ops".into(), token: ADMIN.into(), role: ApiRole::Admin }];
    Config { api_tokens: tokens, ..test_config() }
}

/// An admin blocks Alice for Bob on one gateway (she was at Team) and gives his group r-and-d an
/// entry; before that gateway's notices reach the other, both entries are removed there through
/// the JSON API (which removes an entry at whatever level it is): the other gateway's copy has
/// Alice at Team and no group entry, the store has Alice blocked and the group's entry, and both go.
async fn entries_added_on_one_gateway_are_removed_through_the_api_on_the_other_before_its_notice(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let http = reqwest::Client::new();
    let rights = format!("{}/api/v1/users/{BOB}/rights/sip:alice@example.com", one.base);
    let set = http.put(rights).bearer_auth(ADMIN).json(&serde_json::json!({"level": "blocked"})).send().await.unwrap();
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
    let group = format!("{}/api/v1/users/{BOB}/group-rights/r-and-d", one.base);
    let set = http.put(group).bearer_auth(ADMIN).json(&serde_json::json!({"level": "team"})).send().await.unwrap();
    assert!(set.status().is_success(), "{}", set.text().await.unwrap());
    let added = |entries: &[RightsEntry]| {
        entries
            .iter()
            .filter(|e| {
                matches!(&e.member, Member::Uri(u) if u == "sip:alice@example.com") || e.member == Member::Group("r-and-d".into())
            })
            .count()
    };
    assert_eq!(added(&backend.open().await.rights_of(BOB).await.unwrap()), 2, "both entries are stored");

    // The group first: a removal refreshes the gateway's copy from the store, which would show it
    // the other entry.
    let removed = http.delete(format!("{}/api/v1/users/{BOB}/group-rights/r-and-d", two.base)).bearer_auth(ADMIN).send();
    assert_eq!(removed.await.unwrap().status(), 204);
    let stored = backend.open().await.rights_of(BOB).await.unwrap();
    assert!(!stored.iter().any(|e| e.member == Member::Group("r-and-d".into())), "the group's entry is gone: {stored:?}");
    let removed = http.delete(format!("{}/api/v1/users/{BOB}/rights/sip:alice@example.com", two.base)).bearer_auth(ADMIN).send();
    assert_eq!(removed.await.unwrap().status(), 200);
    let stored = backend.open().await.rights_of(BOB).await.unwrap();
    assert_eq!(added(&stored), 0, "both entries are gone from the store: {stored:?}");
    counting.deliver_feed(true);
}

/// An admin creates Zoe on one gateway; before that gateway's notice reaches the other, the
/// same user is created there — refused (409), her password stays — and then deleted there — she
/// is gone from the store. Whether a user exists is the store's to say, not a gateway's copy.
async fn a_user_created_on_one_gateway_exists_on_the_other_before_its_notice(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let http = reqwest::Client::new();
    let zoe = |password: &str| serde_json::json!({"uri": "sip:zoe@example.com", "displayName": "Zoe", "password": password});
    let create =
        |base: &str, password: &str| http.post(format!("{base}/api/v1/users")).bearer_auth(ADMIN).json(&zoe(password)).send();

    assert_eq!(create(&one.base, "zoe-pass").await.unwrap().status(), 201);
    assert_eq!(create(&two.base, "other-pass").await.unwrap().status(), 409, "she exists in the store");
    assert!(Client::sign_in(&one.base, "zoe@example.com", "zoe-pass").await.is_ok(), "her password stays");

    let deleted = http.delete(format!("{}/api/v1/users/sip:zoe@example.com", two.base)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(deleted.status(), 204, "the store had her");
    assert!(backend.open().await.user("sip:zoe@example.com").await.unwrap().is_none(), "she is gone from the store");
    counting.deliver_feed(true);
}

/// An admin creates Zoe on one gateway; before that notice reaches the other gateway, an
/// integration sets her absent state and her note there, reads her record and her presence, and
/// gives her group rights: the store, not that gateway's copy, says she exists.
async fn a_user_created_on_one_gateway_can_be_used_on_the_other_before_its_notice(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let http = reqwest::Client::new();
    let zoe = serde_json::json!({"uri": "sip:zoe@example.com", "displayName": "Zoe", "password": "zoe-pass"});
    let created = http.post(format!("{}/api/v1/users", one.base)).bearer_auth(ADMIN).json(&zoe).send().await.unwrap();
    assert_eq!(created.status(), 201);

    let user = format!("{}/api/v1/users/sip:zoe@example.com", two.base);
    let away = serde_json::json!({"state": "away", "text": "at the dentist"});
    let set = http.put(format!("{user}/absent-state")).bearer_auth(ADMIN).json(&away).send().await.unwrap();
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
    let note = serde_json::json!({"text": "back at two"});
    let set = http.put(format!("{user}/note")).bearer_auth(ADMIN).json(&note).send().await.unwrap();
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
    let group = http.put(format!("{user}/group-rights/r-and-d")).bearer_auth(ADMIN).json(&serde_json::json!({"level": "team"}));
    let set = group.send().await.unwrap();
    assert!(set.status().is_success(), "{}", set.text().await.unwrap());
    let record = http.get(&user).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(record.status(), 200, "{}", record.text().await.unwrap());
    assert!(record.text().await.unwrap().contains("Zoe"));
    let presence = http.get(format!("{user}/presence")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(presence.status(), 200);
    let presence = presence.text().await.unwrap();
    assert!(presence.contains("at the dentist") && presence.contains("back at two"), "{presence}");

    let unknown = http.put(format!("{}/api/v1/users/sip:nobody@example.com/absent-state", two.base)).bearer_auth(ADMIN);
    assert_eq!(unknown.json(&away).send().await.unwrap().status(), 404, "the store has no such user either");
    counting.deliver_feed(true);
}

/// Through the admin API at `base`: Zoe is created, notes "in Lisbon" and blocks Alice.
async fn zoe_in_lisbon_blocking_alice(http: &reqwest::Client, base: &str) {
    let zoe = serde_json::json!({"uri": ZOE, "displayName": "Zoe", "password": "zoe-pass"});
    let created = http.post(format!("{base}/api/v1/users")).bearer_auth(ADMIN).json(&zoe).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let note = serde_json::json!({"text": "in Lisbon"});
    let set = http.put(format!("{base}/api/v1/users/{ZOE}/note")).bearer_auth(ADMIN).json(&note).send().await.unwrap();
    assert_eq!(set.status(), 200);
    let block = http.put(format!("{base}/api/v1/users/{ZOE}/rights/sip:alice@example.com")).bearer_auth(ADMIN);
    assert!(block.json(&serde_json::json!({"level": "blocked"})).send().await.unwrap().status().is_success());
}

/// An admin creates Zoe, sets her note and blocks Alice on one gateway; before those notices reach the other
/// gateway, a batch read, a CWA query and a CWA subscription there see her as stored (her block
/// of Alice included), and Carol's subscription and Alice's contact-list entry make them Zoe's
/// subscribers.
async fn a_user_created_on_one_gateway_is_read_and_watched_on_the_other_before_its_notice(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let http = reqwest::Client::new();
    zoe_in_lisbon_blocking_alice(&http, &one.base).await;

    let ids = serde_json::json!({"ids": [ZOE, "sip:nobody@example.com"]});
    let batch = http.post(format!("{}/api/v1/presence/batch", two.base)).bearer_auth(ADMIN).json(&ids).send().await.unwrap();
    assert_eq!(batch.status(), 200);
    let batch: serde_json::Value = batch.json().await.unwrap();
    assert_eq!(batch["value"][0]["asnCustomNote"]["u8sNote"], "in Lisbon", "{batch}");

    let mut carol = Client::sign_in(&two.base, "carol@example.com", "pw").await.unwrap();
    carol.initiate().await;
    carol.query(&[ZOE]).await;
    assert_eq!(seen(&carol.wait_for_user(ZOE, |_| true).await).note, "in Lisbon");
    assert!(carol.subscribe(&[ZOE]).await.body.contains("requestAccepted"));
    let mut alice = Client::sign_in(&two.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    let rid = alice.next_rid();
    let add = format!(r#"<addContact rid="{rid}"><contact uri="{ZOE}" name="Zoe" subscribed="true" tag="false"/></addContact>"#);
    assert!(alice.command(&add).await.body.contains("requestAccepted"));
    alice.query(&[ZOE]).await;
    assert_eq!(seen(&alice.wait_for_user(ZOE, |_| true).await).note, "", "Zoe blocked Alice");

    let store = backend.open().await;
    assert_eq!(store.subscriber(ZOE, "sip:carol@example.com").await.unwrap(), Some(false), "Carol subscribed");
    assert_eq!(store.subscriber(ZOE, "sip:alice@example.com").await.unwrap(), Some(false), "Alice listed her");
    counting.deliver_feed(true);
}

/// A user created on one gateway, who blocked Alice and set a note, is being read in on the other
/// (a batch read asked for her) when Alice asks about her there: Alice never sees the note,
/// however far that read has got — who may see what is in place before the user can be seen.
async fn a_blocked_watcher_sees_nothing_of_a_user_another_request_is_reading_in(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let http = reqwest::Client::new();
    zoe_in_lisbon_blocking_alice(&http, &one.base).await;
    let mut alice = Client::sign_in(&two.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;

    let (reached, release) = counting.hold_next_rights_read(ZOE);
    let batch_read = tokio::spawn({
        let (http, url) = (http.clone(), format!("{}/api/v1/presence/batch", two.base));
        async move { http.post(url).bearer_auth(ADMIN).json(&serde_json::json!({"ids": [ZOE]})).send().await.unwrap() }
    });
    reached.notified().await;
    alice.query(&[ZOE]).await;
    assert_eq!(seen(&alice.wait_for_user(ZOE, |_| true).await).note, "", "Zoe blocked Alice");

    release.notify_one();
    let batch: serde_json::Value = batch_read.await.unwrap().json().await.unwrap();
    assert_eq!(batch["value"][0]["asnCustomNote"]["u8sNote"], "in Lisbon", "{batch}");
    counting.deliver_feed(true);
}

/// The store fails while the other gateway reads a new user in (at her rights): the read answers
/// 503 and the user is not made live half-way — the next read reads her in whole, and Alice, whom
/// she blocked, still sees nothing.
async fn a_store_failing_while_a_user_is_read_in_leaves_nothing_half_made(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let http = reqwest::Client::new();
    zoe_in_lisbon_blocking_alice(&http, &one.base).await;
    let read = |http: reqwest::Client, base: String| async move {
        let ids = serde_json::json!({"ids": [ZOE]});
        http.post(format!("{base}/api/v1/presence/batch")).bearer_auth(ADMIN).json(&ids).send().await.unwrap()
    };

    counting.fail_next_rights_read(ZOE);
    let failed = read(http.clone(), two.base.clone()).await;
    assert_eq!(failed.status(), 503);
    let mut alice = Client::sign_in(&two.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.query(&[ZOE]).await;
    assert_eq!(seen(&alice.wait_for_user(ZOE, |_| true).await).note, "", "Zoe blocked Alice");
    let batch: serde_json::Value = read(http, two.base.clone()).await.json().await.unwrap();
    assert_eq!(batch["value"][0]["asnCustomNote"]["u8sNote"], "in Lisbon", "{batch}");
    counting.deliver_feed(true);
}

/// While a gateway's feed missed notices, Bob blocked Alice and then set a note. The gateway
/// re-reads everything; whenever Alice asks meanwhile, she never sees the note: the rights are read
/// before the presence they decide on.
async fn a_gateway_re_reading_everything_never_shows_a_note_to_whom_its_owner_blocked(backend: Backend) {
    let (one, two, counting) = two_gateways_of(&backend, with_admin_token()).await;
    let mut alice = Client::sign_in(&two.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    let carol = carol_subscribes_to_bob(&two.base).await;
    bob_blocks_alice_then_sets_a_note(&one.base).await;

    let (reached, release) = counting.hold_next_rights_read(BOB);
    counting.feed_says_everything();
    reached.notified().await;
    alice.query(&[BOB]).await;
    assert_eq!(seen(&alice.wait_for_user(BOB, |_| true).await).note, "", "Bob blocked Alice before his note");

    release.notify_one();
    let mut carol = carol;
    assert_eq!(seen(&carol.wait_for_user(BOB, |u| seen(u).note == "interviewing").await).note, "interviewing");
    alice.query(&[BOB]).await;
    assert_eq!(seen(&alice.wait_for_user(BOB, |_| true).await).note, "", "still blocked once everything is read");
    counting.deliver_feed(true);
}

/// An admin blocks Alice for Bob on the gateway at `base`, then sets Bob's note "interviewing".
async fn bob_blocks_alice_then_sets_a_note(base: &str) {
    let http = reqwest::Client::new();
    let block = http.put(format!("{base}/api/v1/users/{BOB}/rights/sip:alice@example.com")).bearer_auth(ADMIN);
    assert!(block.json(&serde_json::json!({"level": "blocked"})).send().await.unwrap().status().is_success());
    let note = serde_json::json!({"text": "interviewing"});
    let set = http.put(format!("{base}/api/v1/users/{BOB}/note")).bearer_auth(ADMIN).json(&note).send().await.unwrap();
    assert_eq!(set.status(), 200);
}

/// Alice's session on the gateway at `base`, watching `whom` (their first snapshot taken).
async fn alice_watching(base: &str, whom: &str) -> Client {
    let mut alice = Client::sign_in(base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    assert!(alice.subscribe(&[whom]).await.body.contains("requestAccepted"));
    alice.wait_for_user(whom, |_| true).await;
    alice
}

/// Two gateways on `backend` and one Redis backplane, both ready, the second's store feed held
/// back: rights reach it only through the backplane (or a read of its own), notes and states
/// through the backplane as always.
async fn two_gateways_on_a_backplane(backend: &Backend) -> (Node, Node, Arc<Counting>, redis::RedisServer) {
    let redis = redis::RedisServer::start();
    let config = Config { redis: Some(redis.url()), ..with_admin_token() };
    let (one, two, counting) = two_gateways_of(backend, config).await;
    for node in [&one, &two] {
        assert!(process::ready_within(&node.base, std::time::Duration::from_secs(10), true).await, "{} not ready", node.base);
    }
    (one, two, counting, redis)
}

/// On a shared backplane Bob blocks Alice on one gateway and then sets a note; the other gateway's
/// store feed has not brought the block (it lags), while the note comes through the backplane.
/// Alice, watching Bob there, never sees the note: the block travels in Bob's backplane order ahead
/// of it, and that gateway reads Bob's rights before it applies what follows.
async fn a_note_set_after_a_block_never_reaches_the_blocked_watcher_on_another_node(backend: Backend) {
    let (one, two, counting, _redis) = two_gateways_on_a_backplane(&backend).await;
    let mut alice = alice_watching(&two.base, BOB).await;
    let mut carol = carol_subscribes_to_bob(&two.base).await;

    bob_blocks_alice_then_sets_a_note(&one.base).await;
    carol.wait_for_user(BOB, |u| seen(u).note == "interviewing").await;
    alice.query(&[BOB]).await;
    assert_eq!(seen(&alice.wait_for_user(BOB, |_| true).await).note, "", "Bob blocked Alice before his note");
    alice.query(&[BOB]).await;
    assert_eq!(seen(&alice.wait_for_user(BOB, |_| true).await).note, "");
    counting.deliver_feed(true);
}

/// As above, with the other gateway's store failing at its first read of Bob's rights: the read is
/// made again before the note is applied, and Alice never sees it.
async fn a_store_failing_once_at_a_rights_read_the_backplane_asked_for_is_read_again(backend: Backend) {
    let (one, two, counting, _redis) = two_gateways_on_a_backplane(&backend).await;
    let mut alice = alice_watching(&two.base, BOB).await;
    let mut carol = carol_subscribes_to_bob(&two.base).await;

    counting.fail_next_rights_read(BOB);
    bob_blocks_alice_then_sets_a_note(&one.base).await;
    carol.wait_for_user(BOB, |u| seen(u).note == "interviewing").await;
    alice.query(&[BOB]).await;
    assert_eq!(seen(&alice.wait_for_user(BOB, |_| true).await).note, "", "Bob blocked Alice before his note");
    counting.deliver_feed(true);
}

/// As above for an entry that applies to every owner: an admin blocks Alice's group everywhere on
/// one gateway, then sets Carol's note; Alice, watching Carol on the other gateway (whose store
/// notices lag), never sees it, while Bob there does.
async fn a_note_set_after_a_global_block_never_reaches_the_blocked_watcher_on_another_node(backend: Backend) {
    let (one, two, counting, _redis) = two_gateways_on_a_backplane(&backend).await;
    let mut alice = alice_watching(&two.base, CAROL).await;
    let mut bob = signed_in_bob(&two.base).await;
    assert!(bob.subscribe(&[CAROL]).await.body.contains("requestAccepted"));

    let http = reqwest::Client::new();
    let block = http.put(format!("{}/api/v1/group-rights/r-and-d", one.base)).bearer_auth(ADMIN);
    assert!(block.json(&serde_json::json!({"level": "blocked"})).send().await.unwrap().status().is_success());
    let note = serde_json::json!({"text": "on leave"});
    let set = http.put(format!("{}/api/v1/users/{CAROL}/note", one.base)).bearer_auth(ADMIN).json(&note).send().await.unwrap();
    assert_eq!(set.status(), 200);
    bob.wait_for_user(CAROL, |u| seen(u).note == "on leave").await;
    alice.query(&[CAROL]).await;
    assert_eq!(seen(&alice.wait_for_user(CAROL, |_| true).await).note, "", "Alice's group was blocked before the note");
    counting.deliver_feed(true);
}

/// As above for a watcher's groups: an admin blocks the board everywhere, puts Carol on the board
/// and sets Bob's note, all on one gateway; Carol, watching Bob on the other gateway (whose store
/// notices lag), never sees the note, while Alice there does.
async fn a_note_set_after_a_watcher_joined_a_blocked_group_never_reaches_them_on_another_node(backend: Backend) {
    let (one, two, counting, _redis) = two_gateways_on_a_backplane(&backend).await;
    let mut alice = alice_watching(&two.base, BOB).await;
    let mut carol = carol_subscribes_to_bob(&two.base).await;
    carol.wait_for_user(BOB, |_| true).await;

    let http = reqwest::Client::new();
    let block = http.put(format!("{}/api/v1/group-rights/board", one.base)).bearer_auth(ADMIN);
    assert!(block.json(&serde_json::json!({"level": "blocked"})).send().await.unwrap().status().is_success());
    let board = serde_json::json!({"uri": "sip:carol@example.com", "displayName": "Carol Chen", "groups": ["board"]});
    let put = http.put(format!("{}/api/v1/users/sip:carol@example.com", one.base)).bearer_auth(ADMIN).json(&board);
    assert_eq!(put.send().await.unwrap().status(), 200);
    let note = serde_json::json!({"text": "interviewing"});
    let set = http.put(format!("{}/api/v1/users/{BOB}/note", one.base)).bearer_auth(ADMIN).json(&note).send().await.unwrap();
    assert_eq!(set.status(), 200);
    alice.wait_for_user(BOB, |u| seen(u).note == "interviewing").await;
    carol.query(&[BOB]).await;
    assert_eq!(seen(&carol.wait_for_user(BOB, |_| true).await).note, "", "Carol joined a blocked group before the note");
    counting.deliver_feed(true);
}

/// A gateway reads Carol's profile for the backplane's mark of a change of her name, and that
/// read returns only after the store feed brought a later change — Carol put into a blocked group
/// — and it was read and applied. The older read, ending last, must not put Carol back out of the
/// group: she sees neither Bob's earlier note again nor his next one, while Alice, on the same
/// gateway, does.
async fn an_older_read_of_a_profile_never_undoes_a_later_regrouping(backend: Backend) {
    let (one, two, counting, _redis) = two_gateways_on_a_backplane(&backend).await;
    let http = reqwest::Client::new();
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(ADMIN);
    let note = |text: &str| serde_json::json!({ "text": text });
    let set = admin(http.put(format!("{}/api/v1/users/{BOB}/note", one.base))).json(&note("interviewing"));
    assert_eq!(set.send().await.unwrap().status(), 200);
    let mut carol = carol_subscribes_to_bob(&two.base).await;
    carol.wait_for_user(BOB, |u| seen(u).note == "interviewing").await;
    let mut alice = alice_watching(&two.base, BOB).await;
    let block = admin(http.put(format!("{}/api/v1/group-rights/board", one.base)));
    assert!(block.json(&serde_json::json!({"level": "blocked"})).send().await.unwrap().status().is_success());
    let stored = counting.user(CAROL).await.unwrap().expect("Carol is a user");

    // Renamed on the first gateway: the second reads her profile for the mark, and is held.
    let (reached, release) = counting.hold_next_profile_read(CAROL);
    let renamed = serde_json::json!({"uri": CAROL, "displayName": "Carol C."});
    let put = admin(http.put(format!("{}/api/v1/users/{CAROL}", one.base))).json(&renamed);
    assert_eq!(put.send().await.unwrap().status(), 200);
    reached.notified().await;
    // Then put into the blocked group in the store alone (no mark): the feed brings it.
    let mut regrouped = stored.clone();
    regrouped.profile.display_name = "Carol C.".into();
    regrouped.profile.groups = vec!["board".into()];
    counting.upsert_user(&regrouped).await.unwrap();
    counting.deliver_feed(true);
    carol.wait_for_user(BOB, |u| seen(u).note.is_empty()).await;

    release.notify_one();
    let set = admin(http.put(format!("{}/api/v1/users/{BOB}/note", one.base))).json(&note("after the regrouping"));
    assert_eq!(set.send().await.unwrap().status(), 200);
    alice.wait_for_user(BOB, |u| seen(u).note == "after the regrouping").await;
    // Carol's own note comes after whatever the fan-out of Bob's gave her.
    assert!(carol.publish_note("done").await.body.contains("requestAccepted"));
    let events = carol.events_until("Carol's own note", |e| e.name == "selfPresence" && seen(&e.element).note == "done").await;
    let bob_notes: Vec<String> =
        events.iter().flat_map(|e| e.users()).filter(|u| u.attr("uri") == Some(BOB)).flat_map(|u| note_texts(&u)).collect();
    assert!(bob_notes.iter().all(String::is_empty), "Carol, in a blocked group, saw Bob's notes: {bob_notes:?}");
}

/// The texts of every note a `user` element carries (any part of a snapshot).
fn note_texts(user: &Element) -> Vec<String> {
    let notes = user.children_named("cwaCategory").filter(|c| c.attr("name") == Some("note"));
    notes.filter_map(|c| c.child("note")).flat_map(|n| n.children_named("body").map(|b| b.text.clone())).collect()
}

/// As above, but nobody on the other gateway watched Bob: Alice reads him there afterwards, the
/// gateway starts following him, and it reads his rights before it shows what the backplane holds.
async fn a_gateway_starting_to_follow_a_user_reads_their_rights_before_their_note(backend: Backend) {
    let (one, two, counting, _redis) = two_gateways_on_a_backplane(&backend).await;
    bob_blocks_alice_then_sets_a_note(&one.base).await;

    let mut alice = Client::sign_in(&two.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.query(&[BOB]).await;
    assert_eq!(seen(&alice.wait_for_user(BOB, |_| true).await).note, "", "Bob blocked Alice before his note");
    let mut carol = Client::sign_in(&two.base, "carol@example.com", "pw").await.unwrap();
    carol.initiate().await;
    carol.query(&[BOB]).await;
    assert_eq!(seen(&carol.wait_for_user(BOB, |_| true).await).note, "interviewing", "the note is there for others");
    counting.deliver_feed(true);
}

/// Two gateways on `backend`, the second on a [`Counting`] store whose feed is held back: it
/// hears nothing of what the first one stores until the test lets the feed through.
async fn two_gateways_the_second_not_hearing_the_first(backend: &Backend) -> (Node, Node, Arc<Counting>) {
    two_gateways_of(backend, test_config()).await
}

/// [`two_gateways_the_second_not_hearing_the_first`], both with `config`.
async fn two_gateways_of(backend: &Backend, config: Config) -> (Node, Node, Arc<Counting>) {
    let one = Node::on(backend, config.clone()).await;
    let counting = Arc::new(Counting::new(backend.open().await));
    let two = Node::start(counting.clone(), config).await;
    counting.deliver_feed(false);
    (one, two, counting)
}

/// A session of Carol's on the gateway at `base`, subscribed to Bob.
async fn carol_subscribes_to_bob(base: &str) -> Client {
    let mut carol = Client::sign_in(base, "carol@example.com", "pw").await.unwrap();
    carol.initiate().await;
    assert!(carol.subscribe(&[BOB]).await.body.contains("requestAccepted"));
    carol
}

async fn acknowledge(owner: &mut Client, subscriber: &str) -> Reply {
    let rid = owner.next_rid();
    owner.command(&format!(r#"<acknowledgeSubscriber rid="{rid}"><uri>{subscriber}</uri></acknowledgeSubscriber>"#)).await
}

/// Carol subscribes to Bob on one gateway and Bob acknowledges her there; before those notices
/// reach the other gateway, Carol subscribes to Bob there too. Her second subscription does not
/// take Bob's acknowledgement back.
async fn a_subscription_on_another_gateway_keeps_the_acknowledgement_made_since(backend: Backend) {
    let (one, two, counting) = two_gateways_the_second_not_hearing_the_first(&backend).await;
    carol_subscribes_to_bob(&one.base).await;
    let mut bob = signed_in_bob(&one.base).await;
    assert!(acknowledge(&mut bob, "sip:carol@example.com").await.body.contains("requestAccepted"));

    carol_subscribes_to_bob(&two.base).await;
    let stored = backend.open().await.subscriber(BOB, "sip:carol@example.com").await.unwrap();
    assert_eq!(stored, Some(true), "Bob's acknowledgement stays");
    counting.deliver_feed(true);
}

/// Carol subscribes to Bob on one gateway; before that notice reaches the other gateway, Bob
/// acknowledges her there: she is a subscriber (the store says so), and the acknowledgement is kept.
async fn a_subscriber_recorded_on_one_gateway_can_be_acknowledged_on_the_other_at_once(backend: Backend) {
    let (one, two, counting) = two_gateways_the_second_not_hearing_the_first(&backend).await;
    carol_subscribes_to_bob(&one.base).await;

    let mut bob_there = signed_in_bob(&two.base).await;
    let reply = acknowledge(&mut bob_there, "sip:carol@example.com").await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);
    let stored = backend.open().await.subscriber(BOB, "sip:carol@example.com").await.unwrap();
    assert_eq!(stored, Some(true));
    let stranger = acknowledge(&mut bob_there, "sip:alice@example.com").await;
    assert!(stranger.body.contains("requestFailed"), "one who never subscribed is refused");
    counting.deliver_feed(true);
}

both_backends!(
    each_part_reaches_the_other_gateway_and_only_it_is_read_again,
    a_part_changed_on_one_gateway_keeps_the_other_part_changed_on_another,
    a_timed_end_on_one_gateway_keeps_a_note_written_on_another_since,
    raw_categories_published_on_two_gateways_at_once_are_both_kept,
    contact_lists_changed_on_two_gateways_at_once_keep_both_changes,
    a_rights_entry_removed_on_one_gateway_before_its_addition_reached_it_is_removed,
    a_user_created_on_one_gateway_exists_on_the_other_before_its_notice,
    a_user_created_on_one_gateway_can_be_used_on_the_other_before_its_notice,
    a_user_created_on_one_gateway_is_read_and_watched_on_the_other_before_its_notice,
    a_blocked_watcher_sees_nothing_of_a_user_another_request_is_reading_in,
    a_gateway_re_reading_everything_never_shows_a_note_to_whom_its_owner_blocked,
    a_store_failing_while_a_user_is_read_in_leaves_nothing_half_made,
    a_note_set_after_a_block_never_reaches_the_blocked_watcher_on_another_node,
    a_gateway_starting_to_follow_a_user_reads_their_rights_before_their_note,
    a_store_failing_once_at_a_rights_read_the_backplane_asked_for_is_read_again,
    a_note_set_after_a_global_block_never_reaches_the_blocked_watcher_on_another_node,
    a_note_set_after_a_watcher_joined_a_blocked_group_never_reaches_them_on_another_node,
    an_older_read_of_a_profile_never_undoes_a_later_regrouping,
    entries_added_on_one_gateway_are_removed_through_the_api_on_the_other_before_its_notice,
    a_subscription_on_another_gateway_keeps_the_acknowledgement_made_since,
    a_subscriber_recorded_on_one_gateway_can_be_acknowledged_on_the_other_at_once,
);
