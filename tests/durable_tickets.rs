//! Tickets kept in the store, against both backends (an SQLite file and a PostgreSQL schema), with
//! real gateways on 127.0.0.1:0: a ticket survives a restart, a second gateway on the same store
//! accepts it, a new password or a removal made by `presence-gateway user …` ends it on every
//! running gateway within about a second, the store never holds the ticket itself, ended logins
//! are swept, and a store that fails gives the retryable error and keeps nothing half-written.

mod common;
#[path = "support/nodes.rs"]
#[macro_use]
mod nodes;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/process.rs"]
mod process;

use chrono::Duration;
use common::*;
use nodes::{Backend, Node};
use presence_gateway::config::Config;
use presence_gateway::store::sqlite::SqliteStore;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

/// Long sessions, so that only tickets decide what works.
fn config() -> Config {
    Config { session_timeout_seconds: 100_000, idle_timeout_seconds: 100_000, ..test_config() }
}

/// `presence-gateway user ARGS --store URL`, with `stdin`.
async fn user_command(backend: &Backend, args: &[&str], stdin: &str) {
    let mut command = process::gateway(&["user"]);
    command.args(args).arg("--store").arg(backend.url());
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let stdin = stdin.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {text}");
}

async fn a_ticket_survives_a_restart(backend: Backend) {
    let first = Node::on(&backend, config()).await;
    let mut alice = Client::sign_in(&first.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    assert_eq!(first.read(&alice.ticket).await.0, 200);
    first.stop().await;
    backend.holds_only_the_hash_of(&alice.ticket).await;

    let second = Node::on(&backend, config()).await;
    assert_eq!(second.read(&alice.ticket).await, (200, Some(alice.ticket.clone())), "still signed in after the restart");
    alice.base = second.base.clone();
    alice.initiate().await;
    assert!(alice.publish_note("back").await.xml().child("requestAccepted").is_some());
    assert_eq!(backend.logins_of("sip:alice@example.com").await, 1, "the users file applied again signed nobody out");
    assert_eq!(second.read("not-a-ticket").await.0, 401);
}

async fn another_gateway_accepts_a_ticket_and_the_command_line_ends_it_everywhere(backend: Backend) {
    let (one, two) = (Node::on(&backend, config()).await, Node::on(&backend, config()).await);
    let alice = Client::sign_in(&one.base, "alice@example.com", "pw").await.unwrap();
    let carol = Client::sign_in(&two.base, "carol@example.com", "pw").await.unwrap();
    for node in [&one, &two] {
        assert_eq!(node.read(&alice.ticket).await.0, 200, "issued by one, accepted by both");
        assert_eq!(node.read(&carol.ticket).await.0, 200, "issued by two, accepted by both");
    }
    // A rotation on one gateway: the fresh value works on the other.
    one.clock.advance(Duration::minutes(16));
    two.clock.advance(Duration::minutes(16));
    let (status, fresh) = one.read(&alice.ticket).await;
    let fresh = fresh.unwrap();
    assert!(status == 200 && fresh != alice.ticket);
    assert_eq!(two.read(&fresh).await, (200, Some(fresh.clone())), "rotated once, not again on the other gateway");

    user_command(&backend, &["passwd", "sip:alice@example.com"], "new password\n").await;
    for node in [&one, &two] {
        node.until_refused(&alice.ticket, "the sign-in ticket after a new password").await;
        node.until_refused(&fresh, "the rotated ticket after a new password").await;
        assert_eq!(node.read(&carol.ticket).await.0, 200, "other users stay signed in");
    }
    assert_eq!(backend.logins_of("sip:alice@example.com").await, 0);
    let again = Client::sign_in(&two.base, "alice@example.com", "new password").await.unwrap();
    assert_eq!(one.read(&again.ticket).await.0, 200);

    user_command(&backend, &["remove", "sip:carol@example.com"], "").await;
    for node in [&one, &two] {
        node.until_refused(&carol.ticket, "a removed user's ticket").await;
    }
}

async fn ended_logins_are_swept(backend: Backend) {
    let config = Config { ticket_lifetime_seconds: 3600, ticket_idle_seconds: 1800, ..config() };
    let node = Node::start(backend.open().await, config).await;
    let alice = Client::sign_in(&node.base, "alice@example.com", "pw").await.unwrap();
    let bob = Client::sign_in(&node.base, "bob@example.com", "pw").await.unwrap();
    for _ in 0..2 {
        node.clock.advance(Duration::minutes(20));
        assert_eq!(node.read(&alice.ticket).await.0, 200);
    }
    // Bob's only ticket has not been used for 40 minutes: swept, and his login with it.
    wait_until(|| async { backend.logins_of("sip:bob@example.com").await == 0 }, "the idle login is swept").await;
    assert_eq!(node.read(&bob.ticket).await.0, 401);
    assert_eq!(backend.logins_of("sip:alice@example.com").await, 1);
    node.clock.advance(Duration::minutes(21));
    assert_eq!(node.read(&alice.ticket).await.0, 401, "past the lifetime");
    wait_until(|| async { backend.rows("logins").await == 0 && backend.rows("tickets").await == 0 }, "all swept").await;
}

/// Polls `check` (bounded) until it holds.
async fn wait_until<F, Fut>(check: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

both_backends!(
    a_ticket_survives_a_restart,
    another_gateway_accepts_a_ticket_and_the_command_line_ends_it_everywhere,
    ended_logins_are_swept
);

fn no_internal_text(body: &str) {
    for word in ["injected", "sqlite", "SQL", "connection", "StoreError"] {
        assert!(!body.contains(word), "{word} in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_gives_the_retryable_error_and_keeps_no_half_login() {
    let backend = Backend::sqlite().await;
    let Backend::Sqlite(dir) = &backend else { unreachable!() };
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let one = Node::start(store.clone(), config()).await;

    // The ticket row fails after the login row was written: neither is kept.
    store.faults.fail_after(1);
    let refused = Client::sign_in(&one.base, "alice@example.com", "pw").await.err().expect("the sign-in fails");
    assert_eq!((refused.status, error_code(&refused)), (503, 18400), "{}", refused.body);
    assert!(refused.ticket.is_none());
    no_internal_text(&refused.body);
    assert_eq!((backend.rows("logins").await, backend.rows("tickets").await), (0, 0), "nothing half-written");
    let alice = Client::sign_in(&one.base, "alice@example.com", "pw").await.expect("the retry signs in");

    // A second gateway that has not seen the ticket yet, while its store is down: retryable errors.
    let other = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let two = Node::start(other.clone(), config()).await;
    other.faults.fail_always();
    let json = reqwest::Client::new()
        .get(format!("{}/api/v1/users/sip:bob@example.com/presence", two.base))
        .header("CWA-Ticket", &alice.ticket)
        .send()
        .await
        .unwrap();
    assert_eq!((json.status().as_u16(), json.headers()["retry-after"].to_str().unwrap()), (503, "1"));
    let body = json.text().await.unwrap();
    assert!(body.contains("store_unavailable"), "{body}");
    no_internal_text(&body);
    let mut there = alice.same_login();
    there.base = two.base.clone();
    let reply = there.query(&["sip:bob@example.com"]).await;
    assert_eq!((reply.status, error_code(&reply)), (503, 18400), "{}", reply.body);
    no_internal_text(&reply.body);
    other.faults.heal();
    assert_eq!(two.read(&alice.ticket).await.0, 200, "accepted once the store is back");

    // A rotation due while the store is down: the presented ticket stays good, rotation waits.
    store.faults.fail_always();
    one.clock.advance(Duration::minutes(16));
    assert_eq!(one.read(&alice.ticket).await, (200, Some(alice.ticket.clone())));
    store.faults.heal();
    let (status, fresh) = one.read(&alice.ticket).await;
    assert!(status == 200 && fresh.is_some_and(|f| f != alice.ticket), "rotated once the store is back");
}
