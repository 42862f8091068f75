//! The scenarios (S1–S6), their shared options, and what every run does around them: raise the
//! file-descriptor limit, write the organisation's users file, start (or target) the gateway,
//! bound the run in time, then print the table and save the JSON and the plots.

pub mod fanout;
pub mod idle;
pub mod query;
pub mod reconnect;
pub mod signin;
pub mod steady;

pub use fanout::FanoutArgs;
pub use idle::IdleArgs;
pub use query::QueryArgs;
pub use reconnect::ReconnectArgs;
pub use signin::SigninArgs;
pub use steady::SteadyArgs;

use crate::client::Endpoint;
use crate::cwa::CommandPool;
use crate::fleet::Ctx;
use crate::gateway::{Gateway, GatewaySettings, ProcSample};
use crate::report::Report;
use crate::stats::{Counters, Progress};
use crate::users::{self, Organisation};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options every scenario takes.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Common {
    /// The gateway binary to start (default: `presence-gateway` beside this program).
    #[arg(long)]
    pub gateway: Option<PathBuf>,
    /// Use a running gateway (http://127.0.0.1:PORT) instead; it must know the users of
    /// `presence-gateway-bench users --count N` and have the limits this run needs.
    #[arg(long)]
    pub target: Option<String>,
    /// The process id of the --target gateway (for the /proc figures).
    #[arg(long)]
    pub pid: Option<u32>,
    /// How many source addresses (127.0.0.2, 127.0.0.3, …) connections are spread over.
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    /// Sign-ins and session starts in flight at once during setup.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Keep-alive connections for commands (publishes, setup).
    #[arg(long, default_value_t = 64)]
    pub pool: usize,
    /// The gateway's hold time for empty polls (seconds).
    #[arg(long, default_value_t = 25)]
    pub hold_seconds: u64,
    /// Directory for the JSON file and plots (default: target/bench-results, outside the tracked
    /// tree; the recorded runs of BENCHMARKS.md are written with --out bench/results/runs/LABEL).
    #[arg(long, default_value = "target/bench-results")]
    pub out: PathBuf,
    /// Hard bound on the whole run (seconds); the run stops with an error past it.
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
    /// Seed of the generated organisation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Give users argon2id hashes of the gateway's default cost (default: the smallest cost, so
    /// that setup is quick; the `signin` scenario always uses the default cost).
    #[arg(long)]
    pub full_cost_hashes: bool,
}

/// Options of `users`.
#[derive(Args, Debug, Clone)]
pub struct UsersArgs {
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Contacts per user (Team-level grants are written for each team).
    #[arg(long, default_value_t = 50)]
    pub contacts: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn write_users(args: UsersArgs) -> Result<()> {
    let hash = tokio::task::spawn_blocking(|| users::password_hash(true)).await??;
    Organisation::graph(args.count, args.contacts, args.seed, true).write(&args.out, &hash)?;
    println!("wrote {} users to {} (password {:?})", args.count, args.out.display(), users::PASSWORD);
    Ok(())
}

/// A started run: the gateway, the shared context and the progress line.
pub struct Setup {
    pub gateway: Gateway,
    pub ctx: Arc<Ctx>,
    _progress: Progress,
}

impl Setup {
    pub fn counters(&self) -> &Counters {
        &self.ctx.counters
    }

