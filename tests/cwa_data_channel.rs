//! The long-poll data channel over HTTP: eids and acks, re-sending after a lost response,
//! concurrent polls, holding, coalescing and resync, idle and timed transitions, session expiry
//! and ticket rotation (time moved by the injected clock, never by sleeping).

mod common;

use presence_gateway::service::permits::Action;

use common::*;
use presence_gateway::config::Config;
use presence_gateway::model::sources::{ManualKind, ManualState, Note};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_lost_response_is_sent_again_with_the_same_eids() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&["sip:bob@example.com", "sip:carol@example.com"]).await;
    let first = alice.poll_with(0, true).await;
    let again = alice.poll_with(0, true).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, again.body, "same events, same eids, same order");
    let root = first.xml();
    let eids: Vec<u64> = events(&root).iter().map(|e| e.eid).collect();
    assert_eq!(eids, (1..=eids.len() as u64).collect::<Vec<_>>(), "eids count up from 1");
    assert_eq!(root.attr("ackId").unwrap().parse::<u64>().unwrap(), *eids.last().unwrap());
    for attr in ["sid", "pollWaitTime", "sessionTimeout"] {
        assert!(root.attr(attr).is_some(), "cwaEvents@{attr}");
    }
    // Acknowledging part of the batch re-sends only the rest.
    let partial = alice.poll_with(2, true).await;
    let rest: Vec<u64> = events(&partial.xml()).iter().map(|e| e.eid).collect();
    assert_eq!(rest, eids[2..].to_vec());
}

#[tokio::test]
async fn an_empty_poll_is_held_then_answered_empty() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    alice.poll().await;
    let started = Instant::now();
    let reply = alice.poll_with(alice.ack, true).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "held for the hold time (1 s in tests)");
    let root = reply.xml();
    assert!(root.children.is_empty());
    assert_eq!(root.attr("ackId").unwrap().parse::<u64>().unwrap(), alice.ack);
}

