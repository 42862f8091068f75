//! The JSON API under `/api/v1` for integrations, administration and modern clients: presence
//! sources, manual state and note, rights, and reading presence (one user or a batch, in Presence
//! V2 names and Graph's `availability` / `activity`) — each cut by the caller's level.

mod admin;
pub mod auth;
pub mod error;
mod events;

mod group_rights;
mod images;
pub mod openapi;
mod presence;

mod sessions;
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
        .routes(routes!(sources::put_source, sources::get_source, sources::delete_source))
        .routes(routes!(users::put_absent_state, users::delete_absent_state))
        .routes(routes!(users::put_note, users::delete_note))
        .routes(routes!(users::put_right, users::delete_right))
        .routes(routes!(presence::get_presence))
        .routes(routes!(presence::read_batch))
        .routes(routes!(images::put_image, images::get_image, images::delete_image))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user, admin::put_user, admin::delete_user))
        .routes(routes!(group_rights::put_owner_group, group_rights::delete_owner_group))
        .routes(routes!(group_rights::put_global_group, group_rights::delete_global_group))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::end_session))
        .routes(routes!(sessions::list_user_sessions, sessions::end_user_sessions))
        .routes(routes!(events::subscribe, events::unsubscribe))
        .routes(routes!(events::events))
        .routes(routes!(openapi::get_openapi))
}

/// The API's routes with their body limits: `limits.image_bytes` for pictures, `limits.body_bytes`
/// for every other body (README, "Limits").
pub fn router(limits: &crate::config::Limits) -> Router<Arc<Gateway>> {
    let limits = BodyLimits { body: limits.body_bytes, image: limits.image_bytes };
    routes()
        .split_for_parts()
        .0
        .layer(axum::middleware::from_fn_with_state(limits, limit_body))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(auth::reply_ticket))
}

#[derive(Clone, Copy)]
struct BodyLimits {
    body: usize,
    image: usize,
}

/// Refuses a declared length over the limit at once (413) and cuts off a body that grows past it
/// while being read (the handler's read then fails with 413).
async fn limit_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let limit = if request.uri().path().ends_with("/image") { limits.image } else { limits.body };
    let declared = request.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        let status = axum::http::StatusCode::PAYLOAD_TOO_LARGE;
        return error::ApiError::new(status, "payload_too_large", format!("the body is larger than {limit} bytes"))
            .into_response();
    }
    let request = request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

/// Passes a request already read to the node at `address` that serves it (docs/architecture.md
/// §5, "Several nodes"); its answer streams back. A node that does not answer: 503, retryable.
pub(crate) async fn pass_to(
    passer: &crate::request::pass::Passer,
    address: &str,
    method: axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    passer.copy(address, method, uri, headers, body).await.unwrap_or_else(|why| {
        tracing::warn!(node = address, why, "cannot pass a request to the node that serves it");
        let status = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        error::ApiError::new(status, "node_unavailable", "the node serving this did not answer").into_response()
    })
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

/// Reads a JSON body into `T`: not JSON → 400 `invalid_json`; a string (or key) holding a
/// character the input text rule refuses ([`crate::model::text`]) → 422 naming its path; otherwise
/// the first field `T` cannot take (unknown fields included, at any depth) → 422 naming it. Messages
/// never carry the gateway's own type names.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, error::ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| error::ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_json", "the body is not valid JSON"))?;
    check_json_text(&value, &mut String::new())?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = public_message(&e.into_inner().to_string());
        let root = path == "." || path.is_empty();
        let field = match message.split("missing field `").nth(1) {
            // A missing field is named in the message; the path is that of its object.
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or("");
                if root {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                }
            }
            // Anything else (an unknown field included) is at the path itself.
            None if root => String::new(),
            None => path,
        };
        match field.is_empty() {
            true => error::ApiError { field: None, ..error::ApiError::invalid_field("", message) },
            false => error::ApiError::invalid_field(field, message),
        }
    })
}

