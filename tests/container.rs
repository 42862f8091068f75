//! The container image without a container engine. The build stage of `docker/Dockerfile` is
//! replayed (see `support/dockerfile.rs`): each `COPY` copies exactly what it names into a clean
//! directory and each `RUN` runs there, so the build fails here as it would in `docker build` when
//! a step needs a file not copied yet. Then the exact start command of the image (ENTRYPOINT + CMD,
//! with its ENV) runs the built binary through `docker/entrypoint.sh`; its HEALTHCHECK command is
//! run against it, and its STOPSIGNAL must end the gateway with status 0 (which also shows that the
//! entrypoint hands over with `exec`).

mod common;
#[path = "support/dockerfile.rs"]
mod dockerfile;
#[path = "support/process.rs"]
mod process;

use common::*;
use dockerfile::{Replay, Stage};
use process::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn stages() -> Vec<Stage> {
    dockerfile::parse(&std::fs::read_to_string(Path::new(ROOT).join("docker/Dockerfile")).unwrap())
}

/// The instructions of the Dockerfile's last stage (the image).
fn final_stage() -> Vec<(String, String)> {
    let last = stages().pop().expect("a FROM");
    last.instructions.into_iter().map(|i| (i.word, i.rest)).collect()
}

fn instruction<'a>(stage: &'a [(String, String)], word: &str) -> &'a str {
    stage.iter().find(|(w, _)| w == word).map(|(_, rest)| rest.as_str()).unwrap_or_else(|| panic!("no {word}"))
}

fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not in exec form: {e}"))
}

/// Where a file the image runs comes from in the repository (its `COPY` source).
fn copied_from(stage: &[(String, String)], image_path: &str) -> PathBuf {
    let copy = stage
        .iter()
        .filter(|(w, _)| w == "COPY")
        .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
        .find(|parts| parts.last() == Some(&image_path) && !parts[0].starts_with("--from"))
        .unwrap_or_else(|| panic!("no COPY of {image_path}"));
    Path::new(ROOT).join(copy[copy.len() - 2])
}

fn image_env(stage: &[(String, String)]) -> HashMap<String, String> {
    let pairs = stage.iter().filter(|(w, _)| w == "ENV").flat_map(|(_, rest)| rest.split_whitespace());
    pairs.filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A command run the way the image runs it: the image's ENV, the binary on PATH, `overrides`.
fn as_in_image(argv: &[String], stage: &[(String, String)], overrides: &[(&str, &str)]) -> Command {
    let program = if argv[0].starts_with('/') { copied_from(stage, &argv[0]) } else { PathBuf::from(&argv[0]) };
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new(program);
    command.args(&argv[1..]).env("PATH", path).env("RUST_LOG", "info");
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("GATEWAY_")) {
        command.env_remove(name);
    }
    command.envs(image_env(stage));
    command.envs(overrides.iter().copied());
    command
}

#[test]
fn the_image_runs_as_a_non_root_user_with_a_data_volume() {
    let stage = final_stage();
    let user = instruction(&stage, "USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "USER {user}");
    assert!(exec_form(instruction(&stage, "VOLUME")).contains(&"/data".to_string()));
    assert_eq!(instruction(&stage, "STOPSIGNAL"), "SIGTERM");
    let env = image_env(&stage);
    assert_eq!(env["GATEWAY_DATA_DIR"], "/data");
    let port = env["GATEWAY_LISTEN"].rsplit(':').next().unwrap();
    assert_eq!(instruction(&stage, "EXPOSE"), port, "EXPOSE matches the listen port");
    let compose = std::fs::read_to_string(Path::new(ROOT).join("docker/compose.yml")).unwrap();
    assert!(compose.contains("dockerfile: docker/Dockerfile") && compose.contains(":/data"), "{compose}");
}

#[tokio::test]
async fn the_image_start_command_serves_answers_its_health_check_and_stops_on_its_signal() {
    let stage = final_stage();
    let mut start_command = exec_form(instruction(&stage, "ENTRYPOINT"));
    start_command.extend(exec_form(instruction(&stage, "CMD")));
    let healthcheck = instruction(&stage, "HEALTHCHECK");
    let probe = exec_form(healthcheck.split_once("CMD ").expect("HEALTHCHECK CMD").1);

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(&users, USERS).unwrap();
    let data = dir.path().join("data"); // stands in for the /data volume
    let (data, users) = (data.to_str().unwrap(), users.to_str().unwrap());
    let overrides = [("GATEWAY_LISTEN", "127.0.0.1:0"), ("GATEWAY_DATA_DIR", data), ("GATEWAY_USERS", users)];
    let mut gateway = start(as_in_image(&start_command, &stage, &overrides));

    let mut alice = Client::sign_in(&gateway.base, "alice@example.com", "pw").await.unwrap();
    alice.initiate().await;
    assert!(alice.poll().await.iter().any(|e| e.name == "selfPresence"));
    let address = gateway.base.trim_start_matches("http://").to_string();
    let (healthy, out) = output(as_in_image(&probe, &stage, &[("GATEWAY_LISTEN", address.as_str())]));
    assert!(healthy && out.contains("healthy"), "{out}");

    assert_eq!(instruction(&stage, "STOPSIGNAL"), "SIGTERM");
    gateway.terminate();
    let status = gateway.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "the gateway itself got the signal and shut down cleanly: {status:?}");
    assert!(Path::new(data).join("gateway.db").exists(), "the database lives in the data volume");
    let log = gateway.log.text();
    assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "the image logs JSON:\n{log}");

    let (healthy, out) = output(as_in_image(&probe, &stage, &[("GATEWAY_LISTEN", address.as_str())]));
    assert!(!healthy, "nobody answers once stopped: {out}");
}

