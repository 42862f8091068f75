//! The JSON API under `/api/v1` for integrations, administration and modern clients: presence
//! sources, manual state and note, rights, and reading presence — each cut by the caller's level.

mod admin;
pub mod auth;
pub mod error;
mod events;
mod group_rights;
mod images;
pub mod openapi;
pub mod pv2;
mod sources;
mod users;

use crate::service::Gateway;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route of the API with its OpenAPI description: the router and the document are both
/// split from this one list, so nothing is served that is not documented, and the reverse.
fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(sources::put_source, sources::delete_source))
        .routes(routes!(users::put_absent_state, users::delete_absent_state))
        .routes(routes!(users::put_note, users::delete_note))
        .routes(routes!(users::put_right, users::delete_right))
        .routes(routes!(users::get_presence))
        .routes(routes!(images::put_image, images::get_image, images::delete_image))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user, admin::put_user, admin::delete_user))
        .routes(routes!(group_rights::put_owner_group, group_rights::delete_owner_group))
        .routes(routes!(group_rights::put_global_group, group_rights::delete_global_group))
        .routes(routes!(events::subscribe, events::unsubscribe))
        .routes(routes!(events::events))
        .routes(routes!(openapi::get_openapi))
}

pub fn router() -> Router<Arc<Gateway>> {
    routes().split_for_parts().0.layer(axum::middleware::from_fn(auth::reply_ticket))
}

/// `{uri}`: a user.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The user's `sip:` URI (compared case-insensitively), e.g. `sip:bob@example.com`.
    #[param(value_type = SipUri, inline)]
    uri: String,
}

/// A `sip:` URI as [`path_uri`] accepts it: surrounding spaces and case do not matter; `sip:`, a
/// user part, one `@` and a domain, without spaces, control or markup characters.
pub(crate) struct SipUri;

impl utoipa::PartialSchema for SipUri {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        const PART: &str = r#"[^@\s<>"'&\u0000-\u001F\u007F-\u009F]+"#;
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(format!(r"^\s*[sS][iI][pP]:{PART}@{PART}\s*$")))
            .max_length(Some(crate::model::contact::MAX_URI_BYTES))
            .examples(["sip:bob@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for SipUri {}

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
