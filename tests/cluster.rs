//! Several real gateway processes on one PostgreSQL schema and a Redis of the test's own
//! (README "Several nodes"): a change made on one node reaches watchers on another within a
//! second; a node killed with SIGKILL takes its users offline everywhere within the heartbeat
//! TTL; a Redis restart (which comes back empty) is survived — the nodes say they are not ready
//! meanwhile, then resynchronise, and what changed while Redis was away arrives. Any node serves
//! any session (the request is passed to the node holding it), also behind a real HAProxy in
//! plain round-robin; a lost node's sessions are not found and start anew with the same ticket.
//! Rights and contact lists changed on one node take effect on another, and so do raw categories
//! (which only the store carries) between notes (which the backplane carries); a rolling restart
//! keeps clients signed in.

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
use presence_gateway::cwa::xml as cwa_xml;
use std::time::{Duration, Instant};

const BOB: &str = "sip:bob@example.com";
/// What every node of these tests has besides the harness's settings: short held polls.
const HOLD: [(&str, &str); 1] = [("GATEWAY_HOLD_SECONDS", "2")];

/// The readiness report's text.
async fn readiness(base: &str) -> String {
    reqwest::get(format!("{base}/readyz")).await.unwrap().text().await.unwrap()
}

/// What a watcher sees of a user with no session anywhere.
const OFFLINE: u32 = 0;

#[tokio::test]
async fn a_change_on_one_node_reaches_watchers_on_another_within_a_second() {
    let cluster = Cluster::start(2, &HOLD).await;
    assert!(readiness(cluster.base(0)).await.contains("backplane: redis (reachable)"));
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == OFFLINE).await;

    let mut bob = session(cluster.base(1), "bob@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    // Sessions on both nodes count: signing out on one leaves Bob online everywhere.
    let mut bob_here = session(cluster.base(0), "bob@example.com").await;
    let mut watcher_there = session(cluster.base(1), "alice@example.com").await;
    sign_out(&mut bob).await;
    watcher_there.subscribe(&[BOB]).await;
    sees_within(&mut watcher_there, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    sign_out(&mut bob_here).await;
    sees_within(&mut watcher_there, CROSS_NODE, BOB, |s| s.availability == OFFLINE).await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == OFFLINE).await;

    let mut bob = session(cluster.base(1), "bob@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    assert!(bob.publish_state(6500).await.body.contains("requestAccepted"));
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 6500).await;
    assert!(bob.publish_note("on the other node").await.body.contains("requestAccepted"));
    let last = sees_within(&mut alice, CROSS_NODE, BOB, |s| s.note == "on the other node").await;
    assert_eq!(last.availability, 6500, "the manual state stays");
}

#[tokio::test]
async fn users_of_a_killed_node_go_offline_on_the_others_within_the_heartbeat_ttl() {
    let mut cluster = Cluster::start(3, &HOLD).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB, "sip:carol@example.com"]).await;
    let _bob = session(cluster.base(2), "bob@example.com").await;
    let _carol = session(cluster.base(1), "carol@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;

    let killed = Instant::now();
    drop(cluster.nodes.remove(2)); // SIGKILL: nothing of the node's shutdown runs
    sees_within(&mut alice, Duration::from_secs(TTL) + CROSS_NODE, BOB, |s| s.availability == OFFLINE).await;
    assert!(killed.elapsed() >= Duration::from_millis(TTL * 1000 / 2), "offline only once the heartbeat lapsed");

    // Carol, on a node that lives, stays online: a fresh watcher on yet another node sees her so.
    let mut watcher = session(cluster.base(1), "alice@example.com").await;
    watcher.subscribe(&["sip:carol@example.com", BOB]).await;
    let carol = sees_within(&mut watcher, CROSS_NODE, "sip:carol@example.com", |_| true).await;
    assert_eq!(carol.availability, 3500);
    assert!(process::ready_within(cluster.base(0), Duration::from_secs(1), true).await);
}

