//! Reading presence as an integrator (README, "For integrators: the JSON API"): Graph's
//! `availability` and `activity` beside the Presence V2 fields, cut by the caller's level exactly
//! as the rest of the JSON and CWA output; the batch read of up to 650 users; and reading back a
//! source report with the time it has left. All over HTTP against the real server.

mod common;

use common::*;
use presence_gateway::config::{ApiRole, ApiToken, Config};
use reqwest::Method;
use serde_json::{json, Value};

const SOURCE_TOKEN: &str = "source-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789";
const BOB: &str = "sip:bob@example.com";

async fn server() -> TestServer {
    let tokens = vec![
        ApiToken { name: "pbx".into(), token: SOURCE_TOKEN.into(), role: ApiRole::Source },
        ApiToken { name: "ops".into(), token: ADMIN_TOKEN.into(), role: ApiRole::Admin },
    ];
    let config = Config { api_tokens: tokens, session_timeout_seconds: 9000, idle_timeout_seconds: 9000, ..test_config() };
    TestServer::start_with(config, USERS).await
}

enum Auth<'a> {
    Bearer(&'a str),
    Ticket(&'a str),
    None,
}

/// One JSON request; the status and the body (`null` when empty).
async fn call(server: &TestServer, method: Method, path: &str, auth: Auth<'_>, body: Option<&Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.base));
    request = match auth {
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Ticket(ticket) => request.header("CWA-Ticket", ticket),
        Auth::None => request,
    };
    if let Some(body) = body {
        request = request.json(body);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn read(server: &TestServer, auth: Auth<'_>, uri: &str) -> Value {
    let (status, body) = call(server, Method::GET, &format!("/api/v1/users/{uri}/presence"), auth, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn batch(server: &TestServer, auth: Auth<'_>, ids: &[&str]) -> (u16, Value) {
    call(server, Method::POST, "/api/v1/presence/batch", auth, Some(&json!({ "ids": ids }))).await
}

fn graph(presence: &Value) -> (&str, &str) {
    (presence["availability"].as_str().unwrap(), presence["activity"].as_str().unwrap())
}

async fn report(server: &TestServer, source: &str, body: Value) {
    let path = format!("/api/v1/users/{BOB}/sources/{source}");
    let (status, answer) = call(server, Method::PUT, &path, Auth::Bearer(SOURCE_TOKEN), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
}

fn connected_call() -> Value {
    json!({"kind": "phone", "calls": [{"id": "c1", "state": "connected", "partnerNumber": "tel:+4930555"}]})
}

#[tokio::test]
async fn graph_availability_and_activity_follow_the_state_cut_by_level() {
    let server = server().await;
    let readers: Vec<(&str, String)> = {
        let mut out = Vec::new();
        for who in ["alice@example.com", "carol@example.com", "pat@other.org", "mallory@example.com"] {
            out.push((who, server.sign_in(who).await.ticket));
        }
        out
    };
    let really_offline: Vec<Value> = {
        let mut out = Vec::new();
        for (_, ticket) in &readers {
            out.push(read(&server, Auth::Ticket(ticket), BOB).await);
        }
        out
    };
    for seen in &really_offline {
        assert_eq!(graph(seen), ("Offline", "Offline"), "{seen}");
        assert!(seen["iPresenceState"].is_u64(), "the Presence V2 fields stay: {seen}");
    }

    let mut bob = server.session("bob@example.com").await;
    assert_eq!(graph(&read(&server, Auth::Ticket(&readers[0].1), BOB).await), ("Available", "Available"));

    // On the phone: Company and up see the call, Public only Busy, Blocked a user who is offline.
    report(&server, "pbx", connected_call()).await;
    let expected = [("Busy", "InACall"), ("Busy", "InACall"), ("Busy", "Busy"), ("Offline", "Offline")];
    for ((who, ticket), expected) in readers.iter().zip(expected) {
        let seen = read(&server, Auth::Ticket(ticket), BOB).await;
        assert_eq!(graph(&seen), expected, "{who}: {seen}");
    }
    let blocked = read(&server, Auth::Ticket(&readers[3].1), BOB).await;
    assert_eq!(blocked, really_offline[3], "Blocked reads Bob exactly as when he was offline");

    // Do not disturb: Team may break through.
    bob.publish_state(9500).await;
    let expected =
        [("DoNotDisturb", "UrgentInterruptionsOnly"), ("DoNotDisturb", "DoNotDisturb"), ("DoNotDisturb", "DoNotDisturb")];
    for ((who, ticket), expected) in readers.iter().zip(expected) {
        assert_eq!(graph(&read(&server, Auth::Ticket(ticket), BOB).await), expected, "{who}");
    }

    // Appear offline: every watcher reads exactly what it read of Bob really offline.
    call(&server, Method::DELETE, &format!("/api/v1/users/{BOB}/sources/pbx"), Auth::Bearer(SOURCE_TOKEN), None).await;
    bob.publish_state(18500).await;
    for ((who, ticket), before) in readers.iter().zip(&really_offline) {
        assert_eq!(&read(&server, Auth::Ticket(ticket), BOB).await, before, "{who}");
    }
    let own = read(&server, Auth::Ticket(&bob.ticket), BOB).await;
    assert_eq!((graph(&own), own["asnAbsentState"]["state"].as_str()), (("Offline", "Offline"), Some("appear-offline")));

    // Be right back, idle, away.
    bob.publish_state(12500).await;
    assert_eq!(graph(&read(&server, Auth::Ticket(&readers[1].1), BOB).await), ("BeRightBack", "BeRightBack"));
    assert_eq!(graph(&read(&server, Auth::Ticket(&readers[2].1), BOB).await), ("Away", "Away"), "Public: no detail");
}

#[tokio::test]
async fn a_batch_reads_each_user_as_the_single_read_does() {
    let server = server().await;
    let _bob = server.session("bob@example.com").await;
    let _alice = server.session("alice@example.com").await;
    report(&server, "pbx", connected_call()).await;
    let nobody = "sip:nobody@example.com";
    for who in ["alice@example.com", "carol@example.com", "pat@other.org", "mallory@example.com", "bob@example.com"] {
        let ticket = server.sign_in(who).await.ticket;
        let ids = [BOB, "sip:alice@example.com", "SIP:Bob@Example.com", nobody];
        let (status, answer) = batch(&server, Auth::Ticket(&ticket), &ids).await;
        assert_eq!(status, 200, "{who}: {answer}");
        let value = answer["value"].as_array().unwrap();
        assert_eq!(value.len(), 3, "{who}: a URI listed twice is read once");
        assert_eq!(value[0], read(&server, Auth::Ticket(&ticket), BOB).await, "{who}: Bob as the single read shows him");
        assert_eq!(value[1], read(&server, Auth::Ticket(&ticket), "sip:alice@example.com").await, "{who}");
        assert_eq!(graph(&value[2]), ("PresenceUnknown", "PresenceUnknown"));
        assert_eq!(value[2]["u8sContactId"], nobody);
        if who == "mallory@example.com" {
            assert_eq!(graph(&value[0]), ("Offline", "Offline"), "Blocked sees Bob, who is busy, offline");
            assert!(value[0].get("seqCalls").is_none(), "{}", value[0]);
        }
    }
    let (status, admin) = batch(&server, Auth::Bearer(ADMIN_TOKEN), &[BOB]).await;
    assert_eq!(status, 200);
    assert_eq!(admin["value"][0], read(&server, Auth::Bearer(ADMIN_TOKEN), BOB).await, "admins see everything");
    assert_eq!(graph(&admin["value"][0]), ("Busy", "InACall"));
    let (status, _) =
        call(&server, Method::GET, &format!("/api/v1/users/{nobody}/presence"), Auth::Bearer(ADMIN_TOKEN), None).await;
    assert_eq!(status, 404, "the single read of a URI that names no user stays 404");
}

#[tokio::test]
async fn batch_reads_refuse_what_they_cannot_do_and_name_the_field() {
    let server = server().await;
    let ticket = server.sign_in("alice@example.com").await.ticket;
    let many: Vec<String> = (0..651).map(|i| format!("sip:user{i}@example.com")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, answer) = batch(&server, Auth::Ticket(&ticket), &many[..650]).await;
    assert_eq!((status, answer["value"].as_array().map(Vec::len)), (200, Some(650)), "650 is the most");
    let refusals: Vec<(Vec<&str>, u16, &str)> = vec![
        (many.clone(), 422, "ids"),
        ([&many[..650], &[BOB][..]].concat(), 422, "ids"),
        (vec![BOB; 651], 422, "ids"),
        (vec![], 422, "ids"),
        (vec![BOB, "bob@example.com"], 422, "ids[1]"),
        (vec![BOB, "sip:<b>@example.com"], 422, "ids[1]"),
    ];
    for (ids, expected, field) in refusals {
        let (status, answer) = batch(&server, Auth::Ticket(&ticket), &ids).await;
        assert_eq!(
            (status, answer["code"].as_str(), answer["field"].as_str()),
            (expected, Some("validation_failed"), Some(field))
        );
        assert!(answer["message"].is_string());
    }
    let path = "/api/v1/presence/batch";
    let (status, answer) =
        call(&server, Method::POST, path, Auth::Ticket(&ticket), Some(&json!({"ids": [BOB], "more": 1}))).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("more")));
    let (status, answer) = call(&server, Method::POST, path, Auth::Ticket(&ticket), Some(&json!({"ids": [1]}))).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("ids[0]")));
    let (status, answer) = call(&server, Method::POST, path, Auth::Ticket(&ticket), Some(&json!("not an object"))).await;
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = batch(&server, Auth::Bearer(SOURCE_TOKEN), &[BOB]).await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("forbidden")));
    let (status, answer) = batch(&server, Auth::None, &[BOB]).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("unauthenticated")));
    let reply = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .header("CWA-Ticket", &ticket)
        .body("{\"ids\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 400);
    assert_eq!(reply.json::<Value>().await.unwrap()["code"], "invalid_json");
}

