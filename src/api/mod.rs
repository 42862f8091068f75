//! The JSON API under `/api/v1` for integrations, administration and modern clients: presence
//! sources, manual state and note, rights, and reading presence — each cut by the caller's level.

mod admin;
pub mod auth;
pub mod error;
mod images;
pub mod pv2;
mod sources;
mod users;

use crate::service::Gateway;
use axum::routing::{get, put};
use axum::Router;
use std::sync::Arc;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/api/v1/users/{uri}/sources/{source}", put(sources::put_source).delete(sources::delete_source))
        .route("/api/v1/users/{uri}/absent-state", put(users::put_absent_state).delete(users::delete_absent_state))
        .route("/api/v1/users/{uri}/note", put(users::put_note).delete(users::delete_note))
        .route("/api/v1/users/{owner}/rights/{watcher}", put(users::put_right).delete(users::delete_right))
        .route("/api/v1/users/{uri}/presence", get(users::get_presence))
        .route("/api/v1/users/{uri}/image", put(images::put_image).get(images::get_image).delete(images::delete_image))
        .route("/api/v1/users", get(admin::list_users).post(admin::create_user))
        .route("/api/v1/users/{uri}", get(admin::get_user).put(admin::put_user).delete(admin::delete_user))
}

/// Reads a JSON body into `T`, naming the offending field on error (422) or refusing non-JSON (400).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, error::ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return error::ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_json", "the body is not valid JSON");
        }
        let field = if path == "." || path.is_empty() { guess_field(&inner.to_string()) } else { path };
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        error::ApiError::invalid_field(field, message)
    })
}

/// serde names a missing or unknown tag in its message, not in the path.
fn guess_field(message: &str) -> String {
    if let Some(rest) = message.split("missing field `").nth(1) {
        return rest.split('`').next().unwrap_or("").to_string();
    }
    if let Some(rest) = message.split("unknown field `").nth(1) {
        return rest.split('`').next().unwrap_or("").to_string();
    }
    String::new()
}

/// A path URI: `sip:` form, normalised.
pub(crate) fn path_uri(raw: &str) -> Result<String, error::ApiError> {
    let uri = crate::model::contact::normalize_uri(raw);
    if !crate::model::contact::is_valid_sip_uri(&uri) {
        return Err(error::ApiError::invalid_field("uri", format!("{raw:?} is not a sip: URI")));
    }
    Ok(uri)
}
