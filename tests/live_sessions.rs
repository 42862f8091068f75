//! Live-session correctness over real HTTP: a poll abandoned by the client (tab closed, network
//! lost) no longer keeps its session alive, acks beyond what was sent lose nothing, every event kind
//! counts against the session queue bound, concurrent subscribes record a subscriber once, and
//! commands count as user activity (README, "Session queues" and "User activity").

mod common;

use common::*;
use presence_gateway::config::{Config, Limits};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PATIENCE: Duration = Duration::from_secs(10);

/// A poll sent over a raw TCP connection, so that the test can hang up while it is held.
async fn raw_poll(client: &Client) -> tokio::net::TcpStream {
    let addr = client.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /cwa/AsyncDataChannel.ashx?Sid={}&AckId={}&UA=true HTTP/1.1\r\nHost: {addr}\r\nCWA-Ticket: {}\r\n\r\n",
        client.sid, client.ack, client.ticket
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp
}

async fn sessions_metric(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("presence_sessions ")).expect("presence_sessions gauge");
    line["presence_sessions ".len()..].trim().parse().unwrap()
}

/// Two gateways in one process (as in these tests) scraped at the same time: each one's
/// `presence_sessions` is its own count, every time (the recorder is the process's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gateway_reports_its_own_session_count_while_another_is_scraped() {
    let busy = TestServer::start_with(test_config(), USERS).await;
    let quiet = TestServer::start_with(test_config(), USERS).await;
    let (_alice, _bob) = (busy.session("alice@example.com").await, busy.session("bob@example.com").await);
    let scrape_many = |base: String, expected: f64| async move {
        for _ in 0..150 {
            assert_eq!(sessions_metric(&base).await, expected, "{base}");
        }
    };
    let busy_scrapes = tokio::spawn(scrape_many(busy.base.clone(), 2.0));
    let quiet_scrapes = tokio::spawn(scrape_many(quiet.base.clone(), 0.0));
    busy_scrapes.await.unwrap();
    quiet_scrapes.await.unwrap();
}

/// Bob's tab holds a poll, then goes away mid-poll, either by a reset or by an orderly close.
async fn a_session_whose_held_poll_is_abandoned_expires(reset: bool) {
    // A long hold: only the hang-up, not the end of the hold, may end Bob's poll.
    let config = Config { hold_seconds: 50, session_timeout_seconds: 120, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.poll().await;
    bob.poll().await;
    let session = server.gateway.live_session(bob.sid).unwrap();
    assert_eq!(sessions_metric(&server.base).await, 2.0);

    let tcp = raw_poll(&bob).await;
    tokio::time::timeout(PATIENCE, session.until_held_polls(1)).await.expect("the poll is held");
    if reset {
        tcp.set_zero_linger().unwrap();
    }
    drop(tcp);
    tokio::time::timeout(PATIENCE, session.until_held_polls(0))
        .await
        .expect("a poll whose client hung up no longer counts as held");

    // Alice, whose poll is held (so her session stays), sees Bob go offline past his timeout.
    let watcher = server.gateway.live_session(alice.sid).unwrap();
    let alice = tokio::spawn(async move {
        alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 0).await;
    });
    tokio::time::timeout(PATIENCE, watcher.until_held_polls(1)).await.expect("Alice's poll is held");
    server.clock.advance(chrono::Duration::seconds(121));
    alice.await.expect("watchers see Bob offline");
    assert!(server.gateway.live_session(bob.sid).is_none(), "the session ended");
    assert_eq!(sessions_metric(&server.base).await, 1.0, "presence_sessions fell");
    assert_eq!(error_code(&bob.poll_with(bob.ack, true).await), 18100);
}

#[tokio::test]
async fn a_closed_tab_does_not_stay_online_after_a_reset() {
    a_session_whose_held_poll_is_abandoned_expires(true).await;
}

#[tokio::test]
async fn a_closed_tab_does_not_stay_online_after_a_close() {
    a_session_whose_held_poll_is_abandoned_expires(false).await;
}

