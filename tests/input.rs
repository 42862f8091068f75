//! Hostile and malformed input over HTTP, at every door: text that XML forbids (JSON bodies and CWA
//! commands), the JSON error shape for everything under `/api/v1` (routing, limits, unreadable
//! paths and queries, type names never shown), body limits, attribute floods on the sign-in form,
//! past end times, response headers, and what a Blocked or appear-offline watcher can learn.

mod common;

use common::*;
use presence_gateway::config::{ApiRole, ApiToken, Config};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-0123456789";

async fn server() -> TestServer {
    let tokens = vec![ApiToken { name: "ops".into(), token: ADMIN_TOKEN.into(), role: ApiRole::Admin }];
    let config = Config { api_tokens: tokens, session_timeout_seconds: 9000, idle_timeout_seconds: 9000, ..test_config() };
    TestServer::start_with(config, USERS).await
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

/// Sends `body` as it is (not necessarily JSON) with the given ticket or the admin token.
async fn raw(server: &TestServer, method: &str, path: &str, ticket: Option<&str>, body: Option<Vec<u8>>) -> Answer {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, format!("{}{path}", server.base));
    request = match ticket {
        Some(ticket) => request.header("CWA-Ticket", ticket),
        None => request.bearer_auth(ADMIN_TOKEN),
    };
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.unwrap();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

async fn put_json(server: &TestServer, path: &str, ticket: Option<&str>, body: Value) -> Answer {
    raw(server, "PUT", path, ticket, Some(body.to_string().into_bytes())).await
}

/// The documented error shape: exactly `code`, `message` and maybe `field`, as JSON.
fn assert_error(answer: &Answer, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(answer.status, status, "{answer:?}");
    let content_type = answer.headers.get("content-type").map(|v| v.to_str().unwrap()).unwrap_or("");
    assert!(content_type.starts_with("application/json"), "{answer:?}");
    let object = answer.body.as_object().unwrap_or_else(|| panic!("not a JSON object: {answer:?}"));
    assert!(object.keys().all(|k| ["code", "message", "field"].contains(&k.as_str())), "{answer:?}");
    assert_eq!(object["code"], code, "{answer:?}");
    assert!(object["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer:?}");
    assert_eq!(object.get("field").and_then(Value::as_str), field, "{answer:?}");
}

#[tokio::test]
async fn json_text_with_characters_xml_forbids_is_refused_naming_the_field() {
    let server = server().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    bob.subscribe(&["sip:alice@example.com"]).await;
    bob.wait_for_user("sip:alice@example.com", |_| true).await;
    let note = "/api/v1/users/sip:alice@example.com/note";
    let ticket = alice.ticket.clone();

    let refused = put_json(&server, note, Some(&ticket), json!({"text": "Lunch\u{1}"})).await;
    assert_error(&refused, 422, "validation_failed", Some("text"));
    assert!(refused.body["message"].as_str().unwrap().contains("U+0001"), "{refused:?}");
    let refused = put_json(&server, note, Some(&ticket), json!({"text": "ok", "expires": "2099-01-01T00:00:00Z\u{b}"})).await;
    assert_error(&refused, 422, "validation_failed", Some("expires"));
    let state = "/api/v1/users/sip:alice@example.com/absent-state";
    let refused = put_json(&server, state, Some(&ticket), json!({"state": "away", "text": "In the \u{FFFF}lab"})).await;
    assert_error(&refused, 422, "validation_failed", Some("text"));
    let user = json!({"uri": "sip:zed@example.com", "displayName": "Zed", "phones": {"work": "+1\u{0}"}});
    let refused = raw(&server, "POST", "/api/v1/users", None, Some(user.to_string().into_bytes())).await;
    assert_error(&refused, 422, "validation_failed", Some("phones.work"));
    let user = json!({"uri": "sip:zed@example.com", "displayName": "Zed", "groups": ["a", "b\u{1f}"]});
    let refused = raw(&server, "POST", "/api/v1/users", None, Some(user.to_string().into_bytes())).await;
    assert_error(&refused, 422, "validation_failed", Some("groups[1]"));

    // Nothing changed: the watcher's stream still parses and the note was never set.
    let accepted = put_json(&server, note, Some(&ticket), json!({"text": "Tab\there, and\r\na new line"})).await;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    let user = bob.wait_for_user("sip:alice@example.com", |u| !seen(u).note.is_empty()).await;
    assert_eq!(seen(&user).note, "Tab\there, and\r\na new line");
    alice.poll_with(0, true).await.xml();
}

#[tokio::test]
async fn cwa_text_with_characters_xml_forbids_fails_the_method_and_reaches_nobody() {
    let server = server().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    bob.subscribe(&["sip:alice@example.com"]).await;
    bob.wait_for_user("sip:alice@example.com", |_| true).await;

    for text in ["Lunch&#1;", "Lunch\u{1b}[31m", "&#xFFFE;"] {
        let reply = alice.publish_note(text).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.xml().child("requestFailed").is_some(), "{}", reply.body);
        assert_eq!(error_code(&reply), 18001, "{}", reply.body);
        assert!(reply.body.contains("the text of body contains U+"), "{}", reply.body);
    }
    let rid = alice.next_rid();
    let reply = alice
        .command(&format!(
            r#"<publishSelfPresence rid="{rid}"><cwaCategory name="state"><state><availability>6500</availability><activity><custom>In&#8;lab</custom></activity></state></cwaCategory></publishSelfPresence>"#
        ))
        .await;
    assert_eq!(error_code(&reply), 18001, "{}", reply.body);
    let rid = alice.next_rid();
    let reply = alice.command(&format!(r#"<addGroup rid="{rid}"><group name="Fr&#x1F;iends"/></addGroup>"#)).await;
    assert_eq!(error_code(&reply), 18001, "{}", reply.body);

    alice.publish_note("Back soon").await;
    let user = bob.wait_for_user("sip:alice@example.com", |u| !seen(u).note.is_empty()).await;
    assert_eq!((seen(&user).note.as_str(), seen(&user).availability), ("Back soon", 3500), "nothing refused was applied");
    alice.poll_with(0, true).await.xml();
}

#[tokio::test]
async fn every_api_error_is_the_documented_json() {
    let server = server().await;
    let alice = server.sign_in("alice@example.com").await;
    let ticket = Some(alice.ticket.as_str());
    let note = "/api/v1/users/sip:alice@example.com/note";

    // A body of the wrong JSON type names no type of the gateway.
    let wrong = raw(&server, "PUT", note, ticket, Some(b"[]".to_vec())).await;
    assert_error(&wrong, 422, "validation_failed", None);
    assert!(!wrong.text.contains("NoteBody") && !wrong.text.contains("struct"), "{wrong:?}");
    let wrong = put_json(&server, "/api/v1/users/sip:alice@example.com/absent-state", ticket, json!({"state": 7})).await;
    assert_error(&wrong, 422, "validation_failed", Some("state"));
    assert!(!wrong.text.contains("ManualKind") && !wrong.text.contains("enum"), "{wrong:?}");
    let not_json = raw(&server, "PUT", note, ticket, Some(b"{".to_vec())).await;
    assert_error(&not_json, 400, "invalid_json", None);

    // Unknown fields are refused at every depth.
    let fax = json!({"uri": "sip:zed@example.com", "displayName": "Zed", "phones": {"fax": "+1"}});
    let refused = raw(&server, "POST", "/api/v1/users", None, Some(fax.to_string().into_bytes())).await;
    assert_error(&refused, 422, "validation_failed", Some("phones.fax"));
    assert_eq!(raw(&server, "GET", "/api/v1/users/sip:zed@example.com", None, None).await.status, 404, "not created");

    // The event stream's query.
    for query in ["after=abc", "after=-1", "after=1&after=2"] {
        let bad = raw(&server, "GET", &format!("/api/v1/events?{query}"), ticket, None).await;
        assert_error(&bad, 422, "validation_failed", Some("after"));
    }
    let bad = raw(&server, "GET", "/api/v1/events?active=maybe", ticket, None).await;
    assert_error(&bad, 422, "validation_failed", Some("active"));

    // Routing: no such endpoint, a method the endpoint does not take, an unreadable path.
    assert_error(&raw(&server, "GET", "/api/v1/users/sip:alice@example.com/sources", None, None).await, 404, "not_found", None);
    assert_error(&raw(&server, "GET", "/api/v1/nothing-here", None, None).await, 404, "not_found", None);
    let wrong_method = raw(&server, "PATCH", "/api/v1/users/sip:alice@example.com/sources/pbx", None, None).await;
    assert_error(&wrong_method, 405, "method_not_allowed", None);
    assert!(wrong_method.headers.contains_key("allow"), "{wrong_method:?}");
    let bad_path = raw(&server, "GET", "/api/v1/users/sip:%FF%FE@example.com/presence", None, None).await;
    assert_error(&bad_path, 400, "bad_request", None);
}

#[tokio::test]
async fn api_bodies_are_held_to_the_configured_limit() {
    let tokens = vec![ApiToken { name: "ops".into(), token: ADMIN_TOKEN.into(), role: ApiRole::Admin }];
    let mut config = Config { api_tokens: tokens, ..test_config() };
    config.limits.body_bytes = 4096;
    let server = TestServer::start_with(config, USERS).await;
    let alice = server.sign_in("alice@example.com").await;
    let note = "/api/v1/users/sip:alice@example.com/note";
    let big = json!({"text": "x".repeat(5000)}).to_string().into_bytes();
    let refused = raw(&server, "PUT", note, Some(&alice.ticket), Some(big)).await;
    assert_error(&refused, 413, "payload_too_large", None);
    assert!(refused.body["message"].as_str().unwrap().contains("4096"), "{refused:?}");

    // Without a declared length (chunked), the read is cut off at the limit all the same.
    let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
    let request = format!(
        "PUT {note} HTTP/1.1\r\nHost: x\r\nCWA-Ticket: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{}0\r\n\r\n",
        alice.ticket,
        chunk.repeat(8)
    );
    let answer = raw_http(&server, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"payload_too_large\""), "{answer}");

    // Under the limit, all is well.
    let ok = put_json(&server, note, Some(&alice.ticket), json!({"text": "small"})).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

/// Sends raw bytes over TCP and reads the whole answer (the request asks to close).
async fn raw_http(server: &TestServer, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn absent_state_ending_in_the_past_is_refused_like_a_past_note_expiry() {
    let server = server().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    bob.subscribe(&["sip:alice@example.com"]).await;
    alice.publish_state(6500).await;
    bob.wait_for_user("sip:alice@example.com", |u| seen(u).availability == 6500).await;
    let past = (server.clock.now_for_tests() - chrono::Duration::minutes(5)).to_rfc3339();
    let ticket = Some(alice.ticket.as_str());
    let state = "/api/v1/users/sip:alice@example.com/absent-state";
    assert_error(
        &put_json(&server, state, ticket, json!({"state": "away", "to": past})).await,
        422,
        "validation_failed",
        Some("to"),
    );
    let note = "/api/v1/users/sip:alice@example.com/note";
    assert_error(
        &put_json(&server, note, ticket, json!({"text": "x", "expires": past})).await,
        422,
        "validation_failed",
        Some("expires"),
    );
    let now = server.clock.now_for_tests().to_rfc3339();
    assert_error(
        &put_json(&server, state, ticket, json!({"state": "away", "to": now})).await,
        422,
        "validation_failed",
        Some("to"),
    );

    // The state in force is untouched.
    let read = raw(&server, "GET", "/api/v1/users/sip:alice@example.com/presence", None, None).await;
    assert_eq!(read.body["asnAbsentState"]["state"], "busy", "{read:?}");
    alice.publish_state(3500).await;
    bob.wait_for_user("sip:alice@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn an_attribute_flood_on_the_sign_in_form_is_refused_as_malformed() {
    let server = server().await;
    let attributes: String = (0..26_000).map(|i| format!(" a{i}=\"\"")).collect();
    let body = format!("<cwaRequests{attributes}/>");
    assert!(body.len() > 240_000 && body.len() < 256 * 1024, "{}", body.len());
    let reply = send(reqwest::Client::new().post(format!("{}/forms/logon.html", server.base)).body(body)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(error_code(&reply), 18000);
    assert!(reply.body.contains("more than 32 attributes"), "{}", reply.body);
    let duplicate =
        r#"<cwaRequests><logon a="1" a="2"><user>bob@example.com</user><password>pw</password></logon></cwaRequests>"#;
    let reply = send(reqwest::Client::new().post(format!("{}/forms/logon.html", server.base)).body(duplicate)).await;
    assert_eq!((reply.status, error_code(&reply)), (400, 18000), "{}", reply.body);
    server.sign_in("bob@example.com").await;
}

#[tokio::test]
async fn a_failed_sign_in_says_so_rather_than_asking_for_a_ticket() {
    let server = server().await;
    let Err(reply) = Client::sign_in(&server.base, "bob@example.com", "wrong").await else { panic!("signed in") };
    assert_eq!(reply.status, 401);
    assert!(reply.body.contains("sign-in failed: unknown user or wrong password"), "{}", reply.body);
    assert!(!reply.body.contains("CWA-Ticket"), "{}", reply.body);
}

#[tokio::test]
async fn every_response_says_nosniff_and_authenticated_reads_are_never_stored() {
    let server = server().await;
    let alice = server.sign_in("alice@example.com").await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).header("CWA-Ticket", &alice.ticket);
    for path in ["/healthz", "/", "/app.js", "/api/v1/openapi.json", "/api/v1/nothing", "/nothing", "/cwa/AsyncDataChannel.ashx"]
    {
        let response = get(path).send().await.unwrap();
        assert_eq!(response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
    }
    let page = get("/").send().await.unwrap();
    assert!(page.headers().get("content-security-policy").is_some(), "the CSP stays");
    for path in ["/api/v1/users/sip:bob@example.com/presence", "/api/v1/users/sip:alice@example.com/image"] {
        let response = get(path).send().await.unwrap();
        assert_eq!(response.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{path}");
    }
    let logon = send(http.post(format!("{}/forms/logon.html", server.base)).body("<x/>")).await;
    assert_eq!(logon.status, 400);
}

#[tokio::test]
async fn json_presence_shows_blocked_and_appear_offline_as_really_offline() {
    let server = server().await;
    let read = |ticket: String, uri: &'static str| {
        let server = &server;
        async move { raw(server, "GET", &format!("/api/v1/users/{uri}/presence"), Some(&ticket), None).await.body }
    };
    let mallory = server.sign_in("mallory@example.com").await;
    let alice = server.sign_in("alice@example.com").await;
    let carol = server.sign_in("carol@example.com").await;

    // Bob is really offline: what Alice (team) sees of him.
    let offline_for_alice = read(alice.ticket.clone(), "sip:bob@example.com").await;
    assert_eq!(offline_for_alice["iPresenceState"], 0x0800_0001, "{offline_for_alice}");
    let offline_for_carol = read(carol.ticket.clone(), "sip:bob@example.com").await;

    // Bob signs in and is busy: Mallory (blocked) sees just what she would see of him offline.
    let mut bob = server.session("bob@example.com").await;
    bob.publish_state(6500).await;
    let blocked = read(mallory.ticket.clone(), "sip:bob@example.com").await;
    assert_eq!(blocked["iPresenceState"], 0x0800_0001, "{blocked}");
    assert!(blocked.get("asnCurrentUserDynamicRights").is_none(), "{blocked}");
    assert!(!blocked.to_string().contains("blocked"), "{blocked}");

    // Bob appears offline: Alice and Carol see exactly what they saw when he really was.
    bob.publish_state(18500).await;
    assert_eq!(read(alice.ticket.clone(), "sip:bob@example.com").await, offline_for_alice);
    assert_eq!(read(carol.ticket.clone(), "sip:bob@example.com").await, offline_for_carol);
    let own = read(bob.ticket.clone(), "sip:bob@example.com").await;
    assert_eq!(own["asnAbsentState"]["state"], "appear-offline", "Bob still sees his own choice: {own}");
    assert_eq!((&own["availability"], &offline_for_alice["availability"]), (&json!("Offline"), &json!("Offline")));
}
