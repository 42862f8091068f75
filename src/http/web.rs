//! The browser side of the gateway: the web app and its scripts at `/` and CORS for pages of other
//! origins.
//!
//! The files of `static/` are built into the binary (`include_bytes!`), so one binary is the whole
//! deployment and a running server can never serve scripts that do not match it; the
//! `static_dir` config key serves a directory instead (development, or a customised app). CORS is
//! off unless `cors_origins` lists origins; then exactly those may call every endpoint with
//! credentials, read the rotating `CWA-Ticket` header and send it back. The ticket *cookie* counts
//! only on requests from the gateway's own pages or those origins (see [`GuardCookie`]), so no
//! other page — not even one on a sibling host of the same site — can act with it.

use crate::config::Config;
use crate::request::around::Hook;
use crate::request::headers::Headers;
use crate::request::ticket::TICKET_HEADER;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

/// One file of the web app, built into the binary.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            path: concat!("/", $name),
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("cwa-client.js", JS),
    asset!("presence-badge.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Strong validators for the built-in files: FNV-1a of the content, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    let fnv =
        |bytes: &[u8]| bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    ASSETS.iter().map(|a| HeaderValue::from_str(&format!("\"{:016x}\"", fnv(a.body))).expect("hex is a valid header")).collect()
});

/// The policy of the app's own pages: nothing but the gateway itself, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Routes serving the web app: the built-in files, or `static_dir` when configured.
pub fn routes<S: Clone + Send + Sync + 'static>(config: &Config) -> Router<S> {
    let router = match &config.static_dir {
        Some(dir) => Router::new().fallback_service(ServeDir::new(dir)),
        None => ASSETS.iter().enumerate().fold(Router::new(), |router, (index, asset)| {
            let handler = move |headers: HeaderMap| async move { built_in(index, &headers) };
            let router = router.route(asset.path, get(handler));
            if asset.path == "/index.html" {
                router.route("/", get(handler))
            } else {
                router
            }
        }),
    };
    router.layer(axum::middleware::map_response(protect))
}

fn built_in(index: usize, headers: &HeaderMap) -> Response {
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes().split(|b| *b == b',').any(|t| t.trim_ascii() == etag.as_bytes()));
    let mut response = if cached { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    out.insert(header::ETAG, etag.clone());
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Headers every web-app response carries; HTML pages also get the content security policy.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let html = headers.get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if html {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}

/// CORS for the configured origins (with credentials); `None` when the list is empty. Preflights
/// are answered here, before any handler, so they need no ticket.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let ticket = HeaderName::from_static("cwa-ticket");
    debug_assert!(ticket.as_str().eq_ignore_ascii_case(TICKET_HEADER));
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([ticket.clone(), header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([ticket])
            .max_age(Duration::from_secs(600)),
    )
}

/// Drops the `Cookie` header (the gateway sets no cookie but the ticket) of a request that presents
/// no `CWA-Ticket` header and comes from a page that is neither the gateway's own nor one of
/// `origins`. A cookie that browsers attach to a same-site request from another host, or to a
/// no-CORS request (an image, a form), therefore authenticates nothing.
#[derive(Clone)]
pub struct GuardCookie(pub Arc<Vec<String>>);

impl Hook for GuardCookie {
    type After = ();

    fn before(&self, request: &mut Request) {
        let headers = request.headers();
        if headers.contains_key(TICKET_HEADER) || !headers.contains_key(header::COOKIE) || cookie_allowed(headers, &self.0) {
            return;
        }
        request.headers_mut().remove(header::COOKIE);
    }
}

pub(super) fn cookie_allowed(headers: &(impl Headers + ?Sized), origins: &[String]) -> bool {
    match headers.text("origin") {
        Some(origin) => {
            let own = origin.split_once("://").map(|(_, host)| host).zip(headers.text("host")).is_some_and(|(a, b)| a == b);
            own || origins.iter().any(|o| o == origin)
        }
        // No Origin: a plain GET. Browsers say where it came from in Sec-Fetch-Site.
        None => matches!(headers.text("sec-fetch-site"), None | Some("same-origin" | "none")),
    }
}

/// Whether a sign-in request may come from where it says it comes from: a client that is no
/// browser (no `Origin`, no `Sec-Fetch-Site`), the gateway's own pages, or a page of one of
/// `cors_origins` — the same rule that lets the ticket cookie count ([`GuardCookie`]). A page
/// of any other site could otherwise sign the browser in as someone else.
pub(super) fn sign_in_allowed(headers: &HeaderMap, cors_origins: &[String]) -> bool {
    cookie_allowed(headers, cors_origins)
}
