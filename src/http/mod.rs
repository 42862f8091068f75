//! HTTP: the router, the CWA endpoints (sign-in, command channel, data channel) and operations
//! endpoints. Handlers only translate between HTTP and the [`Gateway`]; every body they send is
//! built by the `cwa` module.

pub mod client_addr;
mod cwa;
mod ops;
pub(crate) mod ticket;

use crate::service::Gateway;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The whole application as an axum router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let router = Router::new()
        .route("/forms/logon.html", post(cwa::logon))
        .route("/cwa/MainCommandHandler.ashx", post(cwa::command))
        .route("/cwa/AsyncDataChannel.ashx", get(cwa::data_channel))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::api::router())
        .with_state(gateway);
    ops::observe(router)
}

async fn readyz(axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>) -> (axum::http::StatusCode, &'static str) {
    let store_ok = gateway.store.ping().await.is_ok();
    if store_ok && gateway.backplane.is_ready() {
        (axum::http::StatusCode::OK, "ready")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "store or backplane unreachable")
    }
}
