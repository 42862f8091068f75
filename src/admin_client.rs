//! The client behind `presence-gateway session …`: calls the admin API of the gateway the
//! configuration describes (its listen address, over HTTPS with the configured certificate pinned,
//! like `healthcheck`), with an admin token. Sessions live in the running gateway's memory, not in
//! the store, so the command line asks the gateway itself.

use crate::config::{ApiRole, Config};
use crate::healthcheck;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request};
use std::time::Duration;

/// An admin token: the one given, else the first `admin` token of the configuration.
pub fn admin_token(config: &Config, given: Option<&str>) -> Result<String, String> {
    if let Some(token) = given.filter(|t| !t.is_empty()) {
        return Ok(token.to_string());
    }
    let configured = config.api_tokens.iter().find(|t| t.role == ApiRole::Admin);
    configured.map(|t| t.token.clone()).ok_or_else(|| {
        "no admin token: pass --token (or GATEWAY_ADMIN_TOKEN), or name a configuration with an admin api_token".to_string()
    })
}

/// One request to the admin API; the answer's status and body.
pub async fn call(config: &Config, method: Method, path: &str, token: &str, limit: Duration) -> Result<(u16, Bytes), String> {
    let address = healthcheck::address(config)?;
    let attempt = async {
        let io = hyper_util::rt::TokioIo::new(healthcheck::connect(config, address).await?);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("{address}: {e}"))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, address.to_string())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| format!("{address}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| format!("{address}: {e}"))?.to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(limit, attempt).await.map_err(|_| format!("no answer from {address} within {limit:?}"))?
}

/// The `message` of a JSON error answer, or the status.
pub fn error_text(status: u16, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v["message"].as_str().map(String::from));
    match message {
        Some(message) => format!("the gateway answered {status}: {message}"),
        None => format!("the gateway answered {status}"),
    }
}
