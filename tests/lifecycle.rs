//! The real binary's life: configuration refused with a clear message, `config check|print`,
//! SIGTERM answering a held poll and exiting 0 with JSON logs free of secrets, a shutdown bounded
//! even when a client stalls, and HTTPS with a certificate made in the test.

mod common;
#[path = "support/process.rs"]
mod process;

use common::*;
use process::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "Sesame-7781-open";
const WRONG_PASSWORD: &str = "Guess-4242-wrong";

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("users.toml");
    let text = format!(
        "[[user]]\nuri = \"sip:alice@example.com\"\ndisplay_name = \"Alice\"\npassword = \"{PASSWORD}\"\n\
         [[user]]\nuri = \"sip:bob@example.com\"\ndisplay_name = \"Bob\"\npassword = \"{PASSWORD}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(dir: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let users = users_file(dir);
    let data = dir.join("data");
    let mut command = gateway(&["serve", "--listen", "127.0.0.1:0"]);
    command.arg("--users").arg(users).arg("--data-dir").arg(data).args(extra);
    command
}

#[test]
fn bad_configuration_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, "hold_seconds = 20\n[limits]\nqueue_lenght = 5\n").unwrap();
    for mut command in [gateway(&["config", "check", "--config"]), serve(dir.path(), &["--config"])] {
        command.arg(&file);
        let (ok, out) = output(command);
        assert!(!ok, "{out}");
        assert!(out.contains("gateway.toml") && out.contains("line 3") && out.contains("queue_lenght"), "{out}");
        assert!(!out.contains("panicked") && !out.contains("backtrace"), "{out}");
    }
    let mut command = serve(dir.path(), &[]);
    command.env("GATEWAY_HOLD_SECONDS", "75");
    let (ok, out) = output(command);
    assert!(!ok && out.contains("hold_seconds must be below 60"), "{out}");
    let mut command = gateway(&["config", "check", "--config"]);
    command.arg(&file).env("GATEWAY_LIMITS__QUEUE_LENGTH", "many");
    std::fs::write(&file, "hold_seconds = 20\n").unwrap();
    let (ok, out) = output(command);
    assert!(!ok && out.contains("GATEWAY_LIMITS__QUEUE_LENGTH (limits.queue_length)"), "{out}");
    let mut command = serve(dir.path(), &["--tls-cert"]);
    command.arg(&file).arg("--tls-key").arg(&file);
    let (ok, out) = output(command);
    assert!(!ok && out.contains("tls_cert") && out.contains("gateway.toml"), "{out}");
}

#[test]
fn config_check_and_print_show_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let text = "hold_seconds = 20\ncors_origins = [\"https://intranet.example.com\"]\n\
                [[api_tokens]]\nname = \"pbx\"\ntoken = \"pbx-token-0123456789\"\nrole = \"source\"\n";
    std::fs::write(&file, text).unwrap();
    let mut check = gateway(&["config", "check", "--config"]);
    check.arg(&file);
    let (ok, out) = output(check);
    assert!(ok && out.contains("gateway.toml: ok"), "{out}");
    let mut print = gateway(&["config", "print", "--listen", "127.0.0.1:9999", "--config"]);
    print.arg(&file).env("GATEWAY_LIMITS__QUEUE_LENGTH", "77").env("GATEWAY_SESSION_TIMEOUT_SECONDS", "600");
    let (ok, out) = output(print);
    assert!(ok, "{out}");
    for line in ["listen = \"127.0.0.1:9999\"", "hold_seconds = 20", "session_timeout_seconds = 600", "queue_length = 77"] {
        assert!(out.contains(line), "{line} in\n{out}");
    }
    assert!(out.contains("name = \"pbx\"") && !out.contains("pbx-token-0123456789"), "{out}");
}

