//! A manual state with a free status text (`activity/custom`): kept with the state, shown to
//! watchers whose level shows activity, hidden from Public, bounded in length.

mod common;

use common::*;
use presence_gateway::cwa::xml::Element;

fn status_text(user: &Element) -> Option<String> {
    let state = user.children_named("cwaCategory").find(|c| c.attr("name") == Some("state"))?.child("state")?;
    state.child("activity")?.child_text("custom").map(str::to_string)
}

async fn publish_with_text(client: &mut Client, availability: u32, text: &str) -> Reply {
    let rid = client.next_rid();
    client
        .command(&format!(
            r#"<publishSelfPresence rid="{rid}"><cwaCategory name="state" instanceMask="0"><state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>{availability}</availability><activity><custom LCID="1033">{text}</custom></activity></state></cwaCategory></publishSelfPresence>"#
        ))
        .await
}

#[tokio::test]
async fn status_text_reaches_watchers_by_level() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let mut alice = server.session("alice@example.com").await; // Team
    let mut pat = server.session("pat@other.org").await; // Public
    alice.subscribe(&["sip:bob@example.com"]).await;
    pat.subscribe(&["sip:bob@example.com"]).await;

    let reply = publish_with_text(&mut bob, 6500, "In the lab").await;
    assert!(reply.xml().child("requestAccepted").is_some(), "{}", reply.body);
    let seen_by_alice = alice.wait_for_user("sip:bob@example.com", |u| status_text(u).is_some()).await;
    assert_eq!((seen(&seen_by_alice).availability, status_text(&seen_by_alice).as_deref()), (6500, Some("In the lab")));
    let seen_by_pat = pat.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(status_text(&seen_by_pat), None, "Public sees no activity detail");

    // A state without text clears it.
    bob.publish_state(15500).await;
    let cleared = alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 15500).await;
    assert_eq!(status_text(&cleared), None);
}

#[tokio::test]
async fn an_overlong_status_text_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |_| true).await;

    let reply = publish_with_text(&mut bob, 6500, &"x".repeat(257)).await;
    assert_eq!(error_code(&reply), 18101, "{}", reply.body);
    alice.query(&["sip:bob@example.com"]).await;
    let user = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!((seen(&user).availability, status_text(&user)), (3500, None));
}