#[tokio::test]
async fn a_session_whose_start_fails_half_way_does_not_linger() {
    let server = TestServer::start().await;
    let mut alice = server.sign_in("alice@example.com").await;
    // The session exists before its initial state is stored; the store fails that write.
    server.gateway.close_store().await;
    let reply =
        alice.command(r#"<initiateSession rid="1"><userStateAvailability>6500</userStateAvailability></initiateSession>"#).await;
    assert!(reply.body.contains("requestFailed"), "{}", reply.body);
    assert_eq!(server.gateway.session_count(), 0, "no session without a sid the client knows");
}

fn eids(reply: &Reply) -> Vec<u64> {
    events(&reply.xml()).iter().map(|e| e.eid).collect()
}

fn ack_id(reply: &Reply) -> u64 {
    reply.xml().attr("ackId").unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_ack_beyond_the_last_eid_acknowledges_only_what_was_sent() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    // Nothing was sent yet: an ack from nowhere acknowledges nothing, the burst arrives.
    let first = alice.poll_with(1_000_000_000_005, true).await;
    let burst = eids(&first);
    assert_eq!(burst, (1..=burst.len() as u64).collect::<Vec<_>>(), "{}", first.body);
    let last = ack_id(&first);
    // The client acks far beyond the last eid: the answers of its next command still arrive.
    alice.query(&["sip:bob@example.com"]).await;
    let next = alice.poll_with(last + 1_000_000_000_000, true).await;
    assert_eq!(eids(&next), vec![last + 1, last + 2], "{}", next.body);
    let names: Vec<String> = events(&next.xml()).into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["userPresence", "requestSucceeded"]);
    assert_eq!(ack_id(&next), last + 2);
}

