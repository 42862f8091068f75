//! Interest-based delivery between real gateway processes on one PostgreSQL schema and a Redis of
//! the test's own (README "Several nodes"): a user's changes reach only the nodes that follow the
//! user — where a session watches the user or is the user's own, or that read the user lately —
//! seen through Redis's own count of subscribers of the user's channel and each node's
//! `presence_backplane_messages_total`. A watcher that arrives later gets the current state and
//! then every change in order; a node stops following a linger after the last watcher left; a
//! read of a user no session on the node watches answers the user's current live state (CWA
//! query, JSON read and batch read), and answers an error rather than a stale state while Redis
//! is away; after a Redis restart the nodes follow again what they need. A contact that an
//! auto-subscribing session starts watching — added or subscribed to in the contact list, at the
//! session's node, passed on to it, or by another session through the store — shows their
//! current state in its first snapshot, also where nobody followed the contact before.

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

use cluster::*;
use common::*;
use std::time::{Duration, Instant};

const BOB: &str = "sip:bob@example.com";
const CAROL: &str = "sip:carol@example.com";
/// The nodes' linger (seconds): short, so that the end of following shows quickly.
const LINGER: u64 = 1;
/// What every node of these tests has besides the harness's settings: short held polls and
/// [`LINGER`].
const SETTINGS: [(&str, &str); 2] = [("GATEWAY_HOLD_SECONDS", "2"), ("GATEWAY_FOLLOW_LINGER_SECONDS", "1")];

/// How many connections Redis counts as subscribed to the user's channel.
async fn followers(cluster: &Cluster, uri: &str) -> i64 {
    let channel = format!("presence-gateway:c:{uri}");
    let (_, count): (String, i64) =
        ::redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut cluster.redis_connection().await).await.unwrap();
    count
}

