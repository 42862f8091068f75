//! Reading the `CWA-Ticket` (header first, then the cookie of the same name) and writing it back:
//! as a header on every reply, and, when it is new, as an `HttpOnly; SameSite=Strict` cookie for
//! browsers, `Secure` when the browser reached the gateway over HTTPS. Also who may sign in with a
//! cookie at all: never a page of another site (login CSRF).

use crate::config::Config;
use axum::http::{header, HeaderMap, HeaderValue};
use std::net::SocketAddr;

pub const TICKET_HEADER: &str = "CWA-Ticket";

/// The ticket a request presents, if any.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(TICKET_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(value.trim().to_string()).filter(|t| !t.is_empty());
    }
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    cookies
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case(TICKET_HEADER))
        .map(|(_, value)| value.to_string())
}

/// How the ticket cookie of a reply is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    /// Only over HTTPS (the `Secure` attribute).
    pub secure: bool,
}

impl Cookie {
    /// `Secure` when the gateway serves HTTPS itself, or a trusted proxy says (with
    /// `X-Forwarded-Proto: https`) that the browser reached it over HTTPS.
    pub fn for_request(config: &Config, peer: Option<SocketAddr>, headers: &HeaderMap) -> Cookie {
        let proxied_https = || {
            let proxy = peer.is_some_and(|peer| config.trusted_proxies.iter().any(|net| net.contains(&peer.ip())));
            let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
            // A chain of proxies appends; the nearest one's word is the last.
            proxy && proto.and_then(|p| p.rsplit(',').next()).is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        };
        Cookie { secure: config.tls_cert.is_some() || proxied_https() }
    }
}

/// Adds the ticket to a reply, and sets the cookie when `cookie` says so.
pub fn attach(headers: &mut HeaderMap, ticket: &str, cookie: Option<Cookie>) {
    if let Ok(value) = HeaderValue::from_str(ticket) {
        headers.insert(TICKET_HEADER, value);
    }
    if let Some(Cookie { secure }) = cookie {
        let secure = if secure { "; Secure" } else { "" };
        let cookie = format!("{TICKET_HEADER}={ticket}; Path=/; HttpOnly; SameSite=Strict{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
}
