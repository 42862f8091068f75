//! The three CWA endpoints: `POST /forms/logon.html`, `POST /cwa/MainCommandHandler.ashx` and the
//! long-poll `GET /cwa/AsyncDataChannel.ashx`, with the HTTP statuses of docs/architecture.md §1.2 item 9.

use crate::cwa::batch::read_batch;
use crate::cwa::envelope::{self, EventsHeader};
use crate::cwa::requests::{parse_logon, parse_poll_query, PollQuery, RequestBatch};
use crate::cwa::xml::{self, Element, XmlLimits};
use crate::error::GatewayError;
use crate::request::headers::Headers;
use crate::request::ticket;
use crate::service::auth::{random_token, Authenticated};
use crate::service::sessions::LogonRefused;
use crate::service::tickets::TicketHash;
use crate::service::Gateway;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

fn xml_reply(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reads a body within the size limit.
async fn read_body(gateway: &Gateway, body: Body) -> Result<bytes::Bytes, GatewayError> {
    let limit = gateway.config().limits.body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| too_large(limit))
}

/// A body the connection driver read whole, held to the same limit as [`read_body`].
pub(super) fn body_within_limit(gateway: &Gateway, body: bytes::Bytes) -> Result<bytes::Bytes, GatewayError> {
    let limit = gateway.config().limits.body_bytes;
    if body.len() > limit {
        return Err(too_large(limit));
    }
    Ok(body)
}

fn too_large(limit: usize) -> GatewayError {
    GatewayError::LimitExceeded(format!("the body exceeds {limit} bytes"))
}

/// A body's text: it must be UTF-8.
fn body_text(bytes: &[u8]) -> Result<&str, GatewayError> {
    std::str::from_utf8(bytes).map_err(|_| GatewayError::InvalidFormat("the body is not UTF-8".into()))
}

/// The XML limits of request bodies.
fn xml_limits(gateway: &Gateway) -> XmlLimits {
    XmlLimits {
        max_depth: gateway.config().limits.xml_depth,
        max_elements: gateway.config().limits.xml_elements,
        ..XmlLimits::default()
    }
}

/// Reads a body within the size limit and parses it as a bounded XML tree.
async fn read_xml(gateway: &Gateway, body: Body) -> Result<Element, GatewayError> {
    let bytes = read_body(gateway, body).await?;
    xml::parse(body_text(&bytes)?, xml_limits(gateway)).map_err(|e| GatewayError::InvalidFormat(e.to_string()))
}

fn cross_site_sign_in() -> Response {
    let error = GatewayError::InvalidOperation("sign-in from a page of another site is not allowed".into());
    xml_reply(StatusCode::FORBIDDEN, envelope::request_failed(None, &error))
}

fn throttled(retry_after: std::time::Duration) -> Response {
    let error = LogonRefused::Throttled { retry_after }.error();
    let mut response = xml_reply(StatusCode::TOO_MANY_REQUESTS, envelope::request_failed(None, &error));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    response
}