/// Waits (at most `limit`) until `count` nodes follow the user.
async fn followed_by(cluster: &Cluster, uri: &str, count: i64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = followers(cluster, uri).await;
        if now == count {
            return;
        }
        assert!(Instant::now() < deadline, "{uri} followed by {now} nodes, not {count}, after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A counter of node `index`'s metrics (absent until its first count).
async fn metric(cluster: &Cluster, index: usize, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", cluster.base(index))).await.unwrap().text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')).map_or(0.0, |value| value.trim().parse().unwrap())
}

/// The changes node `index` received from Redis so far.
async fn received(cluster: &Cluster, index: usize) -> f64 {
    metric(cluster, index, "presence_backplane_messages_total").await
}

/// Every snapshot of `uri` the watcher receives until one shows `availability`, in order.
async fn snapshots_until(watcher: &mut Client, uri: &str, availability: u32) -> Vec<Seen> {
    let shows = |e: &Event| e.users().iter().any(|u| u.attr("uri") == Some(uri) && seen(u).availability == availability);
    let events = tokio::time::timeout(CROSS_NODE, watcher.events_until(uri, |e| e.name == "userPresence" && shows(e)));
    let events = events.await.unwrap_or_else(|_| panic!("{uri} never showed {availability}"));
    let of_uri = |e: &Event| e.users().into_iter().filter(|u| u.attr("uri") == Some(uri)).collect::<Vec<_>>();
    events.iter().filter(|e| e.name == "userPresence").flat_map(of_uri).map(|u| seen(&u)).collect()
}

/// The answer of a `queryPresence` of `uri` (the session does not watch it).
async fn query(client: &mut Client, uri: &str) -> Seen {
    let reply = client.query(&[uri]).await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);
    sees_within(client, CROSS_NODE, uri, |_| true).await
}

/// A JSON read of `uri` with the client's ticket: (status, body).
async fn json_read(client: &Client, uri: &str) -> (u16, serde_json::Value) {
    let url = format!("{}/api/v1/users/{uri}/presence", client.base);
    let reply = send(client.http.get(url).header("CWA-Ticket", &client.ticket)).await;
    (reply.status, serde_json::from_str(&reply.body).unwrap_or_else(|_| panic!("{}", reply.body)))
}

/// A JSON batch read with the client's ticket: each user's Graph availability.
async fn batch_read(client: &Client, uris: &[&str]) -> Vec<String> {
    let url = format!("{}/api/v1/presence/batch", client.base);
    let body = serde_json::json!({ "ids": uris }).to_string();
    let reply = send(client.http.post(url).header("CWA-Ticket", &client.ticket).body(body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    value["value"].as_array().unwrap().iter().map(|p| p["availability"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_user_s_changes_reach_only_the_nodes_that_follow_the_user() {
    let cluster = Cluster::start(2, &SETTINGS).await;
    let _alice = session(cluster.base(0), "alice@example.com").await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    let mut carol = session(cluster.base(1), "carol@example.com").await;
    carol.subscribe(&[BOB]).await;
    sees_within(&mut carol, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    followed_by(&cluster, BOB, 1, CROSS_NODE).await;

    // Nobody on node 0 watches Bob: his changes reach node 1 only.
    let before = received(&cluster, 0).await;
    for state in [6500, 9500, 3500] {
        assert!(bob.publish_state(state).await.body.contains("requestAccepted"));
        sees_within(&mut carol, CROSS_NODE, BOB, |s| s.availability == state).await;
    }
    assert!(bob.publish_note("only where followed").await.body.contains("requestAccepted"));
    sees_within(&mut carol, CROSS_NODE, BOB, |s| s.note == "only where followed").await;
    assert_eq!(received(&cluster, 0).await, before, "node 0 received none of Bob's changes");
    assert!(received(&cluster, 1).await > 0.0, "node 1 received them");
    assert_eq!(followers(&cluster, BOB).await, 1);
    assert_eq!(followers(&cluster, "sip:alice@example.com").await, 1, "Alice's own node follows her");
}

#[tokio::test]
async fn a_watcher_arriving_later_gets_the_current_state_then_every_change_in_order() {
    let cluster = Cluster::start(2, &SETTINGS).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    assert!(bob.publish_state(6500).await.body.contains("requestAccepted"));
    assert!(bob.publish_note("set before anyone watched").await.body.contains("requestAccepted"));
    followed_by(&cluster, BOB, 1, CROSS_NODE).await;

    alice.subscribe(&[BOB]).await;
    let first = sees_within(&mut alice, CROSS_NODE, BOB, |_| true).await;
    assert_eq!((first.availability, first.note.as_str()), (6500, "set before anyone watched"), "the current state first");
    assert_eq!(followers(&cluster, BOB).await, 2, "node 0 follows Bob now");
    let before = received(&cluster, 0).await;
    let mut previous = 6500;
    for state in [3500, 9500, 15500, 3500, 6500] {
        assert!(bob.publish_state(state).await.body.contains("requestAccepted"));
        let shown: Vec<u32> = snapshots_until(&mut alice, BOB, state).await.iter().map(|s| s.availability).collect();
        assert!(shown.iter().all(|a| *a == previous || *a == state), "{previous} then {state}, not {shown:?}");
        previous = state;
    }
    assert!(received(&cluster, 0).await >= before + 5.0, "node 0 receives Bob's changes while Alice watches");

    // Alice stops watching: after the linger node 0 no longer follows Bob, and receives nothing.
    let rid = alice.next_rid();
    let unsubscribe = format!(r#"<unsubscribePresence rid="{rid}"><uris><uri>{BOB}</uri></uris></unsubscribePresence>"#);
    assert!(alice.command(&unsubscribe).await.body.contains("requestAccepted"));
    followed_by(&cluster, BOB, 1, Duration::from_secs(LINGER) + Duration::from_secs(3)).await;
    let after = received(&cluster, 0).await;
    assert!(bob.publish_state(9500).await.body.contains("requestAccepted"));
    assert!(bob.publish_note("after Alice left").await.body.contains("requestAccepted"));
    let mut carol = session(cluster.base(1), "carol@example.com").await;
    carol.subscribe(&[BOB]).await;
    sees_within(&mut carol, CROSS_NODE, BOB, |s| s.note == "after Alice left").await;
    assert_eq!(received(&cluster, 0).await, after, "nothing of Bob reaches node 0 any more");
}

#[tokio::test]
async fn a_read_of_a_user_nobody_watches_here_answers_the_current_live_state() {
    let cluster = Cluster::start(2, &SETTINGS).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    followed_by(&cluster, BOB, 1, CROSS_NODE).await;

    // Bob's only session is on node 1; node 0 reads him as online.
    assert_eq!(query(&mut alice, BOB).await.availability, 3500);
    let (status, read) = json_read(&alice, BOB).await;
    assert_eq!((status, read["availability"].as_str()), (200, Some("Available")), "{read}");
    assert_eq!(batch_read(&alice, &[BOB, CAROL]).await, ["Available", "Offline"]);

    // Bob signs out there: node 0, which follows him for a while after the reads, shows it.
    sign_out(&mut bob).await;
    let deadline = Instant::now() + CROSS_NODE;
    while json_read(&alice, BOB).await.1["availability"] != "Offline" {
        assert!(Instant::now() < deadline, "node 0 still shows Bob online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(query(&mut alice, BOB).await.availability, 0);

    // Once nobody follows Bob any more, a read still answers his current state.
    followed_by(&cluster, BOB, 0, Duration::from_secs(LINGER) + Duration::from_secs(3)).await;
    let _bob_again = session(cluster.base(1), "bob@example.com").await;
    let _carol = session(cluster.base(1), "carol@example.com").await;
    assert_eq!(batch_read(&alice, &[CAROL, BOB]).await, ["Available", "Available"]);
    assert_eq!(query(&mut alice, CAROL).await.availability, 3500);
}

#[tokio::test]
async fn while_redis_is_away_a_read_fails_rather_than_answer_stale_and_afterwards_nodes_follow_again() {
    let mut cluster = Cluster::start(2, &SETTINGS).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    let _carol = session(cluster.base(1), "carol@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    followed_by(&cluster, BOB, 2, CROSS_NODE).await;

    cluster.redis.stop();
    assert!(process::ready_within(cluster.base(0), Duration::from_secs(10), false).await, "not ready without Redis");
    // Carol is followed nowhere on node 0: nothing current to answer with.
    let (status, body) = json_read(&alice, CAROL).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("live_state_unavailable")), "{body}");
    let reply = alice.query(&[CAROL]).await;
    assert_eq!(error_code(&reply), 18400, "{}", reply.body);

    cluster.redis.restart();
    for node in 0..2 {
        assert!(process::ready_within(cluster.base(node), Duration::from_secs(15), true).await, "ready again");
    }
    followed_by(&cluster, BOB, 2, CROSS_NODE).await;
    assert!(bob.publish_state(6500).await.body.contains("requestAccepted"));
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 6500).await;
    assert_eq!(query(&mut alice, CAROL).await.availability, 3500, "Carol's node published her session again");
    assert_eq!(json_read(&alice, CAROL).await.1["availability"], "Available");
}

/// How many fan-outs node `index` has made.
async fn fan_outs(cluster: &Cluster, index: usize) -> f64 {
    metric(cluster, index, "presence_fanout_duration_seconds_count").await
}

#[tokio::test]
async fn the_node_that_makes_a_change_fans_it_out_once_when_it_comes_back() {
    let cluster = Cluster::start(2, &SETTINGS).await;
    let mut bob = session(cluster.base(0), "bob@example.com").await;
    let mut carol = session(cluster.base(0), "carol@example.com").await;
    let mut alice = session(cluster.base(1), "alice@example.com").await;
    carol.subscribe(&[BOB]).await;
    alice.subscribe(&[BOB]).await;
    sees_within(&mut carol, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    followed_by(&cluster, BOB, 2, CROSS_NODE).await;

    let before = [fan_outs(&cluster, 0).await, fan_outs(&cluster, 1).await];
    for note in ["one", "two", "three"] {
        assert!(bob.publish_note(note).await.body.contains("requestAccepted"));
        sees_within(&mut carol, CROSS_NODE, BOB, |s| s.note == note).await;
        sees_within(&mut alice, CROSS_NODE, BOB, |s| s.note == note).await;
    }
    // Sending a change changes nothing on Bob's node yet: it settles when the change is back.
    assert_eq!(fan_outs(&cluster, 0).await - before[0], 3.0, "one fan-out per note where Bob publishes");
    assert_eq!(fan_outs(&cluster, 1).await - before[1], 3.0, "one fan-out per note on the other node");
}

/// How Alice's `addContact` reaches node 0, where her auto-subscribed session is.
#[derive(Debug, Clone, Copy)]
enum Adding {
    /// Sent for that session to node 0 itself.
    AtItsNode,
    /// Sent for that session to node 2, which passes it to node 0.
    PassedOn,
    /// Sent for another session of hers, on node 2: node 0 learns the new list from the store.
    ByAnotherSession,
    /// Bob is already a contact she does not subscribe to; an `updateContact` at node 0 subscribes.
    Subscribing,
}

/// Waits (at most `limit`) until node `index`'s gauge `name` reaches `at_least`.
async fn gauge_reaches(cluster: &Cluster, index: usize, name: &str, at_least: f64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = metric(cluster, index, name).await;
        if now >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "node {index}'s {name} is {now}, not {at_least}, after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Alice's session on node 0 auto-subscribes to her contacts; Bob is busy through his session on
/// node 1, which every node can see, and nobody on node 0 follows him. Alice adds Bob as a
/// subscribed contact while a client holds her session's poll, so whatever is queued is sent at
/// once: the first snapshot of Bob the session receives is returned.
async fn first_snapshot_of_an_added_contact(adding: Adding) -> Seen {
    let cluster = Cluster::start(3, &SETTINGS).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    assert!(bob.publish_state(6500).await.body.contains("requestAccepted"));
    // Bob's state is in Redis: a node that reads him from there (Carol's) shows it.
    let mut carol = session(cluster.base(2), "carol@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while query(&mut carol, BOB).await.availability != 6500 {
        assert!(Instant::now() < deadline, "node 2 never showed Bob busy");
    }
    let mut other_session = match adding {
        Adding::ByAnotherSession => Some(session(cluster.base(2), "alice@example.com").await),
        _ => None,
    };
    let contact = |method: &str, rid: String, subscribed: bool| {
        let bob = format!(r#"<contact uri="{BOB}" name="Bob" subscribed="{subscribed}" tag="false"/>"#);
        format!(r#"<{method} rid="{rid}">{bob}</{method}>"#)
    };
    if let Adding::Subscribing = adding {
        let rid = alice.next_rid();
        let reply = alice.command(&contact("addContact", rid, false)).await;
        assert!(reply.body.contains("requestAccepted"), "{}", reply.body);
    }
    while !alice.poll().await.is_empty() {}
    assert_eq!(metric(&cluster, 0, "presence_backplane_followed_presentities").await, 1.0, "node 0 follows only Alice");

    let mut tab = alice.same_login();
    (tab.sid, tab.ack) = (alice.sid, alice.ack);
    let held = tokio::spawn(async move {
        let events = tab.poll().await;
        (tab, events)
    });
    gauge_reaches(&cluster, 0, "presence_held_polls", 1.0, Duration::from_secs(5)).await;

    let mut passing = alice.same_login();
    (passing.base, passing.sid) = (cluster.base(2).to_string(), alice.sid);
    let sender = match adding {
        Adding::AtItsNode | Adding::Subscribing => &mut alice,
        Adding::PassedOn => &mut passing,
        Adding::ByAnotherSession => other_session.as_mut().expect("her other session"),
    };
    let rid = sender.next_rid();
    let method = if let Adding::Subscribing = adding { "updateContact" } else { "addContact" };
    let reply = sender.command(&contact(method, rid, true)).await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);

    let (mut tab, mut events) = held.await.unwrap();
    let of_bob = |e: &Event| -> Vec<Seen> {
        let users = if e.name == "userPresence" { e.users() } else { Vec::new() };
        users.iter().filter(|u| u.attr("uri") == Some(BOB)).map(seen).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !events.iter().any(|e| !of_bob(e).is_empty()) {
        assert!(Instant::now() < deadline, "no snapshot of Bob: {events:?}");
        events.extend(tab.poll().await);
    }
    events.iter().flat_map(of_bob).next().unwrap()
}

#[tokio::test]
async fn an_added_contact_s_first_snapshot_is_current_where_the_session_is() {
    let first = first_snapshot_of_an_added_contact(Adding::AtItsNode).await;
    assert_eq!(first.availability, 6500, "Bob's current state first, never a stale one");
}

#[tokio::test]
async fn an_added_contact_s_first_snapshot_is_current_when_the_command_is_passed_on() {
    let first = first_snapshot_of_an_added_contact(Adding::PassedOn).await;
    assert_eq!(first.availability, 6500, "Bob's current state first, never a stale one");
}

#[tokio::test]
async fn an_added_contact_s_first_snapshot_is_current_when_the_list_comes_from_the_store() {
    let first = first_snapshot_of_an_added_contact(Adding::ByAnotherSession).await;
    assert_eq!(first.availability, 6500, "Bob's current state first, never a stale one");
}

#[tokio::test]
async fn a_contact_s_first_snapshot_is_current_when_an_update_subscribes_to_them() {
    let first = first_snapshot_of_an_added_contact(Adding::Subscribing).await;
    assert_eq!(first.availability, 6500, "Bob's current state first, never a stale one");
}
