//! `/metrics` over HTTP: the process's own figures (CPU, resident memory, descriptors), the build
//! gauge, and hub gauges that are kept up to date as sessions and queues change — they agree with
//! the sessions' real state after events queue, are acknowledged, and sessions end. (One test in
//! this binary: queue totals are counted for the whole process.)

mod common;

use common::*;
use presence_gateway::config::Config;
use presence_gateway::service::mandates::Duty;
use presence_gateway::service::permits::Actor;
use prometheus_parse::{Scrape, Value};

async fn scrape(base: &str) -> Scrape {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{metric} is not a single value"),
    }
}

#[tokio::test]
async fn process_figures_build_info_and_gauges_kept_up_to_date() {
    let server = TestServer::start_with(Config { session_timeout_seconds: 30, ..test_config() }, USERS).await;
    let m = scrape(&server.base).await;
    assert!(value(&m, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&m, "process_resident_memory_bytes", &[]) > 1_000_000.0);
    let (open, max) = (value(&m, "process_open_fds", &[]), value(&m, "process_max_fds", &[]));
    assert!(open >= 3.0 && open <= max, "{open} of {max}");
    assert!(value(&m, "process_start_time_seconds", &[]) > 1.6e9);
    assert_eq!(value(&m, "presence_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(m.docs.contains_key("process_open_fds") && m.docs.contains_key("presence_build_info"));

    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    bob.subscribe(&["sip:alice@example.com"]).await;
    alice.publish_note("Gauges").await;
    let queued: usize = server.gateway.live_sessions().iter().map(|s| s.queue_len()).sum();
    let longest = server.gateway.live_sessions().iter().map(|s| s.queue_len()).max().unwrap();
    let m = scrape(&server.base).await;
    assert_eq!(value(&m, "presence_sessions", &[]), 2.0);
    assert_eq!(value(&m, "presence_queue_depth", &[]), queued as f64, "the kept total is the real one");
    assert_eq!(value(&m, "presence_queue_depth_max", &[]), longest as f64);

    // Everything acknowledged: nothing queued.
    for client in [&mut alice, &mut bob] {
        client.poll().await;
        let ack = client.ack;
        client.poll_with(ack, true).await;
    }
    let m = scrape(&server.base).await;
    assert_eq!(value(&m, "presence_queue_depth", &[]), 0.0);
    assert_eq!(value(&m, "presence_queue_depth_max", &[]), 0.0, "no queue grew since the last scrape");

    // Ending sessions, one with events still queued: both gauges follow.
    alice.publish_note("Unread by Bob").await;
    assert!(bob_has_queued(&server, bob.sid));
    let admin = server.gateway.mandate(&Actor::Admin, Duty::Sessions).unwrap();
    server.gateway.end_session(&admin, bob.sid).unwrap();
    let m = scrape(&server.base).await;
    assert_eq!(value(&m, "presence_sessions", &[]), 1.0);
    let left: usize = server.gateway.live_sessions().iter().map(|s| s.queue_len()).sum();
    assert_eq!(value(&m, "presence_queue_depth", &[]), left as f64, "an ended session's queue no longer counts");
    server.clock.advance(chrono::Duration::seconds(31)); // Alice stops polling: she expires
    for _ in 0..1000 {
        if server.gateway.session_count() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let m = scrape(&server.base).await;
    assert_eq!((value(&m, "presence_sessions", &[]), value(&m, "presence_queue_depth", &[])), (0.0, 0.0));
    server.stop().await;
}

fn bob_has_queued(server: &TestServer, sid: u64) -> bool {
    server.gateway.live_session(sid).is_some_and(|s| s.queue_len() > 0)
}
