//! Who may do what through the JSON API, decided in the service (docs/architecture.md §4, "The
//! service's parts"): every endpoint refuses a caller without the right with 403 — `forbidden`
//! for a role that may not do it at all, `permission_denied` for someone else's data — and a
//! refused call changes nothing.

mod common;

use common::*;
use presence_gateway::config::{ApiRole, ApiToken, Config};
use reqwest::Method;
use serde_json::{json, Value};

const SOURCE: &str = "source-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const BOB: &str = "sip:bob@example.com";
const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3];

async fn server() -> TestServer {
    let tokens = vec![
        ApiToken { name: "pbx".into(), token: SOURCE.into(), role: ApiRole::Source },
        ApiToken { name: "ops".into(), token: ADMIN.into(), role: ApiRole::Admin },
    ];
    TestServer::start_with(Config { api_tokens: tokens, ..test_config() }, USERS).await
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Token(&'a str),
    Ticket(&'a str),
}

/// One call: (status, JSON body or `Null`).
async fn call(server: &TestServer, method: Method, path: &str, who: Who<'_>, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.base));
    request = match who {
        Who::Token(token) => request.bearer_auth(token),
        Who::Ticket(ticket) => request.header("CWA-Ticket", ticket),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null))
}

async fn refused(server: &TestServer, method: Method, path: &str, who: Who<'_>, body: Option<Value>, code: &str) {
    let (status, answer) = call(server, method.clone(), path, who, body).await;
    assert_eq!((status, answer["code"].as_str()), (403, Some(code)), "{method} {path}: {answer}");
}

#[tokio::test]
async fn administration_needs_an_admin_token_and_a_refusal_changes_nothing() {
    let server = server().await;
    let bob = server.session("bob@example.com").await;
    let level = Some(json!({"level": "team"}));
    let user = Some(json!({"uri": "sip:new@example.com", "displayName": "New"}));
    let bob_again = Some(json!({"uri": BOB, "displayName": "Not Bob"}));
    let sessions = format!("/api/v1/sessions/{}", bob.sid);
    let calls: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/v1/users", None),
        (Method::POST, "/api/v1/users", user),
        (Method::PUT, "/api/v1/users/sip:bob@example.com", bob_again),
        (Method::DELETE, "/api/v1/users/sip:bob@example.com", None),
        (Method::GET, "/api/v1/sessions", None),
        (Method::DELETE, &sessions, None),
        (Method::GET, "/api/v1/users/sip:bob@example.com/sessions", None),
        (Method::DELETE, "/api/v1/users/sip:bob@example.com/sessions", None),
        (Method::PUT, "/api/v1/group-rights/r-and-d", level.clone()),
        (Method::DELETE, "/api/v1/group-rights/r-and-d", None),
        (Method::PUT, "/api/v1/users/sip:bob@example.com/group-rights/r-and-d", level),
        (Method::DELETE, "/api/v1/users/sip:bob@example.com/group-rights/r-and-d", None),
    ];
    for (method, path, body) in calls {
        // Bob's own ticket is no admin token, even for Bob's own account, sessions or entries.
        for who in [Who::Ticket(&bob.ticket), Who::Token(SOURCE)] {
            refused(&server, method.clone(), path, who, body.clone(), "forbidden").await;
        }
    }
    assert!(server.gateway.live_session(bob.sid).is_some(), "Bob's session lives on");
    let (status, record) = call(&server, Method::GET, "/api/v1/users/sip:bob@example.com", Who::Token(ADMIN), None).await;
    assert_eq!((status, record["displayName"].as_str()), (200, Some("Bob Builder")));
    let (status, _) = call(&server, Method::GET, "/api/v1/users/sip:new@example.com", Who::Token(ADMIN), None).await;
    assert_eq!(status, 404, "no user was created");
    server.stop().await;
}

