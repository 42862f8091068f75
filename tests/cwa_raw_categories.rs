//! Raw categories (README, "Raw categories"): published with `publishRawCategories`, stored
//! durably, delivered in their own events — `selfRawCategories` to the owner, `userRawCategories`
//! to watchers, each right after the matching presence snapshot and on every change of what the
//! session receives — cut by the container the publisher chose and by the session's
//! `categoryEventFilter`, size-limited, and byte-exact through the XML escaping rules.

mod common;

use common::*;
use presence_gateway::cwa::xml::Element;
use presence_gateway::model::reports::{PhoneData, ReportData, SourceReport};
use presence_gateway::model::sources::{Call, CallDirection, CallService, CallState, Line, LineState};
use presence_gateway::service::permits::{Action, Actor};

const BOB: &str = "sip:bob@example.com";
/// Text with everything the escaping rules must carry: markup characters, quotes, a CDATA end,
/// tab, CR, LF and a character outside the BMP.
const TRICKY: &str = "a & b <c> \"q\" 'a' ]]> tab\tcr\rlf\n😀";

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\r', "&#13;")
}

async fn publish_named(client: &mut Client, name: &str, container: u32, text: &str) -> Reply {
    let rid = client.next_rid();
    client
        .command(&format!(
            r#"<publishRawCategories rid="{rid}"><rawCategory name="{name}" nameSpace="urn:example:gps" instanceMask="0" container="{container}" expireType="user"><gps xmlns="urn:example:gps" lat="48.1" label="{}"><note>{}</note></gps></rawCategory></publishRawCategories>"#,
            escaped(text).replace('"', "&quot;").replace('\t', "&#9;").replace('\n', "&#10;"),
            escaped(text)
        ))
        .await
}

async fn publish_raw(client: &mut Client, container: u32, text: &str) -> Reply {
    publish_named(client, "GPSPosition", container, text).await
}

async fn withdraw_raw(client: &mut Client) -> Reply {
    let rid = client.next_rid();
    client
        .command(&format!(
            r#"<publishRawCategories rid="{rid}"><rawCategory name="GPSPosition" nameSpace="urn:example:gps" container="300"/></publishRawCategories>"#
        ))
        .await
}

/// The `gps` content of the GPSPosition raw category in a `user` (or `selfRawCategories`) element.
fn gps(holder: &Element) -> Option<Element> {
    let category = holder.children_named("rawCategory").find(|c| c.attr("name") == Some("GPSPosition"))?;
    assert_eq!(category.attr("nameSpace"), Some("urn:example:gps"));
    category.child("gps").cloned()
}

fn gps_text(holder: &Element) -> Option<String> {
    gps(holder).map(|g| g.child("note").unwrap().text.clone())
}

/// The names of the raw categories in a `user` (or `selfRawCategories`) element, in order.
fn names(holder: &Element) -> Vec<String> {
    holder.children_named("rawCategory").map(|c| c.attr("name").unwrap().to_string()).collect()
}

/// The `user` element of `uri` in a `userRawCategories` event.
fn raw_user(event: &Event, uri: &str) -> Option<Element> {
    (event.name == "userRawCategories").then(|| event.users().into_iter().find(|u| u.attr("uri") == Some(uri))).flatten()
}

/// Polls until `uri`'s raw categories arrive matching `pred`; returns that `user` element.
async fn wait_for_raw(client: &mut Client, uri: &str, pred: impl Fn(&Element) -> bool) -> Element {
    let events = client.events_until(uri, |e| raw_user(e, uri).is_some_and(|u| pred(&u))).await;
    events.iter().rev().find_map(|e| raw_user(e, uri).filter(|u| pred(u))).unwrap()
}

fn is_note(event: &Event, uri: &str, text: &str) -> bool {
    event.name == "userPresence" && event.users().iter().any(|u| u.attr("uri") == Some(uri) && seen(u).note == text)
}

fn assert_consecutive(events: &[Event]) {
    for pair in events.windows(2) {
        assert_eq!(pair[1].eid, pair[0].eid + 1, "eids in order: {} then {}", pair[0].name, pair[1].name);
    }
}

async fn set_line(server: &TestServer, calls: Vec<Call>) {
    let line = Line { number: "tel:+4989101".into(), state: LineState::InService, dnd: false };
    let phone = ReportData::Phone(PhoneData { lines: vec![line], calls, forwards: vec![] });
    server
        .gateway
        .report_source(
            &server.gateway.permit(&Actor::Source, Action::Sources, BOB).unwrap(),
            "pbx",
            SourceReport { data: phone, expires: None },
        )
        .await
        .unwrap();
}

