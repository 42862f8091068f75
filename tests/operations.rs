//! Operations endpoints against the real server: `/metrics` parsed by a Prometheus text parser
//! after a real flow, health and readiness, request ids, and `X-Forwarded-For` for the sign-in
//! limit only from trusted proxies.

mod common;

use common::*;
use presence_gateway::config::{Config, Limits, LogonPolicy, ProxyNet};
use prometheus_parse::{Sample, Scrape, Value};

async fn scrape(base: &str) -> Scrape {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape.samples.iter().find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

/// A counter's or gauge's value, or a histogram's observation count.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = find(scrape, metric, labels).unwrap_or_else(|| panic!("no {metric} {labels:?}"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => panic!("{metric} is a summary, expected a histogram"),
    }
}

fn is_histogram(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> bool {
    matches!(find(scrape, metric, labels).map(|s| &s.value), Some(Value::Histogram(b)) if b.len() > 2)
}

#[tokio::test]
async fn metrics_describe_a_real_flow() {
    // The initial burst has six events (selfRawCategories included), the subscription four more
    // (its state, Bob's userPresence and userRawCategories, the outcome): exactly a queue of ten.
    let limits = Limits { queue_length: 10, ..Limits::default() };
    let server =
        TestServer::start_with(Config { hold_seconds: 30, session_timeout_seconds: 120, limits, ..test_config() }, USERS).await;
    assert!(Client::sign_in(&server.base, "alice@example.com", "wrong").await.is_err());
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    bob.publish_state(6500).await; // replaces Alice's unsent snapshot of Bob: coalesced
    alice.poll().await;

    // A held poll shows in the gauge; Bob's change releases it.
    let held = tokio::spawn(async move {
        let events = alice.poll().await;
        (alice, events)
    });
    let mut seen_held = false;
    for _ in 0..500 {
        if value(&scrape(&server.base).await, "presence_held_polls", &[]) >= 1.0 {
            seen_held = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(seen_held, "the held poll never showed in presence_held_polls");
    bob.publish_note("Back soon").await;
    let (mut alice, events) = held.await.unwrap();
    assert!(events.iter().any(|e| e.name == "userPresence"));

    // Seven more subscriptions overflow Alice's queue of 10: a resync.
    let more = [
        "sip:carol@example.com",
        "sip:pat@other.org",
        "sip:mallory@example.com",
        "sip:nobody@example.com",
        "sip:x1@example.com",
        "sip:x2@example.com",
        "sip:x3@example.com",
    ];
    alice.subscribe(&more).await;

    let m = scrape(&server.base).await;
    assert_eq!(value(&m, "presence_sessions", &[]), 2.0);
    assert!(value(&m, "presence_queue_depth", &[]) >= 1.0, "Alice has not acknowledged her last events");
    assert!(value(&m, "presence_queue_depth_max", &[]) >= 1.0);
    assert!(value(&m, "presence_events_queued_total", &[]) >= 6.0);
    assert!(value(&m, "presence_events_coalesced_total", &[]) >= 1.0);
    assert!(value(&m, "presence_resyncs_total", &[]) >= 1.0);
    assert!(value(&m, "presence_events_delivered_total", &[]) >= 3.0);
    assert!(value(&m, "presence_logon_failures_total", &[("reason", "credentials")]) >= 1.0);
    assert!(is_histogram(&m, "presence_fanout_duration_seconds", &[]));
    assert!(value(&m, "presence_fanout_duration_seconds", &[]) >= 2.0);
    for method in ["initiateSession", "subscribePresence", "publishSelfPresence"] {
        assert!(is_histogram(&m, "presence_command_duration_seconds", &[("method", method)]), "{method}");
        assert!(value(&m, "presence_command_duration_seconds", &[("method", method)]) >= 1.0, "{method}");
    }
    let logon = "/forms/logon.html";
    assert!(value(&m, "presence_http_responses_total", &[("route", logon), ("status", "401")]) >= 1.0);
    assert!(value(&m, "presence_http_responses_total", &[("route", logon), ("status", "200")]) >= 2.0);
    let poll = [("route", "/cwa/AsyncDataChannel.ashx")];
    assert!(is_histogram(&m, "presence_http_request_duration_seconds", &poll));
    for name in ["presence_sessions", "presence_fanout_duration_seconds", "presence_http_responses_total"] {
        assert!(m.docs.contains_key(name), "{name} has a HELP line");
    }
    server.stop().await;
}

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let id = health.headers().get("x-request-id").expect("a request id is made").to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let ready = http.get(format!("{}/readyz", server.base)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.headers()["x-request-id"], "trace-me-42", "the caller's id is kept");
    let report = ready.text().await.unwrap();
    assert!(report.starts_with("ready\n") && report.contains("store: sqlite (reachable)"), "{report}");
    assert!(report.contains("backplane: standalone (reachable)"), "{report}");
    assert!(!report.contains(server.dir.path().to_str().unwrap()), "no paths: {report}");
    let missing = http.get(format!("{}/no/such/page", server.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    // Not ready once the store is closed.
    server.gateway.close_store().await;
    let not_ready = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    assert!(not_ready.text().await.unwrap().contains("store: sqlite (unreachable)"));
}

async fn failed_logon(base: &str, user: &str, forwarded_for: &str) -> u16 {
    let body = format!("<cwaRequests><logon><user>{user}</user><password>wrong</password></logon></cwaRequests>");
    let request = reqwest::Client::new().post(format!("{base}/forms/logon.html")).header("X-Forwarded-For", forwarded_for);
    send(request.body(body)).await.status
}

fn limited_by_address(trusted_proxies: Vec<ProxyNet>) -> Config {
    let logon = LogonPolicy { failures_per_user_and_address: 100, failures_per_address: 2, ..LogonPolicy::default() };
    Config { logon, trusted_proxies, ..test_config() }
}

#[tokio::test]
async fn forwarded_for_sets_the_limited_address_only_behind_a_trusted_proxy() {
    let loopback = ProxyNet::try_from("127.0.0.0/8".to_string()).unwrap();
    let server = TestServer::start_with(limited_by_address(vec![loopback]), USERS).await;
    assert_eq!(failed_logon(&server.base, "alice@example.com", "198.51.100.1").await, 401);
    assert_eq!(failed_logon(&server.base, "bob@example.com", "198.51.100.1").await, 401);
    assert_eq!(failed_logon(&server.base, "carol@example.com", "198.51.100.1").await, 429, "that client is over its limit");
    assert_eq!(failed_logon(&server.base, "carol@example.com", "198.51.100.2").await, 401, "another client is not");
    server.stop().await;

    // Without trusted proxies the header is ignored: changing it does not escape the limit.
    let server = TestServer::start_with(limited_by_address(Vec::new()), USERS).await;
    assert_eq!(failed_logon(&server.base, "alice@example.com", "198.51.100.1").await, 401);
    assert_eq!(failed_logon(&server.base, "bob@example.com", "198.51.100.2").await, 401);
    assert_eq!(failed_logon(&server.base, "carol@example.com", "198.51.100.3").await, 429);
    server.stop().await;
}
