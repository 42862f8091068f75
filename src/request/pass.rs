//! Passing a request to another node of a cluster (docs/architecture.md §5, "Several nodes"), for
//! both dialects: the CWA channels' forwarding layer and the JSON API's event stream and session
//! administration. One HTTP client; the request goes out marked as passed (so the other node
//! serves it itself and never passes it on), and the answer — status, headers, the body as it
//! streams — comes back unchanged.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use std::sync::Arc;
use std::time::Duration;

/// Marks a request one node passed to another, so it is never passed on again.
const PASSED: HeaderName = HeaderName::from_static("x-presence-gateway-forwarded");

/// Headers that belong to one connection and are not passed on.
const HOP_BY_HOP: [HeaderName; 5] = [header::CONNECTION, header::HOST, header::TRANSFER_ENCODING, header::TE, header::UPGRADE];

/// The most of another node's answer read whole (a session list of 100,000 sessions fits).
const ANSWER_BYTES: usize = 64 << 20;

pub struct Passer {
    client: Client<HttpConnector, Body>,
    /// How long a passed request may take: a held poll's hold time and then some.
    limit: Duration,
}

/// Whether another node passed this request here (it is then served here, never passed on).
pub fn passed(headers: &(impl super::headers::Headers + ?Sized)) -> bool {
    headers.has(PASSED.as_str())
}

impl Passer {
    /// A client for requests that may be held up to `hold` on the other node.
    pub fn new(hold: Duration) -> Arc<Passer> {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Arc::new(Passer { client, limit: hold + Duration::from_secs(15) })
    }

    /// Sends `request` to the node at `address`; its answer as it streams, or why there is none.
    pub async fn send(&self, address: &str, mut request: Request) -> Result<Response, String> {
        let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let Ok(uri) = format!("{}{path}", address.trim_end_matches('/')).parse() else {
            return Err("its address is no URL".into());
        };
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        headers.insert(PASSED, HeaderValue::from_static("1"));
        match tokio::time::timeout(self.limit, self.client.request(request)).await {
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

    /// Sends a copy of a request already read (its method, path, headers and body).
    pub async fn copy(
        &self,
        address: &str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, String> {
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        self.send(address, request).await
    }

    /// Asks the node at `address` the same request (without a body) and reads the whole answer
    /// within `limit`: its status and body.
    pub async fn ask(
        &self,
        address: &str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        limit: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let asked = async {
            let response = self.copy(address, method, uri, headers, Bytes::new()).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), ANSWER_BYTES).await.map_err(|e| e.to_string())?;
            Ok((status, body))
        };
        tokio::time::timeout(limit, asked).await.map_err(|_| "no answer in time".to_string())?
    }
}
