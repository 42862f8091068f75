//! Sign-in over HTTP: the limit on failed sign-ins (keyed on the resolved user, per user and
//! address, a per-user slow-down that spares the user's own addresses, `Retry-After`), attempts
//! counted before the password check and bounded password checks, refusal of cross-site sign-in
//! (login CSRF), and the attributes of the ticket cookie.

mod common;

use common::*;
use presence_gateway::config::{Config, LogonPolicy, ProxyNet};
use std::future::Future;
use std::net::IpAddr;

/// The test server trusts loopback as its proxy, so `X-Forwarded-For` names the client.
fn behind_proxy() -> Config {
    Config { trusted_proxies: vec![ProxyNet::try_from("127.0.0.0/8".to_string()).unwrap()], ..test_config() }
}

#[derive(Debug)]
struct Attempt {
    status: u16,
    retry_after: Option<u64>,
    cookie: Option<String>,
    ticket: Option<String>,
}

async fn attempt(server: &TestServer, user: &str, password: &str, headers: &[(&str, &str)]) -> Attempt {
    attempt_at(&server.base, user, password, headers).await
}

async fn attempt_at(base: &str, user: &str, password: &str, headers: &[(&str, &str)]) -> Attempt {
    let body = format!("<cwaRequests><logon><user>{user}</user><password>{password}</password></logon></cwaRequests>");
    let mut request = reqwest::Client::new().post(format!("{base}/forms/logon.html")).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    Attempt {
        status: response.status().as_u16(),
        retry_after: header("retry-after").map(|v| v.parse().expect("Retry-After in seconds")),
        cookie: header("set-cookie"),
        ticket: header("cwa-ticket"),
    }
}

async fn from(server: &TestServer, address: &str, user: &str, password: &str) -> Attempt {
    attempt(server, user, password, &[("X-Forwarded-For", address)]).await
}

#[tokio::test]
async fn every_spelling_of_a_user_counts_as_that_user() {
    let server = TestServer::start().await;
    for spelling in ["bob@example.com", "sip:bob@example.com", "SIP:BOB@EXAMPLE.COM", "corp\\bob", "x1\\bob"] {
        assert_eq!(attempt(&server, spelling, "wrong", &[]).await.status, 401, "{spelling}");
    }
    let refused = attempt(&server, "zz9\\bob", "pw", &[]).await;
    assert_eq!(refused.status, 429, "a sixth spelling is still bob");
    assert_eq!(refused.retry_after, Some(300));
    assert!(refused.ticket.is_none() && refused.cookie.is_none());
    assert_eq!(attempt(&server, "alice@example.com", "pw", &[]).await.status, 200, "other users are unaffected");
}

#[tokio::test]
async fn guessing_from_elsewhere_slows_down_but_never_locks_the_user_out() {
    let server = TestServer::start_with(behind_proxy(), USERS).await;
    assert_eq!(from(&server, "192.0.2.10", "bob@example.com", "pw").await.status, 200, "bob's own address");
    for n in 0..5 {
        let guess = from(&server, &format!("198.51.100.{n}"), "bob@example.com", "wrong").await;
        assert_eq!(guess.status, 401);
    }
    let mut wait = 1;
    for n in 0..8 {
        let attacker = format!("203.0.113.{n}");
        let refused = from(&server, &attacker, "bob@example.com", "wrong").await;
        assert_eq!((refused.status, refused.retry_after), (429, Some(wait)), "failure {}", n + 6);
        let bob = from(&server, "192.0.2.10", "bob@example.com", "pw").await;
        assert_eq!(bob.status, 200, "the user still signs in from an address he used before");
        server.clock.advance(chrono::Duration::seconds(wait as i64));
        assert_eq!(from(&server, &attacker, "bob@example.com", "wrong").await.status, 401, "after Retry-After");
        wait = (wait * 2).min(60);
    }
}

#[tokio::test]
async fn one_address_is_limited_per_user() {
    let server = TestServer::start_with(behind_proxy(), USERS).await;
    for _ in 0..5 {
        assert_eq!(from(&server, "198.51.100.1", "alice@example.com", "wrong").await.status, 401);
    }
    let refused = from(&server, "198.51.100.1", "alice@example.com", "pw").await;
    assert_eq!((refused.status, refused.retry_after), (429, Some(300)));
    assert_eq!(from(&server, "198.51.100.1", "carol@example.com", "pw").await.status, 200, "other users from there");
    server.clock.advance(chrono::Duration::seconds(300));
    assert_eq!(from(&server, "198.51.100.1", "alice@example.com", "pw").await.status, 200, "the window has passed");
}

#[tokio::test]
async fn a_parallel_burst_is_counted_before_the_passwords_are_checked() {
    let server = TestServer::start().await;
    let attempts = (0..20).map(|_| ("alice@example.com".to_string(), "wrong")).collect();
    let statuses: Vec<u16> = burst(&server, attempts).await.into_iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    let checks = server.gateway.password_checks();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(checks.capacity(), cores);
    assert!(checks.peak() <= cores, "at most one check per core at a time: {}", checks.peak());
}

