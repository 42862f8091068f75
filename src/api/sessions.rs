//! Live sessions for administrators (admin token): list them — all, or one user's — and end one
//! session or all of a user's. See [`crate::service::live_sessions`] for what ending does. In a
//! cluster every answer is cluster-wide, through any node: lists and ending all of a user's ask
//! every other live node for its part, ending one session is passed to the node holding it
//! (docs/architecture.md §5, "Several nodes").

use super::auth::Caller;
use super::error::ApiError;
use super::{path_uri, UserPath};
use crate::request::pass::{passed, Passer};
use crate::service::live_sessions::SessionSummary;
use crate::service::mandates::{Duty, Mandate};
use crate::service::Gateway;
use axum::extract::OriginalUri;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// A live session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    /// The session id (`sid`).
    pub sid: u64,
    /// The signed-in user.
    #[schema(value_type = super::SipUri)]
    pub user: String,
    /// The gateway node the session lives on (its host name).
    pub node: String,
    /// In a cluster, the number of the node the session lives on (as `/readyz` shows it, and the
    /// top of its sids); left out on a gateway without Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub node_id: Option<String>,
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
            node_id: s.node_id,
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

fn bodies(summaries: Vec<SessionSummary>) -> Vec<SessionBody> {
    summaries.into_iter().map(SessionBody::from).collect()
}

/// How long another node may take to give its part of an answer.
const NODE_ANSWER: Duration = Duration::from_secs(3);

/// The same request's answer from every other live node, parsed (none standalone, or when the
/// request was passed here by another node). A node that does not answer in time is left out and
/// logged: it is gone, or will be once its heartbeat lapses.
async fn from_other_nodes<T: DeserializeOwned>(
    gateway: &Gateway,
    passer: &Passer,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Vec<T>, ApiError> {
    if !gateway.clustered() || passed(headers) {
        return Ok(Vec::new());
    }
    let nodes = gateway.other_nodes().await.map_err(|e| {
        tracing::warn!(error = %e, "cannot list the cluster's nodes");
        ApiError::from(crate::error::GatewayError::StoreUnavailable)
    })?;
    let asks = nodes.iter().map(|(_, address)| passer.ask(address, method.clone(), uri, headers, NODE_ANSWER));
    let answers = futures_util::future::join_all(asks).await;
    let mut parts = Vec::with_capacity(nodes.len());
    for ((node, _), answer) in nodes.iter().zip(answers) {
        let part = match answer {
            Ok((status, body)) if status.is_success() => serde_json::from_slice(&body).map_err(|e| e.to_string()),
            Ok((status, _)) => Err(format!("it answered {status}")),
            Err(why) => Err(why),
        };
        match part {
            Ok(part) => parts.push(part),
            Err(why) => tracing::warn!(node = %node, why, "a node's sessions are left out of the answer"),
        }
    }
    Ok(parts)
}

/// This node's sessions and every other live node's, oldest first.
async fn everywhere(
    gateway: &Gateway,
    mandate: &Mandate,
    passer: &Passer,
    uri: &Uri,
    headers: &HeaderMap,
    user: Option<&str>,
) -> Result<Json<Vec<SessionBody>>, ApiError> {
    let mut all = bodies(gateway.session_summaries(mandate, user)?);
    let others: Vec<Vec<SessionBody>> = from_other_nodes(gateway, passer, Method::GET, uri, headers).await?;
    all.extend(others.into_iter().flatten());
    all.sort_by_key(|s| (s.started, s.sid));
    Ok(Json(all))
}

/// Every live session of the gateway — of every live node in a cluster — oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = [SessionBody]),
        (status = 401, description = "No valid bearer token", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 503, description = "The backplane did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn list_sessions(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Json<Vec<SessionBody>>, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Sessions)?;
    everywhere(&gateway, &mandate, &passer, &uri, &headers, None).await
}

/// Ends one session, on whichever node holds it: its held poll is answered with
/// session-not-found, the user's presence is recalculated. The user stays signed in.
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
        (status = 404, description = "No such live session (also: its node is gone)", body = ApiError),
        (status = 422, description = "The sid is not a number", body = ApiError),
        (status = 503, description = "The node holding the session, or the backplane, did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn end_session(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
    Path(SessionPath { sid }): Path<SessionPath>,
) -> Result<Response, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Sessions)?;
    let sid: u64 = sid.trim().parse().map_err(|_| ApiError::invalid_field("sid", "must be a session id (a number)"))?;
    if let Some(node) = gateway.other_holder(sid).filter(|_| !passed(&headers)) {
        let address = gateway.node_address(&node).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot find the node holding a session");
            ApiError::from(crate::error::GatewayError::StoreUnavailable)
        })?;
        return match address {
            Some(address) => {
                Ok(super::pass_to(&passer, &address, Method::DELETE, &uri, &headers, axum::body::Bytes::new()).await)
            }
            None => Err(ApiError::not_found(format!("no live session {sid}"))),
        };
    }
    if !gateway.end_session(&mandate, sid)? {
        return Err(ApiError::not_found(format!("no live session {sid}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One user's live sessions (on every live node), oldest first.
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
        (status = 503, description = "The backplane did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn list_user_sessions(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    OriginalUri(request_uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<Json<Vec<SessionBody>>, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Sessions)?;
    let uri = path_uri(&uri)?;
    everywhere(&gateway, &mandate, &passer, &request_uri, &headers, Some(&uri)).await
}

/// Ends every live session of a user, on every live node.
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
        (status = 503, description = "The backplane did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn end_user_sessions(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    OriginalUri(request_uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<Json<EndedBody>, ApiError> {
    let mandate = gateway.mandate(&caller.actor(), Duty::Sessions)?;
    let uri = path_uri(&uri)?;
    let here = gateway.end_sessions_of(&mandate, &uri)? as u64;
    let others: Vec<EndedBody> = from_other_nodes(&gateway, &passer, Method::DELETE, &request_uri, &headers).await?;
    Ok(Json(EndedBody { ended: here + others.iter().map(|o| o.ended).sum::<u64>() }))
}
