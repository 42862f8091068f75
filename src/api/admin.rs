//! User administration (admin token): list, create, read, update and delete users. Deleting a user
//! ends their sessions, sends every watcher a final offline snapshot and removes their data.

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri, UserPath};
use crate::model::contact::{Phones, Profile};
use crate::service::auth::hash_password;
use crate::service::mandates::Duty;
use crate::service::permits::Action;
use crate::service::Gateway;
use crate::store::UserRecord;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A user as the API shows and accepts it (never with a password hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserBody {
    /// The user's `sip:` URI.
    #[schema(value_type = super::SipUri)]
    pub uri: String,
    /// 1 to 256 characters, not blank.
    #[schema(pattern = r"\S")]
    pub display_name: String,
    /// Write-only: set (or change) the password; left out, the password stays as it is.
    /// (`skip_serializing_if` rather than `skip_serializing`, so that the schema keeps the field.)
    #[serde(default, skip_serializing_if = "never_shown")]
    #[schema(write_only, min_length = 1)]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<String>,
    #[serde(default)]
    pub phones: Phones,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn never_shown<T>(_: &T) -> bool {
    true
}

impl From<&Profile> for UserBody {
    fn from(p: &Profile) -> Self {
        UserBody {
            uri: p.uri.clone(),
            display_name: p.display_name.clone(),
            password: None,
            email: p.email.clone(),
            title: p.title.clone(),
            company: p.company.clone(),
            department: p.department.clone(),
            office: p.office.clone(),
            phones: p.phones.clone(),
            groups: p.groups.clone(),
        }
    }
}

/// Checks a body and turns it into a record (hashing the password, if any, with argon2id).
async fn record_from(body: UserBody, uri: String) -> Result<UserRecord, ApiError> {
    let name = body.display_name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::invalid_field("displayName", "1 to 256 characters"));
    }
    let hash = match body.password {
        Some(p) if p.is_empty() => return Err(ApiError::invalid_field("password", "must not be empty")),
        Some(p) => Some(
            tokio::task::spawn_blocking(move || hash_password(&p))
                .await
                .map_err(|e| crate::error::GatewayError::internal("hashing", e))?
                .map_err(|e| crate::error::GatewayError::internal("hashing", e))?,
        ),
        None => None,
    };
    let profile = Profile {
        uri,
        display_name: name.to_string(),
        email: body.email,
        title: body.title,
        company: body.company,
        department: body.department,
        office: body.office,
        phones: body.phones,
        groups: body.groups,
    };
    Ok(UserRecord { profile, password_hash: hash })
}

/// Every user, by URI.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "All users", body = [UserBody]),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub async fn list_users(State(gateway): State<Arc<Gateway>>, caller: Caller) -> Result<Json<Vec<UserBody>>, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Users)?;
    let mut users: Vec<UserBody> = gateway.users(&mandate)?.iter().map(|p| UserBody::from(&**p)).collect();
    users.sort_by(|a, b| a.uri.cmp(&b.uri));
    Ok(Json(users))
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = UserBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserBody),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 409, description = "The user exists (`already_exists`)", body = ApiError),
        (status = 422, description = "A field is wrong; `field` names it", body = ApiError),
    )
)]
pub async fn create_user(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<UserBody>), ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Users)?;
    let body: UserBody = parse_json(&body)?;
    let uri = path_uri(&body.uri).map_err(|_| ApiError::invalid_field("uri", "must be a sip: URI"))?;
    let record = record_from(body, uri).await?;
    if !gateway.create_user(&mandate, &record).await? {
        let uri = &record.profile.uri;
        return Err(ApiError::new(StatusCode::CONFLICT, "already_exists", format!("{uri} already exists")));
    }
    Ok((StatusCode::CREATED, Json(UserBody::from(&record.profile))))
}

/// One user's whole record.
#[utoipa::path(
    get,
    path = "/api/v1/users/{uri}",
    tag = "users",
    params(UserPath),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "The user", body = UserBody),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the user nor an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn get_user(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<Json<UserBody>, ApiError> {
    let uri = path_uri(&uri)?;
    let permit = gateway.permit(&caller.actor(), Action::Record, &uri)?;
    // A user created on another node a moment ago is made live here first.
    gateway.user_known(&uri).await?;
    let profile = gateway.record(&permit)?.ok_or_else(|| ApiError::not_found(format!("no user {uri}")))?;
    Ok(Json(UserBody::from(&*profile)))
}

/// Creates or replaces a user.
#[utoipa::path(
    put,
    path = "/api/v1/users/{uri}",
    tag = "users",
    params(UserPath),
    request_body = UserBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored", body = UserBody),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 422, description = "A field is wrong (`uri` must match the path); `field` names it", body = ApiError),
    )
)]
pub async fn put_user(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
    body: Bytes,
) -> Result<Json<UserBody>, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Users)?;
    let uri = path_uri(&uri)?;
    let body: UserBody = parse_json(&body)?;
    if crate::model::contact::normalize_uri(&body.uri) != uri {
        return Err(ApiError::invalid_field("uri", "must match the URI in the path"));
    }
    let record = record_from(body, uri).await?;
    gateway.upsert_user(&mandate, &record).await?;
    Ok(Json(UserBody::from(&record.profile)))
}

/// Deletes a user: their sessions end and every watcher gets a final offline snapshot.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{uri}",
    tag = "users",
    params(UserPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn delete_user(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<StatusCode, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Users)?;
    let uri = path_uri(&uri)?;
    if !gateway.delete_user(&mandate, &uri).await? {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
