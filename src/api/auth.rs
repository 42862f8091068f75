//! Who is calling the JSON API: a bearer token from the config (compared in constant time, never
//! logged) with its role, or a signed-in user presenting their `CWA-Ticket`. Every reply to a
//! ticket carries the ticket to use next in the `CWA-Ticket` header, as on the CWA endpoints (a
//! rotated one also in the cookie): [`Caller`] leaves it in a slot that [`reply_ticket`] reads.

use super::error::ApiError;
use crate::config::ApiRole;
use crate::request::ticket;
use crate::service::auth::Login;
use crate::service::Gateway;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub enum Caller {
    /// A configured token (its name, for logs) with its role.
    Token { name: String, role: ApiRole },
    /// A user signed in over CWA (their sign-in, which also owns their JSON event stream).
    User(Arc<Login>),
}

impl Caller {
    pub fn login(&self) -> Option<&Arc<Login>> {
        match self {
            Caller::User(login) => Some(login),
            Caller::Token { .. } => None,
        }
    }

    /// Who asks, for the service's permits (`service::permits`).
    pub fn actor(&self) -> crate::service::permits::Actor<'_> {
        use crate::service::permits::Actor;
        match self {
            Caller::Token { role: ApiRole::Admin, .. } => Actor::Admin,
            Caller::Token { .. } => Actor::Source,
            Caller::User(login) => Actor::User(&login.user),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Arc<Gateway>) -> Result<Self, Self::Rejection> {
        if let Some(presented) = bearer(parts) {
            let mut found = None;
            for token in &gateway.config().api_tokens {
                if bool::from(token.token.as_bytes().ct_eq(presented.as_bytes())) {
                    found = Some(Caller::Token { name: token.name.clone(), role: token.role });
                }
            }
            return found.ok_or_else(ApiError::unauthenticated);
        }
        let presented = ticket::presented(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let auth = gateway.authenticate(presented).await?.ok_or_else(ApiError::unauthenticated)?;
        if let Some(slot) = parts.extensions.get::<ReplyTicket>() {
            let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
            let cookie = ticket::Cookie::for_request(gateway.config(), peer, &parts.headers);
            let cookie = auth.rotated.then_some(cookie);
            *slot.0.lock() = Some(TicketForReply { value: auth.ticket, cookie });
        }
        Ok(Caller::User(auth.login))
    }
}

/// The ticket the reply to an authenticated user carries, and the cookie when it is new.
struct TicketForReply {
    value: String,
    cookie: Option<ticket::Cookie>,
}

#[derive(Clone, Default)]
struct ReplyTicket(Arc<Mutex<Option<TicketForReply>>>);

/// Middleware of the API routes: puts the ticket [`Caller`] authenticated on the reply, whatever
/// the reply is, so a client never misses a rotated ticket.
pub async fn reply_ticket(mut request: Request, next: Next) -> Response {
    let slot = ReplyTicket::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let reply = slot.0.lock().take();
    if let Some(reply) = reply {
        ticket::attach(response.headers_mut(), &reply.value, reply.cookie);
    }
    response
}
