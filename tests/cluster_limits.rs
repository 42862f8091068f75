//! The cluster's shared limits and timed transitions (README "Sign-in limits", "Several nodes"),
//! with real gateway processes on one PostgreSQL schema, a Redis of the test's own and HAProxy:
//! failed sign-ins spread round-robin over three nodes are refused at the configured limit as if
//! there were one node; with Redis stopped sign-ins are still answered, limited per node; the end
//! of a manual state and a report's expiry reach every watcher on every node exactly once, the
//! presentity's version in Redis moves once for each, the store ends right — also when the node
//! holding the claim is killed just before the deadline.

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

use cluster::{Cluster, CROSS_NODE, TTL};
use common::*;
use std::time::{Duration, Instant};

const BOB: &str = "sip:bob@example.com";
const ADMIN_TOKEN: &str = "an-admin-token-for-the-cluster-tests";

/// `count` nodes with an administrators' token and these `GATEWAY_*` variables too, each ready.
async fn start(count: usize, env: &[(&str, &str)]) -> Cluster {
    let tokens = format!(r#"[{{ name = "ops", token = "{ADMIN_TOKEN}", role = "admin" }}]"#);
    let env: Vec<(&str, &str)> = env.iter().copied().chain([("GATEWAY_API_TOKENS", tokens.as_str())]).collect();
    Cluster::start(count, &env).await
}

/// A sign-in attempt: the status, the CWA error code when refused, and `Retry-After`.
async fn attempt(base: &str, user: &str, password: &str) -> (u16, Option<u32>, Option<u64>) {
    let body = format!("<cwaRequests><logon><user>{user}</user><password>{password}</password></logon></cwaRequests>");
    let response = reqwest::Client::new().post(format!("{base}/forms/logon.html")).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("Retry-After").and_then(|v| v.to_str().ok()?.parse().ok());
    let reply = Reply { status, ticket: None, body: response.text().await.unwrap() };
    let code = (status != 200).then(|| error_code(&reply));
    (status, code, retry_after)
}

/// Refused by the limits: 429, CWA 18101, a `Retry-After` of at most the window.
fn throttled(answer: (u16, Option<u32>, Option<u64>), window: u64) -> bool {
    answer.0 == 429 && answer.1 == Some(18101) && answer.2.is_some_and(|s| (1..=window).contains(&s))
}

/// Every key in Redis under `pattern`.
async fn keys(cluster: &Cluster, pattern: &str) -> Vec<String> {
    ::redis::cmd("KEYS").arg(pattern).query_async(&mut cluster.redis_connection().await).await.unwrap()
}

const LIMITS: [(&str, &str); 4] = [
    ("GATEWAY_LOGON__FAILURES_PER_USER_AND_ADDRESS", "4"),
    ("GATEWAY_LOGON__FAILURES_PER_ADDRESS", "7"),
    ("GATEWAY_LOGON__WINDOW_SECONDS", "300"),
    ("GATEWAY_LOGON__USER_SLOWDOWN_AFTER", "50"),
];

#[tokio::test]
async fn failed_sign_ins_spread_over_three_nodes_are_refused_at_the_limit_as_if_one_node() {
    let cluster = start(3, &LIMITS).await;
    let proxy = cluster.proxy();
    // Four failures of Bob from this address, round-robin over the three nodes: none counted
    // more than two of them, yet the fifth attempt is refused — with the right password too.
    for n in 0..4 {
        let answer = attempt(&proxy.base, "bob@example.com", "wrong").await;
        assert_eq!(answer.0, 401, "failure {n} is checked and fails: {answer:?}");
    }
    for node in 0..3 {
        let refused = attempt(cluster.base(node), "sip:BOB@example.com", "pw").await;
        assert!(throttled(refused, 300), "node {node} refuses Bob from this address: {refused:?}");
    }
    // The limit is per user and address: Carol still signs in, through any node.
    assert_eq!(attempt(&proxy.base, "carol@example.com", "pw").await.0, 200);
    // Per address, whatever the users: three more failures (8 attempts counted, 1 taken back by
    // Carol's success) reach the limit of 7 for everyone from here.
    for _ in 0..3 {
        assert_eq!(attempt(&proxy.base, "alice@example.com", "wrong").await.0, 401);
    }
    let refused = attempt(&proxy.base, "carol@example.com", "pw").await;
    assert!(throttled(refused, 300), "the address is over its limit on every node: {refused:?}");

    // Redis holds digests, never the names or the address.
    let keys = keys(&cluster, "presence-gateway:logon:*").await;
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("bob") && !k.contains("carol") && !k.contains("127.0.0.1")), "{keys:?}");
}

