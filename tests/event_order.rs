//! Event order within one session's queue (README, "Session queues"): the last event a client
//! reads about a presentity carries its newest state, even when a query answer showing an older
//! state was queued after an unsent snapshot that a newer change then replaces.

mod common;

use common::*;
use presence_gateway::cwa::xml::Element;

const ALICE: &str = "sip:alice@example.com";
const BOB: &str = "sip:bob@example.com";

/// The `user` element of `uri` in an event of kind `name`.
fn user_in(event: &Event, name: &str, uri: &str) -> Option<Element> {
    (event.name == name).then(|| event.users().into_iter().find(|u| u.attr("uri") == Some(uri))).flatten()
}

/// The note of every `userPresence` about `uri` in `events`, in order, with its eid.
fn notes_about(events: &[Event], uri: &str) -> Vec<(u64, String)> {
    events.iter().filter_map(|e| user_in(e, "userPresence", uri).map(|u| (e.eid, seen(&u).note))).collect()
}

fn assert_consecutive(events: &[Event]) {
    for pair in events.windows(2) {
        assert_eq!(pair[1].eid, pair[0].eid + 1, "eids in order: {} then {}", pair[0].name, pair[1].name);
    }
}

async fn publish_raw(client: &mut Client, text: &str) -> Reply {
    let rid = client.next_rid();
    client
        .command(&format!(
            r#"<publishRawCategories rid="{rid}"><rawCategory name="GPSPosition" nameSpace="urn:example:gps" instanceMask="0" container="300" expireType="user"><gps xmlns="urn:example:gps"><note>{text}</note></gps></rawCategory></publishRawCategories>"#
        ))
        .await
}

/// The GPSPosition note of every `userRawCategories` about `uri` in `events`, in order.
fn raw_notes_about(events: &[Event], uri: &str) -> Vec<String> {
    let note = |user: Element| {
        let category = user.children_named("rawCategory").find(|c| c.attr("name") == Some("GPSPosition")).cloned();
        category.and_then(|c| c.child("gps").and_then(|g| g.child_text("note")).map(str::to_string)).unwrap_or_default()
    };
    events.iter().filter_map(|e| user_in(e, "userRawCategories", uri).map(note)).collect()
}

#[tokio::test]
async fn a_change_after_a_query_answer_is_read_after_that_answer() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&[BOB]).await;
    alice.events_until("subscribed", |e| e.name == "requestSucceeded").await;

    bob.publish_note("one").await; // a snapshot of Bob waits, unsent
    alice.query(&[BOB]).await; // its answer shows "one"
    bob.publish_note("two").await; // the newer snapshot must not overtake the answer
    let events = alice.events_until("answer", |e| e.name == "requestSucceeded").await;
    assert_consecutive(&events);
    let notes = notes_about(&events, BOB);
    assert_eq!(notes.len(), 3, "the first snapshot, the answer, the newer snapshot: {notes:?}");
    assert_eq!(notes.last().unwrap().1, "two", "the last userPresence about Bob is his newest: {notes:?}");

    // Later changes coalesce again with the snapshot queued after the answer.
    bob.publish_note("three").await;
    bob.publish_note("four").await;
    let events = alice.events_until("four", |e| user_in(e, "userPresence", BOB).is_some()).await;
    assert_eq!(notes_about(&events, BOB).into_iter().map(|n| n.1).collect::<Vec<_>>(), ["four"]);
}

#[tokio::test]
async fn a_raw_category_change_after_a_query_answer_is_read_after_that_answer() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    publish_raw(&mut bob, "desk 3").await;
    alice.subscribe(&[BOB]).await;
    alice.events_until("subscribed", |e| e.name == "requestSucceeded").await;

    publish_raw(&mut bob, "desk 4").await; // a userRawCategories of Bob waits, unsent
    alice.query(&[BOB]).await; // its userRawCategories answer shows "desk 4"
    publish_raw(&mut bob, "desk 5").await;
    let events = alice.events_until("answer", |e| e.name == "requestSucceeded").await;
    assert_consecutive(&events);
    assert_eq!(raw_notes_about(&events, BOB), ["desk 4", "desk 4", "desk 5"], "the newest comes last");
}

#[tokio::test]
async fn the_own_state_after_a_query_of_oneself_is_read_after_that_answer() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    alice.poll().await;

    alice.publish_note("one").await; // a selfPresence waits, unsent
    alice.query(&[ALICE]).await; // the answer shows Alice's own "one"
    alice.publish_note("two").await;
    let events = alice.events_until("answers", |e| e.name == "requestSucceeded").await;
    assert_consecutive(&events);
    let about_alice: Vec<(&str, String)> = events
        .iter()
        .filter_map(|e| match e.name.as_str() {
            "selfPresence" => Some(("selfPresence", seen(&e.element).note)),
            _ => user_in(e, "userPresence", ALICE).map(|u| ("userPresence", seen(&u).note)),
        })
        .collect();
    assert_eq!(about_alice.last().unwrap(), &("selfPresence", "two".to_string()), "{about_alice:?}");
}

#[tokio::test]
async fn a_query_of_an_unwatched_user_leaves_the_watched_ones_coalescing() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&[BOB]).await;
    alice.events_until("subscribed", |e| e.name == "requestSucceeded").await;

    bob.publish_note("one").await;
    alice.query(&["sip:carol@example.com"]).await; // shows nothing of Bob
    bob.publish_note("two").await;
    let events = alice.events_until("answer", |e| e.name == "requestSucceeded").await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["userPresence", "userPresence", "requestSucceeded"], "Bob's snapshot, the answer about Carol");
    assert_eq!(notes_about(&events, BOB).into_iter().map(|n| n.1).collect::<Vec<_>>(), ["two"], "coalesced in place");
}

#[tokio::test]
async fn a_user_subscribed_to_themself_reads_their_newest_own_state_last() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    alice.poll().await;

    alice.publish_note("one").await; // a selfPresence waits, unsent
    alice.subscribe(&[ALICE]).await; // the subscription's snapshot of Alice shows "one"
    alice.publish_note("two").await;
    let events = alice.events_until("answers", |e| e.name == "requestSucceeded").await;
    assert_consecutive(&events);
    let own: Vec<String> = events.iter().filter(|e| e.name == "selfPresence").map(|e| seen(&e.element).note).collect();
    assert_eq!(own, ["two"], "one own snapshot, coalesced to the newest state");
    let raw = events.iter().filter(|e| e.name.ends_with("RawCategories")).count();
    assert!(raw <= 1, "own raw categories coalesce too: {raw}");
}
