//! JSON errors of the API: an HTTP status and a body `{"code", "message", "field"?}` whose `code`
//! is stable for programs to match on.

use crate::error::GatewayError;
use axum::http::StatusCode;
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

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        let status = match &error {
            GatewayError::InvalidFormat(_) => StatusCode::BAD_REQUEST,
            GatewayError::InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::SessionNotFound => StatusCode::NOT_FOUND,
            GatewayError::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::InvalidOperation(_) => StatusCode::CONFLICT,
            GatewayError::Unauthenticated => StatusCode::UNAUTHORIZED,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
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