#[tokio::test]
async fn an_event_completes_a_held_poll_at_once() {
    let server = TestServer::start_with(Config { hold_seconds: 50, session_timeout_seconds: 120, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.poll().await;
    let held = tokio::spawn(async move {
        let started = Instant::now();
        let events = alice.poll().await;
        (started.elapsed(), events)
    });
    bob.publish_state(6500).await;
    let (elapsed, events) = held.await.unwrap();
    assert!(elapsed < Duration::from_secs(40), "answered on the event, not after the 50 s hold");
    assert!(events.iter().any(|e| e.name == "userPresence" && seen(&e.users()[0]).availability == 6500));
}

#[tokio::test]
async fn a_newer_poll_completes_the_older_one_empty() {
    let server = TestServer::start_with(Config { hold_seconds: 50, session_timeout_seconds: 120, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    alice.poll().await;
    let (ack, mut second) = (alice.ack, alice.same_login());
    second.sid = alice.sid;
    let older = tokio::spawn(async move { alice.poll_with(ack, true).await });
    // The older poll is held; the newer one supersedes it, and then itself returns events.
    let mut bob = server.session("bob@example.com").await;
    let newer = tokio::spawn(async move { second.poll_with(ack, true).await });
    let older = older.await.unwrap();
    assert_eq!(older.status, 200);
    assert!(older.xml().children.is_empty(), "superseded poll is answered empty: {}", older.body);
    bob.publish_state(6500).await; // not watched by alice: the newer poll ends at its hold or on shutdown
    server.gateway.begin_shutdown();
    assert_eq!(newer.await.unwrap().status, 200);
}

#[tokio::test]
async fn unsent_snapshots_coalesce_and_overflow_resyncs_without_loss() {
    // Room for the first burst and the subscription's answers and snapshots (with their raw
    // categories), not for much more.
    let config = Config { limits: presence_gateway::config::Limits { queue_length: 14, ..Default::default() }, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com", "sip:carol@example.com"]).await;
    alice.poll().await;
    // Many changes of one user while the watcher does not poll: they coalesce into one snapshot.
    for note in ["one", "two", "three", "four", "five", "six", "seven", "eight"] {
        bob.publish_note(note).await;
        bob.poll().await; // Bob's own queue is bounded too: he reads his answers
    }
    let events = alice.poll().await;
    let snapshots: Vec<_> = events.iter().filter(|e| e.name == "userPresence").collect();
    assert_eq!(snapshots.len(), 1, "{events:?}");
    assert_eq!(seen(&snapshots[0].users()[0]).note, "eight", "latest wins");
    // Fill the queue with other events beyond its bound: the watcher is resynchronised.
    for i in 0..8 {
        alice.query(&["sip:carol@example.com"]).await;
        bob.publish_note(&format!("n{i}")).await;
        bob.poll().await;
    }
    let mut last_eid = alice.ack;
    let mut final_note = String::new();
    for _ in 0..5 {
        let events = alice.poll().await;
        for e in &events {
            assert_eq!(e.eid, last_eid + 1, "no eid gaps");
            last_eid = e.eid;
            let bob = e.users().into_iter().find(|u| u.attr("uri") == Some("sip:bob@example.com"));
            if let Some(user) = bob.filter(|_| e.name == "userPresence") {
                final_note = seen(&user).note;
            }
        }
        if events.is_empty() {
            break;
        }
    }
    assert_eq!(final_note, "n7", "the newest state arrives after the resync");
}

#[tokio::test]
async fn a_session_that_stops_polling_expires_and_its_user_goes_offline() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    // Alice keeps polling; Bob does not. Past the session timeout (30 s in tests) Bob's session ends.
    server.clock.advance(chrono::Duration::seconds(20));
    alice.poll().await;
    server.clock.advance(chrono::Duration::seconds(11));
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 0).await;
    let reply = bob.poll_with(0, true).await;
    assert_eq!(reply.status, 404);
    assert_eq!(error_code(&reply), 18100);
}

#[tokio::test]
async fn idle_clients_turn_inactive_and_activity_brings_them_back() {
    let server = TestServer::start_with(Config { session_timeout_seconds: 900, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    bob.poll_with(0, false).await;
    server.clock.advance(chrono::Duration::seconds(301));
    let idle = alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 4500).await;
    assert_eq!(seen(&idle).token, "Inactive");
    bob.poll_with(0, true).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn a_manual_state_ends_at_its_to_time_and_a_note_at_its_expiry() {
    let config = Config { session_timeout_seconds: 9000, idle_timeout_seconds: 9000, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let _bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |_| true).await;
    let now = server.clock.now_for_tests();
    let mut manual = ManualState::simple(ManualKind::Busy);
    manual.to = Some(now + chrono::Duration::minutes(10));
    let note = Note { text: "Back soon".into(), expires: Some(now + chrono::Duration::minutes(5)) };
    let gateway = &server.gateway;
    let bob = presence_gateway::service::permits::Actor::User("sip:bob@example.com");
    let permit = |action| gateway.permit(&bob, action, "sip:bob@example.com").unwrap();
    gateway.set_manual_state(&permit(Action::AbsentState), Some(manual)).await.unwrap();
    gateway.set_note(&permit(Action::Note), Some(note)).await.unwrap();
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500 && seen(u).note == "Back soon").await;
    server.clock.advance(chrono::Duration::minutes(6));
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500 && seen(u).note.is_empty()).await;
    server.clock.advance(chrono::Duration::minutes(5));
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn tickets_rotate_and_the_replaced_one_works_while_it_is_used() {
    let config = Config { ticket_rotation_seconds: 60, ticket_idle_seconds: 120, session_timeout_seconds: 900, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let old = alice.ticket.clone();
    server.clock.advance(chrono::Duration::seconds(61));
    let reply = alice.poll_with(0, true).await;
    let fresh = reply.ticket.clone().unwrap();
    assert_ne!(fresh, old, "a rotated ticket comes back on the reply");
    let mut stale = alice.same_login();
    stale.ticket = old.clone();
    stale.sid = alice.sid;
    assert_eq!(stale.poll_with(0, true).await.ticket.as_deref(), Some(old.as_str()), "the replaced ticket still works");
    server.clock.advance(chrono::Duration::seconds(100));
    assert_eq!(alice.poll_with(0, true).await.status, 200);
    server.clock.advance(chrono::Duration::seconds(21));
    stale.ticket = old;
    assert_eq!(stale.poll_with(0, true).await.status, 401, "unused for the idle lifetime");
    assert_eq!(alice.poll_with(0, true).await.status, 200);
}