fn connected_call() -> Call {
    Call {
        id: "c1".into(),
        service: CallService::default(),
        state: CallState::Connected,
        direction: CallDirection::default(),
        external: true,
        partner_number: Some("tel:+4930111".into()),
        line: Some("tel:+4989101".into()),
    }
}

#[tokio::test]
async fn each_snapshot_is_followed_by_its_raw_categories_with_consecutive_eids() {
    let server = TestServer::start().await;
    set_line(&server, vec![]).await;
    let mut bob = server.session("bob@example.com").await;
    bob.poll().await;
    publish_raw(&mut bob, 300, "desk 4").await;

    // Bob's own session: selfPresence, then selfRawCategories with telephony and his category.
    let mut bob_tab = server.session("bob@example.com").await;
    let burst = bob_tab.events_until("own burst", |e| e.name == "selfRawCategories").await;
    let at = burst.iter().position(|e| e.name == "selfRawCategories").unwrap();
    assert_eq!(burst[at - 1].name, "selfPresence");
    assert_eq!(burst[at].eid, burst[at - 1].eid + 1);
    assert_eq!(names(&burst[at].element), ["telephony", "GPSPosition"]);
    assert!(burst[at - 1].element.children_named("rawCategory").next().is_none(), "not twice");

    // Alice (Team): her own (empty) raw categories after her selfPresence, then Bob's pair.
    let mut alice = server.session("alice@example.com").await;
    let burst = alice.events_until("burst", |e| e.name == "configuration").await;
    let names_in_order: Vec<&str> = burst.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names_in_order[..3], ["contactGroup", "selfPresence", "selfRawCategories"]);
    assert!(burst[2].element.children.is_empty(), "Alice has none: {:?}", burst[2].element);
    alice.subscribe(&[BOB]).await;
    let events = alice.events_until("subscribed", |e| e.name == "requestSucceeded").await;
    let names_in_order: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names_in_order, ["presenceSubscriptionState", "userPresence", "userRawCategories", "requestSucceeded"]);
    assert_consecutive(&events);
    let presence = &events[1].users()[0];
    assert!(presence.children_named("rawCategory").next().is_none(), "userPresence carries no raw category");
    let user = raw_user(&events[2], BOB).unwrap();
    assert_eq!(names(&user), ["telephony", "GPSPosition"]);
    assert_eq!(gps_text(&user).as_deref(), Some("desk 4"));

    // A query answers userPresence, then userRawCategories, then requestSucceeded.
    alice.query(&[BOB, "sip:carol@example.com"]).await;
    let events = alice.events_until("query", |e| e.name == "requestSucceeded").await;
    let names_in_order: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names_in_order, ["userPresence", "userRawCategories", "requestSucceeded"]);
    assert_consecutive(&events);
    assert_eq!(events[0].users().len(), 2);
    assert_eq!(events[1].users().len(), 1, "only the queried users that have raw categories");
    assert_eq!(names(&raw_user(&events[1], BOB).unwrap()), ["telephony", "GPSPosition"]);

    // A change of the raw categories alone sends only userRawCategories; a note only userPresence.
    publish_raw(&mut bob, 300, "desk 5").await;
    bob.publish_note("marker").await;
    let events = alice.events_until("marker", |e| is_note(e, BOB, "marker")).await;
    let names_in_order: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names_in_order, ["userRawCategories", "userPresence"]);
    assert_consecutive(&events);
    assert_eq!(gps_text(&raw_user(&events[0], BOB).unwrap()).as_deref(), Some("desk 5"));
    bob.wait_for("own change", |e| e.name == "selfRawCategories" && gps_text(&e.element).is_some_and(|t| t == "desk 5")).await;
}

#[tokio::test]
async fn raw_categories_reach_the_levels_their_container_admits_byte_exact_and_durably() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    bob.poll().await;
    let reply = publish_raw(&mut bob, 300, TRICKY).await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);

    // Bob's own selfRawCategories carries it.
    let own = bob.wait_for("self", |e| e.name == "selfRawCategories" && gps(&e.element).is_some()).await;
    assert_eq!(gps_text(&own.element).as_deref(), Some(TRICKY));
    assert_eq!(gps(&own.element).unwrap().attr("label"), Some(TRICKY));

    // Alice (Team) receives it byte-exact.
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let user = wait_for_raw(&mut alice, BOB, |u| gps(u).is_some()).await;
    assert_eq!(gps_text(&user).as_deref(), Some(TRICKY));
    assert_eq!(gps(&user).unwrap().namespace.as_deref(), Some("urn:example:gps"));

    // Stored durably: after a restart a Team watcher still receives it.
    let dir = server.stop().await;
    let server = TestServer::start_in(test_config(), USERS, dir).await;
    let mut alice = server.session("alice@example.com").await;
    alice.query(&[BOB]).await;
    let user = wait_for_raw(&mut alice, BOB, |_| true).await;
    assert_eq!(gps_text(&user).as_deref(), Some(TRICKY));
}

