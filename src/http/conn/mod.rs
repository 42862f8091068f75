//! The gateway's own HTTP/1.1 connection driver: it accepts TCP (or TLS) connections, reads
//! requests with `httparse`, hands each to the axum router as an `http::Request` (with
//! `ConnectInfo<SocketAddr>`), and writes the answers itself — header names spelled as the original
//! CWA server spelled them (`CWA-Ticket`), one vectored write per answer, no buffer held while a
//! request waits (a long poll). Keep-alive, pipelining (answered in order), chunked request bodies
//! and `Expect: 100-continue` are supported; HTTP/2 is not offered. Limits and timeouts are the
//! `[http]` keys of the configuration (README, "Connections").
//!
//! - [`head`]: request heads and body framing (the request-smuggling rules).
//! - [`chunked`]: the chunked body decoder.
//! - [`response`]: response serialisation and header spelling.
//! - [`connection`]: one connection's request loop and its timeouts.
//! - [`server`]: the accept loop, the connection cap and graceful shutdown.
//! - [`transport`]: TCP or TLS underneath.

pub mod chunked;
pub mod connection;
pub mod head;
pub mod response;
#[cfg(test)]
mod robustness;
pub mod server;
pub mod transport;

use crate::config::Config;
use std::time::Duration;

/// The limits one connection works within, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// From the first byte of a request (or the connection's start) to the end of its head.
    pub header_timeout: Duration,
    /// From the end of a head to the end of its body; also bounds writing an answer.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub keep_alive_timeout: Duration,
    /// The largest request head (request line and headers).
    pub max_head_bytes: usize,
    /// Bodies above this are not read: the handler sees "too large" and the connection closes.
    pub max_body_bytes: usize,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let http = &config.http;
        Settings {
            header_timeout: Duration::from_secs(http.header_timeout_seconds),
            body_timeout: Duration::from_secs(http.body_timeout_seconds),
            keep_alive_timeout: Duration::from_secs(http.keep_alive_seconds),
            max_head_bytes: http.max_head_bytes,
            max_body_bytes: config.limits.body_bytes.max(config.limits.image_bytes),
        }
    }
}
