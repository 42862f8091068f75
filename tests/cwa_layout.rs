//! The bytes of `cwaEvents` and `cwaResponses` bodies: laid out like the reference examples
//! (README, "Bytes on the wire"), compared whole with the fixtures taken from them, and never
//! anything but XML — even when the store holds characters XML forbids.

mod common;

use common::*;
use presence_gateway::model::sources::Note;
use presence_gateway::store::sqlite::SqliteStore;
use presence_gateway::store::{PresenceUpdate, Store, StoredPresence};

const CONTOSO: &str = r#"
[[user]]
uri = "sip:jaya@contoso.com"
display_name = "Jay Adams"
email = "jaya@contoso.com"
password = "pw"

[[user]]
uri = "sip:jessicaa@contoso.com"
display_name = "Jessica Arnold"
password = "pw"
"#;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Whitespace between attributes is not part of the document (no DOM node, no attribute value):
/// the reference examples wrap a long tag where the gateway writes it on one line.
fn same_tag_spacing(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let (mut in_tag, mut in_value, mut space) = (false, false, false);
    for c in xml.chars() {
        match c {
            '<' if !in_tag => in_tag = true,
            '>' if in_tag && !in_value => in_tag = false,
            '"' if in_tag => in_value = !in_value,
            c if in_tag && !in_value && c.is_whitespace() => {
                space = true;
                continue;
            }
            _ => {}
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// Indents every line of a fixture by `levels` steps of two spaces.
fn indented(xml: &str, levels: usize) -> String {
    let pad = "  ".repeat(levels);
    xml.trim_end().lines().map(|l| format!("{pad}{l}")).collect::<Vec<_>>().join("\n")
}

/// The `cwaEvents` start tag the gateway writes for a client's session.
fn events_head(client: &Client, ack: u64) -> String {
    format!(r#"<cwaEvents xmlns="{NS}" sid="{}" ackId="{ack}" pollWaitTime="0" sessionTimeout="30">"#, client.sid)
}

#[tokio::test]
async fn a_user_presence_answer_is_the_reference_example_byte_for_byte() {
    let server = TestServer::start_with(test_config(), CONTOSO).await;
    let mut jessica = server.session("jessicaa@contoso.com").await;
    jessica.poll().await;
    let rid = jessica.next_rid();
    let reply = jessica
        .command(&format!(r#"<queryPresence rid="{rid}"><uris><uri>sip:jaya@contoso.com</uri></uris></queryPresence>"#))
        .await;
    let expected_reply = format!(
        "<cwaResponses xmlns=\"{NS}\" sid=\"{}\" requestProcessed=\"1\" unexpectedElement=\"0\">\n  <requestAccepted rid=\"{rid}\"/>\n</cwaResponses>",
        jessica.sid
    );
    assert_eq!(reply.body, expected_reply);

    let before = jessica.ack;
    let body = jessica.poll_with(before, true).await.body;
    let (presence_eid, succeeded_eid) = (before + 1, before + 2);
    let user_presence = fixture("user-presence-jay.xml").replace("eid=\"10\"", &format!("eid=\"{presence_eid}\""));
    let expected = format!(
        "{}\n{}\n  <requestSucceeded eid=\"{succeeded_eid}\" rid=\"{rid}\"/>\n</cwaEvents>",
        events_head(&jessica, succeeded_eid),
        indented(&user_presence, 1)
    );
    assert_eq!(same_tag_spacing(&body), same_tag_spacing(&expected), "\n{body}");
}

#[tokio::test]
async fn session_start_and_request_succeeded_look_like_the_reference() {
    let server = TestServer::start_with(test_config(), CONTOSO).await;
    let mut jay = server.sign_in("jaya@contoso.com").await;
    let reply = jay.initiate().await;
    let expected = format!(
        "<cwaResponses xmlns=\"{NS}\" sid=\"{sid}\" requestProcessed=\"1\" unexpectedElement=\"0\">
  <requestAccepted rid=\"1\" sid=\"{sid}\" pollWaitTime=\"0\">
    <sid>{sid}</sid>
    <pollWaitTime>0</pollWaitTime>
    <uri>sip:jaya@contoso.com</uri>
  </requestAccepted>
</cwaResponses>",
        sid = jay.sid
    );
    assert_eq!(reply.body, expected);
    jay.poll().await;

    // The reference's data-channel example: one requestSucceeded on its own line.
    let reply = jay.publish_state(6500).await;
    assert_eq!(reply.status, 200);
    let body = loop {
        let reply = jay.poll_with(jay.ack, true).await;
        if reply.body.contains("requestSucceeded") {
            break reply.body;
        }
        jay.ack = reply.xml().attr("ackId").unwrap().parse().unwrap();
    };
    let root = roxmltree::Document::parse(&body).unwrap();
    let eid: u64 = root.root_element().attribute("ackId").unwrap().parse().unwrap();
    let succeeded = format!("\n  <requestSucceeded eid=\"{eid}\" rid=\"2\"/>\n</cwaEvents>");
    assert!(body.starts_with(&events_head(&jay, eid)), "{body}");
    assert!(body.ends_with(&succeeded), "{body}");
}

#[tokio::test]
async fn a_client_walking_child_nodes_by_position_finds_each_category_second() {
    let server = TestServer::start_with(test_config(), CONTOSO).await;
    let mut jessica = server.session("jessicaa@contoso.com").await;
    jessica.poll().await;
    jessica.query(&["sip:jaya@contoso.com"]).await;
    let body = jessica.poll_with(jessica.ack, true).await.body;
    let doc = roxmltree::Document::parse(&body).unwrap();
    let root = doc.root_element();
    // cwaEvents: whitespace, userPresence, whitespace, requestSucceeded, whitespace.
    let nodes: Vec<_> = root.children().collect();
    assert_eq!(nodes.len(), 5);
    assert!(nodes[0].is_text() && nodes[0].text().unwrap().trim().is_empty());
    assert_eq!(nodes[1].tag_name().name(), "userPresence");
    let user = nodes[1].children().nth(1).unwrap();
    assert_eq!(user.tag_name().name(), "user");
    for category in user.children().filter(|n| n.is_element()) {
        let first = category.first_child().unwrap();
        assert!(first.is_text() && first.text().unwrap().starts_with('\n'), "whitespace first in {category:?}");
        let payload = category.children().nth(1).unwrap();
        assert!(payload.is_element(), "the category element comes second");
    }
}

/// A note holding characters XML 1.0 forbids, written straight into the store as older versions
/// accepted it: every batch that carries it is still XML, the characters replaced by U+FFFD.
#[tokio::test]
async fn characters_xml_forbids_in_stored_data_never_reach_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        presence_gateway::service::seed::UsersFile::parse(USERS).unwrap().apply(&store).await.unwrap();
        let note = Note { text: "bad\u{1}note\u{0}\u{B}\u{FFFE}end\r".into(), expires: None };
        let noted = StoredPresence { manual: None, note: Some(note) };
        store.update_presence("sip:bob@example.com", &PresenceUpdate::whole(&noted)).await.unwrap();
        store.close().await;
    }
    let server = TestServer::start_in(test_config(), USERS, dir).await;
    let mut bob = server.session("bob@example.com").await;
    let mut alice = server.session("alice@example.com").await;
    let mut carol = server.session("carol@example.com").await;
    let mut pat = server.session("pat@other.org").await;
    for watcher in [&mut alice, &mut carol, &mut pat] {
        watcher.poll().await;
        watcher.subscribe(&["sip:bob@example.com"]).await;
    }
    let own = bob.poll_with(0, true).await.body;
    let personal_note = |body: &str| {
        let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("not XML ({e}): {body:?}"));
        let body = doc.descendants().find(|n| n.has_tag_name("body") && n.attribute("type") == Some("personal"));
        body.map(|n| n.children().filter_map(|t| t.text()).collect::<String>())
    };
    assert_eq!(personal_note(&own).as_deref(), Some("bad\u{FFFD}note\u{FFFD}\u{FFFD}\u{FFFD}end\r"));
    // Team and Company watchers see the note; a Public one sees none, but gets XML all the same.
    let replaced = "bad\u{FFFD}note\u{FFFD}\u{FFFD}\u{FFFD}end\r";
    for (watcher, note) in [(&mut alice, replaced), (&mut carol, replaced), (&mut pat, "")] {
        let body = watcher.poll_with(watcher.ack, true).await.body;
        assert!(body.contains("userPresence"), "{body}");
        assert_eq!(personal_note(&body).as_deref(), Some(note), "{}", watcher.uri);
    }
}