#[tokio::test]
async fn a_team_only_category_never_reaches_company_public_or_blocked_watchers() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    bob.poll().await;
    let mut watchers = Vec::new();
    for who in ["carol@example.com", "pat@other.org", "mallory@example.com"] {
        let mut client = server.session(who).await;
        client.subscribe(&[BOB]).await;
        let events = client.events_until("subscribed", |e| e.name == "requestSucceeded").await;
        let user = events.iter().find_map(|e| raw_user(e, BOB)).expect("the raw snapshot follows the presence");
        assert!(user.children.is_empty(), "{who}: nothing yet");
        watchers.push((who, client));
    }
    publish_raw(&mut bob, 300, "team only").await;
    publish_named(&mut bob, "Desk", 200, "company and up").await;
    // Each watcher asks afterwards: everything queued before the answer has arrived by then.
    for (who, client) in &mut watchers {
        client.query(&[BOB]).await;
        let events = client.events_until("query", |e| e.name == "requestSucceeded").await;
        assert!(events.iter().all(|e| !contains_text(&e.element, "team only")), "{who}");
        let raw: Vec<Vec<String>> = events.iter().filter_map(|e| raw_user(e, BOB)).map(|u| names(&u)).collect();
        let expected: Vec<Vec<String>> = match *who {
            // The change of what Carol receives, then the query's answer.
            "carol@example.com" => vec![vec!["Desk".into()], vec!["Desk".into()]],
            _ => vec![],
        };
        assert_eq!(raw, expected, "{who}");
    }
}

/// Whether `needle` is in any text or attribute value of `element` or its descendants.
fn contains_text(element: &Element, needle: &str) -> bool {
    element.text.contains(needle)
        || element.attrs.iter().any(|(_, v)| v.contains(needle))
        || element.children.iter().any(|c| contains_text(c, needle))
}

#[tokio::test]
async fn withdrawing_or_lowering_a_level_empties_what_the_session_holds() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    bob.poll().await;
    publish_raw(&mut bob, 300, "here").await;
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    wait_for_raw(&mut alice, BOB, |u| gps(u).is_some()).await;

    // Withdrawn: the watcher gets Bob with no raw category; Bob's own list is empty.
    let reply = withdraw_raw(&mut bob).await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);
    let user = wait_for_raw(&mut alice, BOB, |u| gps(u).is_none()).await;
    assert!(user.children.is_empty(), "{user:?}");
    bob.wait_for("own list emptied", |e| e.name == "selfRawCategories" && e.element.children.is_empty()).await;
    alice.query(&[BOB]).await;
    let events = alice.events_until("query", |e| e.name == "requestSucceeded").await;
    assert!(events.iter().all(|e| e.name != "userRawCategories"), "nothing left to answer");

    // Published again, then Alice moves from Team to Company: it is taken away at once.
    publish_raw(&mut bob, 300, "again").await;
    wait_for_raw(&mut alice, BOB, |u| gps(u).is_some()).await;
    let rid = bob.next_rid();
    let reply = bob
        .command(&format!(
            r#"<updateContainer rid="{rid}"><container id="200"><addMember type="uri" value="sip:alice@example.com"/></container></updateContainer>"#
        ))
        .await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);
    let user = wait_for_raw(&mut alice, BOB, |u| gps(u).is_none()).await;
    assert!(user.children.is_empty());
}

#[tokio::test]
async fn oversized_or_misplaced_raw_categories_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let big = "x".repeat(5000);
    let reply = publish_raw(&mut bob, 300, &big).await;
    assert_eq!(error_code(&reply), 18101, "{}", reply.body);
    let reply = publish_raw(&mut bob, 32000, "blocked").await;
    assert_eq!(error_code(&reply), 18001, "{}", reply.body);
    let rid = bob.next_rid();
    let reply = bob
        .command(&format!(
            r#"<publishRawCategories rid="{rid}"><rawCategory name="x" nameSpace="urn:x" container="200"><inCwaNamespace/></rawCategory></publishRawCategories>"#
        ))
        .await;
    assert_eq!(error_code(&reply), 18000, "{}", reply.body);
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let events = alice.events_until("subscribed", |e| e.name == "requestSucceeded").await;
    let user = events.iter().find_map(|e| raw_user(e, BOB)).unwrap();
    assert!(user.children.is_empty(), "nothing was published: {user:?}");
}

