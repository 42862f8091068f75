//! Bad input and limits over HTTP: every error case gets the documented status and CWA error
//! element, changes nothing, and leaks nothing internal.

mod common;

use common::*;
use presence_gateway::config::{Config, Limits, LogonPolicy};

async fn bob_state_seen_by_alice(server: &TestServer) -> (u32, String) {
    let mut alice = server.session("alice@example.com").await;
    alice.query(&["sip:bob@example.com"]).await;
    let user = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    let s = seen(&user);
    (s.availability, s.note)
}

#[tokio::test]
async fn bad_credentials_get_401_with_request_failed_and_no_ticket() {
    let server = TestServer::start().await;
    for (user, password) in [("alice@example.com", "wrong"), ("nobody@example.com", "pw"), ("", "")] {
        let reply = Client::sign_in(&server.base, user, password).await.err().expect("refused");
        assert_eq!(reply.status, 401);
        assert!(reply.ticket.is_none());
        assert!(reply.xml().child("requestFailed").is_some(), "{}", reply.body);
    }
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_even_with_the_right_password() {
    let config = Config { logon: LogonPolicy { failures_per_user_and_address: 3, ..LogonPolicy::default() }, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    for _ in 0..3 {
        assert_eq!(Client::sign_in(&server.base, "alice@example.com", "wrong").await.err().unwrap().status, 401);
    }
    let throttled = Client::sign_in(&server.base, "alice@example.com", "pw").await.err().expect("throttled");
    assert_eq!(throttled.status, 429);
    assert_eq!(error_code(&throttled), 18101);
    assert!(Client::sign_in(&server.base, "bob@example.com", "pw").await.is_ok(), "other users are unaffected");
    server.clock.advance(chrono::Duration::seconds(301));
    assert!(Client::sign_in(&server.base, "alice@example.com", "pw").await.is_ok(), "the window passes");
}

#[tokio::test]
async fn logon_names_in_every_documented_form() {
    let server = TestServer::start().await;
    for name in ["sip:alice@example.com", "alice@example.com", "EXAMPLE\\alice", "Alice@Example.com"] {
        let client = Client::sign_in(&server.base, name, "pw").await.unwrap_or_else(|r| panic!("{name}: {}", r.body));
        assert_eq!(client.uri, "sip:alice@example.com");
    }
}

#[tokio::test]
async fn missing_or_bad_tickets_get_401() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let command = format!("{}/cwa/MainCommandHandler.ashx", server.base);
    let none = send(http.post(&command).body("<cwaRequests/>")).await;
    assert_eq!(none.status, 401);
    let forged = send(http.post(&command).header("CWA-Ticket", "forged").body("<cwaRequests/>")).await;
    assert_eq!(forged.status, 401);
    let poll = send(http.get(format!("{}/cwa/AsyncDataChannel.ashx?Sid=1&AckId=0", server.base)).header("CWA-Ticket", "x")).await;
    assert_eq!(poll.status, 401);
}

#[tokio::test]
async fn the_ticket_cookie_works_like_the_header() {
    let server = TestServer::start().await;
    let alice = server.session("alice@example.com").await;
    let url = format!("{}/cwa/AsyncDataChannel.ashx?Sid={}&AckId=0", server.base, alice.sid);
    let reply = send(reqwest::Client::new().get(url).header("Cookie", format!("other=1; CWA-Ticket={}", alice.ticket))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn unknown_or_foreign_sessions_get_404_with_18100() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let bob = server.session("bob@example.com").await;
    let real_sid = alice.sid;
    alice.sid = 999_999_999;
    let reply = alice.poll_with(0, true).await;
    assert_eq!((reply.status, error_code(&reply)), (404, 18100));
    let reply = alice.query(&["sip:bob@example.com"]).await;
    assert_eq!((reply.status, error_code(&reply)), (404, 18100));
    alice.sid = bob.sid; // a sid is only usable with its own ticket
    assert_eq!(alice.poll_with(0, true).await.status, 404);
    alice.sid = real_sid;
    let no_sid = send(
        reqwest::Client::new()
            .get(format!("{}/cwa/AsyncDataChannel.ashx?AckId=0", server.base))
            .header("CWA-Ticket", &alice.ticket),
    )
    .await;
    assert_eq!((no_sid.status, error_code(&no_sid)), (400, 18000));
}

#[tokio::test]
async fn malformed_xml_dtds_and_deep_documents_are_refused_whole() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let bodies = [
        "<cwaRequests><queryPresence rid=\"1\">".to_string(),
        "not xml at all".to_string(),
        r#"<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><cwaRequests>&lol;</cwaRequests>"#.to_string(),
        format!("<cwaRequests>{}{}</cwaRequests>", "<a>".repeat(40), "</a>".repeat(40)),
        "<somethingElse/>".to_string(),
        format!(r#"<cwaRequests sid="abc" xmlns="{NS}"/>"#),
    ];
    for body in bodies {
        let reply = alice.post_raw(body.clone()).await;
        assert_eq!(reply.status, 400, "{body}");
        let root = reply.xml();
        let invalid = root.child("requestInvalid").unwrap_or_else(|| panic!("{}", reply.body));
        assert_eq!(invalid.child("error").unwrap().attr("code"), Some("18000"));
        assert!(!reply.body.contains("quick_xml") && !reply.body.contains("src/"), "no internals: {}", reply.body);
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let config = Config { limits: Limits { body_bytes: 1024, ..Limits::default() }, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let reply = alice.post_raw(format!("<cwaRequests>{}</cwaRequests>", " ".repeat(2000))).await;
    assert_eq!((reply.status, error_code(&reply)), (413, 18101));
}

#[tokio::test]
async fn per_request_errors_are_reported_by_rid_and_change_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    // A URI without sip:, a method without rid, an unknown method, an out-of-range state.
    let reply = bob
        .command(
            r#"<queryPresence rid="1"><uris><uri>alice@example.com</uri></uris></queryPresence>
               <queryPresence><uris><uri>sip:alice@example.com</uri></uris></queryPresence>
               <makeCoffee rid="3"/>
               <publishSelfPresence rid="4"><cwaCategory name="state"><state><availability>100</availability></state></cwaCategory></publishSelfPresence>
               <conference rid="5" confId="0"/>"#,
        )
        .await;
    assert_eq!(reply.status, 200);
    let root = reply.xml();
    assert_eq!(root.attr("requestProcessed"), Some("5"));
    assert_eq!(root.attr("unexpectedElement"), Some("1"));
    let kinds: Vec<(String, Option<String>, String)> = root
        .children
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.attr("rid").map(str::to_string),
                c.child("error").and_then(|e| e.attr("code")).unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |name: &str, rid: Option<&str>, code: &str| (name.to_string(), rid.map(str::to_string), code.to_string());
    assert_eq!(
        kinds,
        vec![
            expect("requestFailed", Some("1"), "18001"),
            expect("requestInvalid", None, "18000"),
            expect("requestInvalid", Some("3"), "18000"),
            expect("requestFailed", Some("4"), "18001"),
            expect("requestFailed", Some("5"), "18102"),
        ]
    );
    assert_eq!(bob_state_seen_by_alice(&server).await, (3500, String::new()));
}

#[tokio::test]
async fn publish_is_all_or_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let reply = bob
        .command(
            r#"<publishSelfPresence rid="1">
                 <cwaCategory name="state"><state><availability>6500</availability></state></cwaCategory>
                 <cwaCategory name="note"><note><body type="personal">half a change</body></note></cwaCategory>
                 <cwaCategory name="contactCard"><contactCard/></cwaCategory>
               </publishSelfPresence>"#,
        )
        .await;
    assert!(reply.xml().child("requestFailed").is_some(), "{}", reply.body);
    assert_eq!(bob_state_seen_by_alice(&server).await, (3500, String::new()), "nothing was applied");
    let long_note = "x".repeat(2000);
    let reply = bob.publish_note(&long_note).await;
    assert_eq!(error_code(&reply), 18101);
}

#[tokio::test]
async fn limits_on_sessions_subscriptions_and_uris_per_query() {
    let limits = Limits { sessions_per_user: 2, subscriptions_per_session: 2, uris_per_query: 3, ..Limits::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let mut second = alice.same_login();
    second.initiate().await;
    let mut third = alice.same_login();
    let rid = third.next_rid();
    let reply = third.command(&format!(r#"<initiateSession rid="{rid}"/>"#)).await;
    assert_eq!(error_code(&reply), 18101, "a third session is refused");

    let reply = alice.subscribe(&["sip:bob@example.com", "sip:carol@example.com", "sip:pat@other.org"]).await;
    assert_eq!(error_code(&reply), 18101, "over the subscription limit");
    let reply = alice.subscribe(&["sip:bob@example.com", "sip:carol@example.com"]).await;
    assert!(reply.xml().child("requestAccepted").is_some());
    let reply = alice.subscribe(&["sip:pat@other.org"]).await;
    assert_eq!(error_code(&reply), 18101);

    let four = ["sip:a@x.org", "sip:b@x.org", "sip:c@x.org", "sip:d@x.org"];
    assert_eq!(error_code(&alice.query(&four).await), 18101, "over the URI limit");
    assert!(alice.query(&four[..3]).await.xml().child("requestAccepted").is_some());
}

#[tokio::test]
async fn appear_offline_can_be_disabled() {
    let server = TestServer::start_with(Config { enable_appear_offline: false, ..test_config() }, USERS).await;
    let mut bob = server.session("bob@example.com").await;
    assert_eq!(error_code(&bob.publish_state(18500).await), 18102);
}
