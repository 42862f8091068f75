//! Test harness: starts the real gateway on 127.0.0.1:0 with a temporary data directory and a
//! manual clock, and a small CWA client speaking HTTP to it.
#![allow(dead_code)]

use presence_gateway::config::Config;
use presence_gateway::cwa::xml::{parse, Element, XmlLimits};
use presence_gateway::service::clock::ManualClock;
use presence_gateway::service::seed::UsersFile;
use presence_gateway::service::Gateway;
use presence_gateway::store::sqlite::SqliteStore;
use std::sync::Arc;

pub const NS: &str = "http://schemas.microsoft.com/2006/09/rtc/cwa";

/// Users of the standard test organisation (password "pw" for everyone).
pub const USERS: &str = r#"
[[user]]
uri = "sip:alice@example.com"
display_name = "Alice Example"
password = "pw"
email = "alice@example.com"
title = "Engineer"
company = "Example Ltd"
phones = { work = "tel:+4989100", mobile = "tel:+49170100", home = "tel:+4989900" }
groups = ["r-and-d"]

[[user]]
uri = "sip:bob@example.com"
display_name = "Bob Builder"
password = "pw"
email = "bob@example.com"
title = "Engineer"
phones = { work = "tel:+4989101", mobile = "tel:+49170101", home = "tel:+4989901" }

[[user]]
uri = "sip:carol@example.com"
display_name = "Carol Chen"
password = "pw"

[[user]]
uri = "sip:pat@other.org"
display_name = "Pat Public"
password = "pw"

[[user]]
uri = "sip:mallory@example.com"
display_name = "Mallory"
password = "pw"

[[grant]]
owner = "sip:bob@example.com"
watcher = "sip:alice@example.com"
level = "team"

[[grant]]
owner = "sip:bob@example.com"
watcher = "sip:mallory@example.com"
level = "blocked"
"#;

pub struct TestServer {
    pub base: String,
    pub gateway: Arc<Gateway>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A config with short hold and session times so that "nothing arrives" is quick to see.
pub fn test_config() -> Config {
    Config { hold_seconds: 1, session_timeout_seconds: 30, ..Config::default() }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(test_config(), USERS).await
    }

    pub async fn start_with(config: Config, users: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        TestServer::start_in(config, users, dir).await
    }

    pub async fn start_in(config: Config, users: &str, dir: tempfile::TempDir) -> TestServer {
        TestServer::start_serving(config, users, dir, None).await
    }

    /// A server speaking HTTPS with `tls`; `base` is an `https://` address.
    pub async fn start_tls(config: Config, users: &str, tls: Arc<presence_gateway::tls::TlsServerConfig>) -> TestServer {
        TestServer::start_serving(config, users, tempfile::tempdir().unwrap(), Some(tls)).await
    }

    async fn start_serving(
        mut config: Config,
        users: &str,
        dir: tempfile::TempDir,
        tls: Option<Arc<presence_gateway::tls::TlsServerConfig>>,
    ) -> TestServer {
        config.data_dir = dir.path().to_path_buf();
        let store = SqliteStore::open(&config.data_dir).await.unwrap();
        UsersFile::parse(users).unwrap().apply(&store).await.unwrap();
        let clock = ManualClock::new(chrono::Utc::now());
        let gateway = Gateway::start(config, Arc::new(store), clock.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(presence_gateway::serve_with(listener, tls, gateway.clone(), async move {
            let _ = stopped.await;
        }));
        TestServer { base, gateway, clock, dir, stop: Some(stop), task: Some(task) }
    }

    /// Stops the server gracefully and hands back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn sign_in(&self, user: &str) -> Client {
        Client::sign_in(&self.base, user, "pw").await.expect("sign in")
    }

    /// Signs in and starts a session.
    pub async fn session(&self, user: &str) -> Client {
        let mut client = self.sign_in(user).await;
        client.initiate().await;
        client
    }
}

