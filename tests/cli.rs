//! The command line, run as the real binary: `config check --config` like `config print`,
//! `config example` (a complete file that `config check` accepts), `healthcheck --help` showing only
//! what it uses, `user add` documenting its arguments and refusing to create a store silently,
//! `serve --demo` printing ready JSON API tokens, and `session list|end` against the running
//! gateway's admin API.

mod common;
#[path = "support/process.rs"]
mod process;

use common::*;
use process::*;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

fn run(args: &[&str]) -> (bool, String) {
    output(gateway(args))
}

#[test]
fn config_check_takes_the_file_with_config_and_accepts_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, example) = run(&["config", "example"]);
    assert!(ok, "{example}");
    assert!(example.lines().filter(|l| l.starts_with('#')).count() > 30, "commented:\n{example}");
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, &example).unwrap();
    let path = file.to_str().unwrap();
    let (ok, out) = run(&["config", "check", "--config", path]);
    assert!(ok && out.contains("gateway.toml: ok"), "{out}");
    let (ok, out) = run(&["config", "check", path]);
    assert!(ok && out.contains("gateway.toml: ok"), "the file as an argument still works: {out}");
    let (ok, printed) = run(&["config", "print", "--config", path]);
    assert!(ok && printed.contains("hold_seconds = 25"), "{printed}");

    std::fs::write(&file, example.replace("hold_seconds = 25", "hold_seconds = 75")).unwrap();
    let (ok, out) = run(&["config", "check", "--config", path]);
    assert!(!ok && out.contains("hold_seconds must be below 60"), "{out}");
    let mut with_variable = gateway(&["config", "check", "--config", path]);
    with_variable.env("GATEWAY_HOLD_SECONDS", "20");
    let (ok, out) = output(with_variable);
    assert!(ok, "the environment counts, as for print and serve: {out}");
}

/// Redis is named by the file (`redis`), `GATEWAY_REDIS` or `--redis`, in that order of
/// precedence; `config check` refuses what is no Redis address, and `config print` hides the
/// password.
#[test]
fn the_cluster_settings_come_from_file_variable_or_flag_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, "redis = \"redis://:s3cret@10.0.0.9:6379\"\nadvertise = \"http://10.0.0.5:8080\"\n").unwrap();
    let path = file.to_str().unwrap();
    let (ok, printed) = run(&["config", "print", "--config", path]);
    assert!(ok && printed.contains("redis = \"redis://:********@10.0.0.9:6379\""), "{printed}");
    assert!(!printed.contains("s3cret") && printed.contains("heartbeat_ttl_seconds = 15"), "{printed}");
    let mut variable = gateway(&["config", "print", "--config", path]);
    variable.env("GATEWAY_REDIS", "redis://10.0.0.7");
    let (ok, printed) = output(variable);
    assert!(ok && printed.contains("redis = \"redis://10.0.0.7\""), "{printed}");
    let mut flag = gateway(&["config", "print", "--config", path, "--redis", "redis://10.0.0.8"]);
    flag.env("GATEWAY_REDIS", "redis://10.0.0.7");
    let (ok, printed) = output(flag);
    assert!(ok && printed.contains("redis = \"redis://10.0.0.8\""), "{printed}");

    for (args, message) in [
        (["--redis", "http://10.0.0.8"], "redis: \"http://10.0.0.8\" is not an address"),
        (["--redis", "redis://:pw@"], "is not an address such as redis://"),
        (["--advertise", "10.0.0.5:8080"], "advertise: \"10.0.0.5:8080\" is not a URL"),
    ] {
        let (ok, out) = run(&["config", "check", "--config", path, args[0], args[1]]);
        assert!(!ok && out.contains(message), "{args:?}: {out}");
        assert!(!out.contains(":pw@"), "no password in errors: {out}");
    }
    let mut ttl = gateway(&["config", "check", "--config", path]);
    ttl.env("GATEWAY_HEARTBEAT_TTL_SECONDS", "1");
    let (ok, out) = output(ttl);
    assert!(!ok && out.contains("heartbeat_ttl_seconds must be between 2 and 300"), "{out}");
}

