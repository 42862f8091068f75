//! What several gateway nodes share (README "Several nodes"): a Redis of the run's own
//! (`redis-server` on a free loopback port, in a scratch directory, without persistence) and a
//! PostgreSQL schema of the run's own on a given server, created at the start and dropped at the
//! end, so that a run touches nothing else. Redis's CPU time is read from `/proc` like the
//! gateways'.

use crate::gateway::ProcSample;
use anyhow::{anyhow, bail, Context, Result};
use sqlx::{Connection, PgConnection};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A `redis-server` started for one run.
pub struct Redis {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Redis {
    /// Starts `redis-server` on a free port under `scratch` and waits until it accepts connections.
    pub fn start(scratch: &Path) -> Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = scratch.join("redis");
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .args(["--maxclients", "1000"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (the cluster mode needs it on PATH; Debian: apt-get install redis-server)")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line?;
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Ready to accept connections") {
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(Redis { port, child, dir });
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("redis-server ended before accepting connections:\n{seen}")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cpu_seconds(&self) -> f64 {
        ProcSample::read(self.child.id()).map(|s| s.cpu_seconds).unwrap_or(0.0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A schema of the run's own on a PostgreSQL server; dropped with everything in it at the end.
pub struct PgSchema {
    base: String,
    pub name: String,
    /// Whether the nodes' connections commit without waiting for the disk.
    pub async_commit: bool,
}

impl PgSchema {
    /// Creates `bench_<random>` on the server of `base` (postgres://USER@HOST:PORT/DATABASE).
    pub async fn create(base: &str, async_commit: bool) -> Result<PgSchema> {
        if base.contains('?') {
            bail!("--postgres {base}: give the server and database without options; the run adds its own schema");
        }
        let mut conn = PgConnection::connect(base).await.with_context(|| format!("connecting to PostgreSQL at {base}"))?;
        let name = format!("bench_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.context("creating the run's schema")?;
        let _ = conn.close().await;
        Ok(PgSchema { base: base.to_string(), name, async_commit })
    }

    /// The store URL that selects this schema (and, when asked, `synchronous_commit = off` for
    /// the connections made with it, nobody else's).
    pub fn url(&self) -> String {
        let commit = if self.async_commit { "%20-c%20synchronous_commit%3Doff" } else { "" };
        format!("{}?options=-c%20search_path%3D{}{commit}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Dropped outside the run's runtime: a thread of its own with a small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {name} CASCADE")).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// What the nodes of a run share: the store schema and, with more than one node, the Redis.
#[derive(Default)]
pub struct Shared {
    pub schema: Option<PgSchema>,
    pub redis: Option<Redis>,
}

impl Shared {
    /// The extra `serve` arguments every node gets.
    pub fn serve_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(schema) = &self.schema {
            args.extend(["--store".to_string(), schema.url()]);
        }
        if let Some(redis) = &self.redis {
            args.extend(["--redis".to_string(), redis.url()]);
        }
        args
    }

    pub fn redis_cpu_seconds(&self) -> Option<f64> {
        self.redis.as_ref().map(Redis::cpu_seconds)
    }
}