    pub fn sample(&self) -> ProcSample {
        self.gateway.sample().unwrap_or_default()
    }
}

/// Raises the descriptor limit, writes the users file, starts or targets the gateway.
pub async fn setup(common: &Common, org: &Organisation, settings: GatewaySettings) -> Result<Setup> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising the file-descriptor limit")?;
    eprintln!("file-descriptor limit: {limit}");
    let gateway = match &common.target {
        Some(url) => Gateway::existing(url, common.pid)?,
        None => {
            let scratch = std::env::temp_dir().join(format!("presence-gateway-bench-{}", std::process::id()));
            std::fs::create_dir_all(&scratch)?;
            let full_cost = common.full_cost_hashes;
            let hash = tokio::task::spawn_blocking(move || users::password_hash(full_cost)).await??;
            let users_file = scratch.join("users.toml");
            org.write(&users_file, &hash)?;
            let binary = gateway_binary(common)?;
            eprintln!("starting {} with {} users", binary.display(), org.count);
            let started = Instant::now();
            let gateway = tokio::task::spawn_blocking(move || Gateway::start(&binary, scratch, &users_file, &settings)).await??;
            eprintln!("gateway listening on {} after {:.1}s", gateway.address, started.elapsed().as_secs_f64());
            gateway
        }
    };
    let endpoint = Arc::new(Endpoint::new(gateway.address, common.sources)?);
    let counters = Arc::new(Counters::default());
    let ctx = Arc::new(Ctx {
        pool: Arc::new(CommandPool::new(endpoint.clone(), common.pool)),
        endpoint,
        counters: counters.clone(),
        concurrency: common.concurrency.max(1),
        deadline: Instant::now() + Duration::from_secs(common.max_seconds),
    });
    Ok(Setup { gateway, ctx, _progress: Progress::start(counters, common.quiet) })
}

fn gateway_binary(common: &Common) -> Result<PathBuf> {
    if let Some(path) = &common.gateway {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let beside = me.with_file_name("presence-gateway");
    if !beside.exists() {
        bail!("no gateway binary at {}; build it or pass --gateway", beside.display());
    }
    Ok(beside)
}

/// Runs a scenario within `--max-seconds`, then prints and saves its report.
pub async fn run(common: Common, scenario: impl Future<Output = Result<Report>>) -> Result<()> {
    let bound = Duration::from_secs(common.max_seconds + 30);
    let report = match tokio::time::timeout(bound, scenario).await {
        Ok(report) => report?,
        Err(_) => bail!("the run did not finish within --max-seconds"),
    };
    report.print();
    let path = report.save(&common.out)?;
    println!("\nsaved {}", path.display());
    let c = &report.checks;
    if c.lost_events > 0 || c.duplicated_events > 0 {
        bail!("{} lost and {} duplicated events", c.lost_events, c.duplicated_events);
    }
    Ok(())
}

/// Server CPU seconds and wall seconds between two points of a run.
pub struct Window {
    started: Instant,
    cpu: f64,
    own_cpu: f64,
    machine_cpu: f64,
}

fn own_cpu() -> f64 {
    ProcSample::read(std::process::id()).map(|s| s.cpu_seconds).unwrap_or(0.0)
}

/// CPU seconds the whole machine has been busy (all cores, from `/proc/stat`).
fn machine_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let busy: f64 = fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy / crate::gateway::clock_ticks()
}

impl Window {
    pub fn open(setup: &Setup) -> Window {
        Window { started: Instant::now(), cpu: setup.sample().cpu_seconds, own_cpu: own_cpu(), machine_cpu: machine_cpu() }
    }

    /// (wall seconds, server CPU seconds) since the window opened.
    pub fn close(&self, setup: &Setup) -> (f64, f64) {
        (self.started.elapsed().as_secs_f64(), (setup.sample().cpu_seconds - self.cpu).max(0.0))
    }

    /// Figures for the report: the load generator's CPU seconds, and the CPU seconds other
    /// processes on the machine used meanwhile (a busy machine makes a run noisy).
    pub fn shared_cpu_figures(&self, setup: &Setup) -> Vec<(String, serde_json::Value)> {
        let own = (own_cpu() - self.own_cpu).max(0.0);
        let server = (setup.sample().cpu_seconds - self.cpu).max(0.0);
        let others = (machine_cpu() - self.machine_cpu - own - server).max(0.0);
        vec![
            ("loadgen_cpu_seconds".into(), crate::stats::round3(own).into()),
            ("other_processes_cpu_seconds".into(), crate::stats::round3(others).into()),
        ]
    }
}

/// Serialises a scenario's arguments for the report.
pub fn parameters(args: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(args).unwrap_or_default()
}

/// Sessions per user for `sessions` sessions of `users` users (at least 1).
pub fn users_for(sessions: usize, per_user: usize) -> usize {
    sessions.div_ceil(per_user.max(1)).max(1)
}
