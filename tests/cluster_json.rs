//! The JSON event stream and the administrators' session list across three real gateway
//! processes on one PostgreSQL schema and a Redis of the test's own, behind a real HAProxy in
//! plain round-robin (README "Several nodes"): a sign-in's stream is found through every node;
//! when its node is lost the stream is not found (the documented `no_subscription`) and
//! subscribing again starts a new one with full snapshots; the session list through any node
//! shows every node's sessions and ending one works through any node; and while one node is
//! killed with SIGKILL, watchers on the others receive every change exactly once, in order.

mod common;

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/haproxy.rs"]
mod haproxy;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;

use cluster::{Cluster, TTL};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BOB: &str = "sip:bob@example.com";
const CAROL: &str = "sip:carol@example.com";
const ADMIN: &str = "admin-token-0123456789";
/// `iEventFlagsToSubscribe` for the note section only.
const NOTE: u64 = 32;

/// Three nodes with an administrators' token and short held polls, and a round-robin HAProxy
/// over them.
async fn three_nodes() -> (Cluster, haproxy::HaProxy) {
    let tokens = format!(r#"[{{ name = "ops", token = "{ADMIN}", role = "admin" }}]"#);
    let cluster = Cluster::start(3, &[("GATEWAY_API_TOKENS", &tokens), ("GATEWAY_HOLD_SECONDS", "2")]).await;
    let proxy = cluster.proxy();
    (cluster, proxy)
}

/// The number `/readyz` gives node `index` (the top of its sids, the `nodeId` of its sessions).
async fn number(cluster: &Cluster, index: usize) -> String {
    let text = reqwest::get(format!("{}/readyz", cluster.base(index))).await.unwrap().text().await.unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("node: ")).unwrap_or_else(|| panic!("{text}"));
    line.trim().to_string()
}

/// The number of the node that handed out `sid`, as `/readyz` writes it.
fn node_of(sid: u64) -> String {
    format!("{:05x}", (sid >> 32) & 0xF_FFFF)
}

/// A JSON API answer; status 0 when the connection failed (a killed node).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    ticket: Option<String>,
}

enum Auth<'a> {
    Ticket(&'a str),
    Admin,
}

async fn call(method: Method, url: String, auth: Auth<'_>, body: Option<Value>) -> Answer {
    let mut request = reqwest::Client::new().request(method, url).timeout(Duration::from_secs(20));
    request = match auth {
        Auth::Ticket(ticket) => request.header("CWA-Ticket", ticket),
        Auth::Admin => request.bearer_auth(ADMIN),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let Ok(response) = request.send().await else { return Answer { status: 0, body: Value::Null, ticket: None } };
    let status = response.status().as_u16();
    let ticket = response.headers().get("CWA-Ticket").map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap_or_default();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), ticket }
}

/// A retryable answer while a node is being lost: HAProxy's (502/503), a node's 503 that it could
/// not reach the holder, or no connection at all.
fn retryable(answer: &Answer) -> bool {
    matches!(answer.status, 0 | 502 | 503)
}

/// A JSON event-stream reader: one sign-in, reading through one address, checking that eids only
/// ever go up and keeping every event.
struct Reader {
    base: String,
    ticket: String,
    stream: u64,
    after: u64,
    events: Vec<Value>,
}

impl Reader {
    async fn sign_in(base: &str, user: &str) -> Reader {
        let client = Client::sign_in(base, user, "pw").await.unwrap_or_else(|r| panic!("{}", r.body));
        Reader { base: base.to_string(), ticket: client.ticket, stream: 0, after: 0, events: Vec::new() }
    }

    fn keep_ticket(&mut self, answer: &Answer) {
        if let Some(ticket) = &answer.ticket {
            self.ticket = ticket.clone();
        }
    }

