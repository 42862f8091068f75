//! Held sessions on several nodes (S1 across a cluster). One process can hold only as many
//! connections as its descriptor limit allows, so the load generator starts one worker process of
//! itself per node (`hold`, not meant to be run by hand): each worker signs in its share of the
//! users and holds their sessions' polls on its node, and answers one JSON line per command read
//! from its standard input — `start K` (K more sessions, answered once every new poll is held),
//! `status`, and `stop` (which also hands back the checks of every session). The run itself
//! ramps all workers up in steps, samples every node's RSS after each step, measures the idle
//! CPU, and reports per node and for the cluster together, with each node's open descriptors
//! against its limit.

use super::idle::{slope, IdleArgs};
use super::Setup;
use crate::client::Endpoint;
use crate::fleet::{Ctx, Fleet, NodeLink, SessionSpec};
use crate::gateway::{settled_rss, Gateway, ProcSample};
use crate::report::{Checks, Report};
use crate::stats::{round3, Counters};
use crate::svg::{Plot, Series};
use crate::users::Organisation;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Sessions a worker starts before their polls start.
const CHUNK: usize = 500;

/// Options of the worker (given by the run that starts it).
#[derive(Args, Debug, Clone, Serialize)]
pub struct HoldArgs {
    /// The node: http://127.0.0.1:PORT.
    #[arg(long)]
    pub target: String,
    /// The organisation's size, contacts per user and seed (as the run generated it).
    #[arg(long)]
    pub org_users: usize,
    #[arg(long)]
    pub contacts: usize,
    #[arg(long)]
    pub seed: u64,
    /// This worker's users: the first one and how many.
    #[arg(long)]
    pub first_user: usize,
    #[arg(long)]
    pub users: usize,
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 16)]
    pub pool: usize,
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
}

/// The worker: reads commands from stdin until `stop` or the end of its input.
pub async fn worker(args: HoldArgs) -> Result<()> {
    rlimit::increase_nofile_limit(u64::MAX).context("raising the file-descriptor limit")?;
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    let gateway = Gateway::existing(&args.target, None)?;
    let node = NodeLink::new(Endpoint::new(gateway.address, args.sources)?, args.pool);
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let ctx = Arc::new(Ctx::new(vec![node], counters.clone(), args.concurrency.max(1), deadline));
    let org = Organisation::graph(args.org_users, args.contacts, args.seed, true);
    let mut fleet = Fleet::new(ctx, Vec::new());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["start", k] => {
                let k: usize = k.parse().context("start K")?;
                // In chunks: a session's poll starts once its chunk has started, and a session
                // that is not polled within the session timeout ends.
                let end = fleet.sessions.len() + k;
                while fleet.sessions.len() < end {
                    let done = fleet.sessions.len();
                    let specs = (done..end.min(done + CHUNK))
                        .map(|i| {
                            let user = args.first_user + i % args.users;
                            SessionSpec::new(user, org.contacts[user].clone())
                        })
                        .collect();
                    fleet.start(specs, true).await?;
                }
                fleet.quiesce(Duration::from_secs(1), Duration::from_secs(60)).await;
                wait_for_connections(&counters, fleet.sessions.len(), Duration::from_secs(30)).await;
                status(&counters)
            }
            ["status"] => status(&counters),
            ["stop"] => {
                let held = status(&counters);
                let trackers = fleet.stop().await;
                let checks = Checks::from(&trackers, &HashMap::new(), &HashMap::new());
                let reply = json!({ "status": held, "checks": checks });
                out.write_all(format!("{reply}\n").as_bytes()).await?;
                out.flush().await?;
                return Ok(());
            }
            other => bail!("unknown worker command {other:?}"),
        };
        out.write_all(format!("{reply}\n").as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}

