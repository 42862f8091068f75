//! The CWA command channel (`POST /cwa/MainCommandHandler.ashx`) and data channel (`GET
//! /cwa/AsyncDataChannel.ashx`) served by the connection driver itself, without the router: every
//! command and every poll of every session comes this way, so they skip the request's `Uri` and
//! `HeaderMap` (the few header lines they need are read from the head's bytes), the router's
//! matching, the extractors, the tower layers and the response's `HeaderMap`, and a connection
//! remembers the hash of the ticket it last presented (`ticket::Remembered`). What they answer is
//! what the router's handlers (`cwa::command` and `cwa::data_channel`, the same `cwa::answer_command`
//! and `cwa::answer_poll`) and their layers answer, byte for byte: the layers' work (request id,
//! tracing span, HTTP metrics, `nosniff`, the cookie guard) is done here in the same order
//! (docs/architecture.md §1.2 and §7).
//!
//! Requests they do not take go through the router as before: other methods and paths, a target
//! that is not a plain path and query, a poll with a body, a body over the limit, CORS configured
//! (its layer decides the answer's headers), and in a cluster a sid of another node (the
//! forwarding layer passes it on, README "Several nodes").

use super::cwa::{answer_command, answer_poll, body_within_limit, check_ticket, ChannelAnswer, CommandRequest, PollRequest};
use crate::http::conn::head::{Framing, Head, Lines};
use crate::http::conn::response::{self, Prepared};
use crate::request::headers::{visible_ascii, Headers};
use crate::request::ticket::{self, Remembered};
use crate::service::Gateway;
use crate::telemetry;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Version};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The paths, which are also the routes of their HTTP metrics.
const DATA_CHANNEL: &str = "/cwa/AsyncDataChannel.ashx";
const COMMAND_CHANNEL: &str = "/cwa/MainCommandHandler.ashx";

/// The channels' own path; see the module documentation.
pub struct Channels {
    gateway: Arc<Gateway>,
}

/// Which channel a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Command,
    Data,
}

impl Channels {
    /// `None` when CORS is configured: its layer shapes every answer, so requests go through the router.
    pub fn new(gateway: Arc<Gateway>) -> Option<Arc<Channels>> {
        if super::web::cors(&gateway.config().cors_origins).is_some() {
            return None;
        }
        Some(Arc::new(Channels { gateway }))
    }

    /// The channel that answers `head` (with `body`, read whole) here, if any: a `GET` of the data
    /// channel without a body, or a `POST` of the command channel; the target a plain path and
    /// query (`Head::path_and_query`; any other goes to the router).
    pub fn takes(&self, head: &Head, body: &[u8]) -> Option<Channel> {
        let (path, query) = head.path_and_query()?;
        let channel = match (&head.method, path) {
            (&Method::GET, DATA_CHANNEL) if head.framing == Framing::Length(0) => Channel::Data,
            (&Method::POST, COMMAND_CHANNEL) => Channel::Command,
            _ => return None,
        };
        self.local(head, channel, query, body).then_some(channel)
    }

    /// Standalone, or the request was passed here by another node, or its sid is of this node
    /// (or of none): it is answered here. Else the router's forwarding layer decides.
    fn local(&self, head: &Head, channel: Channel, query: Option<&str>, body: &[u8]) -> bool {
        if !self.gateway.clustered() || head.with_lines(|lines| crate::request::pass::passed(lines)) {
            return true;
        }
        let sid = match channel {
            Channel::Data => super::forward::poll_sid(query),
            Channel::Command => super::forward::command_sid(body),
        };
        sid.and_then(|sid| self.gateway.other_holder(sid)).is_none()
    }