#[tokio::test]
async fn a_whole_record_is_its_users_and_sources_are_for_source_tokens() {
    let server = server().await;
    let alice = server.sign_in("alice@example.com").await;
    let bob = server.sign_in("bob@example.com").await;
    refused(&server, Method::GET, "/api/v1/users/sip:bob@example.com", Who::Ticket(&alice.ticket), None, "forbidden").await;
    refused(&server, Method::GET, "/api/v1/users/sip:bob@example.com", Who::Token(SOURCE), None, "forbidden").await;
    let (status, own) = call(&server, Method::GET, "/api/v1/users/sip:bob@example.com", Who::Ticket(&bob.ticket), None).await;
    assert_eq!((status, own["email"].as_str()), (200, Some("bob@example.com")));

    let path = "/api/v1/users/sip:bob@example.com/sources/pbx";
    let report = Some(json!({"kind": "phone", "lines": [{"number": "tel:+4989101"}], "calls": []}));
    for method in [Method::PUT, Method::GET, Method::DELETE] {
        refused(&server, method, path, Who::Ticket(&bob.ticket), report.clone(), "forbidden").await;
    }
    let (status, _) = call(&server, Method::GET, path, Who::Token(SOURCE), None).await;
    assert_eq!(status, 404, "the refused report was not stored");
    assert_eq!(call(&server, Method::PUT, path, Who::Token(SOURCE), report).await.0, 200);

    // A source token reads no presence, one user or many.
    refused(&server, Method::GET, "/api/v1/users/sip:bob@example.com/presence", Who::Token(SOURCE), None, "forbidden").await;
    let batch = Some(json!({"ids": [BOB]}));
    refused(&server, Method::POST, "/api/v1/presence/batch", Who::Token(SOURCE), batch, "forbidden").await;
    server.stop().await;
}

#[tokio::test]
async fn someone_elses_rights_and_picture_are_permission_denied_and_pictures_follow_the_level() {
    let server = server().await;
    let alice = server.sign_in("alice@example.com").await;
    let bob = server.sign_in("bob@example.com").await;
    let mallory = server.sign_in("mallory@example.com").await;
    // Alice is at Team on Bob's list: still not hers to change.
    let entry = "/api/v1/users/sip:bob@example.com/rights/sip:mallory@example.com";
    refused(&server, Method::DELETE, entry, Who::Ticket(&alice.ticket), None, "permission_denied").await;
    let unblocked = Some(json!({"level": "personal"}));
    refused(&server, Method::PUT, entry, Who::Ticket(&alice.ticket), unblocked, "permission_denied").await;

    let image = format!("{}/api/v1/users/sip:bob@example.com/image", server.base);
    let put = |who: &str| {
        reqwest::Client::new().put(&image).header("CWA-Ticket", who).header("Content-Type", "image/png").body(PNG).send()
    };
    assert_eq!(put(&alice.ticket).await.unwrap().status(), 403);
    assert_eq!(put(&bob.ticket).await.unwrap().status(), 200);
    let path = "/api/v1/users/sip:bob@example.com/image";
    refused(&server, Method::DELETE, path, Who::Ticket(&alice.ticket), None, "permission_denied").await;
    // Bob blocked Mallory: she still may not see his picture, nor may a source token.
    assert_eq!(call(&server, Method::GET, path, Who::Ticket(&mallory.ticket), None).await.0, 404);
    assert_eq!(call(&server, Method::GET, path, Who::Token(SOURCE), None).await.0, 404);
    for who in [Who::Ticket(&alice.ticket), Who::Ticket(&bob.ticket), Who::Token(ADMIN)] {
        let reply = reqwest::Client::new().get(&image);
        let reply = match who {
            Who::Ticket(ticket) => reply.header("CWA-Ticket", ticket),
            Who::Token(token) => reply.bearer_auth(token),
        };
        assert_eq!(reply.send().await.unwrap().bytes().await.unwrap().as_ref(), PNG);
    }
    let presence = "/api/v1/users/sip:bob@example.com/presence";
    assert_eq!(call(&server, Method::GET, presence, Who::Ticket(&mallory.ticket), None).await.0, 200, "what Blocked shows");
    server.stop().await;
}