#[tokio::test]
async fn with_redis_stopped_sign_ins_are_answered_and_limited_per_node() {
    let mut cluster = start(2, &LIMITS).await;
    cluster.redis.stop();
    assert!(process::ready_within(cluster.base(0), Duration::from_secs(10), false).await, "not ready without Redis");
    // A sign-in still gets its answer at once: the right password signs in, no 503.
    let started = Instant::now();
    assert_eq!(attempt(cluster.base(0), "bob@example.com", "pw").await.0, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Each node counts on its own meanwhile: four failures on node 0 reach the limit there...
    for _ in 0..4 {
        assert_eq!(attempt(cluster.base(0), "carol@example.com", "wrong").await.0, 401);
    }
    assert!(throttled(attempt(cluster.base(0), "carol@example.com", "pw").await, 300));
    // ...while node 1 has counted none of them.
    assert_eq!(attempt(cluster.base(1), "carol@example.com", "pw").await.0, 200);

    // Redis back (empty): the shared counts apply again, across the nodes.
    cluster.redis.restart();
    for node in 0..2 {
        assert!(process::ready_within(cluster.base(node), Duration::from_secs(15), true).await, "ready again");
    }
    for n in 0..4 {
        assert_eq!(attempt(cluster.base(n % 2), "alice@example.com", "wrong").await.0, 401);
    }
    assert!(throttled(attempt(cluster.base(0), "alice@example.com", "pw").await, 300));
    assert!(throttled(attempt(cluster.base(1), "alice@example.com", "pw").await, 300));
}

/// An admin request through `base`, retried while the balancer answers 502/503 (a node gone).
async fn admin(base: &str, method: reqwest::Method, path: &str, body: serde_json::Value) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = reqwest::Client::new()
            .request(method.clone(), format!("{base}/api/v1/users/{BOB}/{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body);
        let status = request.send().await.unwrap().status().as_u16();
        if !matches!(status, 502 | 503) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What a watcher sees of Bob in one snapshot.
type Shown = (u32, String, String);

fn shown(user: &presence_gateway::cwa::xml::Element) -> Shown {
    let s = seen(user);
    (s.availability, s.token, s.note)
}

/// Polls until a snapshot of Bob satisfies `until`; returns every snapshot of Bob on the way.
async fn bob_until(watcher: &mut Client, limit: Duration, until: impl Fn(&Shown) -> bool) -> Vec<Shown> {
    let mut all = Vec::new();
    let found = tokio::time::timeout(limit, async {
        loop {
            for event in watcher.poll().await.into_iter().filter(|e| e.name == "userPresence") {
                for user in event.users().iter().filter(|u| u.attr("uri") == Some(BOB)) {
                    all.push(shown(user));
                    if until(all.last().unwrap()) {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "not seen within {limit:?}; seen {all:?}");
    all
}

/// Bob's version in Redis.
async fn version(cluster: &Cluster) -> u64 {
    let v: Option<u64> = ::redis::cmd("HGET")
        .arg(format!("presence-gateway:p:{BOB}"))
        .arg("v")
        .query_async(&mut cluster.redis_connection().await)
        .await
        .unwrap();
    v.unwrap_or(0)
}

/// Polls Bob's version until it is `expected` (panics after `limit`).
async fn version_becomes(cluster: &Cluster, expected: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = version(cluster).await;
        if now == expected {
            return;
        }
        if now > expected || Instant::now() > deadline {
            let hash: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL")
                .arg(format!("presence-gateway:p:{BOB}"))
                .query_async(&mut cluster.redis_connection().await)
                .await
                .unwrap();
            panic!(
                "Bob's version is {now}, expected {expected}: {hash:?}, claims {:?}",
                keys(cluster, "presence-gateway:claim:*").await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bob's manual state and note as the store holds them.
async fn stored_presence(cluster: &Cluster) -> String {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(&cluster.schema.url()).await.unwrap();
    let row = sqlx::query("SELECT COALESCE(manual, '') || ' / ' || COALESCE(note, '') FROM presence WHERE uri = $1")
        .bind(BOB)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.try_get(0).unwrap()
}

const DND: u32 = 9500;
const ON_THE_PHONE: (u32, &str) = (6500, "on-the-phone");
const ONLINE: u32 = 3500;

/// Three nodes, HAProxy before them, Alice watching Bob on every node; Bob's computer keeps him
/// online. Then, through the balancer: a phone call that expires after `call_ttl` seconds and a
/// do-not-disturb that ends at `to`. Returns the cluster, the proxy, the watchers (each having
/// seen the DND) and `to`.
async fn dnd_on_the_phone(
    to_in: chrono::Duration,
    call_ttl: u64,
) -> (Cluster, haproxy::HaProxy, Vec<Client>, chrono::DateTime<chrono::Utc>) {
    let cluster = start(3, &[]).await;
    let proxy = cluster.proxy();
    let mut watchers = Vec::new();
    for node in 0..3 {
        let mut alice = Client::sign_in(cluster.base(node), "alice@example.com", "pw").await.unwrap();
        alice.initiate().await;
        alice.subscribe(&[BOB]).await;
        watchers.push(alice);
    }
    let computer = serde_json::json!({"kind": "computer", "state": "logged-in"});
    assert_eq!(admin(&proxy.base, reqwest::Method::PUT, "sources/desktop", computer).await, 200);
    all_until(&mut watchers, CROSS_NODE * 2, |s| s.0 == ONLINE).await;
    let call = serde_json::json!({"kind": "phone", "ttlSeconds": call_ttl,
        "calls": [{"id": "c1", "state": "connected", "direction": "incoming"}]});
    assert_eq!(admin(&proxy.base, reqwest::Method::PUT, "sources/pbx", call).await, 200);
    all_until(&mut watchers, CROSS_NODE * 2, |s| (s.0, s.1.as_str()) == ON_THE_PHONE).await;
    let to = chrono::Utc::now() + to_in;
    let dnd = serde_json::json!({"state": "do-not-disturb", "to": at(to)});
    assert_eq!(admin(&proxy.base, reqwest::Method::PUT, "absent-state", dnd).await, 200);
    all_until(&mut watchers, CROSS_NODE * 2, |s| s.0 == DND).await;
    (cluster, proxy, watchers, to)
}

/// Every watcher polls at once (a watcher that does not poll would have its unsent snapshots of
/// Bob coalesced) until a snapshot of Bob satisfies `until`; returns what each saw on the way.
async fn all_until(watchers: &mut Vec<Client>, limit: Duration, until: fn(&Shown) -> bool) -> Vec<Vec<Shown>> {
    let tasks: Vec<_> = watchers
        .drain(..)
        .map(|mut alice| {
            tokio::spawn(async move {
                let seen = bob_until(&mut alice, limit, until).await;
                (alice, seen)
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        let (alice, shown) = task.await.expect("a watcher's polls");
        watchers.push(alice);
        seen.push(shown);
    }
    seen
}

/// After the DND: each watcher sees exactly one snapshot for the DND's end (on the phone) and one
/// for the call's expiry (online), then the marker note — nothing else.
async fn each_sees_each_transition_once(watchers: &mut Vec<Client>, proxy: &haproxy::HaProxy, limit: Duration) {
    let mut seen = all_until(watchers, limit, |s| s.0 == ONLINE).await;
    let marker = serde_json::json!({"text": "marker"});
    assert_eq!(admin(&proxy.base, reqwest::Method::PUT, "note", marker).await, 200);
    let after = all_until(watchers, CROSS_NODE * 2, |s| s.2 == "marker").await;
    let expected: Vec<Shown> = vec![
        (ON_THE_PHONE.0, ON_THE_PHONE.1.into(), String::new()),
        (ONLINE, String::new(), String::new()),
        (ONLINE, String::new(), "marker".into()),
    ];
    for ((alice, seen), after) in watchers.iter().zip(&mut seen).zip(after) {
        seen.extend(after);
        let tokens: Vec<Shown> =
            seen.iter().map(|s| (s.0, if s.0 == ONLINE { String::new() } else { s.1.clone() }, s.2.clone())).collect();
        assert_eq!(tokens, expected, "each transition exactly once, on {}", alice.base);
    }
}

#[tokio::test]
async fn timed_transitions_reach_every_watcher_once_and_are_carried_out_once() {
    let (cluster, proxy, mut watchers, to) = dnd_on_the_phone(chrono::Duration::seconds(4), 7).await;
    let before = version(&cluster).await;
    each_sees_each_transition_once(&mut watchers, &proxy, Duration::from_secs(10)).await;
    assert!(chrono::Utc::now() >= to);
    // One version for the DND's end, one for the call's withdrawal, one for the marker.
    version_becomes(&cluster, before + 3, CROSS_NODE).await;
    let hash: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL")
        .arg(format!("presence-gateway:p:{BOB}"))
        .query_async(&mut cluster.redis_connection().await)
        .await
        .unwrap();
    assert!(!hash.contains_key("r:pbx") && hash.contains_key("r:desktop"), "the expired report is withdrawn: {hash:?}");
    assert!(!hash["m"].contains("do-not-disturb") && hash["m"].contains("marker"), "{hash:?}");
    let stored = stored_presence(&cluster).await;
    assert!(!stored.contains("do-not-disturb") && stored.contains("marker"), "{stored}");
    assert_eq!(keys(&cluster, "presence-gateway:claim:*").await.len(), 2, "one claim per transition");
}

#[tokio::test]
async fn when_the_claiming_node_is_killed_before_the_deadline_the_survivors_carry_it_out_once() {
    let (mut cluster, proxy, mut watchers, to) = dnd_on_the_phone(chrono::Duration::seconds(6), 12).await;
    // Node 2 claims the DND's end (as it would on reaching the deadline first) and is killed
    // just before the deadline, its claim still standing for the hold's length.
    let readiness = reqwest::get(format!("{}/readyz", cluster.base(2))).await.unwrap().text().await.unwrap();
    let node = readiness.lines().find_map(|l| l.trim().strip_prefix("node: ")).expect("the node's number").trim().to_string();
    let claim = format!("presence-gateway:claim:{BOB}:m:{}", to.timestamp_millis());
    let hold_ms = ((to - chrono::Utc::now()).num_milliseconds() + 2000).max(2000);
    let _: () = ::redis::cmd("SET")
        .arg(&claim)
        .arg(&node)
        .arg("PX")
        .arg(hold_ms)
        .query_async(&mut cluster.redis_connection().await)
        .await
        .unwrap();
    let before = version(&cluster).await;
    let kill_at = to - chrono::Duration::milliseconds(300);
    tokio::time::sleep((kill_at - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    drop(cluster.nodes.remove(2));
    watchers.truncate(2);

    // Past the deadline nobody stores or publishes the DND's end while the dead node's claim
    // stands.
    tokio::time::sleep((to - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300)).await;
    let left: i64 = ::redis::cmd("PTTL").arg(&claim).query_async(&mut cluster.redis_connection().await).await.unwrap();
    if left > 0 {
        assert_eq!(version(&cluster).await, before, "carried out while another node's claim stood");
        assert!(stored_presence(&cluster).await.contains("do-not-disturb"));
    }
    // Once the claim lapses, one survivor takes over: the store and Redis end the DND once.
    version_becomes(&cluster, before + 1, Duration::from_secs(5)).await;
    assert!(!stored_presence(&cluster).await.contains("do-not-disturb"));
    each_sees_each_transition_once(&mut watchers, &proxy, Duration::from_secs(10)).await;
    version_becomes(&cluster, before + 3, CROSS_NODE).await;
    let done: Option<String> = ::redis::cmd("GET").arg(&claim).query_async(&mut cluster.redis_connection().await).await.unwrap();
    assert_eq!(done.as_deref(), Some("done"));
}

#[tokio::test]
async fn the_shared_counts_slow_a_user_down_except_from_known_addresses() {
    use presence_gateway::backplane::redis::{RedisBackplane, Settings};
    use presence_gateway::backplane::{Backplane, LogonCount};
    let redis = redis::RedisServer::start();
    let settings =
        Settings { heartbeat_ttl: Duration::from_secs(TTL), advertise: String::new(), linger: Duration::from_secs(30) };
    let counts = RedisBackplane::new(&redis.url(), settings).unwrap();
    let policy = presence_gateway::config::LogonPolicy {
        failures_per_user_and_address: 100,
        failures_per_address: 100,
        window_seconds: 300,
        user_slowdown_after: 2,
        user_slowdown_max_seconds: 60,
    };
    let count = |address: &'static str| counts.count_logon("bob", address, &policy);
    assert_eq!(count("home").await.unwrap(), Some(LogonCount::Counted));
    counts.logon_succeeded("bob", "home").await.unwrap();
    for address in ["x1", "x2"] {
        assert_eq!(count(address).await.unwrap(), Some(LogonCount::Counted));
    }
    // Two failures from anywhere: the next attempt from elsewhere waits 1 s, then 2 s...
    for (n, expected) in [(3, 1000), (4, 2000)] {
        let address = ["", "", "", "x3", "x4"][n];
        let Some(LogonCount::Refused(wait)) = count(address).await.unwrap() else { panic!("attempt {n} passes") };
        assert!(wait <= Duration::from_millis(expected) && wait > Duration::from_millis(expected - 500), "{n}: {wait:?}");
        // ...but never from the address Bob signs in from.
        assert_eq!(count("home").await.unwrap(), Some(LogonCount::Counted));
        counts.logon_succeeded("bob", "home").await.unwrap();
        let deadline = Instant::now() + wait + Duration::from_secs(2);
        while count(address).await.unwrap() != Some(LogonCount::Counted) {
            assert!(Instant::now() < deadline, "attempt {n} still refused after {wait:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Only digests were given; what Redis keeps expires by itself.
    let mut con = ::redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS").arg("presence-gateway:logon:*").query_async(&mut con).await.unwrap();
    for key in keys {
        let ttl: i64 = ::redis::cmd("PTTL").arg(&key).query_async(&mut con).await.unwrap();
        assert!(ttl > 0, "{key} expires");
    }
}
