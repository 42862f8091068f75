//! The accept loop: each accepted connection gets a task (after its TLS handshake, when serving
//! HTTPS), as long as fewer than the connection cap are open; over the cap a connection is answered
//! `503` and closed at once. On shutdown the listener closes, idle connections close, busy ones
//! finish their current request (held polls are answered by the hub) within the shutdown timeout,
//! and whatever is still open then is cut.

use super::connection::{self, Context};
use super::Settings;
use crate::http::channels::Channels;
use crate::telemetry;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How the server runs.
pub struct Serving {
    pub settings: Settings,
    /// HTTPS when given.
    pub tls: Option<Arc<ServerConfig>>,
    /// The most connections open at once (counting TLS handshakes in progress).
    pub max_connections: usize,
    /// How long in-flight requests may take to finish once shutdown has begun.
    pub shutdown_timeout: Duration,
    /// The command and data channels' own path (`crate::http::channels`); `None`: every request
    /// goes through the router.
    pub channels: Option<Arc<Channels>>,
}

/// What an over-cap connection is told before it is closed.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

/// Serves `app` on `listener` until `shutdown` completes; then calls `begin_shutdown` (which
/// answers held polls) and waits for open connections as described above.
pub async fn run(
    listener: TcpListener,
    app: Router,
    serving: Serving,
    shutdown: impl Future<Output = ()>,
    begin_shutdown: impl FnOnce(),
) {
    let (stopping, stop_signal) = watch::channel(false);
    let context = Context { app, settings: Arc::new(serving.settings), shutdown: stop_signal, channels: serving.channels };
    let acceptor = serving.tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(serving.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => spawn(&mut connections, tcp, peer, acceptor.as_ref(), context.clone(), permit),
                    Err(_) => refuse(tcp),
                },
                Err(e) => {
                    // Out of descriptors or memory: give closing connections a moment.
                    tracing::warn!(%e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!("shutting down: answering held polls, finishing requests");
    begin_shutdown();
    let _ = stopping.send(true);
    let limit = serving.shutdown_timeout;
    let drained = tokio::time::timeout(limit, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(?limit, open = connections.len(), "shutdown timeout reached: closing the remaining connections");
        connections.shutdown().await;
    }
}

fn spawn(
    connections: &mut JoinSet<()>,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<&TlsAcceptor>,
    context: Context,
    permit: OwnedSemaphorePermit,
) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::trace!(%e, "TCP_NODELAY not set");
    }
    // Two task types, so that a plain connection's task is not sized for a TLS stream.
    match acceptor {
        None => connections.spawn(async move {
            let open = telemetry::OpenConnection::start();
            connection::serve(tcp, peer, context).await;
            drop((open, permit));
        }),
        Some(acceptor) => connections.spawn(tls_connection(acceptor.clone(), tcp, peer, context, permit)),
    };
}

async fn tls_connection(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, context: Context, permit: OwnedSemaphorePermit) {
    let open = telemetry::OpenConnection::start();
    match tokio::time::timeout(context.settings.header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => connection::serve(tls, peer, context).await,
        Ok(Err(e)) => tracing::debug!(%e, %peer, "TLS handshake failed"),
        Err(_) => telemetry::connection_timed_out("tls_handshake"),
    }
    drop((open, permit));
}

/// Over the cap: a short `503` if the socket takes it at once, then close.
fn refuse(tcp: TcpStream) {
    telemetry::connection_refused();
    let _ = tcp.try_write(OVER_CAPACITY);
}

/// The connection cap actually used: the configured one, but never more than the process's
/// descriptor limit allows (leaving room for the store and the listener). The soft descriptor
/// limit is raised to the hard one first.
pub fn effective_cap(configured: usize) -> usize {
    const RESERVED_DESCRIPTORS: u64 = 64;
    let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::debug!(%e, "descriptor limit unknown");
            return configured;
        }
    };
    let room = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}
