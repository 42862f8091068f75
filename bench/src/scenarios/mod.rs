//! The scenarios (S1–S6), their shared options, and what every run does around them: raise the
//! file-descriptor limit, write the organisation's users file, start (or target) the gateway —
//! or several nodes of one cluster on a PostgreSQL schema and a Redis of the run's own —, bound
//! the run in time, then print the table and save the JSON and the plots.

pub mod fanout;
pub mod hold;
pub mod idle;
pub mod query;
pub mod reconnect;
pub mod signin;
pub mod steady;

pub use fanout::FanoutArgs;
pub use hold::HoldArgs;
pub use idle::IdleArgs;
pub use query::QueryArgs;
pub use reconnect::ReconnectArgs;
pub use signin::SigninArgs;
pub use steady::SteadyArgs;

use crate::client::Endpoint;
use crate::cluster::{PgSchema, Redis, Shared};
use crate::fleet::{Ctx, NodeLink};
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
    /// `presence-gateway-bench users --count N` and have the limits this run needs. Several
    /// nodes of one cluster: their URLs separated by commas (the first is node 1).
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// The process ids of the --target gateways, in the same order (for the /proc figures).
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Gateway nodes to start. More than one makes a cluster (README "Several nodes"): every node
    /// on one PostgreSQL schema (see --postgres) and a redis-server the run starts on a free port.
    /// Publishers are on node 1, watching sessions are spread over all nodes in turn.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// PostgreSQL server and database for the started nodes' store: a schema of the run's own is
    /// created there and dropped at the end. Default with --nodes > 1:
    /// postgres://postgres@127.0.0.1:5432/test; with one node and no --postgres, the node keeps
    /// its store in its data directory.
    #[arg(long)]
    pub postgres: Option<String>,
    /// The started nodes' PostgreSQL connections commit without waiting for the disk
    /// (`synchronous_commit = off` for this run's connections only): for set-ups of tens of
    /// thousands of sessions, whose subscriptions the store writes one session at a time.
    #[arg(long)]
    pub postgres_async_commit: bool,
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

/// A started run: the gateway nodes, what they share, the context and the progress line. Fields
/// drop in this order: the nodes stop before their Redis and schema go, the scratch directory last.
pub struct Setup {
    pub gateways: Vec<Gateway>,
    pub shared: Shared,
    pub ctx: Arc<Ctx>,
    _scratch: Option<Scratch>,
    _progress: Progress,
}

/// A scratch directory removed at the end of the run.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Setup {
    pub fn counters(&self) -> &Counters {
        &self.ctx.counters
    }

    /// The first node.
    pub fn gateway(&self) -> &Gateway {
        &self.gateways[0]
    }

    /// Each node's CPU seconds so far (0 where its pid is unknown).
    pub fn node_cpu(&self) -> Vec<f64> {
        self.gateways.iter().map(|g| g.sample().map_or(0.0, |s| s.cpu_seconds)).collect()
    }

    /// The system (kernel) part of [`Setup::node_cpu`], all nodes together.
    pub fn kernel_cpu(&self) -> f64 {
        self.gateways.iter().map(|g| g.sample().map_or(0.0, |s| s.kernel_seconds)).sum()
    }

    pub fn is_cluster(&self) -> bool {
        self.gateways.len() > 1
    }
}

/// Raises the descriptor limit, writes the users file, starts or targets the gateway node(s).
pub async fn setup(common: &Common, org: &Organisation, settings: GatewaySettings) -> Result<Setup> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising the file-descriptor limit")?;
    eprintln!("file-descriptor limit: {limit}");
    let (gateways, shared, scratch) = if common.target.is_empty() {
        start_nodes(common, org, settings).await?
    } else {
        let existing: Result<Vec<Gateway>> =
            common.target.iter().enumerate().map(|(i, url)| Gateway::existing(url, common.pid.get(i).copied())).collect();
        (existing?, Shared::default(), None)
    };
    let nodes = gateways
        .iter()
        .map(|g| Ok(NodeLink::new(Endpoint::new(g.address, common.sources)?, common.pool)))
        .collect::<Result<Vec<_>>>()?;
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + Duration::from_secs(common.max_seconds);
    let ctx = Arc::new(Ctx::new(nodes, counters.clone(), common.concurrency.max(1), deadline));
    Ok(Setup { gateways, shared, ctx, _scratch: scratch, _progress: Progress::start(counters, common.quiet) })
}

