//! The CWA requests the load generator sends (logon, initiateSession + subscribePresence,
//! publishSelfPresence, queryPresence) over a pool of keep-alive command connections, and the
//! sign-in state they share: one ticket per login, updated whenever the gateway rotates it.

use crate::client::{Conn, Endpoint, Reply};
use anyhow::{bail, Result};
use hyper::Method;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub const NS: &str = "http://schemas.microsoft.com/2006/09/rtc/cwa";
pub const COMMANDS: &str = "/cwa/MainCommandHandler.ashx";

/// A signed-in user: the current ticket, shared by all of the user's sessions.
#[derive(Debug)]
pub struct Login {
    pub user: usize,
    ticket: Mutex<Arc<str>>,
}

impl Login {
    pub fn ticket(&self) -> Arc<str> {
        self.ticket.lock().clone()
    }

    /// Takes the ticket a reply carries (a rotated one replaces the old).
    pub fn observe(&self, reply: &Reply) {
        if let Some(ticket) = &reply.ticket {
            let mut current = self.ticket.lock();
            if &**current != ticket.as_str() {
                *current = Arc::from(ticket.as_str());
            }
        }
    }
}

/// A fixed number of keep-alive connections for commands; a request waits for a free one.
pub struct CommandPool {
    endpoint: Arc<Endpoint>,
    free: Mutex<Vec<Conn>>,
    permits: Semaphore,
    opened: AtomicUsize,
}

impl CommandPool {
    pub fn new(endpoint: Arc<Endpoint>, size: usize) -> CommandPool {
        CommandPool { endpoint, free: Mutex::new(Vec::new()), permits: Semaphore::new(size), opened: AtomicUsize::new(0) }
    }

    /// Sends one request on a pooled connection (opening one when none is free).
    pub async fn send(&self, method: Method, path: &str, ticket: Option<&str>, body: Option<String>) -> Result<Reply> {
        let _permit = self.permits.acquire().await?;
        let pooled = self.free.lock().pop();
        let mut conn = match pooled {
            Some(conn) if !conn.is_closed() => conn,
            _ => self.endpoint.connect(self.opened.fetch_add(1, Ordering::Relaxed)).await?,
        };
        let reply = conn.send(method, path, ticket, body).await?;
        self.free.lock().push(conn);
        Ok(reply)
    }
}

fn logon_body(uri: &str, password: &str) -> String {
    format!("<cwaRequests><logon><user>{uri}</user><password>{password}</password></logon></cwaRequests>")
}

/// `POST /forms/logon.html` on a given connection.
pub async fn logon_on(conn: &mut Conn, user: usize, uri: &str, password: &str) -> Result<Arc<Login>> {
    let reply = conn.send(Method::POST, "/forms/logon.html", None, Some(logon_body(uri, password))).await?;
    login_from(reply, user)
}

/// `POST /forms/logon.html` through the pool.
pub async fn logon(pool: &CommandPool, user: usize, uri: &str, password: &str) -> Result<Arc<Login>> {
    let reply = pool.send(Method::POST, "/forms/logon.html", None, Some(logon_body(uri, password))).await?;
    login_from(reply, user)
}

fn login_from(reply: Reply, user: usize) -> Result<Arc<Login>> {
    match (&reply.ticket, reply.status) {
        (Some(ticket), 200) => Ok(Arc::new(Login { user, ticket: Mutex::new(Arc::from(ticket.as_str())) })),
        _ => bail!("logon failed: HTTP {} {}", reply.status, reply.text()),
    }
}

fn uris_xml(uris: &[String]) -> String {
    uris.iter().map(|u| format!("<uri>{u}</uri>")).collect()
}

fn initiate_xml(rid: u32) -> String {
    format!(r#"<initiateSession rid="{rid}"><userStateAvailability>3500</userStateAvailability></initiateSession>"#)
}

fn subscribe_xml(rid: u32, uris: &[String]) -> String {
    format!(r#"<subscribePresence rid="{rid}"><uris>{}</uris></subscribePresence>"#, uris_xml(uris))
}

/// Builds a `cwaRequests` batch for a session (`sid` 0 when the batch starts one).
pub fn batch(sid: u64, methods: &str) -> String {
    let sid = if sid == 0 { String::new() } else { format!(" sid=\"{sid}\"") };
    format!(r#"<cwaRequests{sid} xmlns="{NS}">{methods}</cwaRequests>"#)
}

/// Sends a command batch for `login` and checks that every method was accepted.
pub async fn command(pool: &CommandPool, login: &Login, body: String, methods: usize) -> Result<Reply> {
    let reply = pool.send(Method::POST, COMMANDS, Some(&login.ticket()), Some(body)).await?;
    login.observe(&reply);
    check_accepted(&reply, methods)?;
    Ok(reply)
}

/// Same as [`command`] on a connection of the caller's own.
pub async fn command_on(conn: &mut Conn, login: &Login, body: String, methods: usize) -> Result<Reply> {
    let reply = conn.send(Method::POST, COMMANDS, Some(&login.ticket()), Some(body)).await?;
    login.observe(&reply);
    check_accepted(&reply, methods)?;
    Ok(reply)
}

fn check_accepted(reply: &Reply, methods: usize) -> Result<()> {
    let text = reply.text();
    if reply.status != 200 || text.matches("<requestAccepted").count() != methods {
        bail!("command not accepted: HTTP {} {}", reply.status, text);
    }
    Ok(())
}

/// The `sid` of an accepted initiateSession.
pub fn sid_of(reply: &Reply) -> Result<u64> {
    let text = reply.text();
    let start = text.find("<sid>").map(|i| i + 5);
    let end = text.find("</sid>");
    match (start, end) {
        (Some(s), Some(e)) if s < e => Ok(text[s..e].parse()?),
        _ => bail!("no sid in {text}"),
    }
}

/// initiateSession and, in the same batch, subscribePresence to `uris`; returns the sid.
pub async fn start_session(pool: &CommandPool, login: &Login, uris: &[String]) -> Result<u64> {
    let methods = if uris.is_empty() { initiate_xml(1) } else { initiate_xml(1) + &subscribe_xml(2, uris) };
    let reply = command(pool, login, batch(0, &methods), 1 + usize::from(!uris.is_empty())).await?;
    sid_of(&reply)
}

pub async fn initiate_on(conn: &mut Conn, login: &Login) -> Result<u64> {
    let reply = command_on(conn, login, batch(0, &initiate_xml(1)), 1).await?;
    sid_of(&reply)
}

pub async fn subscribe_on(conn: &mut Conn, login: &Login, sid: u64, uris: &[String]) -> Result<()> {
    command_on(conn, login, batch(sid, &subscribe_xml(2, uris)), 1).await.map(|_| ())
}

/// publishSelfPresence of a personal note.
pub fn publish_note_body(sid: u64, rid: u64, text: &str) -> String {
    batch(
        sid,
        &format!(
            r#"<publishSelfPresence rid="{rid}"><cwaCategory name="note" instanceMask="0"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal">{text}</body></note></cwaCategory></publishSelfPresence>"#
        ),
    )
}

/// queryPresence for `uris`.
pub fn query_body(sid: u64, rid: u64, uris: &[String]) -> String {
    batch(sid, &format!(r#"<queryPresence rid="{rid}"><uris>{}</uris></queryPresence>"#, uris_xml(uris)))
}

/// The data-channel request of a session.
pub fn poll_path(sid: u64, ack: u64) -> String {
    format!("/cwa/AsyncDataChannel.ashx?Sid={sid}&AckId={ack}&UA=true")
}
