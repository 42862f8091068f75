//! The HTTP/1.1 connection driver, spoken to byte by byte over raw TCP (and TLS) sockets: the exact
//! spelling of `CWA-Ticket`, keep-alive and pipelining, chunked bodies, `Expect: 100-continue`, the
//! request-smuggling refusals, the header/body/idle timeouts and the connection cap.

mod common;

use common::*;
use presence_gateway::config::{Config, HttpLimits};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound on how long any one test step may take before the test fails (never a readiness wait).
const STEP: Duration = Duration::from_secs(20);

/// One response as it came off the wire.
#[derive(Debug)]
struct Raw {
    head: String,
    body: String,
}

impl Raw {
    fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    /// The value of the header spelled exactly `name`.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
    }
}

/// Reads one response (with a `Content-Length` body) from `stream`; `buf` keeps what follows it.
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Raw {
    tokio::time::timeout(STEP, async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) {
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let length = head
                    .split("\r\n")
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.parse::<usize>().unwrap()))
                    .unwrap_or(0);
                if buf.len() >= end + length {
                    let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
                    buf.drain(..end + length);
                    return Raw { head, body };
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a whole response: {:?}", String::from_utf8_lossy(buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a response in time")
}

/// Reads until the server closes the connection; returns everything read.
async fn read_to_close<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut all)).await.expect("the server closes in time");
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn address(server: &TestServer) -> String {
    server.base.strip_prefix("http://").unwrap().to_string()
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(address(server)).await.unwrap()
}

/// Sends `request` on a fresh connection and returns everything until the server closes.
async fn refused(server: &TestServer, request: &[u8]) -> String {
    let mut stream = connect(server).await;
    stream.write_all(request).await.unwrap();
    read_to_close(&mut stream).await
}

fn logon_request(user: &str, extra_headers: &str) -> String {
    let body = format!("<cwaRequests><logon><user>{user}</user><password>pw</password></logon></cwaRequests>");
    format!(
        "POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn command_request(ticket: &str, body: &str) -> String {
    format!(
        "POST /cwa/MainCommandHandler.ashx HTTP/1.1\r\nHost: gw\r\nCWA-Ticket: {ticket}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Signs in, starts a session and polls once on one connection, checking the exact spelling of
/// `CWA-Ticket` in each reply's raw bytes.
async fn ticket_spelling_over<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let mut buf = Vec::new();
    let exactly = |raw: &Raw, what: &str| {
        assert!(raw.head.contains("\r\nCWA-Ticket: "), "{what}: {}", raw.head);
        assert!(!raw.head.to_ascii_lowercase().replace("cwa-ticket", "").contains("cwa-ticket"), "{what}: once");
        assert!(!raw.head.contains("cwa-ticket") && !raw.head.contains("Cwa-Ticket"), "{what}: {}", raw.head);
        raw.header("CWA-Ticket").unwrap().to_string()
    };
    stream.write_all(logon_request("alice@example.com", "").as_bytes()).await.unwrap();
    let logon = read_response(stream, &mut buf).await;
    assert_eq!(logon.status(), 200, "{logon:?}");
    let ticket = exactly(&logon, "logon");
    assert!(logon.head.contains("\r\nSet-Cookie: CWA-Ticket="), "{}", logon.head);
    assert!(logon.head.contains("\r\nContent-Type: text/xml") && logon.head.contains("\r\nContent-Length: "), "{}", logon.head);

    let initiate = format!(
        r#"<cwaRequests sid="0" xmlns="{NS}"><initiateSession rid="1"><userStateAvailability>3500</userStateAvailability></initiateSession></cwaRequests>"#
    );
    stream.write_all(command_request(&ticket, &initiate).as_bytes()).await.unwrap();
    let command = read_response(stream, &mut buf).await;
    assert_eq!(command.status(), 200, "{command:?}");
    exactly(&command, "command");
    let sid = command.body.split("<sid>").nth(1).and_then(|s| s.split('<').next()).unwrap().to_string();

    let poll =
        format!("GET /cwa/AsyncDataChannel.ashx?Sid={sid}&AckId=0&UA=true HTTP/1.1\r\nHost: gw\r\nCWA-Ticket: {ticket}\r\n\r\n");
    stream.write_all(poll.as_bytes()).await.unwrap();
    let events = read_response(stream, &mut buf).await;
    assert_eq!(events.status(), 200, "{events:?}");
    exactly(&events, "data channel");
    assert!(events.body.contains("cwaEvents"), "{}", events.body);
}

#[tokio::test]
async fn cwa_ticket_is_spelled_exactly_in_every_reply_that_carries_it() {
    let server = TestServer::start().await;
    let mut stream = connect(&server).await;
    ticket_spelling_over(&mut stream).await;
}

#[tokio::test]
async fn cwa_ticket_is_spelled_exactly_over_tls() {
    use tokio_rustls::rustls::{self, pki_types};
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let tls = presence_gateway::tls::server_config(&cert, &key).unwrap();
    let server = TestServer::start_tls(test_config(), USERS, tls).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki_types::CertificateDer::from(generated.cert.der().to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.base.strip_prefix("https://").unwrap()).await.unwrap();
    let name = pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "h2 is never chosen");
    ticket_spelling_over(&mut tls).await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = TestServer::start().await;
    let mut stream = connect(&server).await;
    let pipelined = format!(
        "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n{}GET /readyz HTTP/1.1\r\nHost: gw\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: gw\r\n\r\n",
        logon_request("bob@example.com", "")
    );
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let first = read_response(&mut stream, &mut buf).await;
    assert_eq!((first.status(), first.body.as_str()), (200, "ok"));
    let second = read_response(&mut stream, &mut buf).await;
    assert_eq!(second.status(), 200);
    assert!(second.body.contains("requestSucceeded"), "{}", second.body);
    let third = read_response(&mut stream, &mut buf).await;
    assert_eq!(third.status(), 200);
    assert!(third.body.starts_with("ready\n"), "{}", third.body);
    let fourth = read_response(&mut stream, &mut buf).await;
    assert_eq!(fourth.status(), 404);
    // The connection is still usable afterwards (keep-alive).
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut stream, &mut buf).await.body, "ok");
    // `Connection: close` is honoured and said.
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").await.unwrap();
    let last = read_to_close(&mut stream).await;
    assert!(last.starts_with("HTTP/1.1 200 OK\r\n") && last.contains("\r\nConnection: close\r\n"), "{last}");
}

