//! The data channel (`GET /cwa/AsyncDataChannel.ashx`) served by the connection driver itself,
//! without the router: every poll of every session comes this way, so it skips the router's
//! matching, the extractors, the tower layers and the response's `HeaderMap`, and a connection
//! remembers the hash of the ticket it last presented (`ticket::Remembered`). What it answers is
//! what the router's handler (`cwa::data_channel`, the same `cwa::answer_poll`) and its layers
//! answer, byte for byte: the layers' work (request id, tracing span, HTTP metrics, `nosniff`, the
//! cookie guard) is done here in the same order (docs/architecture.md §1.2 and §7).
//!
//! Requests it does not take go through the router as before: other methods and paths, a body,
//! CORS configured (its layer decides the answer's headers), and in a cluster a sid of another
//! node (the forwarding layer passes it on, README "Several nodes").

use super::cwa::{answer_poll, PollAnswer, PollRequest};
use crate::http::conn::head::{Framing, Head};
use crate::http::conn::response::Prepared;
use crate::request::ticket::{self, Remembered};
use crate::service::Gateway;
use crate::telemetry;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The path, and the route of its HTTP metrics.
const PATH: &str = "/cwa/AsyncDataChannel.ashx";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

    /// Whether this path answers `head` (a request without a body).
    pub fn takes(&self, head: &Head) -> bool {
        if head.method != Method::GET || head.uri.path() != PATH || head.framing != Framing::Length(0) {
            return false;
        }
        self.local(head)
    }

    /// Standalone, or the request was passed here by another node, or its sid is of this node
    /// (or of none): it is answered here. Else the router's forwarding layer decides.
    fn local(&self, head: &Head) -> bool {
        if !self.gateway.clustered() || crate::request::pass::passed(&head.headers) {
            return true;
        }
        let sid = crate::cwa::requests::parse_poll_query(head.uri.query()).ok().and_then(|q| q.sid);
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
        let mut headers = head.headers;
        guard_cookie(&mut headers, &self.gateway.config().cors_origins);
        let request_id = headers.get(REQUEST_ID).cloned().unwrap_or_else(new_request_id);
        let id = request_id.to_str().unwrap_or("");
        let span = tracing::info_span!("request", id, method = %Method::GET, path = PATH);
        let request = PollRequest::read(&self.gateway, peer, &headers, head.uri.query());
        let hash = request.presented.as_deref().map(|t| remembered.hash(t));
        drop((headers, head.uri));
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
            prepare(answer, &request_id)
        }
        .instrument(span)
    }
}

/// What the `GuardCookie` layer does (`web::GuardCookie`): a cookie without a `CWA-Ticket` header
/// counts only from the gateway's own pages (or of `origins`).
fn guard_cookie(headers: &mut HeaderMap, origins: &[String]) {
    let header = axum::http::header::COOKIE;
    if headers.contains_key(ticket::TICKET_NAME) || !headers.contains_key(&header) || super::web::cookie_allowed(headers, origins)
    {
        return;
    }
    headers.remove(header);
}

/// A version-4 UUID, as the request-id layer makes one (`ops::RandomUuid`).
fn new_request_id() -> HeaderValue {
    let text = super::ops::uuid_v4(rand::random());
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
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

/// The answer's header lines in the order the router's layers leave them: the handler's
/// `Content-Type`, `Cache-Control`, the ticket and cookie, then `nosniff`, then the request id.
fn prepare(answer: PollAnswer, request_id: &HeaderValue) -> Prepared {
    let mut lines = Vec::with_capacity(256);
    lines.extend_from_slice(b"Content-Type: text/xml; charset=utf-8\r\nCache-Control: no-store\r\n");
    if let Some((ticket, cookie)) = &answer.ticket {
        ticket::attach_lines(&mut lines, ticket, *cookie);
    }
    lines.extend_from_slice(b"X-Content-Type-Options: nosniff\r\nX-Request-Id: ");
    lines.extend_from_slice(request_id.as_bytes());
    lines.extend_from_slice(b"\r\n");
    Prepared { status: answer.status, lines, body: answer.body }
}
