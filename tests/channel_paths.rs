//! The command and data channels' own path in the connection driver answers exactly what the
//! router's handlers and their layers answer: the same gateway is served on two listeners, one
//! with the path and one without, and every kind of answer (events, held and empty, command
//! responses, each error, the cookie guard, a rotated ticket with its cookie, HTTP/1.0, chunked and
//! oversized bodies, a client's request id) is compared byte for byte over raw TCP, only `Date`
//! and generated request ids set aside.

mod common;

use common::*;
use presence_gateway::config::Config;
use presence_gateway::http::conn::server::{run, Serving};
use presence_gateway::http::conn::Settings;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The same gateway, served by the driver without the channels' own path.
async fn router_only(server: &TestServer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let gateway = server.gateway.clone();
    let serving = Serving {
        settings: Settings::from_config(gateway.config()),
        tls: None,
        max_connections: 100,
        shutdown_timeout: Duration::from_secs(1),
        channels: None,
    };
    let app = presence_gateway::http::router(gateway);
    tokio::spawn(run(listener, app, serving, std::future::pending(), || {}));
    address
}

fn address_of(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// Sends `request` on `stream` and reads one whole answer (head and `Content-Length` body).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if got.len() >= end + 4 + length {
                assert_eq!(got.len(), end + 4 + length, "nothing after the answer");
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the connection closed before the answer was complete: {text}");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// The answer with `Date` blanked, and a generated request id (checked to be a version-4 UUID)
/// blanked too.
fn comparable(answer: &str) -> String {
    let lines = answer.split("\r\n").map(|line| {
        if line.starts_with("Date: ") {
            return "Date: -".to_string();
        }
        match line.strip_prefix("X-Request-Id: ") {
            Some(id) if id.len() == 36 && id.as_bytes()[14] == b'4' && id.bytes().filter(|b| *b == b'-').count() == 4 => {
                "X-Request-Id: (uuid)".to_string()
            }
            _ => line.to_string(),
        }
    });
    lines.collect::<Vec<_>>().join("\r\n")
}

/// Sends `request` once to each listener (on the connections given) and checks both answers are
/// the same; returns the answer.
async fn same_answer(own: &mut TcpStream, routed: &mut TcpStream, request: &str) -> String {
    let direct = comparable(&exchange(own, request).await);
    let via_router = comparable(&exchange(routed, request).await);
    assert_eq!(direct, via_router, "the driver's own path and the router answer alike: {request}");
    direct
}

fn poll(query: &str, headers: &str) -> String {
    format!("GET /cwa/AsyncDataChannel.ashx{query} HTTP/1.1\r\nHost: gw\r\n{headers}\r\n")
}

#[tokio::test]
async fn every_data_channel_answer_is_the_routers_byte_for_byte() {
    let server = TestServer::start().await;
    let routed_address = router_only(&server).await;
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&["sip:bob@example.com", "sip:carol@example.com"]).await;
    let mut own = TcpStream::connect(address_of(&server)).await.unwrap();
    let mut routed = TcpStream::connect(routed_address).await.unwrap();
    let ticket = format!("CWA-Ticket: {}\r\n", alice.ticket);
    let sid = alice.sid;

    // Events (the same ones again: nothing was acknowledged), on kept-alive connections.
    let events = same_answer(&mut own, &mut routed, &poll(&format!("?Sid={sid}&AckId=0"), &ticket)).await;
    assert!(events.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\n"), "{events}");
    assert!(events.contains("\r\nCWA-Ticket: ") && events.contains("<cwaEvents"), "{events}");
    for _ in 0..2 {
        same_answer(&mut own, &mut routed, &poll(&format!("?sid={sid}&ackid=0&ua=TRUE"), &ticket)).await;
    }
    // A client's request id is echoed; a held poll that ends empty.
    let acked = events.rsplit("ackId=\"").next().unwrap().split('"').next().unwrap().to_string();
    let with_id = format!("{ticket}X-Request-Id: abc-123\r\n");
    let empty = same_answer(&mut own, &mut routed, &poll(&format!("?Sid={sid}&AckId={acked}"), &with_id)).await;
    assert!(empty.contains("\r\nX-Request-Id: abc-123\r\n"), "{empty}");

    // Errors: no ticket, a wrong one, a blank one, no Sid, a bad AckId, a session of nobody.
    for (query, headers, status) in [
        (format!("?Sid={sid}"), String::new(), 401),
        (format!("?Sid={sid}"), "CWA-Ticket: nope\r\n".to_string(), 401),
        (format!("?Sid={sid}"), "CWA-Ticket:  \r\n".to_string(), 401),
        ("?AckId=1".to_string(), ticket.clone(), 400),
        (format!("?Sid={sid}&AckId=x"), ticket.clone(), 400),
        (format!("?Sid={sid}&UA=maybe"), ticket.clone(), 400),
        ("?Sid=999999".to_string(), ticket.clone(), 404),
    ] {
        let answer = same_answer(&mut own, &mut routed, &poll(&query, &headers)).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{query} {headers}: {answer}");
    }

    // The ticket as a cookie: counts from the gateway's own pages, not from another site.
    let cookie = format!("Cookie: a=b; CWA-Ticket={}\r\n", alice.ticket);
    let own_page = same_answer(&mut own, &mut routed, &poll(&format!("?Sid={sid}&AckId=0"), &cookie)).await;
    assert!(own_page.starts_with("HTTP/1.1 200 "), "{own_page}");
    let cross_site = format!("{cookie}Sec-Fetch-Site: cross-site\r\n");
    let refused = same_answer(&mut own, &mut routed, &poll(&format!("?Sid={sid}&AckId=0"), &cross_site)).await;
    assert!(refused.starts_with("HTTP/1.1 401 "), "{refused}");

    // HTTP/1.0, kept alive and not.
    let old = format!("GET /cwa/AsyncDataChannel.ashx?Sid={sid}&AckId=0 HTTP/1.0\r\nConnection: keep-alive\r\n{ticket}\r\n");
    let kept = same_answer(&mut own, &mut routed, &old).await;
    assert!(kept.starts_with("HTTP/1.0 200 OK\r\n") && kept.contains("\r\nConnection: keep-alive\r\n"), "{kept}");
    let closing = format!("GET /cwa/AsyncDataChannel.ashx?Sid={sid}&AckId=0 HTTP/1.1\r\nConnection: close\r\n{ticket}\r\n");
    let closed = same_answer(&mut own, &mut routed, &closing).await;
    assert!(closed.contains("\r\nConnection: close\r\n"), "{closed}");
    for stream in [&mut own, &mut routed] {
        assert_eq!(stream.read(&mut [0u8; 16]).await.unwrap(), 0, "closed after the answer");
    }
}

fn command(body: &str, headers: &str) -> String {
    let length = body.len();
    format!("POST /cwa/MainCommandHandler.ashx HTTP/1.1\r\nHost: gw\r\nContent-Length: {length}\r\n{headers}\r\n{body}")
}

fn batch(sid: u64, requests: &str) -> String {
    format!(r#"<cwaRequests sid="{sid}" xmlns="{NS}">{requests}</cwaRequests>"#)
}

#[tokio::test]
async fn every_command_channel_answer_is_the_routers_byte_for_byte() {
    let server = TestServer::start().await;
    let routed_address = router_only(&server).await;
    let alice = server.session("alice@example.com").await;
    let mut own = TcpStream::connect(address_of(&server)).await.unwrap();
    let mut routed = TcpStream::connect(routed_address).await.unwrap();
    let ticket = format!("CWA-Ticket: {}\r\n", alice.ticket);
    let query = batch(alice.sid, r#"<queryPresence rid="7"><uri>sip:bob@example.com</uri></queryPresence>"#);
    let oversized = batch(alice.sid, &format!("<!--{}-->", "x".repeat(300 * 1024)));
    let cookie = format!("Cookie: CWA-Ticket={}\r\n", alice.ticket);
    for (body, headers, status) in [
        (query.clone(), ticket.clone(), 200),
        (query.clone(), format!("{ticket}X-Request-Id: cmd-1\r\n"), 200),
        (query.clone(), cookie.clone(), 200),
        (batch(alice.sid, r#"<noSuchThing rid="8"/>"#), ticket.clone(), 200),
        (query.clone(), String::new(), 401),
        (query.clone(), "CWA-Ticket: nope\r\n".to_string(), 401),
        (query.clone(), format!("{cookie}Sec-Fetch-Site: cross-site\r\n"), 401),
        ("<cwaRequests".to_string(), ticket.clone(), 400),
        (String::new(), ticket.clone(), 400),
        (batch(999_999, r#"<queryPresence rid="9"><uri>sip:bob@example.com</uri></queryPresence>"#), ticket.clone(), 404),
        // Over the command limit, within what the driver reads (the image limit): 413, kept alive.
        (oversized, ticket.clone(), 413),
    ] {
        let answer = same_answer(&mut own, &mut routed, &command(&body, &headers)).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{headers}: {answer}");
    }
    // A chunked body, a query string, HTTP/1.0.
    let chunked = format!(
        "POST /cwa/MainCommandHandler.ashx?x=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n{ticket}\r\n{:x}\r\n{query}\r\n0\r\n\r\n",
        query.len()
    );
    let answer = same_answer(&mut own, &mut routed, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 200 ") && answer.contains("<cwaResponses"), "{answer}");
    let old = format!("POST /cwa/MainCommandHandler.ashx HTTP/1.0\r\nContent-Length: {}\r\n{ticket}\r\n{query}", query.len());
    let answer = same_answer(&mut own, &mut routed, &old).await;
    assert!(answer.starts_with("HTTP/1.0 200 ") && answer.contains("\r\nConnection: close\r\n"), "{answer}");
}

#[tokio::test]
async fn header_spellings_repeats_and_cookies_are_read_as_the_router_reads_them() {
    let server = TestServer::start().await;
    let routed_address = router_only(&server).await;
    let mut alice = server.session("alice@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    let mut own = TcpStream::connect(address_of(&server)).await.unwrap();
    let mut routed = TcpStream::connect(routed_address).await.unwrap();
    let (ticket, sid) = (alice.ticket.clone(), alice.sid);
    let query = format!("?Sid={sid}&AckId=0");
    let status = |answer: &str| answer[9..12].to_string();
    for (headers, expected) in [
        // Names in any case.
        (format!("cwa-ticket: {ticket}\r\n"), "200"),
        (format!("CWA-TICKET: {ticket}\r\nx-request-id: Lower-Case-Name\r\n"), "200"),
        // Repeated lines: the first ticket counts, the first request id is echoed.
        (format!("CWA-Ticket: {ticket}\r\nCWA-Ticket: nope\r\n"), "200"),
        (format!("CWA-Ticket: nope\r\nCWA-Ticket: {ticket}\r\n"), "401"),
        (format!("CWA-Ticket: {ticket}\r\nX-Request-Id: first\r\nX-Request-Id: second\r\n"), "200"),
        // A ticket header that is no visible ASCII is passed over for the cookie.
        (format!("CWA-Ticket: caf\u{e9}\r\nCookie: CWA-Ticket={ticket}\r\n"), "200"),
        // The ticket in the second of two cookie lines, its name in any case.
        (format!("Cookie: a=b\r\ncookie: x=y; cwa-ticket={ticket}\r\n"), "200"),
        (format!("Cookie: caf\u{e9}=1; CWA-Ticket=nope\r\nCookie: CWA-Ticket={ticket}\r\n"), "200"),
        // The cookie from the gateway's own page (Origin naming the Host), and from another.
        (format!("Origin: http://gw\r\nCookie: CWA-Ticket={ticket}\r\n"), "200"),
        (format!("Origin: http://elsewhere.example\r\nCookie: CWA-Ticket={ticket}\r\n"), "401"),
        (format!("Sec-Fetch-Site: same-site\r\nCookie: CWA-Ticket={ticket}\r\n"), "401"),
        // With a ticket header the cookie guard does not apply.
        (format!("Sec-Fetch-Site: cross-site\r\nCWA-Ticket: {ticket}\r\nCookie: CWA-Ticket=nope\r\n"), "200"),
        // A request id that is no visible ASCII is echoed as it came.
        (format!("CWA-Ticket: {ticket}\r\nX-Request-Id: caf\u{e9}\r\n"), "200"),
    ] {
        let answer = same_answer(&mut own, &mut routed, &poll(&query, &headers)).await;
        assert_eq!(status(&answer), expected, "{headers}: {answer}");
    }
    // Targets that are no plain path and query go to the router on both listeners: same answers.
    for target in [format!("/cwa/AsyncDataChannel.ashx{query}#part"), format!("http://gw/cwa/AsyncDataChannel.ashx{query}")] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: gw\r\nCWA-Ticket: {ticket}\r\n\r\n");
        let answer = same_answer(&mut own, &mut routed, &request).await;
        assert_eq!(status(&answer), "200", "{target}: {answer}");
    }
}

#[tokio::test]
async fn a_rotated_ticket_comes_with_the_same_headers_and_cookie_on_both_paths() {
    let config = Config { ticket_rotation_seconds: 60, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let routed_address = router_only(&server).await;
    let alice = server.session("alice@example.com").await;
    let mut answers = Vec::new();
    for address in [address_of(&server), routed_address] {
        server.clock.advance(chrono::Duration::seconds(61));
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = poll(&format!("?Sid={}&AckId=0", alice.sid), &format!("CWA-Ticket: {}\r\n", alice.ticket));
        let answer = comparable(&exchange(&mut stream, &request).await);
        let fresh = answer.split("\r\nCWA-Ticket: ").nth(1).unwrap().split("\r\n").next().unwrap().to_string();
        assert_ne!(fresh, alice.ticket, "rotated");
        assert!(
            answer.contains(&format!("\r\nSet-Cookie: CWA-Ticket={fresh}; Path=/; HttpOnly; SameSite=Strict\r\n")),
            "{answer}"
        );
        answers.push(answer.replace(&fresh, "(fresh)"));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn a_poll_whose_client_hangs_up_stops_counting_as_held() {
    let server = TestServer::start_with(Config { hold_seconds: 50, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    alice.poll().await;
    let session = server.gateway.live_session(alice.sid).unwrap();
    let mut stream = TcpStream::connect(address_of(&server)).await.unwrap();
    let request = poll(&format!("?Sid={}&AckId={}", alice.sid, alice.ack), &format!("CWA-Ticket: {}\r\n", alice.ticket));
    stream.write_all(request.as_bytes()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !session.last_poll().1 {
        assert!(tokio::time::Instant::now() < deadline, "the poll is held");
        tokio::task::yield_now().await;
    }
    drop(stream);
    while session.last_poll().1 {
        assert!(tokio::time::Instant::now() < deadline, "the abandoned poll stops counting as held");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