#[tokio::test]
async fn many_users_at_once_wait_for_a_free_check() {
    let config = Config { logon: LogonPolicy { failures_per_address: 1000, ..LogonPolicy::default() }, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let users = ["alice", "bob", "carol", "mallory", "pat"];
    let attempts = (0..30)
        .map(|n| {
            let user = users[n % users.len()];
            let domain = if user == "pat" { "other.org" } else { "example.com" };
            (format!("{user}@{domain}"), if n % 3 == 0 { "pw" } else { "wrong" })
        })
        .collect();
    let replies = burst(&server, attempts).await;
    assert!(replies.iter().all(|a| [200, 401, 429].contains(&a.status)), "{replies:?}");
    assert!(replies.iter().any(|a| a.status == 200));
    let checks = server.gateway.password_checks();
    assert!(checks.peak() <= checks.capacity(), "peak {} of {}", checks.peak(), checks.capacity());
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_check_has_used_its_attempt_and_frees_its_check() {
    let server = TestServer::start().await;
    let gateway = server.gateway.clone();
    let address: IpAddr = "198.51.100.9".parse().unwrap();
    let all_finished = || tokio::time::timeout(std::time::Duration::from_secs(60), gateway.password_checks().all_finished());
    for _ in 0..5 {
        let logon = gateway.logon("alice@example.com", "wrong", None, address);
        // Run it until its password check is handed to a thread, then drop it, as a client that
        // hangs up. (Waiting for the check to be seen running could miss a check that runs and
        // ends between two polls on a busy machine.)
        let admitted = gateway.password_checks().admitted();
        abandon_when(logon, || gateway.password_checks().admitted() > admitted).await;
        all_finished().await.expect("the abandoned check gives its permit back");
    }
    let refused = gateway.logon("alice@example.com", "pw", None, address).await.unwrap_err();
    assert!(matches!(refused, presence_gateway::service::sessions::LogonRefused::Throttled { .. }), "{refused:?}");
}

/// Polls `future` until `started()` holds (at least one poll), then drops it unfinished.
async fn abandon_when<F: Future>(future: F, started: impl Fn() -> bool) {
    let mut future = std::pin::pin!(future);
    loop {
        let pending = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "the sign-in finished before it could be abandoned");
        if started() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Sign-in attempts all at once, each on its own connection; their replies in any order.
async fn burst(server: &TestServer, attempts: Vec<(String, &'static str)>) -> Vec<Attempt> {
    let mut set = tokio::task::JoinSet::new();
    for (user, password) in attempts {
        let base = server.base.clone();
        set.spawn(async move { attempt_at(&base, &user, password, &[]).await });
    }
    set.join_all().await
}

#[tokio::test]
async fn a_page_of_another_site_cannot_sign_the_browser_in() {
    let server = TestServer::start().await;
    // The classic login CSRF: a text/plain form whose name=value pair is the XML.
    let form = [("Content-Type", "text/plain"), ("Origin", "https://evil.example"), ("Sec-Fetch-Site", "cross-site")];
    let refused = attempt(&server, "mallory@example.com", "pw", &form).await;
    assert_eq!(refused.status, 403);
    assert!(refused.cookie.is_none() && refused.ticket.is_none());
    for headers in [
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![("Origin", "null")],
        vec![("Origin", "http://intranet.localhost")],
    ] {
        assert_eq!(attempt(&server, "mallory@example.com", "pw", &headers).await.status, 403, "{headers:?}");
    }
    let own = server.base.clone();
    let own_page = [("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let signed_in = attempt(&server, "mallory@example.com", "pw", &own_page).await;
    assert_eq!(signed_in.status, 200, "the gateway's own page");
    assert!(signed_in.cookie.is_some());
    assert_eq!(attempt(&server, "mallory@example.com", "pw", &[]).await.status, 200, "a client that is no browser");
}

#[tokio::test]
async fn a_configured_origin_still_signs_in_with_the_cookie() {
    let origin = "https://intranet.example.com";
    let server = TestServer::start_with(Config { cors_origins: vec![origin.into()], ..test_config() }, USERS).await;
    let page = [("Origin", origin), ("Sec-Fetch-Site", "cross-site")];
    let signed_in = attempt(&server, "alice@example.com", "pw", &page).await;
    assert_eq!(signed_in.status, 200);
    assert!(signed_in.cookie.is_some());
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_browser_came_over_https() {
    let server = TestServer::start_with(behind_proxy(), USERS).await;
    let plain = attempt(&server, "alice@example.com", "pw", &[]).await.cookie.unwrap();
    assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict") && !plain.contains("Secure"), "{plain}");
    let proxied = attempt(&server, "alice@example.com", "pw", &[("X-Forwarded-Proto", "https")]).await.cookie.unwrap();
    assert!(proxied.ends_with("; Secure"), "TLS ended at the trusted proxy: {proxied}");
    server.stop().await;

    let server = TestServer::start().await;
    let forged = attempt(&server, "alice@example.com", "pw", &[("X-Forwarded-Proto", "https")]).await.cookie.unwrap();
    assert!(!forged.contains("Secure"), "not from a trusted proxy: {forged}");
}
