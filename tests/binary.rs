//! The real binary: `serve` with a users file survives `kill -9` without losing acknowledged
//! writes, and `user add|passwd|remove|list` manage the store with passwords from stdin.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_presence-gateway");

/// Starts `presence-gateway serve` on port 0 and reads the address it prints.
fn spawn_gateway(data_dir: &std::path::Path, users: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--users"])
        .arg(users)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("the gateway prints its address").unwrap();
        if let Some(address) = line.strip_prefix("presence-gateway listening on ") {
            break address.to_string();
        }
    };
    (child, base)
}

#[tokio::test]
async fn manual_state_and_note_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(&users, USERS).unwrap();
    let data = dir.path().join("data");

    let (mut child, base) = spawn_gateway(&data, &users);
    let mut bob = Client::sign_in(&base, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    assert!(bob.publish_state(6500).await.xml().child("requestAccepted").is_some());
    assert!(bob.publish_note("Survives restarts").await.xml().child("requestAccepted").is_some());
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();

    let (mut child, base) = spawn_gateway(&data, &users);
    let mut bob = Client::sign_in(&base, "bob@example.com", "pw").await.expect("users survive");
    bob.initiate().await;
    let mut alice = Client::sign_in(&base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.query(&["sip:bob@example.com"]).await;
    let user = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    let s = seen(&user);
    assert_eq!((s.availability, s.note.as_str()), (6500, "Survives restarts"));
    child.kill().unwrap();
    child.wait().unwrap();
}

fn run_cli(data: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn user_commands_manage_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = run_cli(&data, &["add", "sip:zoe@example.com", "--name", "Zoe Z", "--create"], "first-pass\n");
    assert!(ok, "{out}");
    assert!(!out.contains("first-pass"), "the password is never echoed");
    let (ok, out) = run_cli(&data, &["list"], "");
    assert!(ok && out.contains("sip:zoe@example.com\tZoe Z"), "{out}");
    let (ok, _) = run_cli(&data, &["passwd", "sip:zoe@example.com"], "second-pass\n");
    assert!(ok);
    let (ok, out) = run_cli(&data, &["add", "zoe@example.com", "--name", "Z"], "x\n");
    assert!(!ok && out.contains("not a sip: URI"), "{out}");
    let (ok, out) = run_cli(&data, &["add", "sip:bell@example.com", "--name", "Bell\u{7}"], "x\n");
    assert!(!ok && out.contains("--name contains U+0007"), "{out}");
    let (ok, out) = run_cli(&data, &["add", "sip:bell@example.com", "--name", "B", "--email", "b\u{1b}@x"], "x\n");
    assert!(!ok && out.contains("--email contains U+001B"), "{out}");
    let (ok, out) = run_cli(&data, &["passwd", "sip:nobody@example.com"], "x\n");
    assert!(!ok && out.contains("no user"), "{out}");
    let (ok, out) = run_cli(&data, &["add", "sip:empty@example.com", "--name", "E"], "");
    assert!(!ok && out.contains("no password"), "{out}");

    let users = dir.path().join("users.toml");
    std::fs::write(&users, "").unwrap();
    let (mut child, base) = spawn_gateway(&data, &users);
    assert!(Client::sign_in(&base, "zoe@example.com", "first-pass").await.is_err());
    assert!(Client::sign_in(&base, "zoe@example.com", "second-pass").await.is_ok());
    child.kill().unwrap();
    child.wait().unwrap();

    let (ok, _) = run_cli(&data, &["remove", "sip:zoe@example.com"], "");
    assert!(ok);
    let (_, out) = run_cli(&data, &["list"], "");
    assert!(!out.contains("zoe"), "{out}");
}

#[path = "support/pg.rs"]
mod pg;

/// A gateway process that is killed when the test ends, also when it fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `presence-gateway serve` on port 0 with extra arguments (e.g. `--store URL`).
fn spawn_gateway_with(data_dir: &std::path::Path, users: &std::path::Path, extra: &[String]) -> (Killed, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--users"])
        .arg(users)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the gateway prints its address").unwrap();
        if let Some(address) = line.strip_prefix("presence-gateway listening on ") {
            break address.to_string();
        }
    };
    (Killed(child), base)
}

