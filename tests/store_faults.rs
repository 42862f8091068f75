//! A store that fails — down, or half-way through a multi-row change — as clients see it: a clear,
//! retryable error (CWA 18400, JSON 503 `store_unavailable` with `Retry-After`) without internal
//! text, nothing half-applied in the store or in what watchers see, and normal service once the
//! store is back.

mod common;

use common::*;
use presence_gateway::model::rights::Member;
use presence_gateway::service::clock::ManualClock;
use presence_gateway::service::seed::UsersFile;
use presence_gateway::service::Gateway;
use presence_gateway::store::sqlite::SqliteStore;
use presence_gateway::store::Store;
use std::sync::Arc;

struct Faulty {
    base: String,
    store: Arc<SqliteStore>,
    _gateway: Arc<Gateway>,
    _dir: tempfile::TempDir,
}

async fn start() -> Faulty {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.data_dir = dir.path().to_path_buf();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    UsersFile::parse(USERS).unwrap().apply(&*store).await.unwrap();
    let gateway = Gateway::start(config, store.clone(), ManualClock::new(chrono::Utc::now())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(presence_gateway::serve(listener, gateway.clone(), std::future::pending()));
    Faulty { base, store, _gateway: gateway, _dir: dir }
}

fn no_internal_text(body: &str) {
    for word in ["injected", "sqlite", "SQL", "connection", "StoreError"] {
        assert!(!body.contains(word), "{word} in {body}");
    }
}

#[tokio::test]
async fn a_store_that_is_down_gives_a_retryable_error_and_changes_nothing() {
    let server = start().await;
    let mut bob = Client::sign_in(&server.base, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    assert!(bob.publish_note("before").await.xml().child("requestAccepted").is_some());

    server.store.faults.fail_always();
    let reply = bob.publish_note("during").await;
    assert_eq!(error_code(&reply), 18400, "{}", reply.body);
    no_internal_text(&reply.body);
    let json = reqwest::Client::new()
        .put(format!("{}/api/v1/users/sip:bob@example.com/note", server.base))
        .header("CWA-Ticket", &bob.ticket)
        .json(&serde_json::json!({"text": "during"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 503);
    assert_eq!(json.headers()["retry-after"], "1");
    let body = json.text().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["code"], "store_unavailable", "{body}");
    no_internal_text(&body);

    server.store.faults.heal();
    let stored = server.store.presence("sip:bob@example.com").await.unwrap().unwrap();
    assert_eq!(stored.note.unwrap().text, "before", "the refused change was not written");
    assert!(bob.publish_note("after").await.xml().child("requestAccepted").is_some(), "works again once the store is back");
}

#[tokio::test]
async fn a_rights_change_failing_half_way_applies_nowhere() {
    let server = start().await;
    let mut carol = Client::sign_in(&server.base, "carol@example.com", "pw").await.unwrap();
    carol.initiate().await;
    let mut bob = Client::sign_in(&server.base, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    assert!(bob.publish_state(3500).await.xml().child("requestAccepted").is_some());
    carol.subscribe(&["sip:bob@example.com"]).await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    let before = server.store.rights_of("sip:bob@example.com").await.unwrap();

    // Two members in one command: the second write fails after the first was made.
    server.store.faults.fail_after(1);
    let both = |rid: String| {
        format!(
            r#"<updateContainer rid="{rid}"><container id="32000"><addMember type="uri" value="sip:carol@example.com"/><addMember type="domain" value="other.org"/></container></updateContainer>"#
        )
    };
    let rid = bob.next_rid();
    let reply = bob.command(&both(rid)).await;
    assert_eq!(error_code(&reply), 18400, "{}", reply.body);
    assert_eq!(server.store.rights_of("sip:bob@example.com").await.unwrap(), before, "nothing stored");
    // Carol still sees Bob: the block did not take effect in memory either.
    carol.query(&["sip:bob@example.com"]).await;
    let user = carol.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).availability, 3500);

    let rid = bob.next_rid();
    assert!(bob.command(&both(rid)).await.body.contains("requestAccepted"), "the retry is applied");
    let after = server.store.rights_of("sip:bob@example.com").await.unwrap();
    assert!(after.iter().any(|e| e.member == Member::Uri("sip:carol@example.com".into())));
    assert!(after.iter().any(|e| e.member == Member::Domain("other.org".into())));
}

#[tokio::test]
async fn a_subscription_whose_records_fail_half_way_records_no_subscriber() {
    let server = start().await;
    let mut carol = Client::sign_in(&server.base, "carol@example.com", "pw").await.unwrap();
    carol.initiate().await;
    let owners = ["sip:alice@example.com", "sip:bob@example.com"];
    let recorded = || async {
        let mut found = Vec::new();
        for owner in owners {
            let subscribers = server.store.subscribers_of(owner).await.unwrap();
            found.extend(subscribers.into_iter().filter(|(w, _)| w == "sip:carol@example.com").map(|_| owner));
        }
        found
    };

    // The first of the two subscriber rows is written, the second fails.
    server.store.faults.fail_after(1);
    let reply = carol.subscribe(&owners).await;
    assert_eq!(error_code(&reply), 18400, "{}", reply.body);
    no_internal_text(&reply.body);
    assert_eq!(recorded().await, Vec::<&str>::new(), "neither subscriber is stored");

    assert!(carol.subscribe(&owners).await.body.contains("requestAccepted"), "the retry is applied");
    assert_eq!(recorded().await, owners.to_vec(), "both are stored");
}

#[tokio::test]
async fn a_raw_category_publication_failing_half_way_stores_none_of_it() {
    let server = start().await;
    let mut bob = Client::sign_in(&server.base, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    let category = |name: &str| {
        format!(
            r#"<rawCategory name="{name}" nameSpace="urn:example:gps" instanceMask="0" container="300" expireType="user"><gps xmlns="urn:example:gps" lat="48.1"/></rawCategory>"#
        )
    };
    let both = format!("{}{}", category("GPSPosition"), category("DeskPosition"));
    let publish = |rid: String| format!(r#"<publishRawCategories rid="{rid}">{both}</publishRawCategories>"#);

    // The old rows are deleted and the first category written; the second fails.
    server.store.faults.fail_after(2);
    let rid = bob.next_rid();
    let reply = bob.command(&publish(rid)).await;
    assert_eq!(error_code(&reply), 18400, "{}", reply.body);
    no_internal_text(&reply.body);
    assert!(server.store.raw_categories_of("sip:bob@example.com").await.unwrap().is_empty(), "nothing stored");

    let rid = bob.next_rid();
    assert!(bob.command(&publish(rid)).await.body.contains("requestAccepted"), "the retry is applied");
    let names: Vec<String> =
        server.store.raw_categories_of("sip:bob@example.com").await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["GPSPosition", "DeskPosition"]);
}

#[tokio::test]
async fn a_contact_list_change_failing_half_way_changes_nothing() {
    let server = start().await;
    let mut alice = Client::sign_in(&server.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    let before = server.store.contact_list("sip:alice@example.com").await.unwrap();

    // The list is written, then the subscriber row it implies fails.
    server.store.faults.fail_after(1);
    let add = |rid: String| {
        format!(
            r#"<addContact rid="{rid}"><contact uri="sip:bob@example.com" name="Bob" subscribed="true" tag="false"/></addContact>"#
        )
    };
    let rid = alice.next_rid();
    let reply = alice.command(&add(rid)).await;
    assert_eq!(error_code(&reply), 18400, "{}", reply.body);
    no_internal_text(&reply.body);
    assert_eq!(server.store.contact_list("sip:alice@example.com").await.unwrap(), before, "the list is as it was");
    assert!(server.store.subscribers_of("sip:bob@example.com").await.unwrap().is_empty(), "no subscriber row");

    let rid = alice.next_rid();
    assert!(alice.command(&add(rid)).await.body.contains("requestAccepted"), "the retry is applied");
    let list = server.store.contact_list("sip:alice@example.com").await.unwrap().expect("a list is stored");
    assert!(list.contacts.iter().any(|c| c.uri == "sip:bob@example.com"));
}