    /// Subscribes through `base`; a new stream is read from its start.
    async fn subscribe(&mut self, base: &str, uris: &[&str], events: u64) -> Answer {
        let body = json!({"seqContactIDs": uris, "iEventFlagsToSubscribe": events});
        let answer = call(Method::POST, format!("{base}/api/v1/subscriptions"), Auth::Ticket(&self.ticket), Some(body)).await;
        self.keep_ticket(&answer);
        if answer.status == 200 {
            let stream = answer.body["streamId"].as_u64().unwrap_or_else(|| panic!("{:?}", answer.body));
            if stream != self.stream {
                (self.stream, self.after) = (stream, 0);
            }
        }
        answer
    }

    async fn unsubscribe(&mut self, uris: &[&str]) -> Answer {
        let body = json!({"seqContactIDs": uris});
        let url = format!("{}/api/v1/subscriptions", self.base);
        let answer = call(Method::DELETE, url, Auth::Ticket(&self.ticket), Some(body)).await;
        self.keep_ticket(&answer);
        answer
    }

    /// One poll; the events of a 200 are checked (every eid follows the one before) and kept.
    async fn poll(&mut self) -> Answer {
        let url = format!("{}/api/v1/events?after={}", self.base, self.after);
        let answer = call(Method::GET, url, Auth::Ticket(&self.ticket), None).await;
        self.keep_ticket(&answer);
        if answer.status == 200 {
            assert_eq!(answer.body["streamId"], self.stream, "{:?}", answer.body);
            for event in answer.body["events"].as_array().unwrap() {
                let eid = event["eid"].as_u64().unwrap();
                assert_eq!(eid, self.after + 1, "eids follow one another: {:?}", answer.body);
                self.after = eid;
                self.events.push(event.clone());
            }
        }
        answer
    }

