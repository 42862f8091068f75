//! Operations around every request: a request id (`x-request-id`, taken from the client or made
//! here, and echoed back), a tracing span carrying it, the HTTP metrics, and `GET /metrics`.
//! Spans name the method and path only: never headers, bodies or query strings, so tickets and
//! passwords stay out of the logs.

use crate::request::around::{After, Around, Hook};
use crate::service::Gateway;
use crate::telemetry;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use axum::Router;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Wraps every route with the request id, the tracing span and the HTTP metrics, around `inner`
/// (the gateway's own layers): one layer for the router, so that a request costs one boxed future.
pub fn observe<L>(router: Router, inner: L) -> Router
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    telemetry::install();
    let span = |request: &Request| {
        let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!("request", id, method = %request.method(), path = request.uri().path())
    };
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(RandomUuid))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(Around(Count))
            .layer(inner),
    )
}

/// A random (version 4) UUID for a request that brings no id, from the thread's generator (no
/// system call per request).
#[derive(Clone, Copy)]
struct RandomUuid;

impl MakeRequestId for RandomUuid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let text = uuid_v4(id_bytes());
        HeaderValue::from_bytes(&text).ok().map(RequestId::new)
    }
}

/// 16 random bytes for a request id, from a small generator of the thread's own (SplitMix64,
/// seeded once per thread from `rand`): a request id must be unique, not unpredictable — it is no
/// credential — so a few multiplications serve where a cryptographic generator costs hundreds of
/// instructions per request.
pub(super) fn id_bytes() -> [u8; 16] {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(rand::random());
    }
    STATE.with(|state| {
        let next = || {
            let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(s);
            let z = (s ^ (s >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&next().to_le_bytes());
        bytes[8..].copy_from_slice(&next().to_le_bytes());
        bytes
    })
}

/// `xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx` (RFC 9562 version 4, variant 10) of 16 random bytes.
pub(super) fn uuid_v4(mut bytes: [u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut hex = [0u8; 32];
    for (digits, byte) in hex.chunks_exact_mut(2).zip(bytes) {
        digits[0] = HEX[usize::from(byte >> 4)];
        digits[1] = HEX[usize::from(byte & 0x0f)];
    }
    let mut out = [b'-'; 36];
    out[..8].copy_from_slice(&hex[..8]);
    out[9..13].copy_from_slice(&hex[8..12]);
    out[14..18].copy_from_slice(&hex[12..16]);
    out[19..23].copy_from_slice(&hex[16..20]);
    out[24..].copy_from_slice(&hex[20..]);
    out
}

/// The HTTP metrics of a request: its route, status and duration.
#[derive(Clone)]
struct Count;

struct Counting {
    route: Option<MatchedPath>,
    started: Instant,
}

impl Hook for Count {
    type After = Counting;

    fn before(&self, request: &mut Request) -> Counting {
        Counting { route: request.extensions().get::<MatchedPath>().cloned(), started: Instant::now() }
    }
}

impl After for Counting {
    fn after(self, response: Response) -> Response {
        let route = self.route.as_ref().map(MatchedPath::as_str);
        telemetry::http_response(route, response.status().as_u16(), self.started.elapsed());
        response
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    match telemetry::render(gateway.session_count()) {
        Some(text) => {
            let mut response = text.into_response();
            let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
            response
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not available in this process").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = super::uuid_v4([0xff; 16]);
        assert_eq!(std::str::from_utf8(&id).unwrap(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = super::uuid_v4([0; 16]);
        assert_eq!(std::str::from_utf8(&id).unwrap(), "00000000-0000-4000-8000-000000000000");
        let id = super::uuid_v4(std::array::from_fn(|i| i as u8 * 17));
        assert_eq!(std::str::from_utf8(&id).unwrap(), "00112233-4455-4677-8899-aabbccddeeff");
        let made: std::collections::HashSet<[u8; 16]> = (0..1000).map(|_| super::id_bytes()).collect();
        assert_eq!(made.len(), 1000, "ids do not repeat");
    }
}
