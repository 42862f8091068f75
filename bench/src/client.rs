//! HTTP/1.1 connections to the gateway. Every connection is bound to one of several `127.0.0.x`
//! source addresses (so that hundreds of thousands of connections would fit in the loopback port
//! ranges), sets `TCP_NODELAY`, and stays open between requests. Only 127.0.0.0/8 is ever a target.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

pub const TICKET_HEADER: &str = "CWA-Ticket";

/// Where the gateway listens and which source addresses connections come from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub server: SocketAddr,
    host: HeaderValue,
    sources: u8,
}

impl Endpoint {
    /// `sources` addresses from 127.0.0.2 upwards are used in turn (1–250).
    pub fn new(server: SocketAddr, sources: u8) -> Result<Endpoint> {
        if !is_loopback(server.ip()) {
            bail!("{server} is not a loopback address: the load generator only targets 127.0.0.0/8");
        }
        if !(1..=250).contains(&sources) {
            bail!("--sources must be between 1 and 250");
        }
        let host = HeaderValue::from_str(&server.to_string())?;
        Ok(Endpoint { server, host, sources })
    }

    /// The source address of connection number `n`.
    pub fn source(&self, n: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(self.sources)) as u8)
    }

    /// Opens connection number `n` (its source address is chosen by `n`).
    pub async fn connect(&self, n: usize) -> Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(self.source(n)), 0)).context("binding a source address")?;
        let stream = socket.connect(self.server).await.context("connecting to the gateway")?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender, task, host: self.host.clone() })
    }
}

pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// One reply, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub ticket: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}

/// One open HTTP/1.1 connection; dropping it closes the socket at once.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
    host: HeaderValue,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole reply.
    pub async fn send(&mut self, method: Method, path: &str, ticket: Option<&str>, body: Option<String>) -> Result<Reply> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder().method(method).uri(path).header(HOST, self.host.clone());
        if let Some(ticket) = ticket {
            request = request.header(TICKET_HEADER, ticket);
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "text/xml");
        }
        let request = request.body(Full::new(body.map(Bytes::from).unwrap_or_default()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let ticket = response.headers().get(TICKET_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, ticket, body })
    }
}