#[test]
fn the_build_stage_builds_the_binary_from_exactly_what_it_copies() {
    let stages = stages();
    let build = stages.iter().find(|s| s.name.as_deref() == Some("build")).expect("a stage named build");
    let root = tempfile::tempdir().unwrap();
    let caches = Path::new(ROOT).join("target/container-replay");
    let replay = Replay { context: Path::new(ROOT), root: root.path(), caches: &caches };
    replay.run(build).unwrap_or_else(|e| panic!("the build stage fails: {e}"));

    let image = stages.last().unwrap();
    let from_build: Vec<&str> = image.all("COPY").filter(|c| c.starts_with("--from=build")).collect();
    assert!(!from_build.is_empty(), "the image takes the binary from the build stage");
    for copy in from_build {
        let source = copy.split_whitespace().nth(1).unwrap();
        assert!(replay.inside(source, root.path()).is_file(), "COPY {copy}: the build stage made no {source}");
    }
    let built = replay.inside("/usr/local/bin/presence-gateway", root.path());
    let mut version = Command::new(built);
    version.arg("--version");
    let (ok, out) = output(version);
    assert!(ok && out.starts_with("presence-gateway "), "{out}");
}

#[test]
fn the_replay_fails_a_step_that_needs_a_file_not_copied_yet() {
    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("src")).unwrap();
    std::fs::write(context.path().join("Cargo.toml"), "[package]").unwrap();
    std::fs::write(context.path().join("src/main.rs"), "fn main() {}").unwrap();
    std::fs::write(context.path().join(".dockerignore"), "target/\n*.db\n").unwrap();
    std::fs::write(context.path().join("gateway.db"), "").unwrap();
    let replay_of = |text: &str| {
        let root = tempfile::tempdir().unwrap();
        let caches = tempfile::tempdir().unwrap();
        let stage = dockerfile::parse(text).remove(0);
        Replay { context: context.path(), root: root.path(), caches: caches.path() }.run(&stage)
    };
    let too_early = "FROM rust AS build\nWORKDIR /src\nCOPY Cargo.toml ./\nRUN test -f Cargo.toml && test -f src/main.rs\n";
    let error = replay_of(too_early).unwrap_err();
    assert!(error.starts_with("RUN test -f Cargo.toml"), "{error}");
    let in_order = "FROM rust AS build\nWORKDIR /src\nCOPY Cargo.toml ./\nCOPY src src\nRUN test -f src/main.rs \\\n  && test -f Cargo.toml\n";
    replay_of(in_order).unwrap();
    let everything =
        "FROM rust AS build\nWORKDIR /src\nCOPY . .\nRUN test -f src/main.rs && ! test -e gateway.db && touch /usr/local/bin/x\n";
    replay_of(everything).unwrap();
    let missing = replay_of("FROM rust AS build\nCOPY static ./static\n").unwrap_err();
    assert!(missing.contains("static is not in the build context"), "{missing}");
}

/// The cluster composition: PostgreSQL, Redis, three replicas of this image told both, and
/// HAProxy with a configuration HAProxy itself accepts (round-robin, `/readyz` checks).
#[test]
fn the_cluster_composition_names_every_part_and_its_balancer_configuration_is_valid() {
    let compose = std::fs::read_to_string(Path::new(ROOT).join("docker/compose.cluster.yml")).unwrap();
    for part in ["image: postgres:", "image: redis:", "replicas: 3", "image: haproxy:", "dockerfile: docker/Dockerfile"] {
        assert!(compose.contains(part), "{part} is missing");
    }
    for variable in ["GATEWAY_STORE: postgres://", "GATEWAY_REDIS: redis://redis:6379"] {
        assert!(compose.contains(variable), "{variable} is missing");
    }
    let config = Path::new(ROOT).join("docker/haproxy.cfg");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("balance roundrobin") && text.contains("option httpchk GET /readyz"), "{text}");
    let (ok, out) = output({
        let mut check = Command::new("haproxy");
        check.arg("-c").arg("-f").arg(&config);
        check
    });
    assert!(ok, "haproxy -c: {out}");
}
