//! Any node serves any request (README "Several nodes"): a command or poll whose sid another
//! live node handed out is passed to that node at its advertised URL, and its answer — status,
//! headers (the rotated ticket among them), the body as it streams — goes back unchanged. The
//! owner authenticates the ticket itself (tickets are in the store). A sid of a node that is gone
//! is answered here, as any unknown session: CWA 18100 / HTTP 404. Standalone, or for a request
//! that was already forwarded once, nothing happens here. The JSON API passes requests with the
//! same client ([`Forwarder::pass_api`]: a JSON event stream held elsewhere, an administrator's
//! request for another node's session) and asks every node for its part of a cluster-wide answer
//! ([`Forwarder::ask_api`]: the session list).

use crate::api::error::ApiError;
use crate::error::GatewayError;
use crate::service::Gateway;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use std::sync::Arc;
use std::time::Duration;

/// Marks a request one node passed to another, so it is never passed on again.
const FORWARDED: HeaderName = HeaderName::from_static("x-presence-gateway-forwarded");

/// Headers that belong to one connection and are not passed on.
const HOP_BY_HOP: [HeaderName; 5] = [header::CONNECTION, header::HOST, header::TRANSFER_ENCODING, header::TE, header::UPGRADE];

pub struct Forwarder {
    gateway: Arc<Gateway>,
    client: Client<HttpConnector, Body>,
}

impl Forwarder {
    pub fn new(gateway: Arc<Gateway>) -> Arc<Forwarder> {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Arc::new(Forwarder { gateway, client })
    }
}

/// The middleware of the command and data channels.
pub async fn to_owner(State(forwarder): State<Arc<Forwarder>>, request: Request, next: Next) -> Response {
    let gateway = &forwarder.gateway;
    if !gateway.backplane.is_shared() || request.headers().contains_key(&FORWARDED) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (sid, body) = if parts.method == Method::GET {
        (poll_sid(parts.uri.query()), body)
    } else {
        let limit = gateway.config.limits.body_bytes;
        let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
            let error = GatewayError::LimitExceeded(format!("the body exceeds {limit} bytes"));
            return xml(StatusCode::PAYLOAD_TOO_LARGE, crate::cwa::envelope::unusable_body(&error));
        };
        (command_sid(&bytes), Body::from(bytes))
    };
    let owner = sid.and_then(crate::backplane::node_of_sid).filter(|node| node != gateway.backplane.node());
    let address = match owner {
        Some(node) => gateway.backplane.address_of(&node).await.ok().flatten(),
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
        self.send(address, request).await.unwrap_or_else(|why| unavailable(address, &why))
    }

    /// Sends `request`, marked as passed on, to the node at `address`; its answer as it streams.
    async fn send(&self, address: &str, mut request: Request) -> Result<Response, String> {
        let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let Ok(uri) = format!("{}{path}", address.trim_end_matches('/')).parse() else {
            return Err("its address is no URL".into());
        };
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        headers.insert(FORWARDED, HeaderValue::from_static("1"));
        let limit = self.gateway.config.hold() + Duration::from_secs(15);
        match tokio::time::timeout(limit, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                for name in HOP_BY_HOP {
                    parts.headers.remove(name);
                }
                Ok(Response::from_parts(parts, Body::new(body)))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// Passes an API request (rebuilt from its method, path, headers and body) to the node at
    /// `address`; its answer streams back. A node that does not answer: 503, retryable.
    pub(crate) async fn pass_api(&self, address: &str, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        match self.send(address, request).await {
            Ok(response) => response,
            Err(why) => {
                tracing::warn!(node = address, why, "cannot pass a request to the node that serves it");
                let error =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node_unavailable", "the node serving this did not answer");
                error.into_response()
            }
        }
    }

    /// Asks the node at `address` the same API request (without a body) and reads the whole
    /// answer, within `limit`: its status and body.
    pub(crate) async fn ask_api(
        &self,
        address: &str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        limit: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let asked = async {
            let response = self.pass_api_raw(address, method, uri, headers).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), ANSWER_BYTES).await.map_err(|e| e.to_string())?;
            Ok((status, body))
        };
        tokio::time::timeout(limit, asked).await.map_err(|_| "no answer in time".to_string())?
    }

    async fn pass_api_raw(&self, address: &str, method: Method, uri: &Uri, headers: &HeaderMap) -> Result<Response, String> {
        let mut request = Request::new(Body::empty());
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        self.send(address, request).await
    }
}

/// The most of another node's answer read whole (a session list of 100,000 sessions fits).
const ANSWER_BYTES: usize = 64 << 20;

/// Whether another node passed this request here (it is then served here, never passed on).
pub(crate) fn passed(headers: &HeaderMap) -> bool {
    headers.contains_key(&FORWARDED)
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
fn poll_sid(query: Option<&str>) -> Option<u64> {
    crate::cwa::requests::parse_poll_query(query).ok()?.sid
}

/// The `sid` attribute of a command batch's `<cwaRequests …>` start tag, found by one scan of
/// that tag (the handler parses the whole body).
fn command_sid(body: &[u8]) -> Option<u64> {
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