#[tokio::test]
async fn nodes_resynchronise_after_redis_restarts_empty() {
    let mut cluster = Cluster::start(2, &HOLD).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;

    cluster.redis.stop();
    assert!(process::ready_within(cluster.base(0), Duration::from_secs(10), false).await, "not ready without Redis");
    assert!(readiness(cluster.base(0)).await.contains("backplane: redis (unreachable)"));
    // A change while Redis is away is stored, and reaches the other node once it is back.
    assert!(bob.publish_note("while Redis was away").await.body.contains("requestAccepted"));
    cluster.redis.restart();
    for node in 0..2 {
        assert!(process::ready_within(cluster.base(node), Duration::from_secs(15), true).await, "ready again");
    }
    let after = sees_within(&mut alice, Duration::from_secs(10), BOB, |s| s.note == "while Redis was away").await;
    assert_eq!(after.availability, 3500, "Bob is still online: his node published his sessions again");

    // And the cluster works as before.
    assert!(bob.publish_state(6500).await.body.contains("requestAccepted"));
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 6500).await;
    let mut fresh = session(cluster.base(0), "alice@example.com").await;
    fresh.subscribe(&[BOB]).await;
    let seen_fresh = sees_within(&mut fresh, CROSS_NODE, BOB, |_| true).await;
    assert_eq!((seen_fresh.availability, seen_fresh.note.as_str()), (6500, "while Redis was away"));
}

/// The running node a sid names, as `/readyz` shows it.
async fn node_holding(cluster: &Cluster, sid: u64) -> Option<usize> {
    let number = format!("node: {:05x}", (sid >> 32) & 0xF_FFFF);
    for (index, node) in cluster.nodes.iter().enumerate() {
        if readiness(&node.base).await.contains(&number) {
            return Some(index);
        }
    }
    None
}

