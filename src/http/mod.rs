//! HTTP: the router, the CWA endpoints (sign-in, command channel, data channel) and operations
//! endpoints. Handlers only translate between HTTP and the [`Gateway`]; every body they send is
//! built by the `cwa` module. Request-level pieces shared with the JSON API live in
//! [`crate::request`].

pub mod channels;
pub mod conn;
mod cwa;
mod forward;
mod ops;
mod web;

use crate::request::around::{After, Around, Hook};
use crate::service::Gateway;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The whole application as an axum router. Its layers, outermost first: request id, tracing span
/// and metrics (`ops`), `nosniff`, JSON errors under `/api/v1`, CORS, the cookie guard — all
/// applied as one layer of plain tower services.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let cors = web::cors(&gateway.config().cors_origins);
    let origins = Arc::new(gateway.config().cors_origins.clone());
    let web_app = web::routes(gateway.config());
    let layers = tower::ServiceBuilder::new()
        .layer(Around(Nosniff))
        .layer(Around(crate::api::error::JsonErrors))
        .option_layer(cors)
        .layer(Around(web::GuardCookie(origins)));
    ops::observe(endpoints(gateway).merge(web_app), layers)
}

/// Every response, of every endpoint, tells browsers not to guess its content type.
#[derive(Clone)]
struct Nosniff;

impl Hook for Nosniff {
    type After = Nosniff;

    fn before(&self, _: &mut axum::extract::Request) -> Nosniff {
        Nosniff
    }
}

impl After for Nosniff {
    fn after(self, mut response: axum::response::Response) -> axum::response::Response {
        let value = axum::http::HeaderValue::from_static("nosniff");
        response.headers_mut().insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, value);
        response
    }
}

fn endpoints(gateway: Arc<Gateway>) -> Router {
    // One client for every request passed to another node (README, "Several nodes").
    let passer = crate::request::pass::Passer::new(gateway.config().hold());
    Router::new()
        .route("/forms/logon.html", post(cwa::logon))
        .merge(session_endpoints(&gateway, &passer))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::api::router(&gateway.config().limits).layer(axum::Extension(passer)))
        .with_state(gateway)
}

/// The command and data channels, passed to the node holding the session when that is another.
/// Standalone there is no other node: no forwarding layer at all (a held poll would keep its future).
fn session_endpoints(gateway: &Arc<Gateway>, passer: &Arc<crate::request::pass::Passer>) -> Router<Arc<Gateway>> {
    let router = Router::new()
        .route("/cwa/MainCommandHandler.ashx", post(cwa::command))
        .route("/cwa/AsyncDataChannel.ashx", get(cwa::data_channel));
    if !gateway.clustered() {
        return router;
    }
    let forwarder = forward::Forwarder::new(gateway.clone(), passer.clone());
    router.route_layer(axum::middleware::from_fn_with_state(forwarder, forward::to_owner))
}

/// 200 when the store and the backplane answer, else 503; the body names the store's backend
/// (`sqlite` or `postgres`) and the backplane (`standalone` or `redis`), never their locations,
/// and whether each part answered (for Redis: connected, in step and beating); in a cluster also
/// the node's number (the top of its sids).
async fn readyz(axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>) -> (axum::http::StatusCode, String) {
    let ready = gateway.readiness().await;
    let state = |ok: bool| if ok { "reachable" } else { "unreachable" };
    let report = format!(
        "store: {} ({})\nbackplane: {} ({})\n",
        ready.store,
        state(ready.store_ok),
        ready.backplane,
        state(ready.backplane_ok)
    );
    let report = match &ready.node {
        Some(node) => format!("{report}node: {node}\n"),
        None => report,
    };
    match ready.store_ok && ready.backplane_ok {
        true => (axum::http::StatusCode::OK, format!("ready\n{report}")),
        false => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{report}")),
    }
}
