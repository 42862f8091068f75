//! Runs the real `presence-gateway` binary (or the container's entrypoint): reads the address it
//! prints, collects its stderr so tests can wait for a log line without sleeping, sends SIGTERM
//! and waits (bounded) for the exit status.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_presence-gateway");

/// What a process wrote to stderr so far, with a signal for every new line.
#[derive(Default)]
pub struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

impl Log {
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `pred` (true), or `limit` passes (false).
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut text = self.text.lock().unwrap();
        loop {
            if text.lines().any(&pred) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.grew.wait_timeout(text, left).unwrap().0;
        }
    }
}

pub struct Running {
    pub child: Option<Child>,
    pub base: String,
    pub log: Arc<Log>,
}

/// Starts `command` with piped output and reads stdout up to the "listening on" line.
pub fn start(mut command: Command) -> Running {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the gateway");
    let log = Arc::new(Log::default());
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut text = sink.text.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
            sink.grew.notify_all();
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let base = loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            panic!("the gateway ended before listening:\n{}", log.text());
        }
        if let Some(address) = line.trim().strip_prefix("presence-gateway listening on ") {
            break address.to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Running { child: Some(child), base, log }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to end; panics after `limit`.
    pub async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let waited = tokio::task::spawn_blocking(move || child.wait());
        match tokio::time::timeout(limit, waited).await {
            Ok(status) => status.unwrap().unwrap(),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                panic!("the gateway did not exit within {limit:?}:\n{}", self.log.text());
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `presence-gateway` command with a quiet log and no inherited `GATEWAY_*` settings.
pub fn gateway(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env("RUST_LOG", "warn");
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("GATEWAY_")) {
        command.env_remove(name);
    }
    command
}

/// Runs a command to its end: (success, stdout + stderr).
pub fn output(mut command: Command) -> (bool, String) {
    let out = command.stdin(Stdio::null()).output().expect("run the command");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

/// Whether the gateway at `base` says on `/readyz` that it is `ready` (200) or not (503) within
/// `limit` (polled every 50 ms).
pub async fn ready_within(base: &str, limit: Duration, ready: bool) -> bool {
    let deadline = Instant::now() + limit;
    let http = reqwest::Client::new();
    loop {
        let status = http.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        if (status == 200) == ready {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