    /// Answers one request of `channel`. Everything needed is read from `head` before the
    /// returned future is made, so a held poll keeps nothing of the request but the ticket presented.
    pub fn answer(
        self: Arc<Self>,
        channel: Channel,
        head: Head,
        body: Bytes,
        peer: SocketAddr,
        remembered: &mut Remembered,
    ) -> std::pin::Pin<Box<dyn Future<Output = Prepared> + Send + 'static>> {
        match channel {
            Channel::Data => Box::pin(self.answer_poll(head, peer, remembered)),
            Channel::Command => Box::pin(self.answer_command(head, body, peer, remembered)),
        }
    }

    fn answer_poll(
        self: Arc<Self>,
        head: Head,
        peer: SocketAddr,
        remembered: &mut Remembered,
    ) -> impl Future<Output = Prepared> + Send + 'static {
        let query = head.path_and_query().and_then(|(_, query)| query);
        let mut request = head.with_lines(|lines| PollRequest::read(&self.gateway, peer, lines, query));
        let Observed { started, version, request_id, span } =
            self.observe(&head, Method::GET, DATA_CHANNEL, &mut request.presented);
        drop(head);
        let hash = request.presented.as_deref().map(|t| remembered.hash(t));
        async move {
            tracing::debug!(target: "tower_http::trace::on_request", "started processing request");
            let auth = check_ticket(&self.gateway, request.presented.take(), hash).await;
            let answer = answer_poll(&self.gateway, request, auth).await;
            finish(answer, DATA_CHANNEL, started, version, &request_id)
        }
        .instrument(span)
    }

    fn answer_command(
        self: Arc<Self>,
        head: Head,
        body: Bytes,
        peer: SocketAddr,
        remembered: &mut Remembered,
    ) -> impl Future<Output = Prepared> + Send + 'static {
        let mut request = head.with_lines(|lines| CommandRequest::read(&self.gateway, peer, lines));
        let Observed { started, version, request_id, span } =
            self.observe(&head, Method::POST, COMMAND_CHANNEL, &mut request.presented);
        drop(head);
        let hash = request.presented.as_deref().map(|t| remembered.hash(t));
        async move {
            tracing::debug!(target: "tower_http::trace::on_request", "started processing request");
            let body = body_within_limit(&self.gateway, body);
            let auth = check_ticket(&self.gateway, request.presented.take(), hash).await;
            let answer = answer_command(&self.gateway, request, auth, body).await;
            finish(answer, COMMAND_CHANNEL, started, version, &request_id)
        }
        .instrument(span)
    }

    /// The outer layers' work before the handler: the clock starts, the request id is taken or
    /// made, the tracing span opens, and the cookie guard drops a ticket cookie that does not count.
    fn observe(&self, head: &Head, method: Method, path: &'static str, presented: &mut Option<String>) -> Observed {
        let started = Instant::now();
        let request_id = head.with_lines(|lines| {
            if cookie_refused(lines, &self.gateway.config().cors_origins) {
                *presented = None;
            }
            RequestId::of(lines)
        });
        // The id is read only when the span is recorded (the macro evaluates its fields then).
        let span = tracing::info_span!("request", id = request_id.as_str(), method = %method, path);
        Observed { started, version: head.version, request_id, span }
    }
}

/// What the router's outer layers note of a request before its handler runs.
struct Observed {
    started: Instant,
    version: Version,
    request_id: RequestId,
    span: tracing::Span,
}

/// The outer layers' work after the handler: metrics and the tracing layer's closing events;
/// then the answer's head.
fn finish(answer: ChannelAnswer, path: &'static str, started: Instant, version: Version, request_id: &RequestId) -> Prepared {
    let took = started.elapsed();
    telemetry::http_response(Some(path), answer.status.as_u16(), took);
    trace_response(answer.status, took);
    prepare(answer, version, request_id)
}

/// What the `GuardCookie` layer does (`web::GuardCookie`): a cookie without a `CWA-Ticket` header
/// counts only from the gateway's own pages (or of `origins`). `true` when it does not count, and
/// so no ticket is presented.
fn cookie_refused(lines: &Lines<'_>, origins: &[String]) -> bool {
    !lines.has("cwa-ticket") && lines.has("cookie") && !super::web::cookie_allowed(lines, origins)
}

/// The request id the answer echoes: the client's (its first `X-Request-Id`), or a version-4
/// UUID as the request-id layer makes one (`ops::RandomUuid`).
enum RequestId {
    Given(Box<[u8]>),
    Made([u8; 36]),
}

impl RequestId {
    fn of(lines: &Lines<'_>) -> RequestId {
        match lines.value("x-request-id") {
            Some(given) => RequestId::Given(given.into()),
            None => RequestId::Made(super::ops::uuid_v4(super::ops::id_bytes())),
        }
    }

    /// The id as text; a client's id only if it is visible ASCII ("" otherwise).
    fn as_str(&self) -> &str {
        match self {
            RequestId::Given(given) => visible_ascii(given).unwrap_or(""),
            RequestId::Made(made) => std::str::from_utf8(made).unwrap_or(""),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Given(given) => given,
            RequestId::Made(made) => made,
        }
    }
}

/// The events the tracing layer (`tower_http::trace`, with its defaults) logs at the end.
fn trace_response(status: StatusCode, took: std::time::Duration) {
    let latency = Millis(took);
    if status.is_server_error() {
        tracing::error!(
            target: "tower_http::trace::on_failure",
            classification = %format_args!("Status code: {status}"),
            %latency,
            "response failed"
        );
    }
    tracing::debug!(target: "tower_http::trace::on_response", %latency, status = status.as_u16(), "finished processing request");
}

/// A latency as the tracing layer writes it.
struct Millis(std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

/// The answer's head in one buffer: the status line, then the header lines in the order the
/// router's layers leave them (the handler's `Content-Type`, `Cache-Control`, the ticket and
/// cookie, then `nosniff`, then the request id); `response::write_prepared` ends it.
fn prepare(answer: ChannelAnswer, version: Version, request_id: &RequestId) -> Prepared {
    let mut head = response::prepared_head(version, answer.status);
    head.extend_from_slice(b"Content-Type: text/xml; charset=utf-8\r\nCache-Control: no-store\r\n");
    if let Some((ticket, cookie)) = &answer.ticket {
        ticket::attach_lines(&mut head, ticket, *cookie);
    }
    head.extend_from_slice(b"X-Content-Type-Options: nosniff\r\nX-Request-Id: ");
    head.extend_from_slice(request_id.as_bytes());
    head.extend_from_slice(b"\r\n");
    Prepared { head, body: answer.body }
}