/// Polls until the session is reported gone: 18100 / 404 (503s, retryable, while its node's
/// heartbeat has not lapsed yet or the balancer still tries it).
async fn session_not_found_within(client: &mut Client, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let reply = client.poll_with(client.ack, true).await;
        if reply.status == 404 {
            assert_eq!(error_code(&reply), 18100, "{}", reply.body);
            return;
        }
        assert!(matches!(reply.status, 502 | 503), "{}: {}", reply.status, reply.body);
        assert!(Instant::now() < deadline, "the lost session was not reported gone within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn any_node_serves_any_session_and_a_lost_node_s_sessions_are_not_found() {
    let mut cluster = Cluster::start(2, &HOLD).await;
    let alice = session(cluster.base(0), "alice@example.com").await;
    assert_eq!(node_holding(&cluster, alice.sid).await, Some(0));
    // Alice's session, spoken to through the other node: commands and polls are passed on.
    let mut via_other = alice.same_login();
    (via_other.base, via_other.sid) = (cluster.base(1).to_string(), alice.sid);
    assert!(via_other.subscribe(&[BOB]).await.body.contains("requestAccepted"));
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    sees_within(&mut via_other, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    assert!(bob.publish_note("passed on").await.body.contains("requestAccepted"));
    sees_within(&mut via_other, CROSS_NODE, BOB, |s| s.note == "passed on").await;
    let unknown = format!(r#"<cwaRequests sid="{}" xmlns="{NS}"><getPresence rid="1"/></cwaRequests>"#, alice.sid + 999);
    assert_eq!(error_code(&via_other.post_raw(unknown).await), 18100, "an unknown sid of a live node");
    let oversized = format!(r#"<cwaRequests sid="{}" xmlns="{NS}">{}</cwaRequests>"#, alice.sid, " ".repeat(300 * 1024));
    let refused = via_other.post_raw(oversized).await;
    assert_eq!((refused.status, error_code(&refused)), (413, 18101), "{}", refused.body);

    drop(cluster.nodes.remove(0));
    session_not_found_within(&mut via_other, Duration::from_secs(TTL) + CROSS_NODE).await;
    // The same ticket starts a new session on the node that lives, with the full burst.
    via_other.initiate().await;
    via_other.subscribe(&[BOB]).await;
    let bob_now = sees_within(&mut via_other, CROSS_NODE, BOB, |_| true).await;
    assert_eq!((bob_now.availability, bob_now.note.as_str()), (3500, "passed on"));
}

#[tokio::test]
async fn behind_a_round_robin_balancer_every_request_finds_its_session() {
    let mut cluster = Cluster::start(3, &HOLD).await;
    let proxy = cluster.proxy();
    let mut alice = session(&proxy.base, "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let mut bob = session(&proxy.base, "bob@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    for state in [6500, 3500, 6500, 3500, 6500, 3500] {
        assert!(bob.publish_state(state).await.body.contains("requestAccepted"));
        sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == state).await;
    }

    // The node holding Alice's session dies: through the balancer she learns her session is
    // gone, starts a new one with her ticket, and converges.
    let owner = node_holding(&cluster, alice.sid).await.expect("a node holds Alice's session");
    drop(cluster.nodes.remove(owner));
    session_not_found_within(&mut alice, Duration::from_secs(TTL) + Duration::from_secs(3)).await;
    alice.initiate().await;
    alice.subscribe(&[BOB]).await;
    let expected = if node_holding(&cluster, bob.sid).await.is_some() { 3500 } else { OFFLINE };
    sees_within(&mut alice, Duration::from_secs(TTL) + CROSS_NODE, BOB, |s| s.availability == expected).await;
}

#[tokio::test]
async fn the_sessions_per_user_limit_counts_every_node() {
    let cluster = Cluster::start(2, &[HOLD[0], ("GATEWAY_LIMITS__SESSIONS_PER_USER", "2")]).await;
    let _bob_there = session(cluster.base(1), "bob@example.com").await;
    // Once Bob's session on the other node shows here, it counts here.
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    let bob_here = session(cluster.base(0), "bob@example.com").await;
    let mut third = bob_here.same_login();
    let rid = third.next_rid();
    let reply = third.command(&format!(r#"<initiateSession rid="{rid}"/>"#)).await;
    assert_eq!(error_code(&reply), 18101, "a third session is refused: {}", reply.body);
}

/// Keeps a client's session: polls (through whichever node) and, when the session is gone, starts
/// a new one with the same ticket. True if it had to start anew.
async fn keep_session(client: &mut Client) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.poll_with(client.ack, true).await;
        match reply.status {
            200 => return false,
            404 => {
                assert_eq!(error_code(&reply), 18100, "{}", reply.body);
                client.initiate().await;
                return true;
            }
            _ => assert!(Instant::now() < deadline, "no answer but {}: {}", reply.status, reply.body),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rolling_restart_keeps_clients_signed_in_and_converging() {
    let mut cluster = Cluster::start(3, &HOLD).await;
    let proxy = cluster.proxy();
    let mut alice = session(&proxy.base, "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let mut bob = session(&proxy.base, "bob@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    for (index, state) in [(0, 6500), (1, 3500), (2, 6500)] {
        cluster.restart(index).await;
        // No one signs in again: a session that was on the restarted node starts anew with its
        // ticket (which every node accepts), anything else goes on.
        if keep_session(&mut alice).await {
            alice.subscribe(&[BOB]).await;
        }
        keep_session(&mut bob).await;
        assert!(bob.publish_state(state).await.body.contains("requestAccepted"));
        let seen = sees_within(&mut alice, Duration::from_secs(TTL) + CROSS_NODE, BOB, |s| s.availability == state).await;
        assert_eq!(seen.availability, state, "after restarting node {index}");
    }
}

#[tokio::test]
async fn rights_and_contact_lists_changed_on_one_node_take_effect_on_another() {
    let cluster = Cluster::start(2, &HOLD).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| !s.phones.is_empty()).await;
    // Bob, on the other node, blocks Alice: his card disappears from her view.
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    let rid = bob.next_rid();
    let block = format!(
        r#"<updateContainer rid="{rid}"><container id="32000"><addMember type="uri" value="sip:alice@example.com"/></container></updateContainer>"#
    );
    assert!(bob.command(&block).await.body.contains("requestAccepted"));
    let blocked = sees_within(&mut alice, Duration::from_secs(5), BOB, |s| s.phones.is_empty()).await;
    assert_eq!(blocked.title, None, "blocked: nothing of the card is shown");

    // Alice adds Carol on one node; her session on the other node gets the new list.
    let mut alice_there = session(cluster.base(1), "alice@example.com").await;
    alice_there.poll().await;
    let rid = alice.next_rid();
    let add = format!(r#"<addContact rid="{rid}"><contact uri="sip:carol@example.com" name="Carol" tag="false"/></addContact>"#);
    assert!(alice.command(&add).await.body.contains("requestAccepted"));
    let has_carol = |e: &Event| {
        e.name == "contactGroup" && e.element.children_named("contact").any(|c| c.attr("uri") == Some("sip:carol@example.com"))
    };
    let list = tokio::time::timeout(Duration::from_secs(5), alice_there.wait_for("the contact list with Carol", has_carol));
    list.await.expect("the change reaches the session on the other node");
}

#[tokio::test]
async fn a_subscriber_recorded_on_one_node_reaches_the_owner_s_sessions_on_another() {
    let cluster = Cluster::start(2, &HOLD).await;
    let mut bob_there = session(cluster.base(1), "bob@example.com").await;
    bob_there.poll().await;
    let mut carol = session(cluster.base(0), "carol@example.com").await;
    carol.subscribe(&[BOB]).await;
    let carol_as = |acknowledged: &'static str| {
        move |e: &Event| {
            e.name == "subscribers"
                && e.element
                    .children_named("subscriber")
                    .any(|s| s.attr("uri") == Some("sip:carol@example.com") && s.attr("acknowledged") == Some(acknowledged))
        }
    };
    let new = tokio::time::timeout(Duration::from_secs(5), bob_there.wait_for("Carol as a new subscriber", carol_as("false")));
    new.await.expect("the subscriber stored on node 0 reaches Bob's session on node 1");

    // Bob acknowledges her on node 0; his session on node 1 hears of it.
    let mut bob_here = session(cluster.base(0), "bob@example.com").await;
    let rid = bob_here.next_rid();
    let ack = format!(r#"<acknowledgeSubscriber rid="{rid}"><uri>sip:carol@example.com</uri></acknowledgeSubscriber>"#);
    assert!(bob_here.command(&ack).await.body.contains("requestAccepted"));
    let acknowledged = tokio::time::timeout(Duration::from_secs(5), bob_there.wait_for("Carol acknowledged", carol_as("true")));
    acknowledged.await.expect("the acknowledgement reaches the other node");
}

/// Publishes Bob's GPS position as a raw category (Team and above see it).
async fn publish_position(bob: &mut Client, place: &str) {
    let rid = bob.next_rid();
    let publish = format!(
        r#"<publishRawCategories rid="{rid}"><rawCategory name="GPSPosition" nameSpace="urn:example:gps" instanceMask="0" container="300" expireType="user"><gps xmlns="urn:example:gps"><note>{place}</note></gps></rawCategory></publishRawCategories>"#
    );
    assert!(bob.command(&publish).await.body.contains("requestAccepted"));
}

/// Waits (at most `limit`) until `watcher` receives Bob's raw categories with the position `place`.
async fn sees_position_within(watcher: &mut Client, limit: Duration, place: &str) {
    let position = |u: &cwa_xml::Element| {
        u.children_named("rawCategory")
            .filter_map(|c| c.child("gps")?.child("note").map(|n| n.text.clone()))
            .any(|text| text == place)
    };
    let has = |e: &Event| e.name == "userRawCategories" && e.users().iter().any(|u| u.attr("uri") == Some(BOB) && position(u));
    let found = tokio::time::timeout(limit, watcher.wait_for(place, has)).await;
    found.unwrap_or_else(|_| panic!("Bob's position {place} not seen within {limit:?}"));
}

#[tokio::test]
async fn raw_categories_and_notes_published_on_one_node_reach_watchers_on_another() {
    let cluster = Cluster::start(2, &HOLD).await;
    let mut alice = session(cluster.base(0), "alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let mut bob = session(cluster.base(1), "bob@example.com").await;
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.availability == 3500).await;
    // Raw categories come through the store's feed, notes through the backplane; each keeps the other.
    publish_position(&mut bob, "in the lab").await;
    sees_position_within(&mut alice, CROSS_NODE, "in the lab").await;
    assert!(bob.publish_note("at the bench").await.body.contains("requestAccepted"));
    sees_within(&mut alice, CROSS_NODE, BOB, |s| s.note == "at the bench").await;
    publish_position(&mut bob, "in the canteen").await;
    sees_position_within(&mut alice, CROSS_NODE, "in the canteen").await;
    // A watcher who arrives later on the first node gets both.
    let mut late = session(cluster.base(0), "alice@example.com").await;
    late.subscribe(&[BOB]).await;
    let events = late.events_until("Bob's position", |e| e.name == "userRawCategories").await;
    let note = |e: &Event| e.name == "userPresence" && e.users().iter().any(|u| seen(u).note == "at the bench");
    assert!(events.iter().any(note), "the note with the raw categories");
    let raw = events.iter().find(|e| e.name == "userRawCategories").unwrap();
    assert!(raw.users().iter().any(|u| u
        .children_named("rawCategory")
        .any(|c| { c.child("gps").and_then(|g| g.child("note")).is_some_and(|n| n.text == "in the canteen") })));
}
