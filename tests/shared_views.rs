//! Watchers with the same view share one rendering of a presentity (subscription snapshots and
//! query answers reuse the last fan-out's). These tests make sure a shared rendering is always the
//! current one and never crosses access levels.

mod common;

use common::*;

const BOB: &str = "sip:bob@example.com";

async fn snapshot_on_subscribe(client: &mut Client) -> Seen {
    client.subscribe(&[BOB]).await;
    seen(&client.wait_for_user(BOB, |_| true).await)
}

#[tokio::test]
async fn snapshots_after_a_change_show_the_change_at_every_level() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    bob.publish_note("first").await;

    // The first subscribers of each level; carol's session stays subscribed.
    let mut alice = server.session("alice@example.com").await;
    let team = snapshot_on_subscribe(&mut alice).await;
    assert_eq!((team.note.as_str(), team.phones.len()), ("first", 2), "Team sees the mobile phone");
    let mut carol = server.session("carol@example.com").await;
    let company = snapshot_on_subscribe(&mut carol).await;
    assert_eq!((company.note.as_str(), company.phones.len()), ("first", 1));

    bob.publish_note("second").await;
    let pushed = seen(&carol.wait_for_user(BOB, |u| seen(u).note == "second").await);
    assert_eq!(pushed.phones.len(), 1, "the pushed change is cut to Company");

    // New sessions of the same levels get the new state, not a kept older rendering.
    let mut alice2 = server.sign_in("alice@example.com").await.same_login();
    alice2.initiate().await;
    let team = snapshot_on_subscribe(&mut alice2).await;
    assert_eq!((team.note.as_str(), team.phones.len()), ("second", 2));
    let mut mallory = server.session("mallory@example.com").await;
    let blocked = snapshot_on_subscribe(&mut mallory).await;
    assert_eq!((blocked.availability, blocked.note.as_str(), blocked.phones.len()), (0, "", 0));
}

#[tokio::test]
async fn query_answers_follow_state_changes() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let mut carol = server.session("carol@example.com").await;
    carol.query(&[BOB]).await;
    assert_eq!(seen(&carol.wait_for_user(BOB, |_| true).await).availability, 3500);
    bob.publish_state(6500).await;
    carol.query(&[BOB, "sip:alice@example.com"]).await;
    let answer = carol.wait_for("a query answer", |e| e.name == "userPresence" && e.users().len() == 2).await;
    let users = answer.users();
    assert_eq!(users[0].attr("uri"), Some(BOB));
    assert_eq!((seen(&users[0]).availability, seen(&users[1]).availability), (6500, 0), "bob busy, alice offline");
}