/// The long flags a `--help` lists.
fn flags(help: &str) -> Vec<String> {
    let words = help.split_whitespace().filter(|w| w.starts_with("--"));
    let mut flags: Vec<String> = words.map(|w| w.trim_end_matches([',', '.']).split('=').next().unwrap().to_string()).collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn healthcheck_help_lists_only_what_it_uses() {
    let (ok, help) = run(&["healthcheck", "--help"]);
    assert!(ok, "{help}");
    assert_eq!(flags(&help), ["--config", "--help", "--listen", "--timeout", "--tls-cert"], "{help}");
}

#[test]
fn user_add_documents_its_arguments() {
    let (ok, help) = run(&["user", "add", "--help"]);
    assert!(ok, "{help}");
    let lines: Vec<&str> = help.lines().collect();
    for (argument, says) in
        [("<URI>", "sip:"), ("--name", "Display name"), ("--email", "E-mail"), ("--create", "new, empty store")]
    {
        let at = lines.iter().position(|l| l.trim_start().starts_with(argument)).unwrap_or_else(|| panic!("{argument}:\n{help}"));
        let text = lines[at..(at + 2).min(lines.len())].join(" ");
        assert!(text.contains(says), "{argument} is explained:\n{help}");
    }
    assert!(help.contains("password is read from stdin"), "{help}");
}

fn user(data: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut command = gateway(&["user"]);
    command.args(args).arg("--data-dir").arg(data).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    // A command that refuses may exit before reading its input: its closed pipe is no failure.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn user_add_refuses_to_create_a_store_silently_and_says_where_the_store_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = user(&data, &["add", "sip:zoe@example.com", "--name", "Zoe Z"], "pw\n");
    let db = data.join("gateway.db");
    assert!(!ok && out.contains(&format!("no store at {}", db.display())) && out.contains("--create"), "{out}");
    assert!(!data.exists(), "nothing was created");
    let (ok, out) = user(&data, &["list"], "");
    assert!(!ok && out.contains("no store at"), "{out}");

    let (ok, out) = user(&data, &["add", "sip:zoe@example.com", "--name", "Zoe Z", "--create"], "pw\n");
    let said = out.contains("added sip:zoe@example.com to the store at") && out.contains(&db.display().to_string());
    assert!(ok && said, "{out}");
    let (ok, out) = user(&data, &["add", "sip:yan@example.com", "--name", "Yan"], "pw\n");
    assert!(ok, "an existing store needs no --create: {out}");
    let (ok, out) = user(&data, &["list"], "");
    assert!(ok && out.contains("sip:yan@example.com\tYan") && out.contains("sip:zoe@example.com\tZoe Z"), "{out}");
}

/// `serve --demo` on port 0: the gateway, and what it printed before listening.
fn demo(data: &std::path::Path) -> (std::process::Child, String, Vec<String>) {
    let mut command = gateway(&["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"]);
    command.arg(data).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let base = loop {
        let line = lines.next().expect("the gateway prints its address").unwrap();
        match line.strip_prefix("presence-gateway listening on ") {
            Some(base) => break base.to_string(),
            None => banner.push(line),
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, base, banner)
}

fn token(banner: &[String], name: &str) -> String {
    let export = banner.iter().find(|l| l.trim_start().starts_with("export ")).unwrap_or_else(|| panic!("{banner:?}"));
    let pair = export.split_whitespace().find(|w| w.starts_with(&format!("{name}="))).unwrap();
    pair.split_once('=').unwrap().1.to_string()
}

#[tokio::test]
async fn demo_prints_api_tokens_and_session_commands_list_and_end_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, banner) = demo(&dir.path().join("data"));
    let (source, admin) = (token(&banner, "SOURCE_TOKEN"), token(&banner, "ADMIN_TOKEN"));
    assert!(source.len() >= 16 && admin.len() >= 16 && source != admin, "{banner:?}");

    // The JSON API section works against --demo with these tokens.
    let http = reqwest::Client::new();
    let report = http
        .put(format!("{base}/api/v1/users/sip:dave@example.com/sources/headset"))
        .bearer_auth(&source)
        .json(&serde_json::json!({"kind": "bluetooth", "calls": [{"id": "b1", "state": "connected"}]}))
        .send()
        .await
        .unwrap();
    assert!(report.status().is_success(), "{}", report.text().await.unwrap());
    let users = http.get(format!("{base}/api/v1/users")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(users.status(), 200);

    let mut alice = Client::sign_in(&base, "alice@example.com", "demo").await.unwrap();
    alice.initiate().await;
    let address = base.trim_start_matches("http://");
    let session = |args: &[&str]| {
        let mut command = gateway(&["session"]);
        command.args(args).args(["--listen", address, "--token", &admin]);
        output(command)
    };
    let (ok, table) = session(&["list"]);
    assert!(ok, "{table}");
    let row = table.lines().find(|l| l.contains("sip:alice@example.com")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.starts_with(&alice.sid.to_string()) && row.contains("127.0.0.1") && row.contains("cwa"), "{row}");
    assert!(row.ends_with("active"), "{row}");
    let header = table.lines().next().unwrap();
    for column in ["SID", "USER", "NODE", "CLIENT", "STARTED", "LAST POLL", "STATE"] {
        assert!(header.contains(column), "{header}");
    }
    let (ok, json) = session(&["list", "--user", "alice@example.com", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert!(ok && listed[0]["sid"] == alice.sid, "{json}");

    let (ok, out) = session(&["end", &alice.sid.to_string()]);
    assert!(ok && out.contains(&format!("ended session {}", alice.sid)), "{out}");
    assert_eq!(alice.poll_with(0, true).await.status, 404);
    let (ok, out) = session(&["end", &alice.sid.to_string()]);
    assert!(!ok && out.contains("404") && out.contains("no live session"), "{out}");
    alice.initiate().await;
    let (ok, out) = session(&["end", "--user", "sip:alice@example.com"]);
    assert!(ok && out.contains("ended 1 session(s) of sip:alice@example.com"), "{out}");

    let mut wrong = gateway(&["session", "list", "--listen", address, "--token", &source]);
    wrong.arg("--timeout").arg("5");
    let (ok, out) = output(wrong);
    assert!(!ok && out.contains("403"), "a source token is refused: {out}");
    let (ok, out) = run(&["session", "list", "--listen", address]);
    assert!(!ok && out.contains("no admin token"), "{out}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Random tokens (URL-safe base64, as `--demo` prints them) start with `-` one time in 64: the
/// CLI must take such a token as the value of `--token`, not as an option of its own.
#[test]
fn a_token_starting_with_a_hyphen_is_taken_as_the_token() {
    let (ok, out) = run(&["session", "list", "--listen", "127.0.0.1:1", "--timeout", "2", "--token", "-lQ2n8vJx0aZ5kS1yRt7w"]);
    assert!(!ok, "nothing listens on port 1: {out}");
    assert!(!out.contains("unexpected argument") && !out.contains("Usage:"), "{out}");
}