#[tokio::test]
async fn an_integrator_reads_back_its_report_with_the_time_it_has_left() {
    let server = server().await;
    let path = |source: &str| format!("/api/v1/users/{BOB}/sources/{source}");
    let phone = json!({"kind": "phone", "ttlSeconds": 600,
        "lines": [{"number": "tel:+4989101", "state": "in-service", "dnd": false}],
        "calls": [{"id": "c1", "service": "phone", "state": "connected", "direction": "incoming", "external": true, "partnerNumber": "tel:+4930555", "line": "tel:+4989101"}],
        "forwards": [{"mode": "no-answer", "destination": "tel:+49170101", "noAnswerSeconds": 20}]});
    report(&server, "pbx", phone.clone()).await;
    let (status, stored) = call(&server, Method::GET, &path("pbx"), Auth::Bearer(SOURCE_TOKEN), None).await;
    assert_eq!(status, 200, "{stored}");
    let mut sent = phone.clone();
    sent.as_object_mut().unwrap().remove("ttlSeconds");
    assert_eq!(stored["report"], sent, "what was reported, as reported");
    assert_eq!((stored["user"].as_str(), stored["source"].as_str()), (Some(BOB), Some("pbx")));
    assert_eq!(stored["ttlSecondsLeft"], 600);
    let expires = stored["expires"].clone();

    // The time left runs down; the expiry stays; the report can be PUT back as read.
    server.clock.advance(chrono::Duration::seconds(100));
    let (_, later) = call(&server, Method::GET, &path("pbx"), Auth::Bearer(ADMIN_TOKEN), None).await;
    assert_eq!((later["ttlSecondsLeft"].as_u64(), &later["expires"]), (Some(500), &expires), "{later}");
    report(&server, "pbx", later["report"].clone()).await;

    // A softphone's calls read back with the service of their kind.
    report(&server, "soft", json!({"kind": "softphone", "ttlSeconds": 60, "calls": [{"id": "s1", "state": "held"}]})).await;
    let (_, soft) = call(&server, Method::GET, &path("soft"), Auth::Bearer(SOURCE_TOKEN), None).await;
    assert_eq!(soft["report"]["calls"][0]["service"], "softphone", "{soft}");

    // Expired, withdrawn or never sent: 404 with the JSON error.
    server.clock.advance(chrono::Duration::seconds(61));
    for source in ["soft", "never"] {
        let (status, answer) = call(&server, Method::GET, &path(source), Auth::Bearer(SOURCE_TOKEN), None).await;
        assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")), "{source}: {answer}");
        assert!(answer["message"].is_string());
    }
    call(&server, Method::DELETE, &path("pbx"), Auth::Bearer(SOURCE_TOKEN), None).await;
    let (status, _) = call(&server, Method::GET, &path("pbx"), Auth::Bearer(SOURCE_TOKEN), None).await;
    assert_eq!(status, 404);

    // Only the credentials that may write a report may read it.
    report(&server, "pbx", phone).await;
    let bob = server.sign_in("bob@example.com").await;
    let (status, answer) = call(&server, Method::GET, &path("pbx"), Auth::Ticket(&bob.ticket), None).await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("forbidden")), "not even the user's own ticket");
    let (status, answer) = call(&server, Method::GET, &path("pbx"), Auth::None, None).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("unauthenticated")));
    let (status, _) = call(&server, Method::GET, &path("pbx"), Auth::Bearer("wrong-token-0123456789"), None).await;
    assert_eq!(status, 401);
    let (status, answer) =
        call(&server, Method::GET, "/api/v1/users/sip:nobody@example.com/sources/pbx", Auth::Bearer(SOURCE_TOKEN), None).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
    let (status, answer) = call(&server, Method::GET, &path("no%20spaces"), Auth::Bearer(SOURCE_TOKEN), None).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("source")));
}