/// Starts `--nodes` gateways (one after the other: each applies the users file to the store at
/// its start) on what they share.
async fn start_nodes(
    common: &Common,
    org: &Organisation,
    settings: GatewaySettings,
) -> Result<(Vec<Gateway>, Shared, Option<Scratch>)> {
    if common.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let scratch = Scratch(std::env::temp_dir().join(format!("presence-gateway-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let mut shared = Shared::default();
    let postgres = match (&common.postgres, common.nodes) {
        (Some(url), _) => Some(url.clone()),
        (None, 1) => None,
        (None, _) => Some(DEFAULT_POSTGRES.to_string()),
    };
    if let Some(url) = postgres {
        let schema = PgSchema::create(&url, common.postgres_async_commit).await?;
        let commit = if schema.async_commit { ", synchronous_commit off" } else { "" };
        eprintln!("store: PostgreSQL schema {} on {url} (dropped at the end){commit}", schema.name);
        shared.schema = Some(schema);
    }
    if common.nodes > 1 {
        let redis = Redis::start(&scratch.0)?;
        eprintln!("backplane: redis-server on {}", redis.url());
        shared.redis = Some(redis);
    }
    let full_cost = common.full_cost_hashes;
    let hash = tokio::task::spawn_blocking(move || users::password_hash(full_cost)).await??;
    let users_file = scratch.0.join("users.toml");
    org.write(&users_file, &hash)?;
    let binary = gateway_binary(common)?;
    let mut gateways = Vec::new();
    for node in 0..common.nodes {
        eprintln!("starting {} (node {} of {}) with {} users", binary.display(), node + 1, common.nodes, org.count);
        let started = Instant::now();
        let (binary, dir, users, settings, extra) = (
            binary.clone(),
            scratch.0.join(format!("node{}", node + 1)),
            users_file.clone(),
            settings.clone(),
            shared.serve_args(),
        );
        let gateway = tokio::task::spawn_blocking(move || Gateway::start(&binary, dir, &users, &settings, &extra)).await??;
        eprintln!("node {} listening on {} after {:.1}s", node + 1, gateway.address, started.elapsed().as_secs_f64());
        gateways.push(gateway);
    }
    Ok((gateways, shared, Some(scratch)))
}

/// The PostgreSQL server of a cluster run when --postgres is not given (the test setup's).
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

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

/// Runs a scenario within `--max-seconds`, then prints and saves its report. SIGINT or SIGTERM
/// ends the run early, and what it started (gateways, workers, Redis, the schema) is stopped and
/// removed as at a normal end.
pub async fn run(common: Common, scenario: impl Future<Output = Result<Report>>) -> Result<()> {
    let bound = Duration::from_secs(common.max_seconds + 30);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let report = tokio::select! {
        finished = tokio::time::timeout(bound, scenario) => match finished {
            Ok(report) => report?,
            Err(_) => bail!("the run did not finish within --max-seconds"),
        },
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
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

/// CPU seconds of each node and of the cluster's Redis over a window, and its wall seconds.
pub struct NodeCpu {
    pub wall: f64,
    pub nodes: Vec<f64>,
    pub redis: Option<f64>,
}

/// Server CPU seconds and wall seconds between two points of a run (every node, and the Redis
/// of a cluster).
pub struct Window {
    started: Instant,
    cpu: Vec<f64>,
    kernel_cpu: f64,
    redis_cpu: f64,
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
        Window {
            started: Instant::now(),
            cpu: setup.node_cpu(),
            kernel_cpu: setup.kernel_cpu(),
            redis_cpu: setup.shared.redis_cpu_seconds().unwrap_or(0.0),
            own_cpu: own_cpu(),
            machine_cpu: machine_cpu(),
        }
    }

    /// (wall seconds, server CPU seconds of all nodes together) since the window opened.
    pub fn close(&self, setup: &Setup) -> (f64, f64) {
        (self.started.elapsed().as_secs_f64(), self.node_cpu(setup).iter().sum())
    }

    /// Each node's and Redis's CPU seconds since the window opened, and the wall seconds.
    pub fn close_nodes(&self, setup: &Setup) -> NodeCpu {
        NodeCpu { wall: self.started.elapsed().as_secs_f64(), nodes: self.node_cpu(setup), redis: self.redis_cpu(setup) }
    }

    /// Each node's CPU seconds since the window opened.
    pub fn node_cpu(&self, setup: &Setup) -> Vec<f64> {
        setup.node_cpu().iter().zip(&self.cpu).map(|(now, then)| (now - then).max(0.0)).collect()
    }

    /// The cluster's Redis's CPU seconds since the window opened.
    pub fn redis_cpu(&self, setup: &Setup) -> Option<f64> {
        setup.shared.redis_cpu_seconds().map(|now| (now - self.redis_cpu).max(0.0))
    }

    /// Figures for the report: the share of the gateway's CPU time spent in the kernel (system
    /// time: its system calls and their TCP work), the load generator's CPU seconds, and the CPU
    /// seconds other processes on the machine used meanwhile (a busy machine makes a run noisy;
    /// PostgreSQL's are among them).
    pub fn shared_cpu_figures(&self, setup: &Setup) -> Vec<(String, serde_json::Value)> {
        let own = (own_cpu() - self.own_cpu).max(0.0);
        let nodes: f64 = self.node_cpu(setup).iter().sum();
        let kernel = (setup.kernel_cpu() - self.kernel_cpu).max(0.0);
        let server = nodes + self.redis_cpu(setup).unwrap_or(0.0);
        let others = (machine_cpu() - self.machine_cpu - own - server).max(0.0);
        let kernel_share = if nodes > 0.0 { kernel / nodes * 100.0 } else { 0.0 };
        vec![
            ("server_kernel_cpu_percent_of_server_cpu".into(), crate::stats::round3(kernel_share).into()),
            ("loadgen_cpu_seconds".into(), crate::stats::round3(own).into()),
            ("other_processes_cpu_seconds".into(), crate::stats::round3(others).into()),
        ]
    }
}

/// The figures of a cluster run (nothing for one node): per node its deliveries, CPU per 1,000
/// deliveries and share of a core; Redis's CPU per 1,000 deliveries; and the latency of
/// deliveries to watchers on the publishers' node against those on other nodes, whose difference
/// is what crossing nodes adds.
pub fn cluster_figures(cpu: &NodeCpu, deliveries: &[u64], same: Vec<u32>, cross: Vec<u32>) -> Vec<(String, serde_json::Value)> {
    use crate::stats::{round3, Latencies};
    let mut figures: Vec<(String, serde_json::Value)> = Vec::new();
    if cpu.nodes.len() < 2 {
        return figures;
    }
    let wall = cpu.wall;
    for (i, (cpu, delivered)) in cpu.nodes.iter().zip(deliveries).enumerate() {
        let n = i + 1;
        figures.push((format!("node{n}_deliveries"), (*delivered).into()));
        figures.push((format!("node{n}_cpu_percent_of_core"), round3(cpu / wall.max(1e-9) * 100.0).into()));
        figures.push((
            format!("node{n}_cpu_seconds_per_1000_deliveries"),
            round3(cpu / (*delivered as f64).max(1.0) * 1000.0).into(),
        ));
    }
    let total: u64 = deliveries.iter().sum();
    if let Some(redis) = cpu.redis {
        figures.push(("redis_cpu_seconds".into(), round3(redis).into()));
        figures.push(("redis_cpu_seconds_per_1000_deliveries".into(), round3(redis / (total as f64).max(1.0) * 1000.0).into()));
    }
    let (same, cross) = (Latencies::new(same), Latencies::new(cross));
    figures.extend(same.figures("latency_same_node"));
    figures.extend(cross.figures("latency_cross_node"));
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        figures.push((format!("cross_node_added_{name}_ms"), round3(cross.quantile_ms(q) - same.quantile_ms(q)).into()));
    }
    figures
}

/// Deliveries per node so far.
pub fn node_deliveries(setup: &Setup) -> Vec<u64> {
    setup.ctx.nodes.iter().map(|n| Counters::get(&n.deliveries)).collect()
}

/// Serialises a scenario's arguments for the report.
pub fn parameters(args: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(args).unwrap_or_default()
}

/// Sessions per user for `sessions` sessions of `users` users (at least 1).
pub fn users_for(sessions: usize, per_user: usize) -> usize {
    sessions.div_ceil(per_user.max(1)).max(1)
}
