//! The README's `curl` walkthrough is true: every command of the section "A walkthrough with
//! `curl`" runs, in order, with `bash` and `curl`, against a gateway seeded like `serve --demo`,
//! and the reply shown under it must be the real one. Tickets, sids and sign-in data differ per
//! run and are compared by shape; `…` in a shown reply stands for any text (a shortened body);
//! a shown header block lists headers the real reply must carry (others may follow).
//! `PRINT_WALKTHROUGH=1 cargo test --test readme_walkthrough -- --nocapture` prints every real
//! reply, to paste into the README after a change of the protocol.

mod common;

use common::test_config;
use presence_gateway::config::Config;
use presence_gateway::service::clock::ManualClock;
use presence_gateway::service::seed::{seed_demo, spawn_demo_activity};
use presence_gateway::service::Gateway;
use presence_gateway::store::sqlite::SqliteStore;
use std::sync::Arc;

const SECTION: &str = "## A walkthrough with `curl`";
const DEMO_BASE: &str = "http://127.0.0.1:8080";

/// A command block and the reply block shown under it (if any).
struct Step {
    command: String,
    shown: Option<String>,
}

/// The fenced blocks of the walkthrough section, paired: a `sh` block, then its reply block.
fn steps(readme: &str) -> Vec<Step> {
    let start = readme.find(SECTION).expect("the walkthrough section");
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line.strip_prefix("```") else { continue };
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        blocks.push((kind.to_string(), body.join("\n")));
    }
    let mut steps: Vec<Step> = Vec::new();
    for (kind, body) in blocks {
        match kind.as_str() {
            "sh" => steps.push(Step { command: body, shown: None }),
            _ => steps.last_mut().expect("a reply follows a command").shown = Some(body),
        }
    }
    steps
}

/// True for a block that only sets shell variables from an earlier reply (`TICKET=…   # your ticket`).
fn only_sets_variables(command: &str) -> bool {
    command.lines().all(|l| l.split_once('=').is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase())))
}

/// A value that differs per run: the text before it, which characters it has, what replaces it.
type Marker = (&'static str, fn(char) -> bool, &'static str);

