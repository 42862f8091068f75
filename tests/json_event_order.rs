//! Event order on the JSON event stream (README, "Session queues"): each event a reader applies
//! carries state at least as new as the one before it. A rights change queues a full update of
//! the owner for the watcher; it must never land after a newer change's delta, or the reader ends
//! up showing the older state.

mod common;

use common::*;
use serde_json::{json, Value};

const BOB: &str = "sip:bob@example.com";
const ALICE: &str = "sip:alice@example.com";
const CHANGES: usize = 300;

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, ticket: &str, body: Value) -> Value {
    let response = http.request(method, url).header("CWA-Ticket", ticket).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");
    body
}

/// Every event of `ticket`'s stream, in eid order, until a poll comes back empty.
async fn drain(http: &reqwest::Client, base: &str, ticket: &str) -> Vec<Value> {
    let (mut after, mut all) = (0, Vec::new());
    loop {
        let url = format!("{base}/api/v1/events?after={after}");
        let reply = call(http, reqwest::Method::GET, url, ticket, Value::Null).await;
        let events = reply["events"].as_array().unwrap().clone();
        if events.is_empty() {
            return all;
        }
        after = reply["ackId"].as_u64().unwrap();
        all.extend(events);
    }
}

/// The index `i` of the note `n{i}` an event carries, if it carries Bob's note.
fn note_index(event: &Value) -> Option<usize> {
    let note = event["asnUpdatePresenceV2"]["asnPresence"]["asnCustomNote"]["u8sNote"].as_str()?;
    note.strip_prefix('n')?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_update_after_a_rights_change_never_overtakes_a_newer_change() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let bob = server.sign_in("bob@example.com").await;
    let alice = server.sign_in("alice@example.com").await;
    let subscribe = json!({"seqContactIDs": [BOB], "iEventFlagsToSubscribe": 32});
    call(&http, reqwest::Method::POST, format!("{base}/api/v1/subscriptions"), &alice.ticket, subscribe).await;

    let notes = async {
        for i in 0..CHANGES {
            let url = format!("{base}/api/v1/users/{BOB}/note");
            call(&http, reqwest::Method::PUT, url, &bob.ticket, json!({"text": format!("n{i}")})).await;
        }
    };
    let rights = async {
        for i in 0..CHANGES {
            let level = if i % 2 == 0 { "personal" } else { "team" };
            let url = format!("{base}/api/v1/users/{BOB}/rights/{ALICE}");
            call(&http, reqwest::Method::PUT, url, &bob.ticket, json!({ "level": level })).await;
        }
    };
    tokio::join!(notes, rights);

    let seen: Vec<usize> = drain(&http, &base, &alice.ticket).await.iter().filter_map(note_index).collect();
    assert_eq!(seen.last(), Some(&(CHANGES - 1)), "the last event shows the newest note");
    for pair in seen.windows(2) {
        assert!(pair[0] <= pair[1], "an older note was read after a newer one: {seen:?}");
    }
}
