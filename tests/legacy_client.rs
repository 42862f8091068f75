//! A deployed CWA client, unmodified: written the way old Java/.NET CWA clients were. It speaks
//! HTTP/1.1 over a plain socket and reads the raw response bytes; it finds the ticket header by
//! its exact spelling `CWA-Ticket`, reads the ticket once at sign-in and never again, sends
//! `sid="0"` on `initiateSession`, `&&AckID=` in the poll URL, an XML prolog and the
//! `application/x-www-form-urlencoded` content type on XML bodies, and walks replies by DOM child
//! index (`getChildNodes().item(1)`: the whitespace node comes first). The gateway must serve it
//! through the whole flow (README, "Bytes on the wire").

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One raw HTTP reply: the header block exactly as sent, and the body.
struct RawReply {
    status: u16,
    head: String,
    body: String,
}

impl RawReply {
    /// `getHeaderField("CWA-Ticket")` of a client that compares names byte for byte.
    fn header_exact(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    }
}

struct LegacyClient {
    addr: String,
    ticket: String,
    sid: String,
    ack: String,
    rid: u32,
}

/// The n-th child node (elements and text alike), as `getChildNodes().item(n)`.
fn item<'a, 'i>(node: roxmltree::Node<'a, 'i>, n: usize) -> roxmltree::Node<'a, 'i> {
    node.children().nth(n).unwrap_or_else(|| panic!("no child node {n} in {node:?}"))
}

/// `getFirstChild().getNodeValue()` of an element holding text.
fn value(node: roxmltree::Node<'_, '_>) -> String {
    node.first_child().and_then(|t| t.text()).unwrap_or_else(|| panic!("no text in {node:?}")).to_string()
}

async fn exchange(addr: &str, request: String) -> RawReply {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    socket.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_string() };
    RawReply { status, head: head.to_string(), body }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

impl LegacyClient {
    fn post_request(addr: &str, path: &str, ticket: Option<&str>, xml: &str) -> String {
        let body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n{xml}");
        let ticket = ticket.map(|t| format!("CWA-Ticket: {t}\r\n")).unwrap_or_default();
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Java/1.6.0_45\r\nContent-Type: application/x-www-form-urlencoded\r\n{ticket}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    async fn sign_in(addr: &str, user: &str) -> LegacyClient {
        let logon =
            format!("<cwaRequests xmlns=\"{NS}\"><logon><user>{user}</user><password>pw</password></logon></cwaRequests>");
        let reply = exchange(addr, Self::post_request(addr, "/forms/logon.html", None, &logon)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains("requestSucceeded"), "{}", reply.body);
        let ticket = reply
            .header_exact("CWA-Ticket")
            .unwrap_or_else(|| panic!("no header spelled exactly CWA-Ticket in:\n{}", reply.head))
            .to_string();
        LegacyClient { addr: addr.to_string(), ticket, sid: "0".into(), ack: "0".into(), rid: 0 }
    }

    async fn command(&mut self, method: &str) -> RawReply {
        let xml = format!("<cwaRequests sid=\"{}\" xmlns=\"{NS}\">{method}</cwaRequests>", self.sid);
        let request = Self::post_request(&self.addr, "/cwa/MainCommandHandler.ashx", Some(&self.ticket), &xml);
        let reply = exchange(&self.addr, request).await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.body);
        reply
    }

    fn next_rid(&mut self) -> String {
        self.rid += 1;
        self.rid.to_string()
    }

    async fn initiate_session(&mut self) {
        let rid = self.next_rid();
        let reply = self
            .command(&format!(
                "<initiateSession rid=\"{rid}\"><localeId>1033</localeId><securityMode>private</securityMode><userStateAvailability>3500</userStateAvailability></initiateSession>"
            ))
            .await;
        let doc = roxmltree::Document::parse(&reply.body).unwrap();
        // cwaResponses → item(1) requestAccepted → item(1) sid → its text.
        let accepted = item(doc.root_element(), 1);
        assert_eq!(accepted.tag_name().name(), "requestAccepted", "{}", reply.body);
        let sid = item(accepted, 1);
        assert_eq!(sid.tag_name().name(), "sid");
        self.sid = value(sid);
    }

    /// One data-channel GET; returns the batch's event elements, by index.
    async fn poll(&mut self) -> String {
        let request = format!(
            "GET /cwa/AsyncDataChannel.ashx?Sid={}&&AckID={}&UA=false HTTP/1.1\r\nHost: {}\r\nCWA-Ticket: {}\r\nConnection: close\r\n\r\n",
            self.sid, self.ack, self.addr, self.ticket
        );
        let reply = exchange(&self.addr, request).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let doc = roxmltree::Document::parse(&reply.body).unwrap();
        self.ack = doc.root_element().attribute("ackId").unwrap().to_string();
        reply.body
    }

