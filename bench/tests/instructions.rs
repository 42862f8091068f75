//! The CPU regression guard: the release gateway runs under `valgrind --tool=callgrind` in small
//! S2 (fan-out) and S4 (queryPresence) runs of the load generator, and its user-space instruction
//! counts per delivery and per query must stay within 25 % of the figures recorded in
//! `bench/results/instructions.json`. Instruction counts do not depend on the machine's load, so
//! this cannot flake the way a timing could; each figure is the difference of a short and a long
//! run divided by the extra work, so setup (start, sign-in, subscriptions) cancels out.
//! `scripts/test` installs valgrind; without it the guard is skipped with a message.
//! Re-recording: see BENCHMARKS.md ("The instruction-count guard").

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_presence-gateway-bench");
const RECORDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/results/instructions.json");
/// The one-off calibration of the metrics recorder's clock at start, whose length depends on
/// timing (10 million instructions, give or take 2 million): not counted, so that it cannot move
/// the figures. Collection is switched off on entering it and on again on leaving it (callgrind
/// turns `--collect-atstart` off for `--toggle-collect` unless it is given after it).
const CALIBRATION: &str = "quanta::Clock::new";
/// A figure fails the guard when it is more than this much above the recorded one.
const TOLERANCE: f64 = 1.25;

