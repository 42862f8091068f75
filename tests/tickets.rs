//! Tickets over HTTP with the injected clock: rotation reaches JSON API clients, a client that
//! keeps the ticket of its sign-in reply works for the whole lifetime of its login, and the end of
//! a login (lifetime, idle, revocation) ends every value it had.

mod common;

use chrono::Duration;
use common::*;
use presence_gateway::config::Config;

/// Long sessions, so that only tickets decide what works.
fn config() -> Config {
    Config { session_timeout_seconds: 100_000, idle_timeout_seconds: 100_000, ..test_config() }
}

/// A JSON API read with exactly this ticket: (status, the ticket of the reply).
async fn json_read(server: &TestServer, ticket: &str) -> (u16, Option<String>) {
    let url = format!("{}/api/v1/users/sip:bob@example.com/presence", server.base);
    let reply = send(reqwest::Client::new().get(url).header("CWA-Ticket", ticket)).await;
    (reply.status, reply.ticket)
}

/// A CWA command with exactly this ticket, as a client that reads the ticket only at sign-in.
async fn legacy_query(client: &Client, ticket: &str) -> Reply {
    let body = format!(
        r#"<cwaRequests sid="{}" xmlns="{NS}"><queryPresence rid="9"><uris><uri>sip:bob@example.com</uri></uris></queryPresence></cwaRequests>"#,
        client.sid
    );
    let request = client
        .http
        .post(format!("{}/cwa/MainCommandHandler.ashx", client.base))
        .header("CWA-Ticket", ticket)
        .header("Content-Type", "text/xml")
        .body(body);
    send(request).await
}

#[tokio::test]
async fn json_api_replies_carry_the_rotated_ticket() {
    let server = TestServer::start_with(config(), USERS).await;
    let bob = server.sign_in("bob@example.com").await;
    let (status, same) = json_read(&server, &bob.ticket).await;
    assert_eq!((status, same.as_deref()), (200, Some(bob.ticket.as_str())), "every reply carries the ticket");
    server.clock.advance(Duration::minutes(16));
    let (status, fresh) = json_read(&server, &bob.ticket).await;
    assert_eq!(status, 200);
    let fresh = fresh.expect("the rotated ticket comes back");
    assert_ne!(fresh, bob.ticket);
    assert_eq!(json_read(&server, &fresh).await.0, 200, "the new ticket works");
    let unauthenticated =
        send(reqwest::Client::new().get(format!("{}/api/v1/users/sip:bob@example.com/presence", server.base))).await;
    assert_eq!((unauthenticated.status, unauthenticated.ticket), (401, None));
}

#[tokio::test]
async fn a_client_that_keeps_its_sign_in_ticket_is_never_stranded_by_rotation() {
    let server = TestServer::start_with(config(), USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let kept = alice.ticket.clone();
    // A client that picks up every rotated ticket, next to one that never does.
    for step in 1..=12 {
        server.clock.advance(Duration::minutes(10));
        assert_eq!(alice.query(&["sip:bob@example.com"]).await.status, 200);
        let reply = legacy_query(&alice, &kept).await;
        assert_eq!(reply.status, 200, "after {} minutes: {}", step * 10, reply.body);
        assert_eq!(json_read(&server, &kept).await.0, 200, "the JSON API too, after {} minutes", step * 10);
    }
    assert_ne!(alice.ticket, kept, "the other client has moved on to rotated tickets");
}

#[tokio::test]
async fn the_lifetime_of_a_login_ends_every_ticket_it_had() {
    let config = Config { ticket_lifetime_seconds: 2 * 3600, ..config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let kept = alice.ticket.clone();
    for _ in 1..12 {
        server.clock.advance(Duration::minutes(10));
        assert_eq!(alice.query(&["sip:bob@example.com"]).await.status, 200);
        assert_eq!(legacy_query(&alice, &kept).await.status, 200);
    }
    server.clock.advance(Duration::minutes(10));
    assert_eq!(legacy_query(&alice, &kept).await.status, 401, "two hours after the sign-in");
    assert_eq!(legacy_query(&alice, &alice.ticket.clone()).await.status, 401, "the rotated tickets end too");
    assert_eq!(json_read(&server, &kept).await.0, 401);
    let again = server.sign_in("alice@example.com").await;
    assert_eq!(json_read(&server, &again.ticket).await.0, 200, "signing in again starts a new login");
}

#[tokio::test]
async fn a_ticket_unused_for_the_idle_lifetime_ends() {
    let config = Config { ticket_idle_seconds: 1800, ..config() };
    let server = TestServer::start_with(config, USERS).await;
    let bob = server.sign_in("bob@example.com").await;
    server.clock.advance(Duration::minutes(29));
    assert_eq!(json_read(&server, &bob.ticket).await.0, 200);
    server.clock.advance(Duration::minutes(30));
    assert_eq!(json_read(&server, &bob.ticket).await.0, 401);
}
