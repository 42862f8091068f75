//! presence-gateway: live presence over plain HTTP in the Communicator Web Access "Unified
//! Communications AJAX API" dialect, on a Presence V2-style internal model.
//!
//! Crate map:
//! - [`model`] — the presence model: calculated state, inputs, the aggregation rule, access levels
//!   and views. Pure; no I/O, no wire format.
//! - [`cwa`] — the CWA XML wire format: request parsing, category rendering, envelopes.
//!   [`pv2`] — the JSON wire format: presence in Presence V2 names with Graph's words beside them.
//! - [`hub`] — live sessions, their event queues and acks, the watcher index, the long poll, timers.
//! - [`store`] — durable data behind a trait: embedded SQLite (the default) or PostgreSQL.
//! - [`backplane`] — how live presence inputs reach other gateway nodes: standalone or Redis.
//! - [`service`] — sign-in, sessions, commands, live presence and fan-out, seeding.
//! - [`http`] — the axum router and the CWA handlers. [`api`] — the JSON API under `/api/v1`.
//!   [`request`] — the ticket, client address and middleware hook both of them use.
//! - [`config`] — every knob with its default. [`error`] — the one error type and its mappings.
//! - [`telemetry`] — metric names, recording, Prometheus rendering. [`tls`] — HTTPS.
//!   [`healthcheck`] — the probe behind `presence-gateway healthcheck`; [`admin_client`] — the
//!   admin API client behind `presence-gateway session`.

pub mod admin_client;
pub mod api;
pub mod backplane;
pub mod config;
pub mod cwa;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod hub;
pub mod model;
pub mod pv2;
pub mod request;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;

use config::Config;
use service::clock::Clock;
use service::Gateway;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens the configured store (`store`, by default SQLite in `config.data_dir`) and starts the
/// gateway's core.
pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Gateway>> {
    let store = store::open(&config.store_url()).await?;
    Ok(Gateway::start(config, store, clock).await?)
}

/// Serves HTTP on `listener` until `shutdown` completes; then answers every held poll, lets
/// in-flight requests finish (for at most `shutdown_timeout_seconds`) and closes the store.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, None, gateway, shutdown).await
}

/// [`serve`], over HTTPS when `tls` is given. Connections are driven by [`http::conn`]: the
/// `[http]` limits and timeouts of the configuration apply.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::router(gateway.clone());
    let config = gateway.config();
    let max_connections = http::conn::server::effective_cap(config.http.max_connections);
    if max_connections < config.http.max_connections {
        tracing::info!(max_connections, "connection cap lowered to what the descriptor limit allows");
    }
    let serving = http::conn::server::Serving {
        settings: http::conn::Settings::from_config(config),
        tls,
        max_connections,
        shutdown_timeout: config.shutdown_timeout(),
        channels: http::channels::Channels::new(gateway.clone()),
    };
    let hub = gateway.clone();
    http::conn::server::run(listener, app, serving, shutdown, move || hub.begin_shutdown()).await;
    gateway.shutdown().await;
    Ok(())
}
