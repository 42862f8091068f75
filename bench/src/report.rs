//! What a run leaves behind: a human-readable table on stdout and a JSON file with the machine,
//! the git commit, the command, the parameters, the figures and the checks (lost and duplicated
//! events, which must be 0), plus SVG plots next to it.

use crate::session::Tracker;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The correctness checks of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checks {
    /// Events that never arrived: eid gaps plus watchers left without a publisher's last change.
    pub lost_events: u64,
    /// Events delivered twice (an eid at or below one already read).
    pub duplicated_events: u64,
    pub eid_gaps: u64,
    pub unconverged: u64,
    pub bad_ack_ids: u64,
    pub errors: u64,
    pub sessions_ended: u64,
    pub sessions_checked: u64,
}

impl Checks {
    /// Sums the trackers; with `expected` (publisher → last accepted change), also checks that
    /// every session ended up with the last change of everybody it watches.
    pub fn from(trackers: &[Tracker], subscriptions: &HashMap<u64, Vec<usize>>, expected: &HashMap<u32, u64>) -> Checks {
        let mut c = Checks::default();
        for t in trackers {
            c.eid_gaps += t.eid_gaps;
            c.duplicated_events += t.duplicates;
            c.bad_ack_ids += t.bad_acks;
            c.errors += t.errors;
            c.sessions_ended += u64::from(t.ended);
            c.sessions_checked += 1;
            for publisher in subscriptions.get(&t.sid).into_iter().flatten() {
                let want = expected.get(&(*publisher as u32)).copied().unwrap_or(0);
                if want > 0 && t.seen.get(&(*publisher as u32)).copied().unwrap_or(0) != want {
                    c.unconverged += 1;
                }
            }
        }
        c.lost_events = c.eid_gaps + c.unconverged;
        c
    }

    /// Adds the checks of another part of the run (a worker process's sessions).
    pub fn add(&mut self, other: &Checks) {
        self.lost_events += other.lost_events;
        self.duplicated_events += other.duplicated_events;
        self.eid_gaps += other.eid_gaps;
        self.unconverged += other.unconverged;
        self.bad_ack_ids += other.bad_ack_ids;
        self.errors += other.errors;
        self.sessions_ended += other.sessions_ended;
        self.sessions_checked += other.sessions_checked;
    }
}

/// One run's results.
pub struct Report {
    pub scenario: &'static str,
    pub parameters: Value,
    pub figures: Vec<(String, Value)>,
    pub checks: Checks,
    pub notes: Vec<String>,
    pub plots: Vec<(&'static str, String)>,
    pub started: chrono::DateTime<chrono::Utc>,
}

impl Report {
    pub fn new(scenario: &'static str, parameters: Value) -> Report {
        Report {
            scenario,
            parameters,
            figures: Vec::new(),
            checks: Checks::default(),
            notes: Vec::new(),
            plots: Vec::new(),
            started: chrono::Utc::now(),
        }
    }

    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.push((name.to_string(), value.into()));
    }

    pub fn figures(&mut self, list: Vec<(String, Value)>) {
        self.figures.extend(list);
    }

    /// Writes `{scenario}-{time}.json` and the plots into `dir`; returns the JSON file's path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let stem = format!("{}-{}", self.scenario, self.started.format("%Y%m%d-%H%M%S"));
        let mut plots = Vec::new();
        for (name, svg) in &self.plots {
            let file = format!("{stem}-{name}.svg");
            std::fs::write(dir.join(&file), svg)?;
            plots.push(file);
        }
        let figures: Map<String, Value> = self.figures.iter().cloned().collect();
        let document = json!({
            "scenario": self.scenario,
            "started_at": self.started.to_rfc3339(),
            "wall_seconds": crate::stats::round3((chrono::Utc::now() - self.started).num_milliseconds() as f64 / 1000.0),
            "machine": machine(),
            "git": git(),
            "command": std::env::args().collect::<Vec<_>>(),
            "parameters": self.parameters,
            "figures": figures,
            "checks": self.checks,
            "notes": self.notes,
            "plots": plots,
        });
        let path = dir.join(format!("{stem}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&document)?)?;
        Ok(path)
    }

    /// The table on stdout.
    pub fn print(&self) {
        println!("\n== {} ==", self.scenario);
        let width = self.figures.iter().map(|(n, _)| n.len()).max().unwrap_or(10).max(22);
        for (name, value) in &self.figures {
            println!("  {name:<width$}  {value}");
        }
        let c = &self.checks;
        println!(
            "  {:<width$}  lost {} · duplicated {} · eid gaps {} · unconverged {} · bad ackIds {} · errors {} · sessions checked {}",
            "checks", c.lost_events, c.duplicated_events, c.eid_gaps, c.unconverged, c.bad_ack_ids, c.errors, c.sessions_checked
        );
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

/// The machine a run was made on.
pub fn machine() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("");
    let meminfo = read("/proc/meminfo");
    let mem_kib: u64 =
        meminfo.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0);
    let nofile = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "cpu": model.trim(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": crate::stats::round3(mem_kib as f64 / 1024.0 / 1024.0),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "nofile_limit": nofile.0,
    })
}

/// The commit of the working directory and whether tracked files differ from it.
pub fn git() -> Value {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({ "commit": commit, "dirty": dirty })
}