fn valgrind_available() -> bool {
    Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The release build of `binary` (package of the same name) of this workspace, built here when
/// missing or stale: instruction counts of a debug build say little about the product, or about
/// the floor.
fn release_binary(binary: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "-p", binary, "--bin", binary])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the release {binary} failed");
    // BENCH is <target>/<profile>/presence-gateway-bench.
    let target = Path::new(BENCH).parent().and_then(Path::parent).expect("target directory");
    let path = target.join("release").join(format!("{binary}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "no release {binary} at {}", path.display());
    path
}

/// Runs one scenario with the gateway under callgrind; returns its report and the gateway's total
/// instruction count.
fn measured_run(dir: &Path, gateway: &Path, tag: &str, scenario: &str, args: &[&str]) -> (Value, u64) {
    let profile = dir.join(format!("callgrind.{tag}.out"));
    let wrapper = dir.join("gateway-under-callgrind.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec valgrind --tool=callgrind --toggle-collect='{CALIBRATION}' --collect-atstart=yes \
             --callgrind-out-file=\"$GUARD_PROFILE\" '{}' \"$@\"\n",
            gateway.display()
        ),
    )
    .unwrap();
    set_executable(&wrapper);
    let out = dir.join(format!("report-{tag}"));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(BENCH)
        .arg(scenario)
        .args(args)
        .arg("--gateway")
        .arg(&wrapper)
        .args(["--quiet", "--max-seconds", "300", "--hold-seconds", "25", "--concurrency", "4", "--pool", "8"])
        .arg("--out")
        .arg(&out)
        .env("GUARD_PROFILE", &profile)
        .output()
        .expect("run the load generator");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{scenario} under callgrind failed:\n{text}");
    let report = single_json(&out);
    assert_eq!(report["checks"]["lost_events"], 0, "{report:#}");
    assert_eq!(report["checks"]["duplicated_events"], 0, "{report:#}");
    assert_eq!(report["checks"]["errors"], 0, "{report:#}");
    (report, total_instructions(&profile))
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn single_json(dir: &Path) -> Value {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

/// The `summary:` line of a callgrind profile (instructions executed, all threads).
fn total_instructions(profile: &Path) -> u64 {
    let text = std::fs::read_to_string(profile).unwrap_or_else(|e| panic!("no callgrind profile {}: {e}", profile.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {}", profile.display()))
}

fn figure(report: &Value, name: &str) -> f64 {
    report["figures"][name].as_f64().unwrap_or_else(|| panic!("no figure {name} in {report:#}"))
}

/// S2: one change to 500 watchers, 2 changes against 6; instructions per delivery.
fn s2_instructions_per_delivery(dir: &Path, gateway: &Path) -> f64 {
    let run = |tag: &str, changes: &str| {
        let args = ["--watchers", "500", "--sessions-per-user", "10", "--changes", changes, "--pause-ms", "200"];
        let (report, instructions) = measured_run(dir, gateway, tag, "fanout", &args);
        assert_eq!(figure(&report, "changes_not_reaching_everyone"), 0.0, "{report:#}");
        (figure(&report, "latency_samples"), instructions as f64)
    };
    let (short_deliveries, short) = run("s2-short", "2");
    let (long_deliveries, long) = run("s2-long", "6");
    assert_eq!(long_deliveries - short_deliveries, 2000.0, "every watcher had every change once");
    (long - short) / (long_deliveries - short_deliveries)
}

/// S4: 20-URI queryPresence over 5 connections, 4 against 44 queries each; instructions per query.
fn s4_instructions_per_query(dir: &Path, gateway: &Path) -> f64 {
    let run = |tag: &str, queries: &str| {
        let args = ["--connections", "5", "--uris", "20", "--users", "200", "--seconds", "240", "--queries", queries];
        let (report, instructions) = measured_run(dir, gateway, tag, "query", &args);
        assert_eq!(figure(&report, "answers_on_data_channel"), figure(&report, "requests"), "{report:#}");
        (figure(&report, "requests"), instructions as f64)
    };
    let (short_queries, short) = run("s4-short", "4");
    let (long_queries, long) = run("s4-long", "44");
    assert_eq!(long_queries - short_queries, 200.0, "every query was accepted");
    (long - short) / (long_queries - short_queries)
}

/// The floor under S2 (`presence-gateway-bench floor`, BENCHMARKS.md "The floor under a
/// delivery"): a bare long-poll server's instructions per delivery, the same pair of runs as S2.
fn floor_instructions_per_delivery(dir: &Path, bench: &Path) -> f64 {
    let run = |tag: &str, changes: &str| {
        let profile = dir.join(format!("callgrind.{tag}.out"));
        let prefix = format!("valgrind --tool=callgrind --callgrind-out-file={}", profile.display());
        let output = Command::new(bench)
            .args(["floor", "--watchers", "500", "--pause-ms", "200", "--changes", changes, "--server-prefix", &prefix])
            .output()
            .expect("run the floor");
        let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the floor under callgrind failed:\n{text}");
        total_instructions(&profile) as f64
    };
    let short = run("floor-short", "2");
    let long = run("floor-long", "6");
    (long - short) / 2000.0
}

#[test]
fn instructions_per_delivery_and_per_query_stay_near_the_recorded_figures() {
    if !valgrind_available() {
        eprintln!("SKIPPED: valgrind is not installed (scripts/test installs it); the instruction-count guard did not run");
        return;
    }
    let gateway = release_binary("presence-gateway");
    // INSTRUCTIONS_PROFILE_DIR keeps the callgrind profiles (for `callgrind_annotate`).
    let scratch = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("INSTRUCTIONS_PROFILE_DIR").map_or_else(|| scratch.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let s2 = s2_instructions_per_delivery(&dir, &gateway).round();
    let floor = floor_instructions_per_delivery(&dir, &release_binary("presence-gateway-bench")).round();
    let measured = serde_json::json!({
        "how": "user-space instructions (callgrind Ir) of the release gateway; bench/tests/instructions.rs, BENCHMARKS.md",
        "s2_instructions_per_delivery": s2,
        "s4_instructions_per_query": s4_instructions_per_query(&dir, &gateway).round(),
        "floor_instructions_per_delivery": floor,
    });
    eprintln!("measured: {measured}");
    // Not guarded: what a bare long-poll server costs on this runtime, for scale.
    eprintln!("S2 per delivery is {:.1} times the floor's {floor}", s2 / floor);
    if std::env::var_os("RECORD_INSTRUCTIONS").is_some() {
        std::fs::write(RECORDED, serde_json::to_string_pretty(&measured).unwrap() + "\n").unwrap();
        eprintln!("recorded in {RECORDED}");
        return;
    }
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(RECORDED).unwrap()).unwrap();
    let mut regressions = Vec::new();
    for name in ["s2_instructions_per_delivery", "s4_instructions_per_query"] {
        let (now, then) = (measured[name].as_f64().unwrap(), recorded[name].as_f64().unwrap());
        eprintln!("{name}: {now} (recorded {then}, {:+.1} %)", (now / then - 1.0) * 100.0);
        if now > then * TOLERANCE {
            regressions.push(format!("{name}: {now} is more than 25 % above the recorded {then}"));
        }
    }
    assert!(regressions.is_empty(), "instruction counts regressed:\n{}", regressions.join("\n"));
}
