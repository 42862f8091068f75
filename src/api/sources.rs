//! `PUT|GET|DELETE /api/v1/users/{uri}/sources/{source}`: what an integration reports about a
//! user, idempotent, kept in the store with a TTL after which the report is withdrawn by itself;
//! `GET` reads back what is stored and how long it has left.

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri, SipUri};
use crate::model::reports::{
    AgentData, CalendarData, CallsData, CapabilitiesData, ComputerData, PhoneData, ReportData, SourceReport, KINDS,
};
use crate::model::sources::Timestamp;
use crate::service::permits::Action;
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;
use utoipa::openapi::schema::{AllOfBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// The longest TTL a report may ask for (7 days).
const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

type Schemas = Vec<(String, RefOr<Schema>)>;

/// A report kind: its name, how the rest of the body is read, and the type whose schema documents
/// that rest — one row serves both the parser and the OpenAPI document.
struct Kind {
    name: &'static str,
    read: fn(&[u8]) -> Result<ReportData, ApiError>,
    schema: fn() -> RefOr<Schema>,
    schemas: fn(&mut Schemas),
}

macro_rules! kind {
    ($name:literal, $variant:ident, $data:ty) => {
        Kind {
            name: $name,
            read: |rest| Ok(ReportData::$variant(parse_json::<$data>(rest)?)),
            schema: <$data as PartialSchema>::schema,
            schemas: <$data as ToSchema>::schemas,
        }
    };
}

const REPORT_KINDS: [Kind; 8] = [
    kind!("phone", Phone, PhoneData),
    kind!("softphone", Softphone, CallsData),
    kind!("audio-video", AudioVideo, CallsData),
    kind!("bluetooth", Bluetooth, CallsData),
    kind!("calendar", Calendar, CalendarData),
    kind!("computer", Computer, ComputerData),
    kind!("agent", Agent, AgentData),
    kind!("capabilities", Capabilities, CapabilitiesData),
];

/// Splits `kind` and `ttlSeconds` off the body and reads the rest as that kind's data, so that
/// errors name the exact field (`calls[0].state`).
pub(super) fn parse_report(body: &[u8]) -> Result<(ReportData, Option<u64>), ApiError> {
    let mut value: serde_json::Value = parse_json(body)?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError { field: None, ..ApiError::invalid_field("", "the body must be a JSON object") })?;
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
    let Some(spec) = REPORT_KINDS.iter().find(|k| k.name == kind) else {
        return Err(ApiError::invalid_field("kind", format!("unknown kind {kind:?}; one of {}", KINDS.join(", "))));
    };
    Ok(((spec.read)(&rest)?, ttl))
}

impl Kind {
    /// `audio-video` → `AudioVideoReport`.
    fn schema_name(&self) -> String {
        let words = self.name.split('-').map(|w| w[..1].to_ascii_uppercase() + &w[1..]);
        words.collect::<String>() + "Report"
    }

    /// The whole body of this kind: its data's fields plus `kind` and `ttlSeconds`, in one object
    /// (so `additionalProperties: false` holds as the parser enforces it).
    fn body_schema(&self) -> RefOr<Schema> {
        let kind = ObjectBuilder::new().schema_type(Type::String).enum_values(Some([self.name])).build();
        let ttl = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_TTL_SECONDS as f64))
            .description(Some("Seconds until the report is withdrawn by itself; default `source_ttl_seconds` of the config"))
            .build();
        match (self.schema)() {
            RefOr::T(Schema::Object(mut data)) => {
                data.properties.insert("kind".into(), kind.into());
                data.properties.insert("ttlSeconds".into(), ttl.into());
                data.required.insert(0, "kind".into());
                RefOr::T(Schema::Object(data))
            }
            other => {
                let envelope = ObjectBuilder::new().property("kind", kind).property("ttlSeconds", ttl).required("kind");
                AllOfBuilder::new().item(other).item(envelope).into()
            }
        }
    }
}

/// The body of `PUT …/sources/{source}`: `kind`, an optional `ttlSeconds` and the fields of that
/// kind, one schema per kind.
pub struct SourceReportBody;

impl PartialSchema for SourceReportBody {
    fn schema() -> RefOr<Schema> {
        let mut discriminator = Discriminator::new("kind");
        let mut one_of = OneOfBuilder::new();
        for kind in &REPORT_KINDS {
            let reference = Ref::from_schema_name(kind.schema_name());
            discriminator.mapping.insert(kind.name.into(), reference.ref_location.clone());
            one_of = one_of.item(reference);
        }
        one_of.discriminator(Some(discriminator)).into()
    }
}

impl ToSchema for SourceReportBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SourceReportBody")
    }

    fn schemas(schemas: &mut Schemas) {
        for kind in &REPORT_KINDS {
            schemas.push((kind.schema_name(), kind.body_schema()));
            (kind.schemas)(schemas);
        }
    }
}