#[tokio::test]
async fn telephony_is_a_raw_category_in_the_company_container() {
    let server = TestServer::start().await;
    set_line(&server, vec![]).await;
    let mut carol = server.session("carol@example.com").await;
    carol.subscribe(&[BOB]).await;
    let user = wait_for_raw(&mut carol, BOB, |_| true).await;
    let telephony = user.children_named("rawCategory").find(|c| c.attr("name") == Some("telephony")).unwrap();
    assert_eq!(telephony.attr("container"), Some("200"));
    assert_eq!(telephony.child("telephony").unwrap().child("line").unwrap().attr("number"), Some("tel:+4989101"));
    let mut pat = server.session("pat@other.org").await;
    pat.query(&[BOB]).await;
    let events = pat.events_until("query", |e| e.name == "requestSucceeded").await;
    assert!(events.iter().all(|e| e.name != "userRawCategories"), "Public is below the Company container");

    // A call: the state changes (userPresence) and so does the telephony (userRawCategories).
    set_line(&server, vec![connected_call()]).await;
    let events = carol.events_until("call", |e| e.name == "userRawCategories").await;
    let presence = events.iter().rev().find(|e| e.name == "userPresence").expect("the state changed too");
    assert_eq!(seen(&presence.users()[0]).token, "on-the-phone");
    let user = events.iter().find_map(|e| raw_user(e, BOB)).unwrap();
    let call = user.children_named("rawCategory").next().unwrap().child("telephony").unwrap().child("call").cloned().unwrap();
    assert_eq!(call.attr("state"), Some("connected"));
    assert_eq!(call.attr("partner"), None, "call partners only from Team up");
}

async fn session_with_filter(server: &TestServer, user: &str, names: &str) -> Client {
    let mut client = server.sign_in(user).await;
    let rid = client.next_rid();
    let reply = client
        .command(&format!(r#"<initiateSession rid="{rid}"><categoryEventFilter rawCategories="{names}"/></initiateSession>"#))
        .await;
    let accepted = reply.xml();
    client.sid = accepted.child("requestAccepted").and_then(|a| a.child_text("sid")).unwrap().parse().unwrap();
    client
}

#[tokio::test]
async fn a_session_receives_only_the_raw_categories_its_filter_names() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    publish_raw(&mut bob, 300, "here").await;
    set_line(&server, vec![]).await;

    let mut everything = server.session("alice@example.com").await;
    let mut gps_only = session_with_filter(&server, "alice@example.com", "GPSPosition").await;
    let mut phone_only = session_with_filter(&server, "alice@example.com", "telephony Other").await;
    for (client, expected) in [
        (&mut everything, vec!["telephony", "GPSPosition"]),
        (&mut gps_only, vec!["GPSPosition"]),
        (&mut phone_only, vec!["telephony"]),
    ] {
        client.subscribe(&[BOB]).await;
        let user = wait_for_raw(client, BOB, |_| true).await;
        assert_eq!(names(&user), expected);
        client.query(&[BOB]).await;
        let user = wait_for_raw(client, BOB, |_| true).await;
        assert_eq!(names(&user), expected, "query answers follow the filter too");
    }
    // A change reaches each session cut by its filter; a session whose part did not change
    // receives nothing.
    publish_raw(&mut bob, 300, "moved").await;
    bob.publish_note("marker").await;
    let events = gps_only.events_until("marker", |e| is_note(e, BOB, "marker")).await;
    let user = events.iter().find_map(|e| raw_user(e, BOB)).unwrap();
    assert_eq!((names(&user), gps_text(&user).as_deref()), (vec!["GPSPosition".to_string()], Some("moved")));
    let events = phone_only.events_until("marker", |e| is_note(e, BOB, "marker")).await;
    assert!(events.iter().all(|e| e.name != "userRawCategories"), "telephony did not change");
}

#[tokio::test]
async fn a_filter_naming_nothing_receives_no_raw_category_events() {
    let server = TestServer::start().await;
    set_line(&server, vec![]).await;
    let mut bob = server.session("bob@example.com").await;
    publish_raw(&mut bob, 300, "here").await;
    let mut none = session_with_filter(&server, "alice@example.com", "").await;
    none.subscribe(&[BOB]).await;
    none.query(&[BOB]).await;
    publish_raw(&mut bob, 300, "moved").await;
    bob.publish_note("marker").await;
    let events = none.events_until("marker", |e| is_note(e, BOB, "marker")).await;
    assert!(events.iter().any(|e| e.name == "selfPresence"), "the burst came");
    let raw: Vec<&str> = events.iter().map(|e| e.name.as_str()).filter(|n| n.ends_with("RawCategories")).collect();
    assert!(raw.is_empty(), "{raw:?}");
}
