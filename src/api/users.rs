//! Per-user JSON endpoints: the manual (absent) state and the note — the same model CWA's
//! `publishSelfPresence` changes —, rights entries (`asnSetDynamicRights` semantics), and
//! reading presence cut by the caller's level.

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri, pv2};
use crate::model::presentity::{view, Viewer};
use crate::model::rights::{visibility, AccessLevel, Member, RightsEntry};
use crate::model::sources::{ManualKind, ManualState, Note, Reachability, Timestamp};
use crate::service::access::RightsChange;
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const MAX_TEXT_CHARS: usize = 256;

fn known_user(gateway: &Gateway, raw: &str) -> Result<String, ApiError> {
    let uri = path_uri(raw)?;
    gateway.directory.profile(&uri).map(|_| uri.clone()).ok_or_else(|| ApiError::not_found(format!("no user {uri}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AbsentStateBody {
    state: ManualKind,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    from: Option<Timestamp>,
    #[serde(default)]
    to: Option<Timestamp>,
    #[serde(default)]
    reachability: Reachability,
}

/// Admin, the user, or a watcher at Team level or above ("may set this user's absent state").
fn may_set_absent_state(gateway: &Gateway, caller: &Caller, uri: &str) -> bool {
    match caller.user() {
        Some(me) => me == uri || visibility(gateway.directory.level(uri, me)).may_set_absent_state,
        None => caller.is_admin(),
    }
}

pub async fn put_absent_state(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let uri = known_user(&gateway, &uri)?;
    if !may_set_absent_state(&gateway, &caller, &uri) {
        return Err(ApiError::permission_denied("you may not set this user's absent state"));
    }
    let body: AbsentStateBody = parse_json(&body)?;
    if body.text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
        return Err(ApiError::invalid_field("text", format!("at most {MAX_TEXT_CHARS} characters")));
    }
    if let (Some(from), Some(to)) = (body.from, body.to) {
        if to <= from {
            return Err(ApiError::invalid_field("to", "must be after from"));
        }
    }
    if body.state == ManualKind::AppearOffline && !gateway.config.enable_appear_offline {
        return Err(ApiError::invalid_field("state", "appear offline is disabled"));
    }
    let manual = ManualState { kind: body.state, text: body.text, from: body.from, to: body.to, reachability: body.reachability };
    let stored = manual.clone();
    gateway.change_presence(&uri, |p| p.manual = Some(stored)).await?;
    Ok(Json(pv2::absent_state(&uri, &manual)))
}

pub async fn delete_absent_state(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uri = known_user(&gateway, &uri)?;
    if !may_set_absent_state(&gateway, &caller, &uri) {
        return Err(ApiError::permission_denied("you may not reset this user's absent state"));
    }
    gateway.change_presence(&uri, |p| p.manual = None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NoteBody {
    text: String,
    #[serde(default)]
    expires: Option<Timestamp>,
}

pub async fn put_note(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let uri = known_user(&gateway, &uri)?;
    if !caller.is_admin_or(&uri) {
        return Err(ApiError::permission_denied("only the user or an admin may set the note"));
    }
    let body: NoteBody = parse_json(&body)?;
    if body.text.trim().is_empty() || body.text.chars().count() > crate::service::commands::MAX_NOTE_CHARS {
        return Err(ApiError::invalid_field("text", format!("1 to {} characters", crate::service::commands::MAX_NOTE_CHARS)));
    }
    if body.expires.is_some_and(|at| at <= gateway.clock.now()) {
        return Err(ApiError::invalid_field("expires", "must be in the future"));
    }
    let note = Note { text: body.text, expires: body.expires };
    let stored = note.clone();
    gateway.change_presence(&uri, |p| p.note = Some(stored)).await?;
    Ok(Json(json!({"u8sContactID": uri, "u8sNote": note.text, "expires": note.expires})))
}

pub async fn delete_note(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uri = known_user(&gateway, &uri)?;
    if !caller.is_admin_or(&uri) {
        return Err(ApiError::permission_denied("only the user or an admin may clear the note"));
    }
    gateway.change_presence(&uri, |p| p.note = None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RightBody {
    #[serde(default)]
    level: Option<String>,
    #[serde(default, rename = "iDynamicRights")]
    i_dynamic_rights: Option<u32>,
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

fn entry_json(owner: &str, watcher: &str, level: AccessLevel) -> Value {
    json!({"u8sOwnerContactID": owner, "u8sRemoteContactID": watcher, "iDynamicRights": level.pv2_value(), "level": level.name()})
}

/// `asnSetDynamicRights`: the result is the owner's personal entry for the watcher.
pub async fn put_right(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path((owner, watcher)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let owner = known_user(&gateway, &owner)?;
    let watcher = path_uri(&watcher)?;
    if !caller.is_admin_or(&owner) {
        return Err(ApiError::permission_denied("only the owner or an admin may change this list"));
    }
    let body: RightBody = parse_json(&body)?;
    let level = match (body.level.as_deref(), body.i_dynamic_rights) {
        (Some(name), None) => AccessLevel::from_name(name),
        (None, Some(value)) => AccessLevel::from_pv2_value(value),
        _ => None,
    }
    .ok_or_else(unknown_rights)?;
    let entry = RightsEntry { member: Member::Uri(watcher.clone()), level };
    gateway.change_rights(&owner, &[RightsChange::Set(entry)]).await?;
    Ok(Json(entry_json(&owner, &watcher, level)))
}

/// `asnRemoveDynamicRights`: the watcher falls back to group, domain or default levels.
pub async fn delete_right(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path((owner, watcher)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let owner = known_user(&gateway, &owner)?;
    let watcher = path_uri(&watcher)?;
    if !caller.is_admin_or(&owner) {
        return Err(ApiError::permission_denied("only the owner or an admin may change this list"));
    }
    let member = Member::Uri(watcher);
    let current = gateway.directory.rights_of(&owner).into_iter().find(|e| e.member == member);
    if let Some(entry) = current {
        gateway.change_rights(&owner, &[RightsChange::Remove { member, level: entry.level }]).await?;
    }
    Ok(Json(json!({"iResult": 0})))
}

/// The presence of `uri` as the caller may see it (admins see everything).
pub async fn get_presence(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let uri = known_user(&gateway, &uri)?;
    let (viewer, level) = match caller.user() {
        Some(me) if me == uri => (Viewer::Owner, None),
        Some(me) => {
            let level = gateway.directory.level(&uri, me);
            (Viewer::Watcher(level), Some(level))
        }
        None if caller.is_admin() => (Viewer::Owner, None),
        None => return Err(ApiError::forbidden("reading presence needs a user ticket or an admin token")),
    };
    let entry = gateway.presence_entry(&uri).ok_or_else(|| ApiError::not_found(format!("no user {uri}")))?;
    let view = {
        let live = entry.live.lock();
        view(&live.model, viewer, gateway.clock.now())
    };
    Ok(Json(pv2::presence(&view, level)))
}
