//! Group and global rights entries (admin): an owner's entry for an organisational group, and
//! entries that apply to every owner ("members of r-and-d see everyone at Team"). They share the
//! rights store and the effective-level rule with the per-user entries and the CWA containers.

use super::auth::Caller;
use super::error::ApiError;
use super::users::{level_of, RightBody};
use super::{path_uri, SipUri};
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use crate::service::access::RightsChange;
use crate::service::mandates::Duty;
use crate::service::permits::{Action, Permit};
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// `{owner}/group-rights/{group}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OwnerGroupPath {
    /// The user whose list it is.
    #[param(value_type = SipUri, inline)]
    owner: String,
    /// An organisational group (the users file's `groups`).
    group: String,
}

/// `group-rights/{group}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupPath {
    /// An organisational group (the users file's `groups`).
    group: String,
}

/// A group entry as it now is.
#[derive(Serialize, ToSchema)]
pub struct GroupEntry {
    /// The owner, or `*` for a global entry.
    owner: String,
    group: String,
    level: AccessLevel,
    #[serde(rename = "iDynamicRights")]
    dynamic_rights: u32,
}

fn check_group(group: &str) -> Result<String, ApiError> {
    let group = group.trim();
    let ok = !group.is_empty()
        && group.chars().count() <= 64
        && !group.chars().any(char::is_control)
        && crate::model::text::check(group).is_ok();
    ok.then(|| group.to_string()).ok_or_else(|| ApiError::invalid_field("group", "1 to 64 characters"))
}

/// The owner's permit for group entries (an admin's only); the owner must exist and the group be
/// well-formed.
async fn checked_owner_group(gateway: &Gateway, caller: &Caller, owner: &str, group: &str) -> Result<(Permit, String), ApiError> {
    let owner = path_uri(owner)?;
    let group = check_group(group)?;
    let permit = gateway.permit(&caller.actor(), Action::GroupRights, &owner)?;
    if !gateway.user_known(&owner).await? {
        return Err(ApiError::not_found(format!("no user {owner}")));
    }
    Ok((permit, group))
}

fn entry(owner: &str, group: String, level: AccessLevel) -> GroupEntry {
    GroupEntry { owner: owner.to_string(), group, level, dynamic_rights: level.pv2_value() }
}

/// An owner's entry for every member of a group.
#[utoipa::path(
    put,
    path = "/api/v1/users/{owner}/group-rights/{group}",
    tag = "rights",
    params(OwnerGroupPath),
    request_body = RightBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entry as it now is", body = GroupEntry),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 404, description = "No such owner", body = ApiError),
        (status = 422, description = "An unknown level (`unknown_rights`) or a bad group", body = ApiError),
    )
)]
pub async fn put_owner_group(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(OwnerGroupPath { owner, group }): Path<OwnerGroupPath>,
    body: Bytes,
) -> Result<Json<GroupEntry>, ApiError> {
    let (permit, group) = checked_owner_group(&gateway, &caller, &owner, &group).await?;
    let level = level_of(&body)?;
    let change = RightsChange::Set(RightsEntry { member: Member::Group(group.clone()), level });
    gateway.set_group_rights(&permit, &[change]).await?;
    Ok(Json(entry(permit.uri(), group, level)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{owner}/group-rights/{group}",
    tag = "rights",
    params(OwnerGroupPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed (or there was none)"),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 404, description = "No such owner", body = ApiError),
        (status = 422, description = "A bad URI or group", body = ApiError),
    )
)]
pub async fn delete_owner_group(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(OwnerGroupPath { owner, group }): Path<OwnerGroupPath>,
) -> Result<StatusCode, ApiError> {
    let (permit, group) = checked_owner_group(&gateway, &caller, &owner, &group).await?;
    let member = Member::Group(group);
    // Whatever this node's copy holds: the entry may have been set on another node a moment ago.
    gateway.set_group_rights(&permit, &[RightsChange::Remove { member, level: None }]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A global entry: members of the group see every user at this level (unless an owner says otherwise).
#[utoipa::path(
    put,
    path = "/api/v1/group-rights/{group}",
    tag = "rights",
    params(GroupPath),
    request_body = RightBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entry as it now is", body = GroupEntry),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 422, description = "An unknown level (`unknown_rights`) or a bad group", body = ApiError),
    )
)]
pub async fn put_global_group(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(GroupPath { group }): Path<GroupPath>,
    body: Bytes,
) -> Result<Json<GroupEntry>, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::GlobalRights)?;
    let group = check_group(&group)?;
    let level = level_of(&body)?;
    gateway
        .change_global_rights(&mandate, &RightsChange::Set(RightsEntry { member: Member::Group(group.clone()), level }))
        .await?;
    Ok(Json(entry("*", group, level)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/group-rights/{group}",
    tag = "rights",
    params(GroupPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed (or there was none)"),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 422, description = "A bad group", body = ApiError),
    )
)]
pub async fn delete_global_group(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(GroupPath { group }): Path<GroupPath>,
) -> Result<StatusCode, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::GlobalRights)?;
    let member = Member::Group(check_group(&group)?);
    gateway.change_global_rights(&mandate, &RightsChange::Remove { member, level: None }).await?;
    Ok(StatusCode::NO_CONTENT)
}