async fn wait_for_connections(counters: &Counters, sessions: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while counters.connections.load(Ordering::Relaxed) < sessions as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status(counters: &Counters) -> Value {
    json!({
        "sessions": Counters::get(&counters.sessions),
        "connections": counters.connections.load(Ordering::Relaxed),
        "responses": Counters::get(&counters.responses),
        "errors": Counters::get(&counters.errors),
    })
}

/// A worker process as the run sees it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(args: &IdleArgs, node: &Gateway, org: &Organisation, first_user: usize, users: usize) -> Result<Worker> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .arg("hold")
            .args(["--target", &format!("http://{}", node.address)])
            .args(["--org-users", &org.count.to_string(), "--contacts", &args.contacts.to_string()])
            .args(["--seed", &args.common.seed.to_string()])
            .args(["--first-user", &first_user.to_string(), "--users", &users.to_string()])
            .args(["--sources", &args.common.sources.to_string(), "--concurrency", &args.common.concurrency.to_string()])
            .args(["--max-seconds", &args.common.max_seconds.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?).lines();
        Ok(Worker { child, stdin, stdout })
    }

    async fn send(&mut self, command: &str) -> Result<()> {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn reply(&mut self) -> Result<Value> {
        let line = self.stdout.next_line().await?.ok_or_else(|| anyhow!("a worker ended early (its errors are above)"))?;
        Ok(serde_json::from_str(&line)?)
    }
}

/// Sends `command` to every worker (they work at the same time), then reads every reply.
async fn all(workers: &mut [Worker], command: impl Fn(usize) -> String) -> Result<Vec<Value>> {
    for (i, w) in workers.iter_mut().enumerate() {
        w.send(&command(i)).await?;
    }
    let mut replies = Vec::new();
    for w in workers.iter_mut() {
        replies.push(w.reply().await?);
    }
    Ok(replies)
}

fn sum(replies: &[Value], key: &str) -> u64 {
    replies.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum()
}

/// The share of `total` that part `i` of `n` gets.
fn share(total: usize, i: usize, n: usize) -> usize {
    total * (i + 1) / n - total * i / n
}

/// S1 across the nodes of `s`: `users` users' sessions, each node's share held by its worker.
pub async fn cluster_idle(args: &IdleArgs, s: &Setup, org: &Organisation, users: usize, report: &mut Report) -> Result<()> {
    let n = s.gateways.len();
    for i in 0..n {
        if share(args.sessions, i, n) > share(users, i, n) * args.sessions_per_user {
            bail!(
                "{} sessions of {users} users do not divide over {n} nodes at {} per user",
                args.sessions,
                args.sessions_per_user
            );
        }
    }
    let mut workers = Vec::new();
    for (i, node) in s.gateways.iter().enumerate() {
        workers.push(Worker::spawn(args, node, org, users * i / n, share(users, i, n))?);
    }
    let rss_all = || async {
        let mut list = Vec::new();
        for g in &s.gateways {
            list.push(settled_rss(g, Duration::from_millis(300)).await.unwrap_or(0) as f64 / 1024.0);
        }
        list
    };
    let baseline = rss_all().await;
    let mut per_node: Vec<Vec<(f64, f64)>> = baseline.iter().map(|r| vec![(0.0, *r)]).collect();
    let mut total = vec![(0.0, baseline.iter().sum::<f64>())];
    let steps = args.steps.max(1);
    let mut done = vec![0usize; n];
    let mut last = Vec::new();
    for step in 1..=steps {
        let targets: Vec<usize> = (0..n).map(|i| share(args.sessions, i, n) * step / steps).collect();
        last = all(&mut workers, |i| format!("start {}", targets[i] - done[i])).await?;
        done = targets;
        let rss = rss_all().await;
        let held = sum(&last, "connections");
        eprintln!(
            "{} sessions on {n} nodes ({held} polls held): RSS {:?} MiB",
            done.iter().sum::<usize>(),
            rss.iter().map(|r| round3(*r)).collect::<Vec<_>>()
        );
        // RSS against the polls held (a session whose poll never came would not count).
        for (i, r) in rss.iter().enumerate() {
            per_node[i].push((last[i]["connections"].as_u64().unwrap_or(0) as f64, *r));
        }
        total.push((held as f64, rss.iter().sum()));
    }
    let window = super::Window::open(s);
    let workers_cpu = |workers: &[Worker]| -> f64 {
        workers.iter().filter_map(|w| w.child.id()).filter_map(|pid| ProcSample::read(pid).ok()).map(|p| p.cpu_seconds).sum()
    };
    let workers_cpu_before = workers_cpu(&workers);
    let before = all(&mut workers, |_| "status".into()).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let after = all(&mut workers, |_| "status".into()).await?;
    let cpu = window.close_nodes(s);
    let workers_cpu = workers_cpu(&workers) - workers_cpu_before;
    let mut shared_cpu = window.shared_cpu_figures(s);
    for (name, value) in shared_cpu.iter_mut() {
        // The workers are processes of their own: take them out of the "other processes".
        if name == "other_processes_cpu_seconds" {
            *value = round3((value.as_f64().unwrap_or(0.0) - workers_cpu).max(0.0)).into();
        }
    }
    shared_cpu.push(("loadgen_workers_cpu_seconds".into(), round3(workers_cpu).into()));
    let descriptors: Vec<(u64, u64)> =
        s.gateways.iter().map(|g| (g.open_descriptors().unwrap_or(0), g.descriptor_limit().unwrap_or(0))).collect();
    let mut connections_open = Vec::new();
    for node in &s.ctx.nodes {
        connections_open.push(open_connections(node).await?);
    }
    let stopped = all(&mut workers, |_| "stop".into()).await?;
    for mut w in workers {
        let _ = w.child.wait().await;
    }
    let mut checks = Checks::default();
    for r in &stopped {
        let c: Checks = serde_json::from_value(r["checks"].clone())?;
        checks.add(&c);
    }
    report.checks = checks;

    let fit = |points: &[(f64, f64)]| if points.len() > 2 { slope(&points[1..]) } else { slope(points) } * 1024.0;
    let held = sum(&last, "connections");
    report.figure("nodes", n as u64);
    report.figure("sessions", done.iter().sum::<usize>() as u64);
    report.figure("held_polls", held);
    report.figure("sessions_ended", report.checks.sessions_ended);
    report.figure("signed_in_users", users as u64);
    report.figure("rss_per_session_kib", round3(fit(&total)));
    report.figure("rss_final_mib", round3(total.last().map_or(0.0, |p| p.1)));
    report.figure("rss_baseline_mib", round3(total[0].1));
    report.figure("idle_cpu_percent_of_core", round3(cpu.nodes.iter().sum::<f64>() / cpu.wall * 100.0));
    if let Some(redis) = cpu.redis {
        report.figure("redis_idle_cpu_percent_of_core", round3(redis / cpu.wall * 100.0));
    }
    report.figure("idle_polls_renewed_per_s", round3((sum(&after, "responses") - sum(&before, "responses")) as f64 / cpu.wall));
    let mut capacity = 0;
    for i in 0..n {
        let node_held = last[i]["connections"].as_u64().unwrap_or(0);
        let (open, limit) = descriptors[i];
        // Every held poll is one descriptor and one connection; the rest (listener, store, Redis,
        // logs; command connections) stays. The gateway takes at most its limit minus 64
        // connections (README "Connections").
        let by_descriptors = limit.saturating_sub(open.saturating_sub(node_held));
        let by_connections = limit.saturating_sub(GATEWAY_RESERVE).saturating_sub(connections_open[i].saturating_sub(node_held));
        capacity += by_descriptors.min(by_connections);
        report.figure(&format!("node{}_connections_open", i + 1), connections_open[i]);
        report.figure(&format!("node{}_held_polls", i + 1), node_held);
        report.figure(&format!("node{}_rss_per_session_kib", i + 1), round3(fit(&per_node[i])));
        report.figure(&format!("node{}_rss_final_mib", i + 1), round3(per_node[i].last().map_or(0.0, |p| p.1)));
        report.figure(&format!("node{}_open_descriptors", i + 1), open);
        report.figure(&format!("node{}_descriptor_limit", i + 1), limit);
        report.figure(&format!("node{}_idle_cpu_percent_of_core", i + 1), round3(cpu.nodes[i] / cpu.wall * 100.0));
    }
    report.figure("held_polls_possible_by_descriptor_limits", capacity);
    report.figures(shared_cpu);
    report.figure("loadgen_worker_errors", sum(&after, "errors"));
    report.notes.push(format!(
        "{n} nodes, one load-generator worker process per node (its own descriptor limit); node i holds the sessions of users {{i·U/{n} …}}; RSS per session is the slope of the nodes' RSS together (and of each node's) against sessions held, from the first step on; possible polls = Σ min(descriptor limit − descriptors open besides the held polls, descriptor limit − 64 − connections open besides them)"
    ));
    let mut series = vec![Series { name: "all nodes together".into(), points: total, markers: true }];
    series.extend(per_node.into_iter().enumerate().map(|(i, points)| Series {
        name: format!("node {}", i + 1),
        points,
        markers: true,
    }));
    let plot = Plot {
        title: format!("S1 across {n} nodes: RSS vs sessions held ({} subscriptions each)", args.contacts),
        x_label: "sessions".into(),
        y_label: "RSS (MiB)".into(),
        log_x: false,
        series,
    };
    report.plots.push(("rss", plot.render()));
    Ok(())
}

/// Descriptors a gateway keeps free of connections: it caps them at its limit minus this.
const GATEWAY_RESERVE: u64 = 64;

/// The node's `presence_http_connections_open` (its metrics), less the connection that asks.
async fn open_connections(node: &NodeLink) -> Result<u64> {
    let mut conn = node.endpoint.connect(0).await?;
    let reply = conn.send(hyper::Method::GET, "/metrics", None, None).await?;
    let line = reply
        .text()
        .lines()
        .find(|l| l.starts_with("presence_http_connections_open "))
        .ok_or_else(|| anyhow!("no presence_http_connections_open in the node's /metrics"))?;
    let value: f64 = line.rsplit(' ').next().unwrap_or("").parse()?;
    Ok((value as u64).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shares_add_up() {
        for (total, n) in [(10, 3), (78_000, 4), (1, 2)] {
            assert_eq!((0..n).map(|i| super::share(total, i, n)).sum::<usize>(), total);
        }
        assert_eq!(super::share(10, 0, 3), 3);
    }
}