/// Applies the input text rule to every string and key of a JSON value; `path` is the path of
/// `value` in the `calls[0].number` form of the error's `field`.
fn check_json_text(value: &serde_json::Value, path: &mut String) -> Result<(), error::ApiError> {
    use serde_json::Value;
    let refuse = |path: &str, problem: crate::model::text::ForbiddenChar| {
        let refused = error::ApiError::invalid_field(path, problem.to_string());
        error::ApiError { field: (!path.is_empty()).then(|| path.to_string()), ..refused }
    };
    match value {
        Value::String(text) => crate::model::text::check(text).map_err(|p| refuse(path, p)),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let checked = check_json_text(item, path);
            path.truncate(len);
            checked
        }),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let checked = crate::model::text::check(key).map_err(|p| refuse(path, p)).and_then(|()| check_json_text(item, path));
            path.truncate(len);
            checked
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// serde's message without the gateway's type names: "expected struct NoteBody" becomes
/// "expected a JSON object", "expected enum ManualKind" "expected one of the documented values".
fn public_message(message: &str) -> String {
    const NAMED: [(&str, &str); 6] = [
        ("expected internally tagged enum ", "expected one of the documented values"),
        ("expected adjacently tagged enum ", "expected one of the documented values"),
        ("expected enum ", "expected one of the documented values"),
        ("expected tuple struct ", "expected a JSON array"),
        ("expected unit struct ", "expected null"),
        ("expected struct ", "expected a JSON object"),
    ];
    let mut out = message.split(" at line ").next().unwrap_or(message).to_string();
    for (named, plain) in NAMED {
        while let Some(at) = out.find(named) {
            let rest = &out[at + named.len()..];
            let name_len = rest.find(|c: char| !c.is_alphanumeric() && c != '_').unwrap_or(rest.len());
            out = format!("{}{plain}{}", &out[..at], &rest[name_len..]);
        }
    }
    out
}
/// Every JSON body the API reads, each parsed from the same bytes: what a client would get, `Ok`
/// or the error. For the fuzz targets in `fuzz/` (README, "Fuzzing").
#[doc(hidden)]
pub fn parse_every_body(body: &[u8]) -> Vec<Result<(), error::ApiError>> {
    vec![
        parse_json::<users::AbsentStateBody>(body).map(drop),
        parse_json::<users::NoteBody>(body).map(drop),
        users::level_of(body).map(drop),
        parse_json::<admin::UserBody>(body).map(drop),
        parse_json::<events::SubscribeBody>(body).map(drop),
        parse_json::<events::UnsubscribeBody>(body).map(drop),
        sources::parse_report(body).map(drop),
        presence::parse_batch(body).map(drop),
    ]
}

/// A path URI: `sip:` form, normalised.
pub(crate) fn path_uri(raw: &str) -> Result<String, error::ApiError> {
    let uri = crate::model::contact::normalize_uri(raw);
    if !crate::model::contact::is_valid_sip_uri(&uri) {
        return Err(error::ApiError::invalid_field("uri", format!("{raw:?} is not a sip: URI")));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> error::ApiError {
        parse_json::<events::SubscribeBody>(body.as_bytes()).err().expect("refused")
    }

    #[test]
    fn errors_name_the_exact_field() {
        assert_eq!(refusal(r#"{}"#).field.as_deref(), Some("seqContactIDs"));
        assert_eq!(refusal(r#"{"seqContactIDs":[1]}"#).field.as_deref(), Some("seqContactIDs[0]"));
        assert_eq!(refusal(r#"{"seqContactIDs":[],"bogus":1}"#).field.as_deref(), Some("bogus"));
        assert_eq!(refusal(r#"[]"#).field, None);
        let user = |body: &str| parse_json::<admin::UserBody>(body.as_bytes()).expect_err("refused");
        assert_eq!(user(r#"{"uri":"sip:a@x","displayName":"A","phones":{"fax":"1"}}"#).field.as_deref(), Some("phones.fax"));
    }

    /// Found by the `json_bodies` fuzz target: an unknown key holding a backtick was named only up
    /// to the backtick, then repeated (`a`b.a`).
    #[test]
    fn an_unknown_key_with_a_backtick_is_named_whole() {
        let refused = refusal(r#"{"seqContactIDs":[],"iContactDetailsR`noerSt":1}"#);
        assert_eq!(refused.field.as_deref(), Some("iContactDetailsR`noerSt"));
    }

    #[test]
    fn text_xml_forbids_is_refused_at_its_json_path() {
        let refused = refusal("{\"seqContactIDs\":[\"sip:a@x\",\"sip:b\\u0001@x\"]}");
        assert_eq!((refused.status.as_u16(), refused.field.as_deref()), (422, Some("seqContactIDs[1]")));
        let refused = refusal("{\"seq\\u001bContactIDs\":[]}");
        assert_eq!(refused.field.as_deref(), Some("seq\u{1b}ContactIDs"), "keys too");
    }
}
