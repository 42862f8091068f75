//! Raw categories (README, "Raw categories"): published with `publishRawCategories`, stored
//! durably, delivered in `selfPresence` and in watchers' `userPresence` cut by the container the
//! publisher chose, size-limited, and byte-exact through the XML escaping rules.

mod common;

use common::*;
use presence_gateway::cwa::xml::Element;

const BOB: &str = "sip:bob@example.com";
/// Text with everything the escaping rules must carry: markup characters, quotes, a CDATA end,
/// tab, CR, LF and a character outside the BMP.
const TRICKY: &str = "a & b <c> \"q\" 'a' ]]> tab\tcr\rlf\n😀";

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\r', "&#13;")
}

async fn publish_raw(client: &mut Client, container: u32, text: &str) -> Reply {
    let rid = client.next_rid();
    client
        .command(&format!(
            r#"<publishRawCategories rid="{rid}"><rawCategory name="GPSPosition" nameSpace="urn:example:gps" instanceMask="0" container="{container}" expireType="user"><gps xmlns="urn:example:gps" lat="48.1" label="{}"><note>{}</note></gps></rawCategory></publishRawCategories>"#,
            escaped(text).replace('"', "&quot;").replace('\t', "&#9;").replace('\n', "&#10;"),
            escaped(text)
        ))
        .await
}

/// The `gps` content of the GPSPosition raw category in a `user` (or `selfPresence`) element.
fn gps(holder: &Element) -> Option<Element> {
    let category = holder.children_named("rawCategory").find(|c| c.attr("name") == Some("GPSPosition"))?;
    assert_eq!(category.attr("nameSpace"), Some("urn:example:gps"));
    category.child("gps").cloned()
}

#[tokio::test]
async fn raw_categories_reach_the_levels_their_container_admits_byte_exact_and_durably() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    bob.poll().await;
    let reply = publish_raw(&mut bob, 300, TRICKY).await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);

    // Bob's own selfPresence carries it.
    let own = bob.wait_for("self", |e| e.name == "selfPresence" && gps(&e.element).is_some()).await;
    let content = gps(&own.element).unwrap();
    assert_eq!(content.child("note").unwrap().text, TRICKY);
    assert_eq!(content.attr("label"), Some(TRICKY));

    // Alice (Team) receives it byte-exact; Carol (Company) and Pat (Public) do not.
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&[BOB]).await;
    let user = alice.wait_for_user(BOB, |u| gps(u).is_some()).await;
    assert_eq!(gps(&user).unwrap().child("note").unwrap().text, TRICKY);
    assert_eq!(gps(&user).unwrap().namespace.as_deref(), Some("urn:example:gps"));
    for watcher in ["carol@example.com", "pat@other.org"] {
        let mut client = server.session(watcher).await;
        client.query(&[BOB]).await;
        let user = client.wait_for_user(BOB, |_| true).await;
        assert!(gps(&user).is_none(), "{watcher} is below the container");
    }

    // Stored durably: after a restart a Team watcher still receives it.
    let dir = server.stop().await;
    let server = TestServer::start_in(test_config(), USERS, dir).await;
    let mut alice = server.session("alice@example.com").await;
    alice.query(&[BOB]).await;
    let user = alice.wait_for_user(BOB, |_| true).await;
    assert_eq!(gps(&user).unwrap().child("note").unwrap().text, TRICKY);

    // Withdrawn by publishing it without content.
    let mut bob = server.session("bob@example.com").await;
    let rid = bob.next_rid();
    bob.command(&format!(
        r#"<publishRawCategories rid="{rid}"><rawCategory name="GPSPosition" nameSpace="urn:example:gps" container="300"/></publishRawCategories>"#
    ))
    .await;
    bob.wait_for("withdrawn", |e| e.name == "requestSucceeded").await;
    alice.query(&[BOB]).await;
    let user = alice.wait_for_user(BOB, |u| gps(u).is_none()).await;
    assert!(gps(&user).is_none());
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
    alice.query(&[BOB]).await;
    let user = alice.wait_for_user(BOB, |_| true).await;
    assert!(user.children_named("rawCategory").next().is_none(), "nothing was published");
}

#[tokio::test]
async fn telephony_is_a_raw_category_in_the_company_container() {
    use presence_gateway::model::reports::{PhoneData, ReportData, SourceReport};
    use presence_gateway::model::sources::{Line, LineState};
    let server = TestServer::start().await;
    let line = Line { number: "tel:+4989101".into(), state: LineState::InService, dnd: false };
    let phone = ReportData::Phone(PhoneData { lines: vec![line], calls: vec![], forwards: vec![] });
    server.gateway.set_source(BOB, "pbx", SourceReport { data: phone, expires: None }).unwrap();
    let mut carol = server.session("carol@example.com").await;
    carol.query(&[BOB]).await;
    let user = carol.wait_for_user(BOB, |_| true).await;
    let telephony = user.children_named("rawCategory").find(|c| c.attr("name") == Some("telephony")).unwrap();
    assert_eq!(telephony.attr("container"), Some("200"));
    assert_eq!(telephony.child("telephony").unwrap().child("line").unwrap().attr("number"), Some("tel:+4989101"));
    let mut pat = server.session("pat@other.org").await;
    pat.query(&[BOB]).await;
    let user = pat.wait_for_user(BOB, |_| true).await;
    assert!(user.children_named("rawCategory").next().is_none(), "Public is below the Company container");
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
    use presence_gateway::model::reports::{PhoneData, ReportData, SourceReport};
    use presence_gateway::model::sources::{Line, LineState};
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    publish_raw(&mut bob, 300, "here").await;
    let line = Line { number: "tel:+4989101".into(), state: LineState::InService, dnd: false };
    let phone = ReportData::Phone(PhoneData { lines: vec![line], calls: vec![], forwards: vec![] });
    server.gateway.set_source(BOB, "pbx", SourceReport { data: phone, expires: None }).unwrap();
    let names = |user: &Element| -> Vec<String> {
        user.children_named("rawCategory").map(|c| c.attr("name").unwrap().to_string()).collect()
    };

    let mut everything = server.session("alice@example.com").await;
    let mut gps_only = session_with_filter(&server, "alice@example.com", "GPSPosition").await;
    let mut phone_only = session_with_filter(&server, "alice@example.com", "telephony Other").await;
    for (client, expected) in [
        (&mut everything, vec!["telephony", "GPSPosition"]),
        (&mut gps_only, vec!["GPSPosition"]),
        (&mut phone_only, vec!["telephony"]),
    ] {
        client.subscribe(&[BOB]).await;
        let user = client.wait_for_user(BOB, |_| true).await;
        assert_eq!(names(&user), expected);
        client.query(&[BOB]).await;
        let user = client.wait_for_user(BOB, |_| true).await;
        assert_eq!(names(&user), expected, "query answers follow the filter too");
    }
    // A change reaches each session cut by its filter.
    publish_raw(&mut bob, 300, "moved").await;
    let user = gps_only.wait_for_user(BOB, |u| gps(u).is_some_and(|g| g.child("note").unwrap().text == "moved")).await;
    assert_eq!(names(&user), ["GPSPosition"]);
    let user = phone_only.wait_for_user(BOB, |_| true).await;
    assert_eq!(names(&user), ["telephony"]);
}
