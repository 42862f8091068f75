//! Live sessions for administrators (admin token): list them — all, or one user's — and end one
//! session or all of a user's. See [`crate::service::live_sessions`] for what ending does.

use super::auth::Caller;
use super::error::ApiError;
use super::{path_uri, UserPath};
use crate::service::live_sessions::SessionSummary;
use crate::service::Gateway;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    /// The session id (`sid`).
    pub sid: u64,
    /// The signed-in user.
    #[schema(value_type = super::SipUri)]
    pub user: String,
    /// The gateway node the session lives on (its host name).
    pub node: String,
    /// The client's address when the session started (behind trusted proxies, from `X-Forwarded-For`).
    pub client_address: Option<String>,
    /// `cwa` for a data channel, `json` for a JSON event stream.
    #[schema(pattern = "^(cwa|json)$")]
    pub kind: String,
    pub started: DateTime<Utc>,
    /// When the client last polled (a held poll counts as polling now).
    pub last_poll: DateTime<Utc>,
    /// A poll is held right now.
    pub polling: bool,
    /// `active`, or `idle` after `idle_timeout_seconds` without user activity.
    #[schema(pattern = "^(active|idle)$")]
    pub state: String,
    /// Presentities the session is subscribed to.
    pub subscriptions: u64,
    /// Events not yet acknowledged by the client.
    pub queued: u64,
}

impl From<SessionSummary> for SessionBody {
    fn from(s: SessionSummary) -> Self {
        SessionBody {
            sid: s.sid,
            user: s.user,
            node: s.node,
            client_address: s.client.map(|a| a.to_string()),
            kind: if s.json { "json" } else { "cwa" }.to_string(),
            started: s.started,
            last_poll: s.last_poll,
            polling: s.polling,
            state: if s.idle { "idle" } else { "active" }.to_string(),
            subscriptions: s.subscriptions as u64,
            queued: s.queued as u64,
        }
    }
}

/// How many sessions were ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndedBody {
    pub ended: u64,
}

/// `{sid}`: a session.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SessionPath {
    /// The session id, as listed.
    #[param(value_type = u64)]
    sid: String,
}

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    caller.is_admin().then_some(()).ok_or_else(|| ApiError::forbidden("session administration needs an admin token"))
}

fn bodies(summaries: Vec<SessionSummary>) -> Json<Vec<SessionBody>> {
    Json(summaries.into_iter().map(SessionBody::from).collect())
}

/// Every live session of this gateway, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = [SessionBody]),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub async fn list_sessions(State(gateway): State<Arc<Gateway>>, caller: Caller) -> Result<Json<Vec<SessionBody>>, ApiError> {
    require_admin(&caller)?;
    Ok(bodies(gateway.session_summaries(None)))
}

/// Ends one session: its held poll is answered with session-not-found, the user's presence is
/// recalculated. The user stays signed in.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{sid}",
    tag = "sessions",
    params(SessionPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such live session", body = ApiError),
        (status = 422, description = "The sid is not a number", body = ApiError),
    )
)]
pub async fn end_session(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(SessionPath { sid }): Path<SessionPath>,
) -> Result<StatusCode, ApiError> {
    require_admin(&caller)?;
    let sid: u64 = sid.trim().parse().map_err(|_| ApiError::invalid_field("sid", "must be a session id (a number)"))?;
    if !gateway.end_session(sid) {
        return Err(ApiError::not_found(format!("no live session {sid}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One user's live sessions, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{uri}/sessions",
    tag = "sessions",
    params(UserPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's live sessions (none when signed out)", body = [SessionBody]),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn list_user_sessions(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<Json<Vec<SessionBody>>, ApiError> {
    require_admin(&caller)?;
    let uri = path_uri(&uri)?;
    Ok(bodies(gateway.session_summaries(Some(&uri))))
}

/// Ends every live session of a user.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{uri}/sessions",
    tag = "sessions",
    params(UserPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many sessions were ended (0 when none was live)", body = EndedBody),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn end_user_sessions(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<Json<EndedBody>, ApiError> {
    require_admin(&caller)?;
    let uri = path_uri(&uri)?;
    Ok(Json(EndedBody { ended: gateway.end_sessions_of(&uri) as u64 }))
}
