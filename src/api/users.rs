//! Per-user JSON endpoints: the manual (absent) state and the note — the same model CWA's
//! `publishSelfPresence` changes — and rights entries (`asnSetDynamicRights` semantics). Reading
//! presence is `super::presence`.

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri, SipUri, UserPath};
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use crate::model::sources::{ManualKind, ManualState, Note, Reachability, Timestamp};
use crate::pv2;
use crate::pv2::AbsentStateV2;
use crate::service::access::RightsChange;
use crate::service::permits::Action;
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

const MAX_TEXT_CHARS: usize = 256;

/// The user of a path: 404 when no user has that URI (the store decides, `Gateway::user_known`).
async fn known_user(gateway: &Gateway, raw: &str) -> Result<String, ApiError> {
    let uri = path_uri(raw)?;
    match gateway.user_known(&uri).await? {
        true => Ok(uri),
        false => Err(ApiError::not_found(format!("no user {uri}"))),
    }
}

/// The manual ("absent") state to set.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbsentStateBody {
    state: ManualKind,
    #[serde(default)]
    #[schema(schema_with = absent_text_schema)]
    text: Option<String>,
    /// In force from (default: now).
    #[serde(default)]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    from: Option<Timestamp>,
    /// In force until (after `from`); then it ends by itself.
    #[serde(default)]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    to: Option<Timestamp>,
    #[serde(default)]
    reachability: Reachability,
}

/// A text of at most `max` characters.
fn text_schema(min: usize, max: usize, description: &str) -> ObjectBuilder {
    let min = (min > 0).then_some(min);
    ObjectBuilder::new().schema_type(Type::String).min_length(min).max_length(Some(max)).description(Some(description))
}

fn absent_text_schema() -> impl Into<RefOr<Schema>> {
    text_schema(0, MAX_TEXT_CHARS, "Shown with the state").schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

fn note_text_schema() -> impl Into<RefOr<Schema>> {
    text_schema(1, crate::service::commands::MAX_NOTE_CHARS, "The note; not blank").pattern(Some(r"\S"))
}

/// Sets the user's manual state, as CWA's `publishSelfPresence` does.
#[utoipa::path(
    put,
    path = "/api/v1/users/{uri}/absent-state",
    tag = "presence",
    params(UserPath),
    request_body = AbsentStateBody,
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Set", body = AbsentStateV2),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Not an admin, the user, or a watcher at team level or above", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "A field is wrong; `field` names it", body = ApiError),
    )
)]
pub async fn put_absent_state(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
    body: Bytes,
) -> Result<Json<AbsentStateV2>, ApiError> {
    let uri = known_user(&gateway, &uri).await?;
    let permit = gateway.permit(&caller.actor(), Action::AbsentState, &uri)?;
    let body: AbsentStateBody = parse_json(&body)?;
    if body.text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
        return Err(ApiError::invalid_field("text", format!("at most {MAX_TEXT_CHARS} characters")));
    }
    if body.to.is_some_and(|to| to <= gateway.now()) {
        return Err(ApiError::invalid_field("to", "must be in the future"));
    }
    if let (Some(from), Some(to)) = (body.from, body.to) {
        if to <= from {
            return Err(ApiError::invalid_field("to", "must be after from"));
        }
    }
    if body.state == ManualKind::AppearOffline && !gateway.config().enable_appear_offline {
        return Err(ApiError::invalid_field("state", "appear offline is disabled"));
    }
    let manual = ManualState { kind: body.state, text: body.text, from: body.from, to: body.to, reachability: body.reachability };
    gateway.set_manual_state(&permit, Some(manual.clone())).await?;
    Ok(Json(pv2::absent_state(&uri, &manual)))
}

/// Resets the manual state: presence follows the user's clients and sources again.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{uri}/absent-state",
    tag = "presence",
    params(UserPath),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 204, description = "Reset"),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Not an admin, the user, or a watcher at team level or above", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn delete_absent_state(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<StatusCode, ApiError> {
    let uri = known_user(&gateway, &uri).await?;
    let permit = gateway.permit(&caller.actor(), Action::AbsentState, &uri)?;
    gateway.set_manual_state(&permit, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The personal note to set.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoteBody {
    #[schema(schema_with = note_text_schema)]
    text: String,
    /// When the note goes by itself (in the future).
    #[serde(default)]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    expires: Option<Timestamp>,
}

/// The note as set (`AsnCustomNote` names).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteV2 {
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    expires: Option<Timestamp>,
    #[serde(rename = "u8sContactID")]
    contact_id: String,
    #[serde(rename = "u8sNote")]
    note: String,
}

/// Sets the user's personal note.
#[utoipa::path(
    put,
    path = "/api/v1/users/{uri}/note",
    tag = "presence",
    params(UserPath),
    request_body = NoteBody,
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Set", body = NoteV2),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the user nor an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "A field is wrong; `field` names it", body = ApiError),
    )
)]
pub async fn put_note(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
    body: Bytes,
) -> Result<Json<NoteV2>, ApiError> {
    let uri = known_user(&gateway, &uri).await?;
    let permit = gateway.permit(&caller.actor(), Action::Note, &uri)?;
    let body: NoteBody = parse_json(&body)?;
    if body.text.trim().is_empty() || body.text.chars().count() > crate::service::commands::MAX_NOTE_CHARS {
        return Err(ApiError::invalid_field("text", format!("1 to {} characters", crate::service::commands::MAX_NOTE_CHARS)));
    }
    if body.expires.is_some_and(|at| at <= gateway.now()) {
        return Err(ApiError::invalid_field("expires", "must be in the future"));
    }
    let note = Note { text: body.text, expires: body.expires };
    gateway.set_note(&permit, Some(note.clone())).await?;
    Ok(Json(NoteV2 { expires: note.expires, contact_id: uri, note: note.text }))
}