/// Waits until the gateway reports `count` polls in progress (observed, never slept for).
async fn wait_for_held_polls(base: &str, count: f64) {
    for _ in 0..1000 {
        let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
        let held = text.lines().find_map(|l| l.strip_prefix("presence_held_polls ")).and_then(|v| v.parse::<f64>().ok());
        if held >= Some(count) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the poll was never held");
}

#[tokio::test]
async fn sigterm_answers_the_held_poll_and_exits_0_with_logs_free_of_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(dir.path(), &["--log-format", "json"]);
    command
        .env("RUST_LOG", "info,tower_http=debug")
        .env("GATEWAY_HOLD_SECONDS", "50")
        .env("GATEWAY_SESSION_TIMEOUT_SECONDS", "120");
    let mut gateway = start(command);
    assert!(Client::sign_in(&gateway.base, "alice@example.com", WRONG_PASSWORD).await.is_err());
    let mut alice = Client::sign_in(&gateway.base, "alice@example.com", PASSWORD).await.unwrap();
    let ticket = alice.ticket.clone();
    alice.initiate().await;
    alice.poll().await; // the initial burst; the next poll has nothing to wait for
    let held = tokio::spawn(async move { alice.poll_with(alice.ack, true).await });
    wait_for_held_polls(&gateway.base, 1.0).await;

    gateway.terminate();
    let signalled = Instant::now();
    let reply = held.await.unwrap();
    let answered_after = signalled.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.xml().name, "cwaEvents");
    assert!(answered_after < Duration::from_secs(25), "answered at shutdown, not at the end of the 50 s hold");
    let status = gateway.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}\n{}", gateway.log.text());

    let log = gateway.log.text();
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry.get("level").is_some() && entry.get("timestamp").is_some(), "{line}");
    }
    let with_request_id = log.lines().filter(|l| l.contains("\"path\":\"/forms/logon.html\"") && l.contains("\"id\":\""));
    assert!(with_request_id.count() >= 2, "request spans carry a request id:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    for secret in [PASSWORD, WRONG_PASSWORD, ticket.as_str()] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
}

#[tokio::test]
async fn shutdown_is_bounded_when_a_client_stalls() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(dir.path(), &["--log-format", "json"]);
    command.env("RUST_LOG", "info,presence_gateway::http::conn=debug").env("GATEWAY_SHUTDOWN_TIMEOUT_SECONDS", "1");
    let mut gateway = start(command);
    // A sign-in whose body never finishes: an in-flight request the shutdown has to wait for.
    let address = gateway.base.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!("POST /forms/logon.html HTTP/1.1\r\nHost: {address}\r\nContent-Length: 1000\r\n\r\n<cwaRequests>");
    stalled.write_all(head.as_bytes()).await.unwrap();
    let log = gateway.log.clone();
    let started = tokio::task::spawn_blocking(move || {
        log.wait_for(Duration::from_secs(20), |l| l.contains("request head read") && l.contains("/forms/logon.html"))
    });
    assert!(started.await.unwrap(), "the request reached the gateway");

    gateway.terminate();
    let status = gateway.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert!(gateway.log.text().contains("shutdown timeout reached"), "{}", gateway.log.text());
    drop(stalled);
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM files.
fn certificate(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (cert, key, generated.cert.der().to_vec())
}

/// One HTTP/1.1 request over TLS, trusting only `trusted` (DER); returns the raw response.
async fn https_request(address: &str, trusted: &[u8], request: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki_types::CertificateDer::from(trusted.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path(), "gateway");
    let mut command = serve(dir.path(), &[]);
    command.env("GATEWAY_TLS_CERT", &cert).env("GATEWAY_TLS_KEY", &key);
    let mut gateway = start(command);
    let address = gateway.base.strip_prefix("https://").expect("an https address").to_string();

    let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let response = https_request(&address, &der, get).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ok"), "{response}");
    let body = format!("<cwaRequests><logon><user>alice@example.com</user><password>{PASSWORD}</password></logon></cwaRequests>");
    let logon = format!(
        "POST /forms/logon.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = https_request(&address, &der, &logon).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200") && response.to_ascii_lowercase().contains("cwa-ticket:"), "{response}");
    let cookie = response.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("the ticket cookie");
    assert!(cookie.ends_with("; Secure"), "served over HTTPS, the cookie is Secure: {cookie}");

    let (_, _, other) = certificate(dir.path(), "other");
    assert!(https_request(&address, &other, get).await.is_err(), "a client trusting another certificate refuses");
    let plain = reqwest::get(format!("http://{address}/healthz")).await;
    assert!(plain.is_err(), "no plain HTTP on the TLS port");

    // The container health check speaks HTTPS to the configured certificate.
    let mut probe = process::gateway(&["healthcheck", "--listen", &address, "--tls-cert"]);
    probe.arg(&cert);
    let (ok, out) = output(probe);
    assert!(ok && out.contains("healthy"), "{out}");
    let (other_cert, other_key, _) = certificate(dir.path(), "third");
    let mut probe = process::gateway(&["healthcheck", "--listen", &address, "--tls-cert"]);
    probe.arg(&other_cert).arg("--tls-key").arg(&other_key); // accepted (unlisted) and unused
    let (ok, out) = output(probe);
    assert!(!ok, "the probe accepts only the configured certificate: {out}");

    gateway.terminate();
    assert!(gateway.exit_status(Duration::from_secs(20)).await.success());
}