    /// Polls (retrying what is retryable) until an event satisfies `pred`.
    async fn until_event(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + limit;
        let seen = self.events.len();
        loop {
            let answer = self.poll().await;
            assert!(answer.status == 200 || retryable(&answer), "{answer:?}");
            if self.events[seen..].iter().any(&pred) {
                return;
            }
            assert!(Instant::now() < deadline, "no such event within {limit:?}; got {:?}", &self.events[seen..]);
            if answer.status != 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The notes of `uri` in the events kept, in order.
    fn notes_of(&self, uri: &str) -> Vec<String> {
        let of = |e: &&Value| e["asnUpdatePresenceV2"]["u8sContactId"] == uri;
        let note = |e: &Value| e["asnUpdatePresenceV2"]["asnPresence"]["asnCustomNote"]["u8sNote"].as_str().map(String::from);
        self.events.iter().filter(of).filter_map(note).collect()
    }
}

fn note_is(uri: &'static str, text: String) -> impl Fn(&Value) -> bool {
    move |e| {
        e["asnUpdatePresenceV2"]["u8sContactId"] == uri
            && e["asnUpdatePresenceV2"]["asnPresence"]["asnCustomNote"]["u8sNote"] == text.as_str()
    }
}

/// Sets a user's note through node `base` and waits until that node applies it — on a cluster
/// a note takes effect when it comes back from Redis, so it is then published and no later note
/// can replace it unsent.
async fn set_note(base: &str, uri: &str, text: &str) {
    let url = format!("{base}/api/v1/users/{uri}/note");
    let answer = call(Method::PUT, url, Auth::Admin, Some(json!({"text": text}))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let presence = format!("{base}/api/v1/users/{uri}/presence");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = call(Method::GET, presence.clone(), Auth::Admin, None).await;
        if answer.body["asnCustomNote"]["u8sNote"] == text {
            return;
        }
        assert!(Instant::now() < deadline, "{text} is not applied at {base}: {:?}", answer.body["asnCustomNote"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn behind_round_robin_every_node_finds_a_sign_in_s_json_stream() {
    let (cluster, balancer) = three_nodes().await;
    let proxy = balancer.base.clone();
    let mut alice = Reader::sign_in(&proxy, "alice@example.com").await;
    // Subscribing again and again through the balancer (so through every node) feeds one stream.
    let first = alice.subscribe(&proxy, &[BOB], NOTE).await;
    assert_eq!(first.status, 200, "{first:?}");
    let stream = alice.stream;
    for _ in 0..3 {
        let again = alice.subscribe(&proxy, &[CAROL], NOTE).await;
        assert_eq!((again.status, alice.stream), (200, stream), "{again:?}");
    }
    let listed = call(Method::GET, format!("{proxy}/api/v1/users/sip:alice@example.com/sessions"), Auth::Admin, None).await;
    let sids: Vec<u64> = listed.body.as_array().unwrap().iter().map(|s| s["sid"].as_u64().unwrap()).collect();
    assert_eq!(sids, vec![stream], "one stream for the sign-in: {:?}", listed.body);

    // Two first subscriptions of one sign-in at once, on two nodes: one stream.
    let carol = Client::sign_in(&proxy, "carol@example.com", "pw").await.unwrap();
    let body = || Some(json!({"seqContactIDs": [BOB]}));
    let at = |node: usize| format!("{}/api/v1/subscriptions", cluster.base(node));
    let (one, two) = tokio::join!(
        call(Method::POST, at(0), Auth::Ticket(&carol.ticket), body()),
        call(Method::POST, at(1), Auth::Ticket(&carol.ticket), body())
    );
    assert_eq!((one.status, two.status), (200, 200), "{one:?} {two:?}");
    assert_eq!(one.body["streamId"], two.body["streamId"], "one stream for both");
    let listed = call(Method::GET, format!("{proxy}/api/v1/users/{CAROL}/sessions"), Auth::Admin, None).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1), "{:?}", listed.body);

    // Notes set through each node in turn, read through the balancer: each arrives, once, in order.
    let mut expected = Vec::new();
    for step in 0..6 {
        let text = format!("step {step}");
        set_note(cluster.base(step % 3), BOB, &text).await;
        alice.until_event(Duration::from_secs(5), note_is(BOB, text.clone())).await;
        expected.push(text);
    }
    assert_eq!(alice.notes_of(BOB), expected);

    // Unsubscribing through the balancer reaches the stream's node: Bob's notes no longer come.
    for _ in 0..3 {
        assert_eq!(alice.unsubscribe(&[BOB]).await.status, 204);
    }
    set_note(cluster.base(0), BOB, "not sent").await;
    set_note(cluster.base(1), CAROL, "Carol's").await;
    alice.until_event(Duration::from_secs(5), note_is(CAROL, "Carol's".into())).await;
    assert_eq!(alice.notes_of(BOB), expected, "nothing of Bob after unsubscribing");
}

#[tokio::test]
async fn a_lost_stream_is_not_found_and_subscribing_again_starts_anew_with_full_snapshots() {
    let (mut cluster, balancer) = three_nodes().await;
    let proxy = balancer.base.clone();
    let mut alice = Reader::sign_in(&proxy, "alice@example.com").await;
    assert_eq!(alice.subscribe(cluster.base(0), &[BOB], NOTE).await.status, 200);
    let lost = alice.stream;
    assert_eq!(node_of(lost), number(&cluster, 0).await, "the stream is on the node subscribed at");
    set_note(cluster.base(1), BOB, "before").await;
    alice.until_event(Duration::from_secs(5), note_is(BOB, "before".into())).await;

    cluster.kill(0);
    set_note(cluster.base(1), BOB, "while lost").await;
    // Retryable answers while the node's heartbeat has not lapsed, then the documented 404.
    let deadline = Instant::now() + Duration::from_secs(TTL + 5);
    let gone = loop {
        let answer = alice.poll().await;
        if !retryable(&answer) {
            break answer;
        }
        assert!(Instant::now() < deadline, "the lost stream was not reported gone: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((gone.status, gone.body["code"].as_str()), (404, Some("no_subscription")), "{gone:?}");

    // Subscribing again (with every section) starts a new stream with a full snapshot.
    let again = alice.subscribe(&proxy, &[BOB], 0x8000 | 1023).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_ne!(alice.stream, lost);
    let snapshot = &again.body["seqPresence"][0];
    assert_eq!(snapshot["asnCustomNote"]["u8sNote"], "while lost", "{snapshot}");
    assert!(snapshot["iPresenceState"].is_u64() && snapshot["asnRemoteContact"].is_object(), "{snapshot}");
    set_note(cluster.base(2), BOB, "after").await;
    alice.until_event(Duration::from_secs(5), note_is(BOB, "after".into())).await;
    let first_of_new = alice.events.iter().rposition(|e| e["eid"] == 1);
    assert!(first_of_new.is_some_and(|at| at > 0), "the new stream counts from 1: {:?}", alice.events);
}

#[tokio::test]
async fn after_redis_restarts_empty_every_node_finds_the_sign_in_s_stream_again() {
    let (mut cluster, balancer) = three_nodes().await;
    let proxy = balancer.base.clone();
    let mut alice = Reader::sign_in(&proxy, "alice@example.com").await;
    assert_eq!(alice.subscribe(cluster.base(0), &[BOB], NOTE).await.status, 200);
    let stream = alice.stream;

    cluster.redis.restart();
    // The stream's node records it again when it finds Redis empty: polls through the other
    // nodes reach it (a 404 or a 503 only until then).
    for node in [1, 2] {
        alice.base = cluster.base(node).to_string();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = alice.poll().await;
            if answer.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "node {node} never found the stream again: {answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Subscribing through another node feeds the same stream, not a second one.
    assert_eq!(alice.subscribe(cluster.base(2), &[CAROL], NOTE).await.status, 200);
    assert_eq!(alice.stream, stream, "still the one stream");
    alice.base = proxy;
    set_note(cluster.base(1), CAROL, "after the restart").await;
    alice.until_event(Duration::from_secs(5), note_is(CAROL, "after the restart".into())).await;
}

/// The sessions an admin list shows: sid → nodeId.
fn listed(answer: &Answer) -> std::collections::BTreeMap<u64, String> {
    let sessions = answer.body.as_array().unwrap_or_else(|| panic!("{answer:?}"));
    sessions.iter().map(|s| (s["sid"].as_u64().unwrap(), s["nodeId"].as_str().unwrap().to_string())).collect()
}

#[tokio::test]
async fn admins_list_every_node_s_sessions_and_end_them_through_any_node() {
    let (cluster, balancer) = three_nodes().await;
    let proxy = balancer.base.clone();
    let numbers = [number(&cluster, 0).await, number(&cluster, 1).await, number(&cluster, 2).await];
    let mut alice = Client::sign_in(cluster.base(0), "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    let mut bob = Client::sign_in(cluster.base(1), "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    let mut carol = Reader::sign_in(cluster.base(2), "carol@example.com").await;
    assert_eq!(carol.subscribe(cluster.base(2), &[BOB], NOTE).await.status, 200);
    let expected: std::collections::BTreeMap<u64, String> =
        [(alice.sid, numbers[0].clone()), (bob.sid, numbers[1].clone()), (carol.stream, numbers[2].clone())].into();

    // Through the balancer (each node in turn) and through each node: every node's sessions.
    for base in [proxy.as_str(), proxy.as_str(), proxy.as_str(), cluster.base(0), cluster.base(1), cluster.base(2)] {
        let answer = call(Method::GET, format!("{base}/api/v1/sessions"), Auth::Admin, None).await;
        assert_eq!((answer.status, listed(&answer)), (200, expected.clone()), "through {base}: {answer:?}");
    }
    let url = format!("{}/api/v1/users/sip:alice@example.com/sessions", cluster.base(2));
    let alice_only = call(Method::GET, url, Auth::Admin, None).await;
    assert_eq!(listed(&alice_only), [(alice.sid, numbers[0].clone())].into());

    // Alice's session (on node 0) ended through node 2: her poll learns at once.
    let end = |base: &str, sid: u64| call(Method::DELETE, format!("{base}/api/v1/sessions/{sid}"), Auth::Admin, None);
    assert_eq!(end(cluster.base(2), alice.sid).await.status, 204);
    let reply = alice.poll_with(alice.ack, true).await;
    assert_eq!((reply.status, error_code(&reply)), (404, 18100), "{}", reply.body);
    let answer = end(cluster.base(1), alice.sid).await;
    assert_eq!((answer.status, answer.body["code"].as_str()), (404, Some("not_found")), "already ended");
    assert_eq!(end(cluster.base(1), alice.sid + 999).await.status, 404, "an unknown sid of a live node");

    // All of Carol's sessions (her stream on node 2) ended through node 0.
    let url = format!("{}/api/v1/users/sip:carol@example.com/sessions", cluster.base(0));
    let ended = call(Method::DELETE, url, Auth::Admin, None).await;
    assert_eq!((ended.status, ended.body["ended"].as_u64()), (200, Some(1)), "{ended:?}");
    let gone = carol.poll().await;
    assert_eq!((gone.status, gone.body["code"].as_str()), (404, Some("no_subscription")), "{gone:?}");
    let answer = call(Method::GET, format!("{proxy}/api/v1/sessions"), Auth::Admin, None).await;
    assert_eq!(listed(&answer), [(bob.sid, numbers[1].clone())].into());

    // The command line, asking node 0, lists Bob's session on node 1 with that node's number.
    let address = cluster.base(0).trim_start_matches("http://");
    let (ok, table) = process::output(process::gateway(&["session", "list", "--listen", address, "--token", ADMIN]));
    let row = table.lines().find(|l| l.contains(BOB)).unwrap_or_else(|| panic!("{table}"));
    assert!(ok && row.starts_with(&bob.sid.to_string()) && row.contains(&format!("/{}", numbers[1])), "{row}");
    assert!(!table.contains("sip:alice@example.com"), "{table}");
}

/// Reads `reader`'s stream through the balancer until Bob's note is `last`.
async fn read_until(mut reader: Reader, last: String) -> Reader {
    reader.until_event(Duration::from_secs(60), note_is(BOB, last)).await;
    reader
}

#[tokio::test]
async fn watchers_on_the_surviving_nodes_miss_nothing_and_get_nothing_twice_when_a_node_is_killed() {
    let (mut cluster, balancer) = three_nodes().await;
    let proxy = balancer.base.clone();
    // Watchers whose streams live on the nodes that survive, read through the balancer; one on the
    // node that is killed; Bob has a session there too.
    let mut watchers = Vec::new();
    for (user, node) in [("alice@example.com", 0), ("carol@example.com", 1), ("alice@example.com", 1)] {
        let mut reader = Reader::sign_in(&proxy, user).await;
        assert_eq!(reader.subscribe(cluster.base(node), &[BOB], NOTE).await.status, 200);
        watchers.push(reader);
    }
    let mut doomed = Reader::sign_in(&proxy, "carol@example.com").await;
    assert_eq!(doomed.subscribe(cluster.base(2), &[BOB], NOTE).await.status, 200);
    let mut bob = Client::sign_in(cluster.base(2), "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;

    let readers: Vec<_> = watchers.into_iter().map(|w| tokio::spawn(read_until(w, "last".into()))).collect();
    let mut published = Vec::new();
    let mut killed: Option<Instant> = None;
    // Changes through the survivors before the kill, while its heartbeat lapses, and after.
    while killed.is_none_or(|at| published.len() < 60 || at.elapsed() < Duration::from_secs(TTL + 2)) {
        let text = format!("n{}", published.len() + 1);
        set_note(cluster.base(published.len() % 2), BOB, &text).await;
        published.push(text);
        if published.len() == 20 {
            cluster.kill(2);
            killed = Some(Instant::now());
        }
    }
    set_note(cluster.base(0), BOB, "last").await;
    published.push("last".into());
    for reader in readers {
        let reader = reader.await.unwrap();
        assert_eq!(reader.notes_of(BOB), published, "every change once, in order (stream {})", reader.stream);
        assert_eq!(reader.events.len(), published.len(), "and nothing else: {:?}", reader.events);
    }
}
