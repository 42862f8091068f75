//! JSON subscriptions and the JSON event stream: `POST|DELETE /api/v1/subscriptions` and the long
//! poll `GET /api/v1/events?after=N` — the hold, ack and no-loss rules of the CWA data channel,
//! from the same hub: everything after `after` is (re)sent, in order, with consecutive eids. In a
//! cluster a sign-in's stream lives on one node; a request reaching another is passed there
//! (docs/architecture.md §5, "Several nodes").

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri};
use crate::hub::session::EventFilter;
use crate::pv2::events::flags;
use crate::request::pass::{passed, Passer};
use crate::service::json_events::StreamAt;
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `POST /api/v1/subscriptions` (Presence V2 `asnGetAndSubscribePresenceV2`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SubscribeBody {
    #[serde(rename = "seqContactIDs")]
    seq_contact_ids: Vec<String>,
    #[serde(default, rename = "iEventFlagsToSubscribe")]
    event_flags: Option<u32>,
    #[serde(default, rename = "iContactDetailsReturnFilter")]
    details_filter: Option<u32>,
}

/// `DELETE /api/v1/subscriptions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnsubscribeBody {
    #[serde(rename = "seqContactIDs")]
    seq_contact_ids: Vec<String>,
}

fn checked_uris(gateway: &Gateway, raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() || raw.len() > gateway.config().limits.uris_per_query {
        let max = gateway.config().limits.uris_per_query;
        return Err(ApiError::invalid_field("seqContactIDs", format!("1 to {max} sip: URIs")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    for (i, uri) in raw.iter().enumerate() {
        let uri = path_uri(uri).map_err(|_| ApiError::invalid_field(format!("seqContactIDs[{i}]"), "must be a sip: URI"))?;
        if seen.insert(uri.clone()) {
            out.push(uri);
        }
    }
    Ok(out)
}

fn user_only(caller: &Caller) -> Result<&Arc<crate::service::auth::Login>, ApiError> {
    caller.login().ok_or_else(|| ApiError::forbidden("subscriptions belong to a signed-in user: use a CWA-Ticket"))
}

#[utoipa::path(
    post,
    path = "/api/v1/subscriptions",
    tag = "events",
    request_body = SubscribeBody,
    security(("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Subscribed; the snapshots", body = SubscribeReply),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid ticket", body = ApiError),
        (status = 403, description = "Not a signed-in user", body = ApiError),
        (status = 422, description = "A field is wrong; `field` names it", body = ApiError),
        (status = 429, description = "Too many sessions or subscriptions", body = ApiError),
        (status = 503, description = "The node holding the event stream, or the backplane, did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn subscribe(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let login = user_only(&caller)?;
    let body: SubscribeBody = parse_json(&bytes)?;
    let uris = checked_uris(&gateway, &body.seq_contact_ids)?;
    let events = body.event_flags.unwrap_or(flags::ALL);
    if events & !flags::ALL != 0 {
        return Err(ApiError::invalid_field("iEventFlagsToSubscribe", format!("only the bits of {}", flags::ALL)));
    }
    let filter = EventFilter { events, details: body.details_filter.unwrap_or(0) & flags::ALL };
    let stream = match gateway.open_json_stream(login, passed(&headers)).await? {
        StreamAt::Here(stream) => stream,
        StreamAt::Node(address) => return Ok(super::pass_to(&passer, &address, Method::POST, &uri, &headers, bytes).await),
        StreamAt::Nowhere => return Err(ApiError::not_found("no event stream")),
    };
    stream.set_client(crate::request::client_addr::client_address(peer, &headers, &gateway.config().trusted_proxies));
    let snapshots = gateway.json_subscribe(&stream, &uris, filter).await?;
    Ok(Json(SubscribeReply { seq_presence: snapshots, event_flags: events, stream_id: stream.sid }).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/subscriptions",
    tag = "events",
    request_body = UnsubscribeBody,
    security(("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid ticket", body = ApiError),
        (status = 403, description = "Not a signed-in user", body = ApiError),
        (status = 422, description = "A field is wrong; `field` names it", body = ApiError),
        (status = 503, description = "The node holding the event stream, or the backplane, did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn unsubscribe(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let login = user_only(&caller)?;
    let body: UnsubscribeBody = parse_json(&bytes)?;
    let uris = checked_uris(&gateway, &body.seq_contact_ids)?;
    match gateway.find_json_stream(login, passed(&headers)).await? {
        StreamAt::Here(stream) => gateway.json_unsubscribe(&stream, &uris),
        StreamAt::Node(address) => return Ok(super::pass_to(&passer, &address, Method::DELETE, &uri, &headers, bytes).await),
        StreamAt::Nowhere => {}
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The snapshots a subscription starts with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubscribeReply {
    /// One `AsnPresenceV2` per contact, cut to `iContactDetailsReturnFilter` and the caller's level.
    #[serde(rename = "seqPresence")]
    #[schema(value_type = Vec<Object>)]
    seq_presence: Vec<Value>,
    #[serde(rename = "iEventFlagsToSubscribe")]
    event_flags: u32,
    /// The event stream these subscriptions feed (its session id, as the session list shows it);
    /// a different one later means a new stream whose eids start again at 1.
    #[serde(rename = "streamId")]
    stream_id: u64,
}

/// One batch of the JSON event stream.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventsReply {
    /// The eid of the last event (or the acknowledged position when there are none).
    ack_id: u64,
    poll_wait_time: u64,
    /// The event stream (as in the subscription's answer).
    stream_id: u64,
    /// Each `{"eid": n, "asnUpdatePresenceV2": {...}}` or `{"eid": n, "asnRemovePresence": {...}}`.
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
}

#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last eid received (0 or left out: none yet).
    #[serde(default)]
    after: u64,
    /// The user is active at this client (like the data channel's `UA`); default true.
    #[serde(default)]
    active: Option<bool>,
}

impl EventsQuery {
    /// Reads `after` and `active` by hand, so that a bad or repeated value is a JSON error naming
    /// its field; other parameters are ignored.
    fn parse(raw: Option<&str>) -> Result<EventsQuery, ApiError> {
        let mut query = EventsQuery::default();
        let (mut after_seen, mut active_seen) = (false, false);
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "after" => {
                    let refused =
                        || ApiError::invalid_field("after", "a whole number from 0 (the last eid received), at most once");
                    if std::mem::replace(&mut after_seen, true) {
                        return Err(refused());
                    }
                    query.after = value.parse().map_err(|_| refused())?;
                }
                "active" => {
                    let refused = || ApiError::invalid_field("active", "true or false, at most once");
                    if std::mem::replace(&mut active_seen, true) {
                        return Err(refused());
                    }
                    query.active = Some(value.parse().map_err(|_| refused())?);
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(EventsQuery),
    security(("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Events after `after` (held until one arrives or the hold time ends)", body = EventsReply),
        (status = 401, description = "No valid ticket", body = ApiError),
        (status = 403, description = "Not a signed-in user", body = ApiError),
        (status = 404, description = "No subscription yet, or its stream ended or was on a node that is gone (`no_subscription`): subscribe again and read from `after=0`", body = ApiError),
        (status = 422, description = "`after` or `active` is malformed; `field` names it", body = ApiError),
        (status = 503, description = "The node holding the event stream, or the backplane, did not answer: retry (`Retry-After`)", body = ApiError),
    )
)]
pub async fn events(
    State(gateway): State<Arc<Gateway>>,
    Extension(passer): Extension<Arc<Passer>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let login = user_only(&caller)?;
    let query = EventsQuery::parse(raw.as_deref())?;
    let stream = match gateway.find_json_stream(login, passed(&headers)).await? {
        StreamAt::Here(stream) => stream,
        // Boxed: a poll held here keeps no room for the passing client's future.
        StreamAt::Node(address) => {
            return Ok(Box::pin(super::pass_to(&passer, &address, Method::GET, &uri, &headers, Bytes::new())).await)
        }
        StreamAt::Nowhere => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no_subscription", "subscribe first (POST /api/v1/subscriptions)"))
        }
    };
    let batch = gateway.poll(&stream, query.after, query.active.unwrap_or(true)).await?;
    let mut body = format!(
        "{{\"ackId\":{},\"pollWaitTime\":{},\"streamId\":{},\"events\":[",
        batch.ack_id,
        gateway.config().poll_wait_ms,
        stream.sid
    );
    for (i, (eid, event)) in batch.events.iter().enumerate() {
        body.push_str(if i == 0 { "{" } else { ",{" });
        body.push_str(&format!("\"eid\":{eid}"));
        body.push_str(crate::pv2::events::text(event));
    }
    body.push_str("]}");
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
