//! The data channel (`GET /cwa/AsyncDataChannel.ashx`) served by the connection driver itself,
//! without the router: every poll of every session comes this way, so it skips the request's
//! `Uri` and `HeaderMap` (the few header lines it needs are read from the head's bytes), the
//! router's matching, the extractors, the tower layers and the response's `HeaderMap`, and a
//! connection remembers the hash of the ticket it last presented (`ticket::Remembered`). What it answers is
//! what the router's handler (`cwa::data_channel`, the same `cwa::answer_poll`) and its layers
//! answer, byte for byte: the layers' work (request id, tracing span, HTTP metrics, `nosniff`, the
//! cookie guard) is done here in the same order (docs/architecture.md §1.2 and §7).
//!
//! Requests it does not take go through the router as before: other methods and paths, a target
//! that is not a plain path and query, a body, CORS configured (its layer decides the answer's headers), and in a cluster a sid of another
//! node (the forwarding layer passes it on, README "Several nodes").

use super::cwa::{answer_poll, PollAnswer, PollRequest};
use crate::http::conn::head::{Framing, Head, Lines};
use crate::http::conn::response::{self, Prepared};
use crate::request::headers::{visible_ascii, Headers};
use crate::request::ticket::{self, Remembered};
use crate::service::Gateway;
use crate::telemetry;
use axum::http::{Method, StatusCode, Version};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The path, and the route of its HTTP metrics.
const PATH: &str = "/cwa/AsyncDataChannel.ashx";

/// The data channel's own path; see the module documentation.
pub struct DataChannel {
    gateway: Arc<Gateway>,
}

impl DataChannel {
    /// `None` when CORS is configured: its layer shapes every answer, so polls go through the router.
    pub fn new(gateway: Arc<Gateway>) -> Option<Arc<DataChannel>> {
        if super::web::cors(&gateway.config().cors_origins).is_some() {
            return None;
        }
        Some(Arc::new(DataChannel { gateway }))
    }

    /// Whether this path answers `head`: a `GET` of the path without a body, its target a plain
    /// path and query (`Head::path_and_query`; any other goes to the router).
    pub fn takes(&self, head: &Head) -> bool {
        if head.method != Method::GET || head.framing != Framing::Length(0) {
            return false;
        }
        match head.path_and_query() {
            Some((path, query)) if path == PATH => self.local(head, query),
            _ => false,
        }
    }

    /// Standalone, or the request was passed here by another node, or its sid is of this node
    /// (or of none): it is answered here. Else the router's forwarding layer decides.
    fn local(&self, head: &Head, query: Option<&str>) -> bool {
        if !self.gateway.clustered() || head.with_lines(|lines| crate::request::pass::passed(lines)) {
            return true;
        }
        let sid = crate::cwa::requests::parse_poll_query(query).ok().and_then(|q| q.sid);
        sid.and_then(|sid| self.gateway.other_holder(sid)).is_none()
    }

    /// Answers one poll. Everything needed is read from `head` before the returned future is
    /// made, so a held poll keeps nothing of the request but the ticket presented.
    pub fn answer(
        self: Arc<Self>,
        head: Head,
        peer: SocketAddr,
        remembered: &mut Remembered,
    ) -> impl Future<Output = Prepared> + Send + 'static {
        let started = Instant::now();
        let query = head.path_and_query().and_then(|(_, query)| query);
        let (request, request_id) = head.with_lines(|lines| {
            let mut request = PollRequest::read(&self.gateway, peer, lines, query);
            if cookie_refused(lines, &self.gateway.config().cors_origins) {
                request.presented = None;
            }
            (request, RequestId::of(lines))
        });
        let version = head.version;
        drop(head);
        let id = visible_ascii(request_id.as_bytes()).unwrap_or("");
        let span = tracing::info_span!("request", id, method = %Method::GET, path = PATH);
        let hash = request.presented.as_deref().map(|t| remembered.hash(t));
        async move {
            tracing::debug!(target: "tower_http::trace::on_request", "started processing request");
            let auth = match (request.presented.as_deref(), hash) {
                (Some(ticket), Some(hash)) => Some(self.gateway.authenticate_hashed(ticket, hash).await),
                _ => None,
            };
            let answer = answer_poll(&self.gateway, request, auth).await;
            let took = started.elapsed();
            telemetry::http_response(Some(PATH), answer.status.as_u16(), took);
            trace_response(answer.status, took);
            prepare(answer, version, &request_id)
        }
        .instrument(span)
    }
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
fn prepare(answer: PollAnswer, version: Version, request_id: &RequestId) -> Prepared {
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
