//! The gateway under test: either started here (`presence-gateway serve` on 127.0.0.1:0 with a
//! generated users file, a config with the limits a run needs, and a scratch data directory) or an
//! existing one on loopback. Server figures come from `/proc/<pid>`: RSS from `status` (VmRSS) and
//! CPU time from `stat` (utime + stime), never from estimates.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The settings a run needs from the gateway's config file.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub sessions_per_user: usize,
    pub subscriptions_per_session: usize,
    pub hold_seconds: u64,
    pub session_timeout_seconds: u64,
}

impl GatewaySettings {
    pub fn config_toml(&self) -> String {
        format!(
            "hold_seconds = {}\nsession_timeout_seconds = {}\n\n[limits]\nsessions_per_user = {}\nsubscriptions_per_session = {}\n\n[logon]\nfailures_per_address = 1000000\n",
            self.hold_seconds,
            self.session_timeout_seconds,
            self.sessions_per_user,
            self.subscriptions_per_session.max(1)
        )
    }
}

/// A running gateway and, when known, its process id.
pub struct Gateway {
    pub address: SocketAddr,
    pub pid: Option<u32>,
    child: Option<Child>,
    scratch: Option<PathBuf>,
}

impl Drop for Gateway {
    /// SIGTERM (the gateway answers held polls and exits), SIGKILL if it has not within 60 s (a
    /// gateway run under valgrind needs a while to exit and write its profile).
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SAFETY: kill only sends a signal to the process this run started.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Gateway {
    /// Uses a gateway that is already running (loopback only).
    pub fn existing(url: &str, pid: Option<u32>) -> Result<Gateway> {
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let address: SocketAddr = host.parse().with_context(|| format!("{url}: expected http://127.0.0.1:PORT"))?;
        if !crate::client::is_loopback(address.ip()) {
            bail!("{url} is not on 127.0.0.0/8");
        }
        Ok(Gateway { address, pid, child: None, scratch: None })
    }

    /// Starts `binary serve` in `scratch` with the given users file, settings and further `serve`
    /// arguments (a shared store, a Redis), and waits for the line that says where it listens.
    pub fn start(binary: &Path, scratch: PathBuf, users: &Path, settings: &GatewaySettings, extra: &[String]) -> Result<Gateway> {
        std::fs::create_dir_all(&scratch)?;
        let config = scratch.join("gateway.toml");
        std::fs::write(&config, settings.config_toml())?;
        let log = std::fs::File::create(scratch.join("gateway.log"))?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--users"])
            .arg(users)
            .arg("--data-dir")
            .arg(scratch.join("data"))
            .arg("--config")
            .arg(&config)
            .args(extra)
            .env("RUST_LOG", std::env::var("BENCH_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut gateway = Gateway { address: "127.0.0.1:0".parse()?, pid: Some(pid), child: Some(child), scratch: Some(scratch) };
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next() {
            if let Some(url) = line?.strip_prefix("presence-gateway listening on http://") {
                gateway.address = url.trim().parse()?;
                // Keep reading what it prints, so that its stdout never fills up or breaks.
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(gateway);
            }
        }
        let log = gateway.scratch.as_ref().map(|s| std::fs::read_to_string(s.join("gateway.log")).unwrap_or_default());
        bail!("the gateway exited before listening: {}", log.unwrap_or_default())
    }

    /// The process's current figures, when its pid is known.
    pub fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(|pid| ProcSample::read(pid).ok())
    }

    /// How many file descriptors the process has open (each held poll is one), when its pid is known.
    pub fn open_descriptors(&self) -> Option<u64> {
        let pid = self.pid?;
        std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|dir| dir.count() as u64)
    }

    /// The process's soft limit of open file descriptors, when its pid is known.
    pub fn descriptor_limit(&self) -> Option<u64> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid?)).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..].split_whitespace().next()?.parse().ok()
    }
}

/// Figures of a process from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// User and system time together.
    pub cpu_seconds: f64,
    /// System time alone: the kernel's work for the process (its system calls, TCP).
    pub kernel_seconds: f64,
    pub threads: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Result<ProcSample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).ok_or_else(|| anyhow!("no {name}"))?;
            Ok(line[name.len()..].split_whitespace().next().unwrap_or("0").parse()?)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("bad stat"))?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let (user, system) = (fields.get(11).unwrap_or(&"0").parse::<u64>()?, fields.get(12).unwrap_or(&"0").parse::<u64>()?);
        Ok(ProcSample {
            rss_kib: field("VmRSS:")?,
            cpu_seconds: (user + system) as f64 / clock_ticks(),
            kernel_seconds: system as f64 / clock_ticks(),
            threads: field("Threads:")?,
        })
    }
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Samples a process's RSS a few times and returns the median (kB), waiting `gap` between reads.
pub async fn settled_rss(gateway: &Gateway, gap: Duration) -> Option<u64> {
    let mut values = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(gap).await;
        values.push(gateway.sample()?.rss_kib);
    }
    values.sort_unstable();
    values.get(1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let s = ProcSample::read(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.threads >= 1 && s.cpu_seconds >= 0.0);
        let me = Gateway::existing("http://127.0.0.1:1", Some(std::process::id())).unwrap();
        assert!(me.open_descriptors().unwrap() >= 3, "stdin, stdout, stderr at least");
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0;
        assert_eq!(me.descriptor_limit(), Some(limit));
    }
}
