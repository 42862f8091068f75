//! Keeps the load generator working: every scenario runs in a small smoke size against a gateway
//! it starts itself (the real binary on 127.0.0.1), and its JSON report must carry the scenario's
//! figures, the machine and the command, and 0 lost / 0 duplicated events; the cluster mode runs
//! S1–S3 across two real nodes. No timing is asserted: performance is measured by the
//! benchmarks, not by tests.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const BENCH: &str = env!("CARGO_BIN_EXE_presence-gateway-bench");

/// The gateway binary of the same build (the workspace's other package), built here if needed so
/// this suite also runs on its own (`cargo test -p presence-gateway-bench`).
fn gateway() -> &'static Path {
    static GATEWAY: OnceLock<PathBuf> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "presence-gateway", "--bin", "presence-gateway"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the gateway failed");
        let path = Path::new(BENCH).with_file_name(format!("presence-gateway{}", std::env::consts::EXE_SUFFIX));
        assert!(path.is_file(), "no gateway binary at {}", path.display());
        path
    })
}

/// Runs one scenario and returns its JSON report.
fn run(scenario: &str, args: &[&str]) -> Value {
    run_with_output(scenario, args).0
}

/// Runs one scenario and returns its JSON report and what it printed.
fn run_with_output(scenario: &str, args: &[&str]) -> (Value, String) {
    let out = tempfile::tempdir().unwrap();
    let mut command = bench(scenario, args);
    let output = command.arg("--out").arg(out.path()).output().expect("run the load generator");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{scenario} failed:\n{text}");
    let report = read_single_json(out.path());
    assert_eq!(report["checks"]["lost_events"], 0, "{report:#}");
    assert_eq!(report["checks"]["duplicated_events"], 0, "{report:#}");
    assert_eq!(report["checks"]["errors"], 0, "{report:#}");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(report["command"].as_array().unwrap().iter().any(|a| a == scenario));
    for plot in report["plots"].as_array().unwrap() {
        let svg = std::fs::read_to_string(out.path().join(plot.as_str().unwrap())).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
    }
    (report, text)
}

fn bench(scenario: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BENCH);
    command.arg(scenario).args(args).arg("--gateway").arg(gateway());
    command.args(["--quiet", "--max-seconds", "240", "--hold-seconds", "2", "--concurrency", "4"]);
    command
}

