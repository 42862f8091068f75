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

/// Puts the ticket on a reply, and a new one also into the cookie.
fn with_ticket(mut response: Response, auth: &Authenticated, presented: &str, cookie: ticket::Cookie) -> Response {
    ticket::attach(response.headers_mut(), &auth.ticket, auth.rotated(presented).then_some(cookie));
    response
}

fn unauthenticated() -> Response {
    xml_reply(StatusCode::UNAUTHORIZED, envelope::request_failed(None, &GatewayError::Unauthenticated))
}

fn bad_body(error: GatewayError) -> Response {
    let status = match error {
        GatewayError::LimitExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    xml_reply(status, envelope::unusable_body(&error))
}

/// Reads a body within the size limit.
async fn read_body(gateway: &Gateway, body: Body) -> Result<bytes::Bytes, GatewayError> {
    let limit = gateway.config().limits.body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| GatewayError::LimitExceeded(format!("the body exceeds {limit} bytes")))
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

/// Reads a command body within the size limit and its `cwaRequests` in one pass.
async fn read_commands(gateway: &Gateway, body: Body) -> Result<RequestBatch, GatewayError> {
    let bytes = read_body(gateway, body).await?;
    read_batch(body_text(&bytes)?, xml_limits(gateway), gateway.config().limits.uris_per_query)
}

/// Authenticates the ticket of a request: 401 without a valid one, 503 (retryable, 18400) when
/// the store had to be asked and could not answer.
async fn authenticate(gateway: &Gateway, headers: &HeaderMap) -> Result<(Authenticated, String), Response> {
    let presented = ticket::presented(headers).ok_or_else(unauthenticated)?;
    match gateway.authenticate(&presented).await {
        Ok(Some(auth)) => Ok((auth, presented)),
        Ok(None) => Err(unauthenticated()),
        Err(error) => Err(xml_reply(StatusCode::SERVICE_UNAVAILABLE, envelope::request_failed(None, &error))),
    }
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
        Err(error) => return bad_body(error),
    };
    let request = match parse_logon(&root) {
        Ok(request) => request,
        Err(error) => return bad_body(error),
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
    let (auth, presented) = match Box::pin(authenticate(&gateway, &headers)).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let cookie = ticket::Cookie::for_request(gateway.config(), Some(peer), &headers);
    let batch = match read_commands(&gateway, body).await {
        Ok(batch) => batch,
        Err(error) => return with_ticket(bad_body(error), &auth, &presented, cookie),
    };
    let unexpected = batch.unexpected_elements;
    let response = match gateway.execute(&auth.login, batch).await {
        Ok(done) => {
            // The address a session started from, for the administrators' session list.
            if let Some(sid) = done.sid {
                gateway.set_session_client(
                    sid,
                    crate::request::client_addr::client_address(peer, &headers, &gateway.config().trusted_proxies),
                );
            }
            xml_reply(StatusCode::OK, envelope::responses(done.sid, unexpected, &done.responses))
        }
        Err(error) => xml_reply(StatusCode::NOT_FOUND, envelope::request_failed(None, &error)),
    };
    with_ticket(response, &auth, &presented, cookie)
}

pub async fn data_channel(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let request = PollRequest::read(&gateway, peer, &headers, raw.as_deref());
    // A held poll keeps nothing of the request it no longer needs.
    drop((headers, raw));
    // Boxed: a ticket check may read the store, and a held poll should not keep room for that.
    let presented = request.presented.as_deref().map(|t| (t, TicketHash::of(t)));
    let auth = match presented {
        Some((ticket, hash)) => Some(Box::pin(gateway.authenticate_hashed(ticket, hash)).await),
        None => None,
    };
    answer_poll(&gateway, request, auth).await.into_response()
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

/// The answer to a data-channel request, before it is HTTP: status, body, and the ticket (with
/// the cookie when it is new) to send back.
pub(super) struct PollAnswer {
    pub status: StatusCode,
    pub body: String,
    pub ticket: Option<(String, Option<ticket::Cookie>)>,
}

impl IntoResponse for PollAnswer {
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
) -> PollAnswer {
    let failed = |status, error: &GatewayError| PollAnswer { status, body: envelope::request_failed(None, error), ticket: None };
    let (auth, presented) = match (auth, request.presented) {
        (Some(Ok(Some(auth))), Some(presented)) => (auth, presented),
        (Some(Err(error)), Some(_)) => return failed(StatusCode::SERVICE_UNAVAILABLE, &error),
        _ => return failed(StatusCode::UNAUTHORIZED, &GatewayError::Unauthenticated),
    };
    let cookie = auth.rotated(&presented).then_some(request.cookie);
    let answer = match request.query {
        Ok(PollQuery { sid: None, .. }) => unusable_query(GatewayError::InvalidFormat("Sid is required".into())),
        Ok(query) => poll_events(gateway, &auth, query).await,
        Err(error) => unusable_query(error),
    };
    PollAnswer { ticket: Some((auth.ticket, cookie)), ..answer }
}

fn unusable_query(error: GatewayError) -> PollAnswer {
    let status =
        if matches!(error, GatewayError::LimitExceeded(_)) { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
    PollAnswer { status, body: envelope::unusable_body(&error), ticket: None }
}

async fn poll_events(gateway: &Gateway, auth: &Authenticated, query: PollQuery) -> PollAnswer {
    let sid = query.sid.unwrap_or_default();
    let not_found = || PollAnswer {
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
            PollAnswer { status: StatusCode::OK, body, ticket: None }
        }
        Err(_) => not_found(),
    }
}