/// `presence-gateway user …` against a store.
fn user_cli(data: &std::path::Path, extra: &[String], args: &[&str], stdin: &str) -> (bool, String) {
    let all: Vec<String> = args.iter().map(|a| a.to_string()).chain(extra.iter().cloned()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run_cli(data, &all, stdin)
}

/// Signs in until it works (or fails for good after 10 s): the change has to travel from the
/// CLI's process to the gateway's.
async fn signs_in_soon(base: &str, user: &str, password: &str, expected: bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ok = Client::sign_in(base, user, password).await.is_ok();
        if ok == expected || std::time::Instant::now() > deadline {
            return ok;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A user added, changed and removed with the CLI while the gateway runs can (and then cannot)
/// sign in at once, a watcher who subscribed before the user existed becomes their subscriber,
/// and a watcher on the running gateway sees the new name.
async fn cli_changes_reach_a_running_gateway(extra: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(&users, USERS).unwrap();
    let data = dir.path().join("data");
    let (_gateway, base) = spawn_gateway_with(&data, &users, extra);
    assert!(Client::sign_in(&base, "zed@example.com", "zed-pass").await.is_err());
    let mut alice = Client::sign_in(&base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.subscribe(&["sip:zed@example.com"]).await;

    let (ok, out) = user_cli(&data, extra, &["add", "sip:zed@example.com", "--name", "Zed"], "zed-pass\n");
    assert!(ok, "{out}");
    assert!(signs_in_soon(&base, "zed@example.com", "zed-pass", true).await, "a user added by the CLI signs in at once");
    alice.wait_for_user("sip:zed@example.com", |u| format!("{u:?}").contains("Zed")).await;
    let mut zed = Client::sign_in(&base, "zed@example.com", "zed-pass").await.unwrap();
    zed.initiate().await;
    let listed = |e: &Event| {
        e.name == "subscribers" && e.element.children_named("subscriber").any(|s| s.attr("uri") == Some("sip:alice@example.com"))
    };
    zed.wait_for("Alice among Zed's subscribers", listed).await;

    let (ok, out) = user_cli(&data, extra, &["add", "sip:zed@example.com", "--name", "Zed Renamed"], "zed-pass\n");
    assert!(ok, "{out}");
    let card = alice.wait_for_user("sip:zed@example.com", |u| format!("{u:?}").contains("Zed Renamed")).await;
    assert!(format!("{card:?}").contains("Zed Renamed"));

    let (ok, out) = user_cli(&data, extra, &["remove", "sip:zed@example.com"], "");
    assert!(ok, "{out}");
    assert!(!signs_in_soon(&base, "zed@example.com", "zed-pass", false).await, "a removed user cannot sign in");
}

#[tokio::test]
async fn cli_changes_reach_a_running_gateway_on_sqlite() {
    cli_changes_reach_a_running_gateway(&[]).await;
}

#[tokio::test]
async fn cli_changes_reach_a_running_gateway_on_postgres() {
    let schema = pg::PgSchema::create().await;
    cli_changes_reach_a_running_gateway(&["--store".into(), schema.url()]).await;
}

/// Two gateways on one PostgreSQL store: a rights change made on one re-filters what a watcher
/// signed in on the other sees (Bob blocks Alice: his contact card disappears for her).
#[tokio::test]
async fn a_rights_change_on_one_gateway_refilters_watchers_on_another() {
    let schema = pg::PgSchema::create().await;
    let extra = ["--store".to_string(), schema.url()];
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(&users, USERS).unwrap();
    let (_one, base_one) = spawn_gateway_with(&dir.path().join("a"), &users, &extra);
    let (_two, base_two) = spawn_gateway_with(&dir.path().join("b"), &users, &extra);

    let mut alice = Client::sign_in(&base_one, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |u| !seen(u).phones.is_empty()).await;

    let mut bob = Client::sign_in(&base_two, "bob@example.com", "pw").await.unwrap();
    bob.initiate().await;
    let rid = bob.next_rid();
    let block = format!(
        r#"<updateContainer rid="{rid}"><container id="32000"><addMember type="uri" value="sip:alice@example.com"/></container></updateContainer>"#
    );
    let reply = bob.command(&block).await;
    assert!(reply.body.contains("requestAccepted"), "{}", reply.body);
    let user = alice.wait_for_user("sip:bob@example.com", |u| seen(u).phones.is_empty()).await;
    assert_eq!(seen(&user).title, None, "blocked: nothing of the card is shown");
}