pub async fn logon(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !super::web::sign_in_allowed(&headers, &gateway.config().cors_origins) {
        return cross_site_sign_in();
    }
    let root = match read_xml(&gateway, body).await {
        Ok(root) => root,
        Err(error) => return ChannelAnswer::unusable(error).into_response(),
    };
    let request = match parse_logon(&root) {
        Ok(request) => request,
        Err(error) => return ChannelAnswer::unusable(error).into_response(),
    };
    let address = crate::request::client_addr::client_address(peer, &headers, &gateway.config().trusted_proxies);
    let outcome = gateway.logon(&request.user, &request.password, request.uri.as_deref(), address).await;
    let _ = crate::telemetry::logon_outcome(outcome.as_ref().map(|_| ()).map_err(LogonRefused::error));
    match outcome {
        Ok(signed_in) => {
            let mut response = xml_reply(StatusCode::OK, envelope::logon_succeeded(&random_token(24), &signed_in.uri));
            let cookie = ticket::Cookie::for_request(gateway.config(), Some(peer), &headers);
            ticket::attach(response.headers_mut(), &signed_in.auth.ticket, Some(cookie));
            response
        }
        Err(LogonRefused::Throttled { retry_after }) => throttled(retry_after),
        Err(LogonRefused::Internal(error)) => {
            // A store that failed is retryable: nothing of the sign-in was kept.
            let status = match error {
                GatewayError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            xml_reply(status, envelope::request_failed(None, &error))
        }
        Err(refused @ LogonRefused::Credentials) => {
            xml_reply(StatusCode::UNAUTHORIZED, envelope::request_failed(None, &refused.error()))
        }
    }
}

pub async fn command(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut request = CommandRequest::read(&gateway, peer, &headers);
    drop(headers);
    let body = read_body(&gateway, body).await;
    let hash = request.presented.as_deref().map(TicketHash::of);
    let auth = Box::pin(check_ticket(&gateway, request.presented.take(), hash)).await;
    answer_command(&gateway, request, auth, body).await.into_response()
}

/// What a command-channel request brings besides its body, read from its head (the router's
/// handler above and the connection driver's own path, `super::channels`, read it alike).
pub(super) struct CommandRequest {
    pub presented: Option<String>,
    pub cookie: ticket::Cookie,
    /// The client's address, for the administrators' session list (behind trusted proxies, the
    /// address they name).
    pub client: std::net::IpAddr,
}

impl CommandRequest {
    pub fn read(gateway: &Gateway, peer: SocketAddr, headers: &(impl Headers + ?Sized)) -> CommandRequest {
        let config = gateway.config();
        CommandRequest {
            presented: ticket::presented(headers),
            cookie: ticket::Cookie::for_request(config, Some(peer), headers),
            client: crate::request::client_addr::client_address(peer, headers, &config.trusted_proxies),
        }
    }
}

/// The login a request's ticket check found, with the cookie to set when the ticket rotated; or
/// the answer when there is none: 401 without a valid ticket, 503 when the store could not say.
fn signed_in(
    auth: Option<Result<Option<Authenticated>, GatewayError>>,
    cookie: ticket::Cookie,
) -> Result<(Authenticated, Option<ticket::Cookie>), ChannelAnswer> {
    match auth {
        Some(Ok(Some(auth))) => {
            let cookie = auth.rotated.then_some(cookie);
            Ok((auth, cookie))
        }
        Some(Err(error)) => Err(ChannelAnswer::failed(StatusCode::SERVICE_UNAVAILABLE, &error)),
        _ => Err(ChannelAnswer::failed(StatusCode::UNAUTHORIZED, &GatewayError::Unauthenticated)),
    }
}

/// One command batch (docs/architecture.md §1.2 items 4 and 9), given the outcome of its ticket
/// check (`None`: no ticket presented) and its body (or why it could not be read): 401 without a
/// valid ticket, 503 when the store could not say, 400 / 413 for a body that is not a batch, 404
/// when the batch names no session of the login, else the batch's responses.
pub(super) async fn answer_command(
    gateway: &Gateway,
    request: CommandRequest,
    auth: Option<Result<Option<Authenticated>, GatewayError>>,
    body: Result<bytes::Bytes, GatewayError>,
) -> ChannelAnswer {
    let (auth, cookie) = match signed_in(auth, request.cookie) {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let batch = body.and_then(|bytes| {
        let limits = &gateway.config().limits;
        read_batch(body_text(&bytes)?, xml_limits(gateway), limits.uris_per_query)
    });
    let answer = match batch {
        Ok(batch) => execute(gateway, &auth, batch, request.client).await,
        Err(error) => ChannelAnswer::unusable(error),
    };
    ChannelAnswer { ticket: Some((auth.ticket, cookie)), ..answer }
}

async fn execute(gateway: &Gateway, auth: &Authenticated, batch: RequestBatch, client: std::net::IpAddr) -> ChannelAnswer {
    let unexpected = batch.unexpected_elements;
    match gateway.execute(&auth.login, batch).await {
        Ok(done) => {
            // The address a session started from, for the administrators' session list.
            if let Some(sid) = done.sid {
                gateway.set_session_client(sid, client);
            }
            let body = envelope::responses(done.sid, unexpected, &done.responses);
            ChannelAnswer { status: StatusCode::OK, body, ticket: None }
        }
        Err(error) => ChannelAnswer::failed(StatusCode::NOT_FOUND, &error),
    }
}

pub async fn data_channel(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut request = PollRequest::read(&gateway, peer, &headers, raw.as_deref());
    // A held poll keeps nothing of the request it no longer needs.
    drop((headers, raw));
    // Boxed: a ticket check may read the store, and a held poll should not keep room for that.
    let hash = request.presented.as_deref().map(TicketHash::of);
    let auth = Box::pin(check_ticket(&gateway, request.presented.take(), hash)).await;
    answer_poll(&gateway, request, auth).await.into_response()
}

/// The ticket check of a request (`hash`: the presented ticket's), `None` when it presents none.
/// The presented ticket moves into the login found, which sends it back.
pub(super) async fn check_ticket(
    gateway: &Gateway,
    presented: Option<String>,
    hash: Option<TicketHash>,
) -> Option<Result<Option<Authenticated>, GatewayError>> {
    match (presented, hash) {
        (Some(ticket), Some(hash)) => Some(gateway.authenticate_hashed(ticket, hash).await),
        _ => None,
    }
}

/// What a data-channel request brings, read from its head before the poll is held (the router's
/// handler above and the connection driver's own path, `super::data_channel`, read it alike).
pub(super) struct PollRequest {
    pub presented: Option<String>,
    pub cookie: ticket::Cookie,
    pub query: Result<PollQuery, GatewayError>,
}

impl PollRequest {
    pub fn read(gateway: &Gateway, peer: SocketAddr, headers: &(impl Headers + ?Sized), raw_query: Option<&str>) -> PollRequest {
        PollRequest {
            presented: ticket::presented(headers),
            cookie: ticket::Cookie::for_request(gateway.config(), Some(peer), headers),
            query: parse_poll_query(raw_query),
        }
    }
}

/// The answer to a command- or data-channel request, before it is HTTP: status, body, and the
/// ticket (with the cookie when it is new) to send back.
pub(super) struct ChannelAnswer {
    pub status: StatusCode,
    pub body: String,
    pub ticket: Option<(String, Option<ticket::Cookie>)>,
}

impl ChannelAnswer {
    /// The request failed with `error`, told as a CWA `requestFailed`.
    fn failed(status: StatusCode, error: &GatewayError) -> ChannelAnswer {
        ChannelAnswer { status, body: envelope::request_failed(None, error), ticket: None }
    }

    /// The request's body or query could not be used: 413 when it is too large, else 400.
    fn unusable(error: GatewayError) -> ChannelAnswer {
        let status =
            if matches!(error, GatewayError::LimitExceeded(_)) { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
        ChannelAnswer { status, body: envelope::unusable_body(&error), ticket: None }
    }
}

impl IntoResponse for ChannelAnswer {
    fn into_response(self) -> Response {
        let mut response = xml_reply(self.status, self.body);
        if let Some((ticket, cookie)) = &self.ticket {
            ticket::attach(response.headers_mut(), ticket, *cookie);
        }
        response
    }
}

/// One data-channel poll (docs/architecture.md §1.2 items 5, 6 and 9), given the outcome of its
/// ticket check (`None`: no ticket presented): 401 without a valid ticket, 503 when the store
/// could not say, 400 for a bad query, 404 for a session that is not the login's, else the
/// events (held until there are some, or the hold time passes).
pub(super) async fn answer_poll(
    gateway: &Gateway,
    request: PollRequest,
    auth: Option<Result<Option<Authenticated>, GatewayError>>,
) -> ChannelAnswer {
    let (auth, cookie) = match signed_in(auth, request.cookie) {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let answer = match request.query {
        Ok(PollQuery { sid: None, .. }) => ChannelAnswer::unusable(GatewayError::InvalidFormat("Sid is required".into())),
        Ok(query) => poll_events(gateway, &auth, query).await,
        Err(error) => ChannelAnswer::unusable(error),
    };
    ChannelAnswer { ticket: Some((auth.ticket, cookie)), ..answer }
}

async fn poll_events(gateway: &Gateway, auth: &Authenticated, query: PollQuery) -> ChannelAnswer {
    let sid = query.sid.unwrap_or_default();
    let not_found = || ChannelAnswer {
        status: StatusCode::NOT_FOUND,
        body: envelope::request_failed(None, &GatewayError::SessionNotFound),
        ticket: None,
    };
    let Ok(session) = gateway.session_for(&auth.login, sid) else { return not_found() };
    match gateway.poll(&session, query.ack, query.user_active).await {
        Ok(batch) => {
            let header = EventsHeader {
                sid,
                ack_id: batch.ack_id,
                poll_wait_ms: gateway.config().poll_wait_ms,
                session_timeout_s: gateway.config().session_timeout_seconds,
            };
            let body = envelope::cwa_events(header, batch.events.iter().map(|(eid, p)| (*eid, &**p)));
            ChannelAnswer { status: StatusCode::OK, body, ticket: None }
        }
        Err(_) => not_found(),
    }
}
