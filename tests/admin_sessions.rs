//! Live sessions for administrators, over HTTP against the real server: the list (user, node,
//! client address, started, last poll, active or idle), ending one session (its held poll is
//! answered with 404 / 18100 at once) and all of a user's, and the admin-token rule.

mod common;

use common::*;
use presence_gateway::config::{ApiRole, ApiToken, Config};
use presence_gateway::service::mandates::{Duty, Mandate};
use presence_gateway::service::permits::Actor;
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-0123456789";
const SOURCE_TOKEN: &str = "source-token-0123456789";

async fn server() -> TestServer {
    let tokens = vec![
        ApiToken { name: "ops".into(), token: ADMIN_TOKEN.into(), role: ApiRole::Admin },
        ApiToken { name: "pbx".into(), token: SOURCE_TOKEN.into(), role: ApiRole::Source },
    ];
    let config = Config { api_tokens: tokens, hold_seconds: 30, session_timeout_seconds: 9000, ..test_config() };
    TestServer::start_with(config, USERS).await
}

async fn call(server: &TestServer, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn admin(server: &TestServer) -> Mandate {
    server.gateway.mandate(&Actor::Admin, Duty::Sessions).unwrap()
}

fn find(list: &Value, sid: u64) -> &Value {
    list.as_array().unwrap().iter().find(|s| s["sid"] == sid).unwrap_or_else(|| panic!("no session {sid} in {list}"))
}

#[tokio::test]
async fn admins_list_sessions_with_who_where_since_when_and_idle_state() {
    let server = server().await;
    let mut alice = server.session("alice@example.com").await;
    alice.poll().await;
    let mut second_tab = alice.same_login();
    second_tab.initiate().await;
    let bob = server.session("bob@example.com").await;

    let (status, list) = call(&server, reqwest::Method::GET, "/api/v1/sessions", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let a = find(&list, alice.sid);
    assert_eq!(a["user"], "sip:alice@example.com");
    assert_eq!(a["clientAddress"], "127.0.0.1");
    assert_eq!(a["kind"], "cwa");
    assert_eq!(a["state"], "active");
    assert!(a["node"].as_str().is_some_and(|n| !n.is_empty()), "{a}");
    let started: chrono::DateTime<chrono::Utc> = a["started"].as_str().unwrap().parse().unwrap();
    let last_poll: chrono::DateTime<chrono::Utc> = a["lastPoll"].as_str().unwrap().parse().unwrap();
    assert_eq!(started, server.clock.now_for_tests());
    assert!(last_poll >= started);
    assert_eq!(find(&list, bob.sid)["user"], "sip:bob@example.com");

    // One user's sessions only.
    let (status, mine) =
        call(&server, reqwest::Method::GET, "/api/v1/users/sip:alice@example.com/sessions", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    let sids: Vec<u64> = mine.as_array().unwrap().iter().map(|s| s["sid"].as_u64().unwrap()).collect();
    assert_eq!(sids, vec![alice.sid, second_tab.sid], "oldest first");

    // Five minutes without user activity: idle.
    server.clock.advance(chrono::Duration::seconds(301));
    let (_, list) = call(&server, reqwest::Method::GET, "/api/v1/sessions", Some(ADMIN_TOKEN)).await;
    assert_eq!(find(&list, alice.sid)["state"], "idle");

    // Admin only; errors are JSON.
    let (status, error) = call(&server, reqwest::Method::GET, "/api/v1/sessions", Some(SOURCE_TOKEN)).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    let (status, error) = call(&server, reqwest::Method::GET, "/api/v1/sessions", None).await;
    assert_eq!((status, error["code"].as_str()), (401, Some("unauthenticated")));
    let ticket = reqwest::Client::new().get(format!("{}/api/v1/sessions", server.base)).header("CWA-Ticket", &alice.ticket);
    assert_eq!(ticket.send().await.unwrap().status(), 403, "a user's ticket is no admin token");
    server.stop().await;
}

#[tokio::test]
async fn ending_a_session_answers_its_held_poll_and_ending_a_users_sessions_takes_them_offline() {
    let server = server().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    bob.subscribe(&["sip:alice@example.com"]).await;
    bob.poll().await;
    alice.wait_for("subscribers", |_| true).await;

    let sid = alice.sid;
    let held = tokio::spawn(async move { alice.poll_with(alice.ack, true).await });
    for _ in 0..1000 {
        if server.gateway.session_summaries(&admin(&server), Some("sip:alice@example.com")).unwrap()[0].polling {
            break;
        }
        tokio::task::yield_now().await;
    }
    let (status, _) = call(&server, reqwest::Method::DELETE, &format!("/api/v1/sessions/{sid}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 204);
    let answer = held.await.unwrap();
    assert_eq!(answer.status, 404, "the held poll ends at once: {}", answer.body);
    assert_eq!(error_code(&answer), 18100);
    let (status, error) = call(&server, reqwest::Method::DELETE, &format!("/api/v1/sessions/{sid}"), Some(ADMIN_TOKEN)).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    let (status, error) = call(&server, reqwest::Method::DELETE, "/api/v1/sessions/abc", Some(ADMIN_TOKEN)).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("sid")));

    // All of Alice's sessions: Bob sees her go offline.
    let mut alice = server.session("alice@example.com").await;
    let mut tab = alice.same_login();
    tab.initiate().await;
    bob.wait_for_user("sip:alice@example.com", |u| seen(u).availability == 3500).await;
    let path = "/api/v1/users/sip:alice@example.com/sessions";
    let (status, ended) = call(&server, reqwest::Method::DELETE, path, Some(ADMIN_TOKEN)).await;
    assert_eq!((status, ended["ended"].as_u64()), (200, Some(2)));
    bob.wait_for_user("sip:alice@example.com", |u| seen(u).availability == 0).await;
    assert_eq!(alice.poll_with(alice.ack, true).await.status, 404);
    let (_, list) = call(&server, reqwest::Method::GET, path, Some(ADMIN_TOKEN)).await;
    assert_eq!(list, serde_json::json!([]));
    let (status, ended) = call(&server, reqwest::Method::DELETE, path, Some(ADMIN_TOKEN)).await;
    assert_eq!((status, ended["ended"].as_u64()), (200, Some(0)));
    let (status, _) = call(&server, reqwest::Method::DELETE, path, Some(SOURCE_TOKEN)).await;
    assert_eq!(status, 403);
    // Alice is still signed in: her ticket starts a new session.
    assert!(alice.initiate().await.xml().child("requestAccepted").is_some());
    server.stop().await;
}