/// A stored report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceStored {
    /// When the report is withdrawn unless renewed.
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub expires: String,
    pub source: String,
    pub user: String,
}

/// A stored report as `GET` reads it back.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRead {
    /// When the report is withdrawn unless renewed (left out for a report without a TTL).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>, nullable = false)]
    pub expires: Option<String>,
    /// The report as stored: the `PUT` body without `ttlSeconds`, each call's `service` the one
    /// of its kind.
    #[schema(value_type = SourceReportBody)]
    pub report: serde_json::Value,
    pub source: String,
    /// Whole seconds until `expires` (rounded up).
    #[serde(rename = "ttlSecondsLeft", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ttl_seconds_left: Option<u64>,
    pub user: String,
}

/// `{uri}/sources/{source}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SourcePath {
    /// The user's `sip:` URI, e.g. `sip:bob@example.com`.
    #[param(value_type = SipUri, inline)]
    uri: String,
    /// The name the integration reports under: 1–64 of `A–Z a–z 0–9 . _ -`.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    source: String,
}

fn check_source_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    ok.then_some(()).ok_or_else(|| ApiError::invalid_field("source", "1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-'"))
}

/// Reports (or replaces) what the source `source` says about the user; idempotent.
#[utoipa::path(
    put,
    path = "/api/v1/users/{uri}/sources/{source}",
    tag = "sources",
    params(SourcePath),
    request_body(content = SourceReportBody, description = "The report; its `kind` says which fields it has"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored until `expires`", body = SourceStored),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "The token's role may not report sources", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "A field is wrong; `field` names it", body = ApiError),
    )
)]
pub async fn put_source(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(SourcePath { uri, source }): Path<SourcePath>,
    body: Bytes,
) -> Result<Json<SourceStored>, ApiError> {
    let uri = path_uri(&uri)?;
    let permit = gateway.permit(&caller.actor(), Action::Sources, &uri)?;
    check_source_name(&source)?;
    let (data, ttl) = parse_report(&body)?;
    data.validate().map_err(|e| ApiError::invalid_field(e.field, e.message))?;
    let ttl = ttl.unwrap_or(gateway.config().source_ttl_seconds);
    if ttl == 0 || ttl > MAX_TTL_SECONDS {
        return Err(ApiError::invalid_field("ttlSeconds", format!("must be between 1 and {MAX_TTL_SECONDS}")));
    }
    if !gateway.user_known(&uri).await? {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    let expires = gateway.now() + chrono::Duration::seconds(ttl as i64);
    gateway.report_source(&permit, &source, SourceReport { data, expires: Some(expires) }).await?;
    Ok(Json(SourceStored { expires: time(expires), source, user: uri }))
}

fn time(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reads back what the source `source` reports about the user now, with the time it has left.
#[utoipa::path(
    get,
    path = "/api/v1/users/{uri}/sources/{source}",
    tag = "sources",
    params(SourcePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored report", body = SourceRead),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "The token's role may not report sources", body = ApiError),
        (status = 404, description = "No such user, or no report from this source (never sent, withdrawn or expired)", body = ApiError),
        (status = 422, description = "The URI or source name is malformed", body = ApiError),
    )
)]
pub async fn get_source(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(SourcePath { uri, source }): Path<SourcePath>,
) -> Result<Json<SourceRead>, ApiError> {
    let uri = path_uri(&uri)?;
    let permit = gateway.permit(&caller.actor(), Action::Sources, &uri)?;
    check_source_name(&source)?;
    if !gateway.user_known(&uri).await? {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    let report = gateway.source_report(&permit, &source).await?;
    let report = report.ok_or_else(|| ApiError::not_found(format!("no report from {source} for {uri}")))?;
    let now = gateway.now();
    let data = serde_json::to_value(report.data.with_call_services())
        .map_err(|e| crate::error::GatewayError::internal("writing a report", e))?;
    let left = report.expires.map(|at| ((at - now).num_milliseconds().max(0) as u64).div_ceil(1000));
    Ok(Json(SourceRead { expires: report.expires.map(time), report: data, source, ttl_seconds_left: left, user: uri }))
}

/// Withdraws the source's report now.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{uri}/sources/{source}",
    tag = "sources",
    params(SourcePath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Withdrawn (or there was none)"),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "The token's role may not report sources", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "The URI or source name is malformed", body = ApiError),
    )
)]
pub async fn delete_source(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(SourcePath { uri, source }): Path<SourcePath>,
) -> Result<StatusCode, ApiError> {
    let uri = path_uri(&uri)?;
    let permit = gateway.permit(&caller.actor(), Action::Sources, &uri)?;
    check_source_name(&source)?;
    if !gateway.user_known(&uri).await? {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    gateway.withdraw_source(&permit, &source).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_and_the_document_know_the_model_kinds() {
        let names: Vec<&str> = REPORT_KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names, KINDS);
        assert_eq!(REPORT_KINDS[2].schema_name(), "AudioVideoReport");
    }
}
