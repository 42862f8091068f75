//! Any node serves any request (README "Several nodes"): a command or poll whose sid another
//! live node handed out is passed to that node at its advertised URL, and its answer — status,
//! headers (the rotated ticket among them), the body as it streams — goes back unchanged. The
//! owner authenticates the ticket itself (tickets are in the store). A sid of a node that is gone
//! is answered here, as any unknown session: CWA 18100 / HTTP 404. Standalone, or for a request
//! that was already forwarded once, nothing happens here. The passing itself is
//! [`crate::request::pass`], which the JSON API uses too.

use crate::error::GatewayError;
use crate::request::pass::{self, Passer};
use crate::service::Gateway;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub struct Forwarder {
    gateway: Arc<Gateway>,
    passer: Arc<Passer>,
}

impl Forwarder {
    pub fn new(gateway: Arc<Gateway>, passer: Arc<Passer>) -> Arc<Forwarder> {
        Arc::new(Forwarder { gateway, passer })
    }
}

/// The middleware of the command and data channels.
pub async fn to_owner(State(forwarder): State<Arc<Forwarder>>, request: Request, next: Next) -> Response {
    let gateway = &forwarder.gateway;
    if !gateway.clustered() || pass::passed(request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (sid, body) = if parts.method == Method::GET {
        (poll_sid(parts.uri.query()), body)
    } else {
        let limit = gateway.config().limits.body_bytes;
        let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
            let error = GatewayError::LimitExceeded(format!("the body exceeds {limit} bytes"));
            return xml(StatusCode::PAYLOAD_TOO_LARGE, crate::cwa::envelope::unusable_body(&error));
        };
        (command_sid(&bytes), Body::from(bytes))
    };
    let address = match sid.and_then(|sid| gateway.other_holder(sid)) {
        Some(node) => gateway.node_address(&node).await.ok().flatten(),
        None => None,
    };
    let request = Request::from_parts(parts, body);
    match address {
        // Boxed: a held poll on this node keeps no room for the forwarding client's future.
        Some(address) => Box::pin(forwarder.pass(&address, request)).await,
        None => next.run(request).await,
    }
}

impl Forwarder {
    /// Sends `request` to the node at `address` and streams its answer back.
    async fn pass(&self, address: &str, request: Request) -> Response {
        self.passer.send(address, request).await.unwrap_or_else(|why| unavailable(address, &why))
    }
}

/// The node holding the session did not answer: retryable, like a store that did not.
fn unavailable(address: &str, why: &str) -> Response {
    tracing::warn!(node = address, why, "cannot pass a request to the node holding its session");
    let mut response =
        xml(StatusCode::SERVICE_UNAVAILABLE, crate::cwa::envelope::request_failed(None, &GatewayError::StoreUnavailable));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}

/// The `Sid` of a data-channel query.
pub(super) fn poll_sid(query: Option<&str>) -> Option<u64> {
    crate::cwa::requests::parse_poll_query(query).ok()?.sid
}

/// The `sid` attribute of a command batch's `<cwaRequests …>` start tag, found by one scan of
/// that tag (the handler parses the whole body).
pub(super) fn command_sid(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<cwaRequests")?;
    let tag = &text[start..];
    let tag = &tag[..tag.find('>')?];
    let mut offset = 0;
    while let Some(found) = tag[offset..].find("sid") {
        let at = offset + found;
        offset = at + 3;
        let preceded = tag[..at].chars().next_back().is_some_and(char::is_whitespace);
        let Some(value) = tag[offset..].trim_start().strip_prefix('=') else { continue };
        if !preceded {
            continue;
        }
        let value = value.trim_start();
        let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let value = &value[1..];
        return value[..value.find(quote)?].trim().parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sid_of_a_command_batch_is_read_from_its_start_tag() {
        let batch = |s: &str| command_sid(s.as_bytes());
        assert_eq!(batch(r#"<?xml version="1.0"?><cwaRequests sid="42" xmlns="x"><a/></cwaRequests>"#), Some(42));
        assert_eq!(batch("<cwaRequests\n  xmlns='x'\tsid = '7'>"), Some(7));
        assert_eq!(batch(r#"<cwaRequests xmlns="x" nosid="5"><a sid="9"/></cwaRequests>"#), None);
        assert_eq!(batch(r#"<cwaRequests sid="x1">"#), None);
        assert_eq!(batch("<cwaRequests"), None);
        assert_eq!(poll_sid(Some("Sid=12&AckId=3")), Some(12));
        assert_eq!(poll_sid(Some("AckId=3")), None);
    }
}
