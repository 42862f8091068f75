//! Operations around every request: a request id (`x-request-id`, taken from the client or made
//! here, and echoed back), a tracing span carrying it, the HTTP metrics, and `GET /metrics`.
//! Spans name the method and path only: never headers, bodies or query strings, so tickets and
//! passwords stay out of the logs.

use crate::service::Gateway;
use crate::telemetry;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Wraps every route with the request id, the tracing span and the HTTP metrics.
pub fn observe(router: Router) -> Router {
    telemetry::install();
    let span = |request: &Request| {
        let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info_span!("request", id, method = %request.method(), path = request.uri().path())
    };
    router.layer(middleware::from_fn(count)).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::x_request_id()),
    )
}

async fn count(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry::http_response(route.as_deref(), response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    match telemetry::render(&gateway) {
        Some(text) => {
            let mut response = text.into_response();
            let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
            response
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not available in this process").into_response(),
    }
}