fn query_batch(sid: u64, first_rid: u32, count: u32) -> String {
    let methods: String = (first_rid..first_rid + count)
        .map(|rid| format!(r#"<queryPresence rid="{rid}"><uris><uri>sip:bob@example.com</uri></uris></queryPresence>"#))
        .collect();
    format!(r#"<cwaRequests sid="{sid}" xmlns="{NS}">{methods}</cwaRequests>"#)
}

/// Per rid: accepted or the error code.
fn outcomes(reply: &Reply) -> Vec<(String, Option<u32>)> {
    reply
        .xml()
        .children
        .iter()
        .filter_map(|r| {
            let rid = r.attr("rid")?.to_string();
            let code = r.child("error").and_then(|e| e.attr("code")).map(|c| c.parse().unwrap());
            Some((rid, code))
        })
        .collect()
}

#[tokio::test]
async fn query_answers_count_against_the_queue_bound_and_past_it_commands_are_throttled() {
    const LIMIT: usize = 40;
    let limits = Limits { queue_length: LIMIT, subscriptions_per_session: 10, ..Limits::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let burst = alice.poll().await.len(); // sent, not yet acknowledged: still queued
    let session = server.gateway.live_session(alice.sid).unwrap();
    // Two batches of 30 queries (two answers each) without polling in between.
    let mut accepted = Vec::new();
    for first_rid in [1, 31] {
        let reply = alice.post_raw(query_batch(alice.sid, first_rid, 30)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        for (rid, code) in outcomes(&reply) {
            match code {
                None => accepted.push(rid),
                Some(code) => assert_eq!(code, 18101, "refused as throttled"),
            }
        }
        assert!(session.queue_len() <= LIMIT, "{} events queued against a bound of {LIMIT}", session.queue_len());
    }
    assert_eq!(accepted.len(), (LIMIT - burst - 3) / 2 + 1, "admitted while the answers fit");
    // Every accepted command's answers arrive; nothing else was lost.
    let events = alice.poll().await;
    let succeeded: Vec<&str> =
        events.iter().filter(|e| e.name == "requestSucceeded").map(|e| e.element.attr("rid").unwrap()).collect();
    assert_eq!(succeeded, accepted);
    assert_eq!(events.iter().filter(|e| e.name == "userPresence").count(), accepted.len());
    // Once the client has acknowledged, commands are admitted again.
    alice.poll_with(alice.ack, true).await;
    let reply = alice.post_raw(query_batch(alice.sid, 61, 1)).await;
    assert_eq!(outcomes(&reply), vec![("61".to_string(), None)]);
}

#[tokio::test]
async fn a_watcher_that_never_polls_holds_a_bounded_queue_and_resyncs() {
    const LIMIT: usize = 20;
    let limits = Limits { queue_length: LIMIT, subscriptions_per_session: 5, ..Limits::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com", "sip:carol@example.com"]).await;
    for i in 0..30 {
        assert!(!bob.publish_note(&format!("n{i}")).await.body.contains("requestFailed"));
        bob.poll().await; // Bob reads his own answers; Alice reads nothing
        alice.query(&["sip:carol@example.com"]).await;
    }
    let session = server.gateway.live_session(alice.sid).unwrap();
    assert!(session.queue_len() <= LIMIT, "{}", session.queue_len());
    // The client catches up: consecutive eids, and Bob's newest note arrives.
    let (mut last_eid, mut note) = (0, String::new());
    for _ in 0..6 {
        let events = alice.poll().await;
        for e in &events {
            assert_eq!(e.eid, last_eid + 1, "no eid gaps");
            last_eid = e.eid;
            let bob = e.users().into_iter().find(|u| u.attr("uri") == Some("sip:bob@example.com"));
            if let Some(user) = bob.filter(|_| e.name == "userPresence") {
                note = seen(&user).note;
            }
        }
        if events.is_empty() {
            break;
        }
    }
    assert_eq!(note, "n29", "the newest state arrives after the resync");
}

#[tokio::test]
async fn concurrent_subscribes_record_one_subscriber() {
    let server = TestServer::start().await;
    let alice = server.session("alice@example.com").await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut tab = alice.same_login();
            tab.sid = alice.sid;
            tokio::spawn(async move { tab.subscribe(&["sip:bob@example.com"]).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let mut bob = server.session("bob@example.com").await;
    let events = bob.poll().await;
    let subscribers = events.iter().find(|e| e.name == "subscribers").expect("subscribers in the burst");
    let alices = subscribers.element.children_named("subscriber").filter(|s| s.attr("uri") == Some("sip:alice@example.com"));
    assert_eq!(alices.count(), 1, "{:?}", subscribers.element);
}

/// Bob polls with `UA=false` only; at 200 s he sends `method`; at 350 s (past the 300 s idle
/// timeout counted from his start) he is still active, at 501 s he is idle.
async fn a_command_counts_as_activity(method: &str) {
    let server = TestServer::start_with(Config { session_timeout_seconds: 900, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    bob.poll_with(0, false).await;
    server.clock.advance(chrono::Duration::seconds(200));
    let reply = bob.command(method).await;
    assert!(!reply.body.contains("requestFailed"), "{}", reply.body);
    bob.poll_with(bob.ack, false).await;
    while alice.poll().await.iter().any(|e| e.name == "userPresence") {}
    server.clock.advance(chrono::Duration::seconds(150));
    let events = alice.poll().await; // held for the hold time: an idle transition would end it
    let bob_states: Vec<u32> =
        events.iter().filter(|e| e.name == "userPresence").flat_map(|e| e.users()).map(|u| seen(&u).availability).collect();
    assert!(bob_states.iter().all(|a| *a == 3500), "still active after {method}: {bob_states:?}");
    server.clock.advance(chrono::Duration::seconds(151));
    let idle = alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 4500).await;
    assert_eq!(seen(&idle).token, "Inactive");
}

#[tokio::test]
async fn sending_a_query_counts_as_user_activity() {
    a_command_counts_as_activity(r#"<queryPresence rid="9"><uris><uri>sip:carol@example.com</uri></uris></queryPresence>"#).await;
}

#[tokio::test]
async fn publishing_counts_as_user_activity() {
    a_command_counts_as_activity(
        r#"<publishSelfPresence rid="9"><cwaCategory name="note" instanceMask="0"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal">busy</body></note></cwaCategory></publishSelfPresence>"#,
    )
    .await;
}
