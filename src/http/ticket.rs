//! Reading the `CWA-Ticket` (header first, then the cookie of the same name) and writing it back
//! on every reply, as a header and, for browsers, an `HttpOnly; SameSite=Strict` cookie.

use axum::http::{header, HeaderMap, HeaderValue};

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

/// Adds the current ticket to a reply (and refreshes the cookie when it changed).
pub fn attach(headers: &mut HeaderMap, ticket: &str, set_cookie: bool) {
    if let Ok(value) = HeaderValue::from_str(ticket) {
        headers.insert(TICKET_HEADER, value);
    }
    if set_cookie {
        let cookie = format!("{TICKET_HEADER}={ticket}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
}