/// Replaces what differs per run (tickets, sids, sign-in data, request ids, lengths) by markers.
fn normalise(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    let markers: [Marker; 7] = [
        ("CWA-Ticket: ", is_token, "TICKET"),
        ("cwa-ticket: ", is_token, "TICKET"),
        ("CWA-Ticket=", is_token, "TICKET"),
        ("sid=\"", |c| c.is_ascii_digit(), "SID"),
        ("<sid>", |c| c.is_ascii_digit(), "SID"),
        ("<signInData>", is_token, "SIGN-IN-DATA"),
        ("x-request-id: ", |c| c.is_ascii_hexdigit() || c == '-', "REQUEST-ID"),
    ];
    'outer: while !rest.is_empty() {
        for (prefix, keep, marker) in &markers {
            if let Some(after) = rest.strip_prefix(prefix) {
                let end = after.find(|c: char| !keep(c)).unwrap_or(after.len());
                out.push_str(prefix);
                out.push_str(marker);
                rest = &after[end..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn is_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// `shown` matches `real` when its pieces between `…` occur in order, the first at the start and
/// the last at the end.
fn matches_with_elisions(shown: &str, real: &str) -> bool {
    let pieces: Vec<&str> = shown.split('…').collect();
    let Some(rest) = real.strip_prefix(pieces[0]) else { return false };
    if pieces.len() == 1 {
        return rest.is_empty();
    }
    let mut rest = rest;
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(pieces[pieces.len() - 1])
}

/// Compares a shown reply with the real output: header lines must each be present, the body
/// must match with elisions.
fn assert_shown(command: &str, shown: &str, real: &str) {
    let (shown, real) = (normalise(shown), normalise(real));
    let (shown_head, shown_body, real_head, real_body) = if shown.starts_with("HTTP/") {
        let (sh, sb) = shown.split_once("\n\n").unwrap_or((&shown, ""));
        let (rh, rb) = real.split_once("\n\n").unwrap_or((&real, ""));
        (sh, sb, rh, rb)
    } else {
        ("", shown.as_str(), "", real.as_str())
    };
    for line in shown_head.lines() {
        assert!(
            real_head.lines().any(|l| l == line),
            "README shows header {line:?}, the real reply has:\n{real_head}\n(for {command})"
        );
    }
    assert!(
        matches_with_elisions(shown_body.trim_end(), real_body.trim_end()),
        "README shows:\n{shown_body}\nthe real reply is:\n{real_body}\n(for {command})"
    );
}

/// The value after `prefix` up to the first character `stop` accepts.
fn value_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let after = &text[text.find(prefix)? + prefix.len()..];
    Some(&after[..after.find(|c: char| !is_token(c)).unwrap_or(after.len())])
}

async fn demo_gateway() -> (String, Arc<Gateway>, tempfile::TempDir, tokio::task::JoinHandle<std::io::Result<()>>) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..test_config() };
    // The demo's defaults (hold time, session timeout) are what the README shows.
    let config = Config {
        hold_seconds: Config::default().hold_seconds,
        session_timeout_seconds: Config::default().session_timeout_seconds,
        ..config
    };
    let store = SqliteStore::open(&config.data_dir).await.unwrap();
    seed_demo(&store).await.unwrap();
    let gateway = Gateway::start(config, Arc::new(store), ManualClock::new(chrono::Utc::now())).await.unwrap();
    spawn_demo_activity(&gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(presence_gateway::serve(listener, gateway.clone(), std::future::pending()));
    (base, gateway, dir, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_walkthrough_reply_in_the_readme_is_the_real_one() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let steps = steps(&readme);
    assert!(steps.len() >= 5, "the walkthrough has its steps");
    let (base, _gateway, _dir, task) = demo_gateway().await;
    let (mut ticket, mut sid) = (String::new(), String::new());
    let mut checked = 0;
    for step in steps {
        if only_sets_variables(&step.command) {
            continue;
        }
        let script = step.command.replace(DEMO_BASE, &base);
        let output = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("TICKET", &ticket)
            .env("SID", &sid)
            .output()
            .await
            .expect("bash and curl run the README's commands");
        assert!(output.status.success(), "{}: {}", step.command, String::from_utf8_lossy(&output.stderr));
        let real = String::from_utf8(output.stdout).unwrap();
        if let Some(t) = value_after(&real, "cwa-ticket: ").or_else(|| value_after(&real, "CWA-Ticket: ")) {
            ticket = t.to_string();
        }
        if sid.is_empty() {
            if let Some(s) = value_after(&real, "<sid>") {
                sid = s.to_string();
            }
        }
        if std::env::var_os("PRINT_WALKTHROUGH").is_some() {
            eprintln!("$ {}\n{real}\n", step.command);
            continue;
        }
        if let Some(shown) = &step.shown {
            assert_shown(&step.command, shown, &real);
            checked += 1;
        }
    }
    let printing = std::env::var_os("PRINT_WALKTHROUGH").is_some();
    assert!(printing || checked >= 5, "every step's reply was compared");
    task.abort();
}

#[test]
fn elisions_and_markers_compare_what_they_should() {
    assert!(matches_with_elisions("<a>…</a>", "<a><b/></a>"));
    assert!(!matches_with_elisions("<a>…</a>", "<a><b/></a>x"));
    assert!(!matches_with_elisions("<a/>", "<a/><b/>"));
    assert!(matches_with_elisions("x…y…z", "x1y2z"));
    assert!(!matches_with_elisions("x…z…y", "x1y2z"));
    assert_eq!(normalise("sid=\"42\" <sid>42</sid> CWA-Ticket: ab-_9\r\n"), "sid=\"SID\" <sid>SID</sid> CWA-Ticket: TICKET\n");
}