#[test]
fn results_go_outside_the_tracked_tree_unless_out_says_otherwise() {
    let checkout = tempfile::tempdir().unwrap(); // stands for a clone: bench/results is tracked
    std::fs::create_dir_all(checkout.path().join("bench/results")).unwrap();
    let mut command = bench("fanout", &["--watchers", "10", "--changes", "1", "--pause-ms", "50"]);
    let output = command.current_dir(checkout.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    read_single_json(&checkout.path().join("target/bench-results"));
    assert_eq!(std::fs::read_dir(checkout.path().join("bench/results")).unwrap().count(), 0, "nothing in the tracked tree");
}

fn read_single_json(dir: &Path) -> Value {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

fn figure(report: &Value, name: &str) -> f64 {
    report["figures"][name].as_f64().unwrap_or_else(|| panic!("no figure {name} in {report:#}"))
}

#[test]
fn idle_sessions_hold_polls_and_report_memory_per_session() {
    let r = run("idle", &["--sessions", "120", "--steps", "2", "--contacts", "10", "--idle-seconds", "1"]);
    assert_eq!(figure(&r, "held_polls"), 120.0);
    assert!(figure(&r, "rss_final_mib") > 0.0);
    figure(&r, "rss_per_session_bytes");
    figure(&r, "idle_cpu_percent_of_core");
    assert_eq!(r["checks"]["sessions_checked"], 120);
}

#[test]
fn one_change_reaches_every_watcher() {
    let r = run("fanout", &["--watchers", "100", "--changes", "2", "--pause-ms", "100"]);
    assert_eq!(figure(&r, "latency_samples"), 200.0, "every watcher saw both changes once");
    assert_eq!(figure(&r, "changes_not_reaching_everyone"), 0.0);
    assert!(figure(&r, "latency_max_ms") >= figure(&r, "latency_p50_ms"));
}

#[test]
fn steady_changes_are_delivered_without_loss() {
    let r = run(
        "steady",
        &[
            "--sessions",
            "100",
            "--subscriptions",
            "4",
            "--watchers-per-change",
            "20",
            "--rate",
            "20",
            "--seconds",
            "2",
            "--warmup",
            "1",
        ],
    );
    assert!(figure(&r, "deliveries_per_s") > 0.0);
    assert!(figure(&r, "events_per_http_response") >= 1.0);
    figure(&r, "server_cpu_seconds_per_1000_deliveries");
    assert_eq!(r["checks"]["unconverged"], 0);
}

#[test]
fn queries_are_answered_on_the_data_channel() {
    let r = run("query", &["--connections", "5", "--users", "50", "--seconds", "2"]);
    assert!(figure(&r, "requests") > 0.0);
    assert_eq!(figure(&r, "answers_on_data_channel"), figure(&r, "requests"));
    figure(&r, "round_trip_p99_ms");
}

#[test]
fn a_reconnect_storm_loses_and_duplicates_nothing() {
    let r = run(
        "reconnect",
        &[
            "--sessions",
            "100",
            "--subscriptions",
            "4",
            "--watchers-per-change",
            "20",
            "--rate",
            "20",
            "--before",
            "1",
            "--after",
            "2",
        ],
    );
    assert_eq!(figure(&r, "sessions_recovered"), 100.0);
    assert!(figure(&r, "connections_dropped") >= 100.0);
    figure(&r, "recovery_ms");
}

#[test]
fn sign_ins_are_counted_step_by_step() {
    let r = run("signin", &["--users", "12", "--contacts", "10"]);
    assert_eq!(figure(&r, "sign_ins"), 12.0);
    assert_eq!(figure(&r, "logon_samples"), 12.0);
    figure(&r, "server_cpu_seconds_per_sign_in");
}

#[test]
fn a_users_file_is_written_for_a_gateway_started_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let status = Command::new(BENCH).args(["users", "--count", "24", "--contacts", "5", "--out"]).arg(&file).status().unwrap();
    assert!(status.success());
    let parsed = presence_gateway::service::seed::UsersFile::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(parsed.user.len(), 24);
    assert_eq!(parsed.grant.len(), 24 * 7, "Team-level grants inside each team of eight");
}

#[test]
fn only_loopback_targets_are_accepted() {
    let output = Command::new(BENCH).args(["fanout", "--target", "http://10.1.2.3:8080", "--watchers", "1"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("127.0.0.0/8"));
}

// The cluster mode (`--nodes N`): real gateway processes on a PostgreSQL schema of the run's own
// (the server of the test setup, 127.0.0.1:5432 database `test`) and a redis-server the load
// generator starts itself. Without either the runs fail; nothing is skipped.

/// The schema a cluster run said it used is gone afterwards.
fn schema_was_dropped(output: &str) {
    let name = output
        .lines()
        .find_map(|l| l.strip_prefix("store: PostgreSQL schema "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no store line in:\n{output}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let left: i64 = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/test").await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1").bind(name).fetch_one(&mut conn).await.unwrap()
    });
    assert_eq!(left, 0, "schema {name} was left behind");
}

fn node_figures(r: &Value, nodes: usize) {
    assert_eq!(figure(r, "nodes"), nodes as f64);
    for n in 1..=nodes {
        assert!(figure(r, &format!("node{n}_deliveries")) > 0.0, "every node's watchers got changes: {r:#}");
        figure(r, &format!("node{n}_cpu_seconds_per_1000_deliveries"));
    }
    figure(r, "redis_cpu_seconds_per_1000_deliveries");
    figure(r, "cross_node_added_p99_ms");
}

#[test]
fn steady_changes_reach_watchers_on_both_nodes_of_a_cluster() {
    let args = ["--nodes", "2", "--sessions", "60", "--subscriptions", "4", "--watchers-per-change", "20"];
    let (r, output) = run_with_output("steady", &[&args[..], &["--rate", "20", "--seconds", "2", "--warmup", "1"]].concat());
    node_figures(&r, 2);
    assert_eq!(r["checks"]["unconverged"], 0);
    assert!(figure(&r, "latency_same_node_samples") > 0.0 && figure(&r, "latency_cross_node_samples") > 0.0);
    assert_eq!(
        figure(&r, "latency_same_node_samples") + figure(&r, "latency_cross_node_samples"),
        figure(&r, "latency_samples"),
        "every delivery is on the publishers' node or another"
    );
    assert!(output.contains("backplane: redis-server on redis://127.0.0.1:"), "{output}");
    schema_was_dropped(&output);
}

#[test]
fn one_change_reaches_every_watcher_across_nodes() {
    let (r, output) = run_with_output("fanout", &["--nodes", "2", "--watchers", "30", "--changes", "2", "--pause-ms", "100"]);
    assert_eq!(figure(&r, "latency_samples"), 60.0, "every watcher on either node saw both changes once");
    assert_eq!((figure(&r, "node1_deliveries"), figure(&r, "node2_deliveries")), (30.0, 30.0));
    assert_eq!(figure(&r, "changes_not_reaching_everyone"), 0.0);
    node_figures(&r, 2);
    schema_was_dropped(&output);
}

#[test]
fn sessions_are_held_on_every_node_by_a_worker_each() {
    let (r, output) = run_with_output(
        "idle",
        &[
            "--nodes",
            "2",
            "--sessions",
            "60",
            "--steps",
            "2",
            "--contacts",
            "5",
            "--sessions-per-user",
            "5",
            "--idle-seconds",
            "1",
        ],
    );
    assert_eq!(figure(&r, "held_polls"), 60.0);
    assert_eq!(figure(&r, "sessions_ended"), 0.0, "every session was polled in time");
    assert_eq!((figure(&r, "node1_held_polls"), figure(&r, "node2_held_polls")), (30.0, 30.0));
    assert_eq!(r["checks"]["sessions_checked"], 60);
    for n in 1..=2 {
        let (open, limit) = (figure(&r, &format!("node{n}_open_descriptors")), figure(&r, &format!("node{n}_descriptor_limit")));
        assert!(open >= 30.0 && limit > open, "node {n}: {open} open of {limit}");
        assert!(figure(&r, &format!("node{n}_connections_open")) >= 30.0, "the held polls at least");
    }
    assert!(figure(&r, "held_polls_possible_by_descriptor_limits") > 60.0);
    figure(&r, "rss_per_session_kib");
    schema_was_dropped(&output);
}

#[test]
fn a_cluster_without_its_store_fails_clearly() {
    let output = bench("steady", &["--nodes", "2", "--postgres", "postgres://nobody@127.0.0.1:1/none", "--sessions", "100"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to PostgreSQL at postgres://nobody@127.0.0.1:1/none"), "{stderr}");
}

#[test]
fn the_floor_server_delivers_every_change_to_every_watcher() {
    let output = Command::new(BENCH)
        .args(["floor", "--watchers", "20", "--changes", "3", "--pause-ms", "10"])
        .output()
        .expect("run the floor");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("watchers 20  changes 3  deliveries 60"), "{text}");
}
