//! Reading presence as JSON (README, "Reading presence"): one user
//! (`GET /api/v1/users/{uri}/presence`) or up to 650 at once (`POST /api/v1/presence/batch`, the
//! body and answer shaped like Graph's `getPresencesByUserId`). Every entry is cut by the caller's
//! level exactly as the single read is: Presence V2 names beside Graph's `availability` and
//! `activity`.

use super::auth::Caller;
use super::error::ApiError;
use super::{parse_json, path_uri, SipUri, UserPath};
use crate::model::presentity::PresenceView;
use crate::pv2::{self, PresenceV2};
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::ToSchema;

/// The most URIs one batch read takes (as a CWA query, and as Graph's `getPresencesByUserId`).
pub const MAX_BATCH: usize = 650;

/// The presence of `uri` as the caller may see it (the user themself and admins see everything).
#[utoipa::path(
    get,
    path = "/api/v1/users/{uri}/presence",
    tag = "presence",
    params(UserPath),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Presence in Presence V2 names and Graph's `availability` and `activity`, cut by the caller's level", body = PresenceV2),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "A source token (reading needs a user ticket or an admin token)", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 422, description = "The URI is malformed", body = ApiError),
    )
)]
pub async fn get_presence(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
) -> Result<Json<PresenceV2>, ApiError> {
    let uri = path_uri(&uri)?;
    let not_found = || ApiError::not_found(format!("no user {uri}"));
    if !gateway.user_known(&uri).await? {
        return Err(not_found());
    }
    let reader = gateway.presence_reader(&caller.actor())?;
    let read = gateway.read_presence(&reader, &[&uri]).await?.pop().flatten();
    read.map(|view| Json(pv2::presence(&view))).ok_or_else(not_found)
}

/// The users a batch read asks for (Graph's `getPresencesByUserId` body).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceBatchBody {
    /// 1–650 `sip:` URIs, counted as sent; a URI listed twice is read once.
    #[schema(value_type = Vec<SipUri>, min_items = 1, max_items = 650)]
    ids: Vec<String>,
}

/// The answer of a batch read (Graph's `getPresencesByUserId` answer).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceBatch {
    /// One entry per distinct URI, in the order first listed, each as the single read shows it;
    /// a URI that names no user reads `PresenceUnknown` (the single read answers 404).
    pub value: Vec<PresenceV2>,
}

/// Reads a batch body: 1–[`MAX_BATCH`] URIs (422 naming `ids` otherwise), each a `sip:` URI
/// (422 naming `ids[i]`), duplicates dropped in one pass.
pub(super) fn parse_batch(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let PresenceBatchBody { ids } = parse_json(body)?;
    if ids.is_empty() {
        return Err(ApiError::invalid_field("ids", "list at least one sip: URI"));
    }
    if ids.len() > MAX_BATCH {
        return Err(ApiError::invalid_field("ids", format!("at most {MAX_BATCH} URIs in one read ({} sent)", ids.len())));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    let mut uris = Vec::with_capacity(ids.len());
    for (i, raw) in ids.iter().enumerate() {
        let field = format!("ids[{i}]");
        let uri = path_uri(raw).map_err(|_| ApiError::invalid_field(field, "not a sip: URI"))?;
        if seen.insert(uri.clone()) {
            uris.push(uri);
        }
    }
    Ok(uris)
}

/// The presence of up to 650 users in one call, each cut by the caller's level as the single
/// read is.
#[utoipa::path(
    post,
    path = "/api/v1/presence/batch",
    tag = "presence",
    request_body(content = PresenceBatchBody, description = "The users to read"),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "One entry per distinct URI, in the order first listed", body = PresenceBatch),
        (status = 400, description = "The body is not JSON", body = ApiError),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "A source token (reading needs a user ticket or an admin token)", body = ApiError),
        (status = 422, description = "No URI, more than 650, or one that is not a `sip:` URI; `field` names it", body = ApiError),
    )
)]
pub async fn read_batch(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<PresenceBatch>, ApiError> {
    let reader = gateway.presence_reader(&caller.actor())?;
    let uris = parse_batch(&body)?;
    let views = gateway.read_presence(&reader, &uris).await?;
    let entry = |(uri, view): (&String, Option<PresenceView>)| pv2::presence(&view.unwrap_or_else(|| PresenceView::unknown(uri)));
    Ok(Json(PresenceBatch { value: uris.iter().zip(views).map(entry).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> Option<String> {
        parse_batch(body.as_bytes()).expect_err("refused").field
    }

    #[test]
    fn batch_bodies_are_counted_as_sent_and_name_the_bad_entry() {
        let uris = |n: usize| (0..n).map(|i| format!("\"sip:u{i}@x.test\"")).collect::<Vec<_>>().join(",");
        assert_eq!(parse_batch(format!("{{\"ids\":[{}]}}", uris(MAX_BATCH)).as_bytes()).unwrap().len(), MAX_BATCH);
        assert_eq!(field(&format!("{{\"ids\":[{}]}}", uris(MAX_BATCH + 1))).as_deref(), Some("ids"));
        assert_eq!(field(r#"{"ids":[]}"#).as_deref(), Some("ids"));
        assert_eq!(field(r#"{"ids":["sip:a@x","bob"]}"#).as_deref(), Some("ids[1]"));
        assert_eq!(field(r#"{"ids":["sip:a@x"],"more":1}"#).as_deref(), Some("more"));
        let read = parse_batch(br#"{"ids":["sip:b@x","SIP:A@X"," sip:b@x ","sip:a@x"]}"#).unwrap();
        assert_eq!(read, ["sip:b@x", "sip:a@x"], "duplicates once, in the order first listed");
    }
}
