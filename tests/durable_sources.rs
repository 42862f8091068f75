//! Source reports kept in the store with their TTL, against both backends, with real gateways on
//! 127.0.0.1:0: a reported call survives a restart (the watcher still sees "on the phone" before
//! the connector reports again), a report that expired while the gateway was down is gone after
//! the restart (and from the store), a withdrawn one stays withdrawn, another gateway on the store
//! sees a report at once, and a store that fails refuses the report and changes nothing.

mod common;
#[path = "support/nodes.rs"]
#[macro_use]
mod nodes;
#[path = "support/pg.rs"]
mod pg;

use chrono::Duration;
use common::*;
use nodes::{Backend, Node};
use presence_gateway::config::{ApiRole, ApiToken, Config};
use presence_gateway::store::sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;

const SOURCE_TOKEN: &str = "source-token-0123456789";

fn config() -> Config {
    let tokens = vec![ApiToken { name: "pbx".into(), token: SOURCE_TOKEN.into(), role: ApiRole::Source }];
    Config { api_tokens: tokens, session_timeout_seconds: 100_000, idle_timeout_seconds: 100_000, ..test_config() }
}

/// `PUT` (a body) or `DELETE` (none) of a source report: the status.
async fn report(node: &Node, user: &str, source: &str, body: Option<serde_json::Value>) -> u16 {
    let url = format!("{}/api/v1/users/{user}/sources/{source}", node.base);
    let http = reqwest::Client::new();
    let request = match body {
        Some(body) => http.put(url).json(&body),
        None => http.delete(url),
    };
    request.bearer_auth(SOURCE_TOKEN).send().await.unwrap().status().as_u16()
}

fn call(ttl_seconds: u64) -> serde_json::Value {
    json!({"kind": "phone", "ttlSeconds": ttl_seconds, "calls": [{"id": "c1", "state": "connected", "direction": "incoming"}]})
}

/// Alice (Bob's team-level watcher) subscribed to Bob, with Bob signed in, on `node`.
async fn alice_watching_bob(node: &Node) -> Client {
    Client::sign_in(&node.base, "bob@example.com", "pw").await.unwrap().initiate().await;
    let mut alice = Client::sign_in(&node.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice
}

/// The store's report rows.
async fn stored(backend: &Backend) -> i64 {
    backend.rows("source_reports").await
}

async fn a_reported_call_survives_a_restart(backend: Backend) {
    let first = Node::on(&backend, config()).await;
    let mut alice = alice_watching_bob(&first).await;
    assert_eq!(report(&first, "sip:bob@example.com", "pbx", Some(call(600))).await, 200);
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).token == "on-the-phone").await;
    first.stop().await;

    let second = Node::on(&backend, config()).await;
    let mut alice = alice_watching_bob(&second).await;
    let bob = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(
        (seen(&bob).availability, seen(&bob).token.as_str()),
        (6500, "on-the-phone"),
        "before the connector reports again"
    );
    assert_eq!(report(&second, "sip:bob@example.com", "pbx", None).await, 204);
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    assert_eq!(stored(&backend).await, 0, "withdrawn from the store");
    second.stop().await;

    let third = Node::on(&backend, config()).await;
    let mut alice = alice_watching_bob(&third).await;
    let bob = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&bob).availability, 3500, "a withdrawn report stays withdrawn");
}

async fn a_report_that_expired_while_down_is_gone_after_the_restart(backend: Backend) {
    let first = Node::on(&backend, config()).await;
    assert_eq!(report(&first, "sip:bob@example.com", "pbx", Some(call(60))).await, 200);
    let calendar = json!({"kind": "calendar", "ttlSeconds": 7 * 24 * 3600, "oofMessage": "Back on Monday"});
    assert_eq!(report(&first, "sip:carol@example.com", "calendar", Some(calendar)).await, 200);
    first.stop().await;
    assert_eq!(stored(&backend).await, 2);

    // Two hours later: Bob's call (60 s) has expired, Carol's calendar (7 days) has not.
    let later = chrono::Utc::now() + Duration::hours(2);
    let second = Node::start_at(backend.open().await, config(), later).await;
    let mut alice = alice_watching_bob(&second).await;
    let bob = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!((seen(&bob).availability, seen(&bob).token.as_str()), (3500, "Available"), "no stale call");
    assert_eq!(stored(&backend).await, 1, "the expired report was dropped from the store at start");
}

async fn another_gateway_sees_a_report_at_once(backend: Backend) {
    let (one, two) = (Node::on(&backend, config()).await, Node::on(&backend, config()).await);
    let mut alice = alice_watching_bob(&two).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    assert_eq!(report(&one, "sip:bob@example.com", "pbx", Some(call(600))).await, 200);
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).token == "on-the-phone").await;
    assert_eq!(report(&one, "sip:bob@example.com", "pbx", None).await, 204);
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

both_backends!(
    a_reported_call_survives_a_restart,
    a_report_that_expired_while_down_is_gone_after_the_restart,
    another_gateway_sees_a_report_at_once,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_the_store_refuses_changes_nothing() {
    let backend = Backend::sqlite().await;
    let Backend::Sqlite(dir) = &backend else { unreachable!() };
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let node = Node::start(store.clone(), config()).await;
    let mut alice = alice_watching_bob(&node).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    store.faults.fail_always();
    assert_eq!(report(&node, "sip:bob@example.com", "pbx", Some(call(600))).await, 503);
    store.faults.heal();
    assert_eq!(stored(&backend).await, 0);
    alice.query(&["sip:bob@example.com"]).await;
    let bob = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&bob).availability, 3500, "not shown either");
    assert_eq!(report(&node, "sip:bob@example.com", "pbx", Some(call(600))).await, 200, "the retry is kept");
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).token == "on-the-phone").await;
}