/// Clears the user's personal note.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{uri}/note",
    tag = "presence",
    params(UserPath),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 204, description = "Cleared"),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the user nor an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn delete_note(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<StatusCode, ApiError> {
    let uri = known_user(&gateway, &uri).await?;
    let permit = gateway.permit(&caller.actor(), Action::Note, &uri)?;
    gateway.set_note(&permit, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The watcher's level, by name or as a Presence V2 rights value: exactly one of the two (a
/// `null` counts as left out).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RightBody {
    #[serde(default)]
    level: Option<String>,
    #[serde(default, rename = "iDynamicRights")]
    i_dynamic_rights: Option<u32>,
}

impl PartialSchema for RightBody {
    fn schema() -> RefOr<Schema> {
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let by_name = ObjectBuilder::new()
            .description(Some("By name (case-insensitive)"))
            .property("level", <AccessLevel as PartialSchema>::schema())
            .property("iDynamicRights", null())
            .required("level")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let values = AccessLevel::ALL.map(AccessLevel::pv2_value);
        let by_value = ObjectBuilder::new()
            .description(Some("As a Presence V2 rights value"))
            .property("iDynamicRights", ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some(values)))
            .property("level", null())
            .required("iDynamicRights")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new().item(by_name).item(by_value).into()
    }
}

impl ToSchema for RightBody {}

/// `{owner}/rights/{watcher}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RightPath {
    /// The user whose list it is, e.g. `sip:bob@example.com`.
    #[param(value_type = SipUri, inline)]
    owner: String,
    /// The watcher the entry is for, e.g. `sip:alice@example.com`.
    #[param(value_type = SipUri, inline)]
    watcher: String,
}

/// The owner's entry for a watcher.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RightsEntryV2 {
    /// 0 blocked, 65536 public, 131072 company, 262144 team, 524288 personal.
    #[serde(rename = "iDynamicRights")]
    dynamic_rights: u32,
    level: AccessLevel,
    #[serde(rename = "u8sOwnerContactID")]
    owner: String,
    #[serde(rename = "u8sRemoteContactID")]
    watcher: String,
}

/// `asnRemoveDynamicRights`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveRightsResult {
    /// 0: done (also when there was no entry).
    #[serde(rename = "iResult")]
    result: u32,
}

/// The level a [`RightBody`] names (by name or Presence V2 value, exactly one of the two).
pub(crate) fn level_of(body: &[u8]) -> Result<AccessLevel, ApiError> {
    let body: RightBody = parse_json(body)?;
    match (body.level.as_deref(), body.i_dynamic_rights) {
        (Some(name), None) => AccessLevel::from_name(name),
        (None, Some(value)) => AccessLevel::from_pv2_value(value),
        _ => None,
    }
    .ok_or_else(unknown_rights)
}

fn unknown_rights() -> ApiError {
    ApiError {
        field: Some("level".into()),
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_rights",
            "level must be blocked, public, company, team or personal (iDynamicRights 0, 65536, 131072, 262144, 524288)",
        )
    }
}

/// `asnSetDynamicRights`: the result is the owner's personal entry for the watcher.
#[utoipa::path(
    put,
    path = "/api/v1/users/{owner}/rights/{watcher}",
    tag = "rights",
    params(RightPath),
    request_body = RightBody,
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "The entry as it now is", body = RightsEntryV2),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the owner nor an admin", body = ApiError),
        (status = 404, description = "No such owner", body = ApiError),
        (status = 422, description = "An unknown level (`unknown_rights`) or another wrong field", body = ApiError),
    )
)]
pub async fn put_right(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(RightPath { owner, watcher }): Path<RightPath>,
    body: Bytes,
) -> Result<Json<RightsEntryV2>, ApiError> {
    let owner = known_user(&gateway, &owner).await?;
    let watcher = path_uri(&watcher)?;
    let permit = gateway.permit(&caller.actor(), Action::Rights, &owner)?;
    let level = level_of(&body)?;
    let entry = RightsEntry { member: Member::Uri(watcher.clone()), level };
    gateway.set_rights(&permit, &[RightsChange::Set(entry)]).await?;
    Ok(Json(RightsEntryV2 { dynamic_rights: level.pv2_value(), level, owner, watcher }))
}

/// `asnRemoveDynamicRights`: the watcher falls back to group, domain or default levels.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{owner}/rights/{watcher}",
    tag = "rights",
    params(RightPath),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Removed (or there was no entry)", body = RemoveRightsResult),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the owner nor an admin", body = ApiError),
        (status = 404, description = "No such owner", body = ApiError),
        (status = 422, description = "A URI is malformed", body = ApiError),
    )
)]
pub async fn delete_right(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(RightPath { owner, watcher }): Path<RightPath>,
) -> Result<Json<RemoveRightsResult>, ApiError> {
    let owner = known_user(&gateway, &owner).await?;
    let watcher = path_uri(&watcher)?;
    let permit = gateway.permit(&caller.actor(), Action::Rights, &owner)?;
    let member = Member::Uri(watcher);
    // Whatever this node's copy holds: the entry may have been set on another node a moment ago.
    gateway.set_rights(&permit, &[RightsChange::Remove { member, level: None }]).await?;
    Ok(Json(RemoveRightsResult { result: 0 }))
}
