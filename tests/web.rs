//! The browser side over real HTTP: the built-in web app and its scripts at `/`, `static_dir`,
//! CORS (off by default; the configured origins only, with credentials, the ticket exposed and
//! allowed, preflights without a ticket, `Vary: Origin`), and the status text the app publishes.

mod common;

use common::*;
use presence_gateway::config::Config;

const ORIGIN: &str = "https://intranet.example";

async fn get(url: String, origin: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_app_and_its_scripts_are_served_from_the_binary() {
    let server = TestServer::start().await;
    let page = get(format!("{}/", server.base), None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), Some("text/html; charset=utf-8"));
    let csp = header(&page, "content-security-policy").expect("a CSP on the page").to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
    assert!(page.text().await.unwrap().contains("<script type=\"module\" src=\"app.js\">"));

    for (path, kind, marker) in [
        ("/cwa-client.js", "text/javascript; charset=utf-8", "export class CwaClient"),
        ("/presence-badge.js", "text/javascript; charset=utf-8", "customElements.define('presence-badge'"),
        ("/app.css", "text/css; charset=utf-8", ".dot"),
    ] {
        let response = get(format!("{}{path}", server.base), None).await;
        assert_eq!((response.status().as_u16(), header(&response, "content-type")), (200, Some(kind)), "{path}");
        let etag = header(&response, "etag").expect("an ETag").to_string();
        assert!(response.text().await.unwrap().contains(marker), "{path}");
        let again =
            reqwest::Client::new().get(format!("{}{path}", server.base)).header("If-None-Match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates with its ETag");
    }
    assert_eq!(get(format!("{}/nothing-here.js", server.base), None).await.status(), 404);
    assert_eq!(get(format!("{}/../Cargo.toml", server.base), None).await.status(), 404);
}

#[tokio::test]
async fn static_dir_replaces_the_built_in_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>custom</title>").unwrap();
    let config = Config { static_dir: Some(dir.path().to_path_buf()), ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let page = get(format!("{}/", server.base), None).await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-security-policy").is_some());
    assert!(page.text().await.unwrap().contains("custom"));
    assert_eq!(get(format!("{}/cwa-client.js", server.base), None).await.status(), 404);
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let server = TestServer::start().await;
    let response = get(format!("{}/cwa-client.js", server.base), Some(ORIGIN)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let preflight = preflight(&server.base, ORIGIN).await;
    assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    assert_ne!(preflight.status(), 200);
}

async fn preflight(base: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/cwa/MainCommandHandler.ashx"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "cwa-ticket,content-type")
        .send()
        .await
        .unwrap()
}

fn cors_config() -> Config {
    Config { cors_origins: vec![ORIGIN.to_string(), "http://127.0.0.1:9".to_string()], ..test_config() }
}

#[tokio::test]
async fn preflight_from_a_configured_origin_needs_no_ticket() {
    let server = TestServer::start_with(cors_config(), USERS).await;
    let response = preflight(&server.base, ORIGIN).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&response, "access-control-allow-credentials"), Some("true"));
    let allowed = header(&response, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(allowed.contains("cwa-ticket") && allowed.contains("content-type"), "{allowed}");
    assert!(header(&response, "access-control-allow-methods").unwrap().contains("POST"));
    assert!(header(&response, "vary").unwrap().to_ascii_lowercase().contains("origin"));

    let stranger = preflight(&server.base, "https://evil.example").await;
    assert_eq!(header(&stranger, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_configured_origin_signs_in_and_reads_the_ticket() {
    let server = TestServer::start_with(cors_config(), USERS).await;
    let body = "<cwaRequests><logon><user>alice@example.com</user><password>pw</password></logon></cwaRequests>";
    let response = reqwest::Client::new()
        .post(format!("{}/forms/logon.html", server.base))
        .header("Origin", ORIGIN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&response, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&response, "access-control-expose-headers").map(str::to_ascii_lowercase).as_deref(), Some("cwa-ticket"));
    assert!(header(&response, "vary").unwrap().to_ascii_lowercase().contains("origin"));
    assert!(header(&response, "cwa-ticket").is_some());

    // Another origin gets the same reply but no CORS grant, so its browser keeps it from the page.
    let other = get(format!("{}/presence-badge.js", server.base), Some("https://evil.example")).await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    let badge = get(format!("{}/presence-badge.js", server.base), Some(ORIGIN)).await;
    assert_eq!(header(&badge, "access-control-allow-origin"), Some(ORIGIN));
}

#[tokio::test]
async fn a_bad_cors_origin_is_a_config_error() {
    let error = Config::from_toml("cors_origins = [\"*\"]").unwrap_err();
    assert!(error.contains("cors_origins"), "{error}");
}

/// Sends a command authenticated by the ticket cookie alone, with the given browser headers.
async fn with_cookie(server: &TestServer, ticket: &str, headers: &[(&str, &str)]) -> u16 {
    let body = format!(r#"<cwaRequests xmlns="{NS}"><initiateSession rid="1"/></cwaRequests>"#);
    let mut request = reqwest::Client::new()
        .post(format!("{}/cwa/MainCommandHandler.ashx", server.base))
        .header("Cookie", format!("CWA-Ticket={ticket}"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_ticket_cookie_counts_only_from_the_gateways_own_pages_and_configured_origins() {
    let server = TestServer::start_with(cors_config(), USERS).await;
    let ticket = server.sign_in("alice@example.com").await.ticket;
    let own = server.base.clone();
    assert_eq!(with_cookie(&server, &ticket, &[]).await, 200, "no browser headers: a script");
    assert_eq!(with_cookie(&server, &ticket, &[("Origin", &own)]).await, 200, "the gateway's own page");
    assert_eq!(with_cookie(&server, &ticket, &[("Origin", ORIGIN)]).await, 200, "a configured origin");
    assert_eq!(with_cookie(&server, &ticket, &[("Origin", "http://intranet-2.example")]).await, 401, "another origin");
    assert_eq!(with_cookie(&server, &ticket, &[("Origin", "null")]).await, 401, "a sandboxed page");
    assert_eq!(
        with_cookie(&server, &ticket, &[("Sec-Fetch-Site", "same-site")]).await,
        401,
        "a no-CORS request from a sibling host"
    );
    assert_eq!(with_cookie(&server, &ticket, &[("Sec-Fetch-Site", "same-origin")]).await, 200);

    // The header ticket is not a cookie: it works from any page that may send it at all.
    let alice = server.sign_in("alice@example.com").await;
    let reply = send(
        alice
            .http
            .post(format!("{}/cwa/MainCommandHandler.ashx", server.base))
            .header("CWA-Ticket", &alice.ticket)
            .header("Origin", "http://intranet-2.example")
            .body(format!(r#"<cwaRequests xmlns="{NS}"><initiateSession rid="1"/></cwaRequests>"#)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