#[tokio::test]
async fn http_1_0_gets_an_answer_and_the_connection_closes() {
    let server = TestServer::start().await;
    let reply = refused(&server, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.0 200 OK\r\n") && reply.ends_with("\r\n\r\nok"), "{reply}");
}

#[tokio::test]
async fn chunked_bodies_and_expect_continue_are_read() {
    let server = TestServer::start().await;
    let mut stream = connect(&server).await;
    let body = "<cwaRequests><logon><user>carol@example.com</user><password>pw</password></logon></cwaRequests>";
    let (a, b) = body.split_at(20);
    let chunked = format!(
        "POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nX-Trailer: t\r\n\r\n",
        a.len(),
        b.len()
    );
    stream.write_all(chunked.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let reply = read_response(&mut stream, &mut buf).await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert!(reply.header("CWA-Ticket").is_some());

    let head =
        format!("POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = read_response(&mut stream, &mut buf).await;
    assert_eq!(interim.head, "HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream, &mut buf).await.status(), 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_unread_and_the_connection_closes() {
    let server = TestServer::start().await;
    let reply = refused(&server, b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nContent-Length: 99999999\r\n\r\n<cwa").await;
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    assert!(reply.contains("\r\nConnection: close\r\n") && reply.contains("<error"), "{reply}");
}

/// Asserts a refusal: `status`, said in a body, `Connection: close`, then the connection closes.
fn assert_refused(reply: &str, status: &str, what: &str) {
    assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {reply}");
    assert!(reply.contains("\r\nConnection: close\r\n"), "{what}: {reply}");
}

#[tokio::test]
async fn request_smuggling_classics_are_refused_with_400_and_a_close() {
    let server = TestServer::start().await;
    let cases: &[(&str, &[u8])] = &[
        (
            "Content-Length with Transfer-Encoding",
            b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        ),
        (
            "two different Content-Lengths",
            b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        ),
        ("a Content-Length list", b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nContent-Length: 4, 40\r\n\r\nabcd"),
        ("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n b\r\n\r\n"),
        ("bare LF", b"GET /healthz HTTP/1.1\nHost: gw\n\n"),
        ("bare LF after CRLF lines", b"GET /healthz HTTP/1.1\r\nHost: gw\n\r\n"),
        (
            "a chunk size with a prefix",
            b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n0\r\n\r\n",
        ),
        (
            "a chunk size too long",
            b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabcd\r\n",
        ),
        (
            "chunk data longer than its size",
            b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
        ),
        (
            "a transfer coding other than chunked",
            b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        ("a space before the colon", b"GET /healthz HTTP/1.1\r\nHost : gw\r\n\r\n"),
    ];
    for (what, request) in cases {
        let reply = refused(&server, request).await;
        assert_refused(&reply, "400", what);
        assert!(!reply.contains("\r\n\r\nok"), "{what}: nothing after the refusal is served: {reply}");
    }
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: {}\r\n\r\n", "a".repeat(40 * 1024));
    assert_refused(&refused(&server, huge.as_bytes()).await, "431", "an oversized head");
    let endless = format!("GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: {}", "a".repeat(40 * 1024));
    assert_refused(&refused(&server, endless.as_bytes()).await, "431", "an oversized unfinished head");
    let many: String = (0..120).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_refused(&refused(&server, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).await, "431", "too many headers");
    let json = refused(&server, b"POST /api/v1/subscriptions HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").await;
    assert!(json.contains("application/json") && json.contains("\"code\":\"bad_request\""), "{json}");
}

fn short_timeouts() -> Config {
    Config {
        http: HttpLimits { header_timeout_seconds: 1, body_timeout_seconds: 1, keep_alive_seconds: 1, ..HttpLimits::default() },
        ..test_config()
    }
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap()
}

fn metric_at_least(text: &str, line_start: &str, at_least: f64) {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"));
    assert!(value >= at_least, "{line_start} = {value}");
}

#[tokio::test]
async fn unfinished_heads_and_bodies_time_out() {
    let server = TestServer::start_with(short_timeouts(), USERS).await;
    // Slowloris: a head that never ends.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: 1\r\n").await.unwrap();
    // A Content-Length never satisfied.
    let mut short = connect(&server).await;
    short.write_all(b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n<cwaRequests>").await.unwrap();
    // A chunked body never ended.
    let mut endless = connect(&server).await;
    endless
        .write_all(b"POST /forms/logon.html HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
        .await
        .unwrap();
    // A connection that never says anything, and one kept alive after an answer.
    let mut silent = connect(&server).await;
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut idle, &mut Vec::new()).await.body, "ok");

    for (stream, what) in [(&mut slow, "head"), (&mut short, "content-length"), (&mut endless, "chunked")] {
        let reply = read_to_close(stream).await;
        assert_refused(&reply, "408", what);
    }
    assert_eq!(read_to_close(&mut silent).await, "", "a silent connection is closed without a word");
    assert_eq!(read_to_close(&mut idle).await, "", "an idle kept-alive connection is closed");

    let text = metrics(&server).await;
    metric_at_least(&text, "presence_http_connections_timed_out_total{phase=\"head\"}", 1.0);
    metric_at_least(&text, "presence_http_connections_timed_out_total{phase=\"body\"}", 2.0);
    metric_at_least(&text, "presence_http_connections_timed_out_total{phase=\"idle\"}", 2.0);
    metric_at_least(&text, "presence_http_connections_open", 1.0);
}

#[tokio::test]
async fn a_held_poll_outlives_the_timeouts() {
    let config = Config { hold_seconds: 3, ..short_timeouts() };
    let server = TestServer::start_with(config, USERS).await;
    let mut client = server.session("alice@example.com").await;
    client.poll().await;
    let mut stream = connect(&server).await;
    let poll = format!(
        "GET /cwa/AsyncDataChannel.ashx?Sid={}&AckId={}&UA=true HTTP/1.1\r\nHost: gw\r\nCWA-Ticket: {}\r\n\r\n",
        client.sid, client.ack, client.ticket
    );
    stream.write_all(poll.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let reply = read_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert!(reply.body.contains("cwaEvents"), "{}", reply.body);
    assert!(started.elapsed() >= Duration::from_secs(2), "the poll was held past the 1 s timeouts");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused() {
    let config = Config { http: HttpLimits { max_connections: 2, ..HttpLimits::default() }, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&server).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut stream, &mut Vec::new()).await.body, "ok");
        held.push(stream);
    }
    let mut third = connect(&server).await;
    let reply = read_to_close(&mut third).await;
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 503 "), "{reply}");
    // Once one closes, a new connection is served again.
    held.pop();
    let text = loop {
        let mut stream = connect(&server).await;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        buf.extend_from_slice(&chunk[..n]);
        if buf.starts_with(b"HTTP/1.1 200") {
            break read_response_rest(&mut stream, buf).await;
        }
        // The server has not yet seen the close of the popped connection: try again.
        tokio::task::yield_now().await;
    };
    metric_at_least(&text, "presence_http_connections_refused_total", 1.0);
}

async fn read_response_rest(stream: &mut TcpStream, mut buf: Vec<u8>) -> String {
    read_response(stream, &mut buf).await.body
}
