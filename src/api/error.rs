//! JSON errors of the API: an HTTP status and a body `{"code", "message", "field"?}` whose `code`
//! is stable for programs to match on — also for what fails before any handler runs (no such
//! route, a method the route does not take, a body over the limit, a path or query that cannot be
//! read): [`json_errors`] turns those into the same shape.

use crate::error::GatewayError;
use crate::request::around::{After, Hook};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error: what programs match on (`code`), what people read (`message`) and, for a value that
/// was refused, the field it was in (`calls[0].state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable, for programs to match on (e.g. `unauthenticated`, `validation_failed`).
    #[schema(value_type = String)]
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    pub fn unauthenticated() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "a valid bearer token or CWA-Ticket is required")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 422 naming the field that is wrong.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { field: Some(field.into()), ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message) }
    }
}

impl ApiError {
    /// The error for a status produced below the handlers (by routing or an extractor), whose own
    /// body is plain text or empty.
    pub fn for_status(status: StatusCode, method: &Method) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("bad_request", "the path, query or body cannot be read".to_string()),
            StatusCode::NOT_FOUND => ("not_found", "no such endpoint".to_string()),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", format!("this endpoint does not take {method}")),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is larger than the limit".to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "the body's content type is not accepted".into()),
            StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "the request cannot be used".to_string()),
            StatusCode::UNAUTHORIZED => return ApiError::unauthenticated(),
            StatusCode::FORBIDDEN => ("forbidden", "not allowed".to_string()),
            StatusCode::TOO_MANY_REQUESTS => ("limit_exceeded", "too many requests".to_string()),
            s if s.is_server_error() => ("internal", "internal failure".to_string()),
            s => ("http_error", s.canonical_reason().unwrap_or("the request failed").to_string()),
        };
        ApiError::new(status, code, message)
    }
}

/// Middleware over the whole router: every error answer under `/api/v1` that is not already JSON
/// is replaced by the documented JSON error for its status (headers such as `Allow` kept), and
/// every `/api/v1` answer — they are all per caller — gets `Cache-Control: no-store`.
#[derive(Clone)]
pub struct JsonErrors;

/// The method of an `/api/v1` request (`None` for any other path: its answer is left alone).
pub struct ApiRequest(Option<Method>);

impl Hook for JsonErrors {
    type After = ApiRequest;

    fn before(&self, request: &mut Request) -> ApiRequest {
        let path = request.uri().path();
        ApiRequest((path == "/api/v1" || path.starts_with("/api/v1/")).then(|| request.method().clone()))
    }
}

impl After for ApiRequest {
    fn after(self, response: Response) -> Response {
        match self.0 {
            Some(method) => json_error(&method, response),
            None => response,
        }
    }
}

fn json_error(method: &Method, response: Response) -> Response {
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let mut response = if response.status().as_u16() >= 400 && !is_json {
        let (mut parts, _) = response.into_parts();
        let mut replaced = ApiError::for_status(parts.status, method).into_response();
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        for (name, value) in &parts.headers {
            replaced.headers_mut().entry(name).or_insert_with(|| value.clone());
        }
        replaced
    } else {
        response
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        let status = match &error {
            GatewayError::InvalidFormat(_) => StatusCode::BAD_REQUEST,
            GatewayError::InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::SessionNotFound => StatusCode::NOT_FOUND,
            GatewayError::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::InvalidOperation(_) => StatusCode::CONFLICT,
            GatewayError::PermissionDenied(_) | GatewayError::RoleRequired(_) => StatusCode::FORBIDDEN,
            GatewayError::Unauthenticated => StatusCode::UNAUTHORIZED,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::StoreUnavailable | GatewayError::LiveStateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match error.detail() {
            d if d.is_empty() => error.reason().to_string(),
            d => d,
        };
        ApiError::new(status, error.json_code(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(&self)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