    /// Polls until a batch holds an event `name` (each poll is held by the server; bounded).
    async fn poll_for(&mut self, name: &str) -> String {
        for _ in 0..20 {
            let body = self.poll().await;
            if body.contains(&format!("<{name} ")) {
                return body;
            }
        }
        panic!("no {name} event");
    }
}

/// The event named `name` at its index among the batch's child nodes (odd indexes: elements).
fn event<'a, 'i>(doc: &'a roxmltree::Document<'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    let root = doc.root_element();
    let count = root.children().count();
    (1..count).step_by(2).map(|i| item(root, i)).find(|e| e.tag_name().name() == name).unwrap()
}

/// availability of a `userPresence` event, read the legacy way:
/// userPresence/item(1)=user/item(1)=cwaCategory(state)/item(1)=state/item(1)=availability.
fn availability_by_index(user_presence: roxmltree::Node<'_, '_>) -> (String, u32) {
    let user = item(user_presence, 1);
    assert_eq!(user.tag_name().name(), "user");
    let category = item(user, 1);
    assert_eq!((category.tag_name().name(), category.attribute("name")), ("cwaCategory", Some("state")));
    let state = item(category, 1);
    assert_eq!(state.tag_name().name(), "state");
    let availability = item(state, 1);
    assert_eq!(availability.tag_name().name(), "availability");
    (user.attribute("uri").unwrap().to_string(), value(availability).parse().unwrap())
}

#[tokio::test]
async fn a_legacy_client_runs_the_whole_flow() {
    let server = TestServer::start().await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut bob = server.session("bob@example.com").await;
    bob.poll().await;

    let mut alice = LegacyClient::sign_in(&addr, "alice@example.com").await;
    alice.initiate_session().await;
    let first = alice.poll().await;
    assert!(first.contains("<contactGroup "), "{first}");

    // Subscribe: a snapshot of Bob, read by index.
    let rid = alice.next_rid();
    alice
        .command(&format!("<subscribePresence rid=\"{rid}\"><uris><uri>sip:bob@example.com</uri></uris></subscribePresence>"))
        .await;
    let body = alice.poll_for("userPresence").await;
    let doc = roxmltree::Document::parse(&body).unwrap();
    assert_eq!(availability_by_index(event(&doc, "userPresence")), ("sip:bob@example.com".into(), 3500));

    // Query: the same walk works on the answer.
    let rid = alice.next_rid();
    alice.command(&format!("<queryPresence rid=\"{rid}\"><uris><uri>sip:carol@example.com</uri></uris></queryPresence>")).await;
    let body = alice.poll_for("userPresence").await;
    let doc = roxmltree::Document::parse(&body).unwrap();
    assert_eq!(availability_by_index(event(&doc, "userPresence")).0, "sip:carol@example.com");

    // Search: searchResult/item(1) is the first user found.
    let rid = alice.next_rid();
    alice.command(&format!("<search rid=\"{rid}\"><displayName>Bob</displayName><function>or</function></search>")).await;
    let body = alice.poll_for("searchResult").await;
    let doc = roxmltree::Document::parse(&body).unwrap();
    let found = item(event(&doc, "searchResult"), 1);
    assert_eq!(found.attribute("uri"), Some("sip:bob@example.com"));

    // A peer's presence change arrives, on the ticket read at sign-in.
    bob.publish_state(6500).await;
    let body = alice.poll_for("userPresence").await;
    let doc = roxmltree::Document::parse(&body).unwrap();
    assert_eq!(availability_by_index(event(&doc, "userPresence")), ("sip:bob@example.com".into(), 6500));

    // End the session: accepted, and the sid is gone afterwards.
    let rid = alice.next_rid();
    let reply = alice.command(&format!("<terminateSession rid=\"{rid}\"/>")).await;
    let doc = roxmltree::Document::parse(&reply.body).unwrap();
    assert_eq!(item(doc.root_element(), 1).tag_name().name(), "requestAccepted", "{}", reply.body);
    let request = format!(
        "GET /cwa/AsyncDataChannel.ashx?Sid={}&&AckID={}&UA=false HTTP/1.1\r\nHost: {addr}\r\nCWA-Ticket: {}\r\nConnection: close\r\n\r\n",
        alice.sid, alice.ack, alice.ticket
    );
    assert_eq!(exchange(&addr, request).await.status, 404);
}
