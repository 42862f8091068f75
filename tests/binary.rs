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
