//! `PUT|DELETE /api/v1/users/{uri}/sources/{source}`: what an integration reports about a user,
//! idempotent, with a TTL after which the report is withdrawn by itself.

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri};
use crate::model::reports::{ReportData, SourceReport, KINDS};
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// The longest TTL a report may ask for (7 days).
const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Splits `kind` and `ttlSeconds` off the body and reads the rest as that kind's data, so that
/// errors name the exact field (`calls[0].state`).
fn parse_report(body: &[u8]) -> Result<(ReportData, Option<u64>), ApiError> {
    let mut value: serde_json::Value = parse_json(body)?;
    let object = value.as_object_mut().ok_or_else(|| ApiError::invalid_field("", "the body must be a JSON object"))?;
    let kind = match object.remove("kind") {
        Some(serde_json::Value::String(kind)) => kind,
        Some(_) => return Err(ApiError::invalid_field("kind", "must be a string")),
        None => return Err(ApiError::invalid_field("kind", format!("missing; one of {}", KINDS.join(", ")))),
    };
    let ttl = match object.remove("ttlSeconds") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| ApiError::invalid_field("ttlSeconds", "must be a whole number of seconds"))?),
    };
    let rest = serde_json::to_vec(object).map_err(|e| crate::error::GatewayError::internal("re-encoding a report", e))?;
    let data = match kind.as_str() {
        "phone" => ReportData::Phone(parse_json(&rest)?),
        "softphone" => ReportData::Softphone(parse_json(&rest)?),
        "audio-video" => ReportData::AudioVideo(parse_json(&rest)?),
        "bluetooth" => ReportData::Bluetooth(parse_json(&rest)?),
        "calendar" => ReportData::Calendar(parse_json(&rest)?),
        "computer" => ReportData::Computer(parse_json(&rest)?),
        "agent" => ReportData::Agent(parse_json(&rest)?),
        "capabilities" => ReportData::Capabilities(parse_json(&rest)?),
        other => return Err(ApiError::invalid_field("kind", format!("unknown kind {other:?}; one of {}", KINDS.join(", ")))),
    };
    Ok((data, ttl))
}

fn check_source_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    ok.then_some(()).ok_or_else(|| ApiError::invalid_field("source", "1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-'"))
}

fn require_source_role(caller: &Caller) -> Result<(), ApiError> {
    caller
        .may_report_sources()
        .then_some(())
        .ok_or_else(|| ApiError::forbidden("reporting sources needs a source or admin token"))
}

pub async fn put_source(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path((uri, source)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    require_source_role(&caller)?;
    let uri = path_uri(&uri)?;
    check_source_name(&source)?;
    let (data, ttl) = parse_report(&body)?;
    data.validate().map_err(|e| ApiError::invalid_field(e.field, e.message))?;
    let ttl = ttl.unwrap_or(gateway.config.source_ttl_seconds);
    if ttl == 0 || ttl > MAX_TTL_SECONDS {
        return Err(ApiError::invalid_field("ttlSeconds", format!("must be between 1 and {MAX_TTL_SECONDS}")));
    }
    if gateway.directory.profile(&uri).is_none() {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    let expires = gateway.clock.now() + chrono::Duration::seconds(ttl as i64);
    gateway.set_source(&uri, &source, SourceReport { data, expires: Some(expires) })?;
    let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(Json(json!({"user": uri, "source": source, "expires": expires})))
}

pub async fn delete_source(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path((uri, source)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_source_role(&caller)?;
    let uri = path_uri(&uri)?;
    check_source_name(&source)?;
    if gateway.directory.profile(&uri).is_none() {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    gateway.remove_source(&uri, &source)?;
    Ok(StatusCode::NO_CONTENT)
}