/// One HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub ticket: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn xml(&self) -> Element {
        parse(&self.body, XmlLimits::default()).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A CWA client with its ticket, session and last acknowledged eid.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub ticket: String,
    pub sid: u64,
    pub ack: u64,
    pub uri: String,
    rid: u64,
}

impl Client {
    pub async fn sign_in(base: &str, user: &str, password: &str) -> Result<Client, Reply> {
        let http = reqwest::Client::new();
        let body = format!("<cwaRequests><logon><user>{user}</user><password>{password}</password></logon></cwaRequests>");
        let reply = send(http.post(format!("{base}/forms/logon.html")).body(body)).await;
        if reply.status != 200 {
            return Err(reply);
        }
        let ticket = reply.ticket.clone().expect("CWA-Ticket header");
        let uri = reply.xml().child("requestSucceeded").and_then(|r| r.child_text("uri")).unwrap().to_string();
        Ok(Client { http, base: base.to_string(), ticket, sid: 0, ack: 0, uri, rid: 0 })
    }

    /// Another client (say, a second tab) sharing this sign-in's ticket, without a session yet.
    pub fn same_login(&self) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            ticket: self.ticket.clone(),
            sid: 0,
            ack: 0,
            uri: self.uri.clone(),
            rid: 100,
        }
    }

    pub fn next_rid(&mut self) -> String {
        self.rid += 1;
        self.rid.to_string()
    }

    /// Posts raw XML to the command channel with this client's ticket.
    pub async fn post_raw(&mut self, body: String) -> Reply {
        let reply = send(
            self.http
                .post(format!("{}/cwa/MainCommandHandler.ashx", self.base))
                .header("CWA-Ticket", &self.ticket)
                .header("Content-Type", "text/xml")
                .body(body),
        )
        .await;
        if let Some(t) = &reply.ticket {
            self.ticket = t.clone();
        }
        reply
    }

    /// Sends one method (XML without the envelope) on the current session.
    pub async fn command(&mut self, method: &str) -> Reply {
        let body = format!(r#"<cwaRequests sid="{}" xmlns="{NS}">{method}</cwaRequests>"#, self.sid);
        self.post_raw(body).await
    }

    pub async fn initiate(&mut self) -> Reply {
        let rid = self.next_rid();
        let reply = self
            .command(&format!(
                r#"<initiateSession rid="{rid}"><userStateAvailability>3500</userStateAvailability></initiateSession>"#
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let accepted = reply.xml();
        let accepted = accepted.child("requestAccepted").unwrap_or_else(|| panic!("{}", reply.body));
        self.sid = accepted.child_text("sid").unwrap().parse().unwrap();
        self.ack = 0;
        reply
    }

    pub async fn poll_with(&mut self, ack: u64, ua: bool) -> Reply {
        let url = format!("{}/cwa/AsyncDataChannel.ashx?Sid={}&AckId={ack}&UA={ua}", self.base, self.sid);
        let reply = send(self.http.get(url).header("CWA-Ticket", &self.ticket)).await;
        if let Some(t) = &reply.ticket {
            self.ticket = t.clone();
        }
        reply
    }

    /// Polls with the last ack and returns the events (remembering the new ack).
    pub async fn poll(&mut self) -> Vec<Event> {
        let reply = self.poll_with(self.ack, true).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let root = reply.xml();
        self.ack = root.attr("ackId").unwrap().parse().unwrap();
        events(&root)
    }

    /// Polls until an event matching `pred` arrives (each poll is held by the server; bounded).
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        for _ in 0..20 {
            if let Some(found) = self.poll().await.into_iter().find(|e| pred(e)) {
                return found;
            }
        }
        panic!("no event: {what}");
    }

    /// Polls until an event matches `until`; returns every event seen on the way (and in the
    /// batch that held the match), in order.
    pub async fn events_until(&mut self, what: &str, until: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        for _ in 0..20 {
            let batch = self.poll().await;
            let done = batch.iter().any(&until);
            seen.extend(batch);
            if done {
                return seen;
            }
        }
        panic!("no event: {what}");
    }

    /// Polls until a snapshot of `uri` arrives and returns its `user` element.
    pub async fn wait_for_user(&mut self, uri: &str, pred: impl Fn(&Element) -> bool) -> Element {
        let event = self
            .wait_for(uri, |e| e.name == "userPresence" && e.users().iter().any(|u| u.attr("uri") == Some(uri) && pred(u)))
            .await;
        event.users().into_iter().find(|u| u.attr("uri") == Some(uri)).unwrap()
    }

    pub async fn publish_state(&mut self, availability: u32) -> Reply {
        let rid = self.next_rid();
        self.command(&format!(
            r#"<publishSelfPresence rid="{rid}"><cwaCategory name="state" instanceMask="0"><state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>{availability}</availability></state></cwaCategory></publishSelfPresence>"#
        ))
        .await
    }

    pub async fn publish_note(&mut self, text: &str) -> Reply {
        let rid = self.next_rid();
        self.command(&format!(
            r#"<publishSelfPresence rid="{rid}"><cwaCategory name="note" instanceMask="0"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal">{text}</body></note></cwaCategory></publishSelfPresence>"#
        ))
        .await
    }

    pub async fn uris_method(&mut self, method: &str, uris: &[&str]) -> Reply {
        let rid = self.next_rid();
        let list: String = uris.iter().map(|u| format!("<uri>{u}</uri>")).collect();
        self.command(&format!(r#"<{method} rid="{rid}"><uris>{list}</uris></{method}>"#)).await
    }

    pub async fn subscribe(&mut self, uris: &[&str]) -> Reply {
        self.uris_method("subscribePresence", uris).await
    }

    pub async fn query(&mut self, uris: &[&str]) -> Reply {
        self.uris_method("queryPresence", uris).await
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let ticket = response.headers().get("CWA-Ticket").map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    Reply { status, ticket, body }
}

/// One event of a `cwaEvents` batch.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub eid: u64,
    pub element: Element,
}

impl Event {
    pub fn users(&self) -> Vec<Element> {
        self.element.children_named("user").cloned().collect()
    }
}

pub fn events(root: &Element) -> Vec<Event> {
    root.children
        .iter()
        .map(|e| Event { name: e.name.clone(), eid: e.attr("eid").unwrap().parse().unwrap(), element: e.clone() })
        .collect()
}

/// Reads a presence snapshot: availability, activity token, personal note, and the card phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub availability: u32,
    pub token: String,
    pub note: String,
    pub phones: Vec<String>,
    pub title: Option<String>,
}

pub fn seen(user: &Element) -> Seen {
    let category = |name: &str| user.children_named("cwaCategory").find(|c| c.attr("name") == Some(name)).cloned();
    let state = category("state").and_then(|c| c.child("state").cloned()).expect("state category");
    let note = category("note").and_then(|c| c.child("note").cloned());
    let personal =
        note.and_then(|n| n.children_named("body").find(|b| b.attr("type") == Some("personal")).map(|b| b.text.clone()));
    let card = category("contactCard").and_then(|c| c.child("contactCard").cloned());
    Seen {
        availability: state.child_text("availability").unwrap().parse().unwrap(),
        token: state.child("activity").and_then(|a| a.attr("token")).unwrap_or("").to_string(),
        note: personal.unwrap_or_default(),
        phones: card
            .as_ref()
            .map(|c| c.children_named("phone").map(|p| p.attr("type").unwrap().to_string()).collect())
            .unwrap_or_default(),
        title: card.as_ref().and_then(|c| c.child_text("title")).map(str::to_string),
    }
}

/// The `error` element of a reply's first failure.
pub fn error_code(reply: &Reply) -> u32 {
    fn find(e: &Element) -> Option<u32> {
        if e.name == "error" {
            return e.attr("code")?.parse().ok();
        }
        e.children.iter().find_map(find)
    }
    find(&reply.xml()).unwrap_or_else(|| panic!("no error element in {}", reply.body))
}
