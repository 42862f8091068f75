//! Reading the `CWA-Ticket` (header first, then the cookie of the same name) and writing it back:
//! as a header on every reply, and, when it is new, as an `HttpOnly; SameSite=Strict` cookie for
//! browsers, `Secure` when the browser reached the gateway over HTTPS. Also who may sign in with a
//! cookie at all: never a page of another site (login CSRF).

use super::headers::{visible_ascii, Headers};
use crate::config::Config;
use crate::service::tickets::TicketHash;
use axum::http::{header, HeaderMap, HeaderValue};
use std::net::SocketAddr;

pub const TICKET_HEADER: &str = "CWA-Ticket";

/// The ticket a request presents, if any.
pub fn presented(headers: &(impl Headers + ?Sized)) -> Option<String> {
    if let Some(value) = headers.text("cwa-ticket") {
        return Some(value.trim().to_string()).filter(|t| !t.is_empty());
    }
    let cookies = headers.all("cookie").filter_map(visible_ascii);
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
    pub fn for_request(config: &Config, peer: Option<SocketAddr>, headers: &(impl Headers + ?Sized)) -> Cookie {
        let proxied_https = || {
            let proxy = peer.is_some_and(|peer| config.trusted_proxies.iter().any(|net| net.contains(&peer.ip())));
            // A chain of proxies appends; the nearest one's word is the last. Read only from a proxy.
            let proto = || headers.text("x-forwarded-proto");
            proxy && proto().and_then(|p| p.rsplit(',').next()).is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        };
        Cookie { secure: config.tls_cert.is_some() || proxied_https() }
    }
}

/// The `Set-Cookie` value that hands `ticket` to a browser.
fn cookie_value(ticket: &str, Cookie { secure }: Cookie) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{TICKET_HEADER}={ticket}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// Adds the ticket to a reply, and sets the cookie when `cookie` says so.
pub fn attach(headers: &mut HeaderMap, ticket: &str, cookie: Option<Cookie>) {
    if let Ok(value) = HeaderValue::from_str(ticket) {
        headers.insert(TICKET_HEADER, value);
    }
    if let Some(cookie) = cookie {
        if let Ok(value) = HeaderValue::from_str(&cookie_value(ticket, cookie)) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
}

/// [`attach`] for an answer the connection driver writes itself: the same header lines, in the
/// same order, as wire bytes.
pub fn attach_lines(out: &mut Vec<u8>, ticket: &str, cookie: Option<Cookie>) {
    let mut line = |name: &[u8], value: &str| {
        if header_value_ok(value.as_bytes()) {
            out.extend_from_slice(name);
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    };
    line(b"CWA-Ticket: ", ticket);
    if let Some(cookie) = cookie {
        line(b"Set-Cookie: ", &cookie_value(ticket, cookie));
    }
}

/// Whether `HeaderValue::from_str` takes `value` (every byte at least a space but DEL, or a tab),
/// checked over whole words at a time (no early exit).
fn header_value_ok(value: &[u8]) -> bool {
    value.iter().fold(true, |ok, &b| ok & (((b >= 32) & (b != 127)) | (b == b'\t')))
}

/// The ticket a connection last presented and its hash, so that presenting it again (every poll
/// of a long-poll connection) costs a comparison instead of a SHA-256. Kept in memory only, for
/// the life of the connection, and compared in constant time.
#[derive(Default)]
pub struct Remembered(Option<(Box<str>, TicketHash)>);

impl Remembered {
    /// The hash of `ticket`, remembered from the last time or computed (and remembered).
    pub fn hash(&mut self, ticket: &str) -> TicketHash {
        if let Some((known, hash)) = &self.0 {
            if same(known.as_bytes(), ticket.as_bytes()) {
                return *hash;
            }
        }
        let hash = TicketHash::of(ticket);
        self.0 = Some((ticket.into(), hash));
        hash
    }
}

/// Whether `a` and `b` are equal, looking at every byte whatever the first difference (their
/// length is no secret: every ticket has the same).
fn same(a: &[u8], b: &[u8]) -> bool {
    let differences = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(differences) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_value_ok_takes_what_header_value_takes() {
        for byte in 0..=255u8 {
            let value = [b"ticket-".as_slice(), &[byte], b"-long-enough-for-whole-words"].concat();
            let by_http = axum::http::HeaderValue::from_bytes(&value).is_ok();
            assert_eq!(super::header_value_ok(&value), by_http, "byte {byte:#04x}");
        }
    }
}
