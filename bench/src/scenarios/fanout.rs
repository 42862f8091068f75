//! S2 — one change to W watchers: W sessions subscribe to one user; that user publishes a few
//! stamped changes, one at a time, and the run measures each watcher's latency (send of the
//! publish → the poll response that carried it) and the time until the last watcher had it. With
//! several nodes the publisher is on node 1 and watcher `i` on node `i mod N`; CPU and latency are
//! also given per node and split into watchers on the publisher's node and on the others.

use super::{cluster_figures, parameters, setup, users_for, Common, Window};
use crate::driver::{Changer, CwaPublish};
use crate::fleet::{Fleet, SessionSpec};
use crate::gateway::GatewaySettings;
use crate::report::{Checks, Report};
use crate::stats::{round3, Latencies, Waiter};
use crate::svg::latency_cdf;
use crate::users::Organisation;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone, Serialize)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Watching sessions.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Changes published, one after the other.
    #[arg(long, default_value_t = 5)]
    pub changes: u64,
    /// Sessions per signed-in watcher user.
    #[arg(long, default_value_t = 10)]
    pub sessions_per_user: usize,
    /// Pause between changes (milliseconds).
    #[arg(long, default_value_t = 1000)]
    pub pause_ms: u64,
}

const STAR: usize = 0;

pub async fn run(args: FanoutArgs) -> Result<Report> {
    let watcher_users = users_for(args.watchers, args.sessions_per_user);
    let org = Organisation::plain(1 + watcher_users);
    let settings = GatewaySettings {
        sessions_per_user: args.sessions_per_user,
        subscriptions_per_session: 1,
        hold_seconds: args.common.hold_seconds,
        session_timeout_seconds: 90.max(args.common.hold_seconds * 2),
    };
    let s = setup(&args.common, &org, settings).await?;
    let mut report = Report::new("s2-fanout", parameters(&args));
    let waiter = Waiter::new(STAR as u32);
    let mut fleet = Fleet::new(s.ctx.clone(), vec![waiter.clone()]);
    let nodes = s.ctx.nodes.len();
    let mut specs = vec![SessionSpec::new(STAR, Vec::new())];
    specs.extend((0..args.watchers).map(|i| SessionSpec {
        user: 1 + i % watcher_users,
        subscriptions: vec![STAR],
        node: i % nodes,
    }));
    fleet.start(specs, true).await?;
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(60)).await;

    let changer = Changer::new(Arc::new(CwaPublish::new(&s.ctx, &fleet.sessions)), s.ctx.counters.clone(), vec![STAR]);
    let window = Window::open(&s);
    let mut all_had_it = Vec::new();
    let mut incomplete = 0;
    for change in 1..=args.changes {
        waiter.arm(change);
        let sent = Instant::now();
        changer.change(0).await?;
        let bound = sent + Duration::from_secs(30);
        while waiter.reached() < args.watchers as u64 && Instant::now() < bound {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if waiter.reached() < args.watchers as u64 {
            incomplete += 1;
        }
        all_had_it.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let (_, cpu) = window.close(&s);
    let node_cpu = window.close_nodes(&s);
    let shared_cpu = window.shared_cpu_figures(&s);
    fleet.quiesce(Duration::from_millis(500), Duration::from_secs(10)).await;
    let subscriptions: HashMap<u64, Vec<usize>> = fleet.sessions.iter().map(|x| (x.sid, x.subscriptions.clone())).collect();
    let trackers = fleet.stop().await;
    report.checks = Checks::from(&trackers, &subscriptions, &changer.last_accepted());
    let latencies = Latencies::new(trackers.iter().flat_map(|t| t.latencies_us.iter().copied()).collect());
    let deliveries = latencies.len() as f64;
    let per_node: Vec<u64> =
        (0..nodes).map(|n| trackers.iter().filter(|t| t.node == n).map(|t| t.latencies_us.len() as u64).sum()).collect();
    let on =
        |same: bool| trackers.iter().filter(|t| (t.node == 0) == same).flat_map(|t| t.latencies_us.iter().copied()).collect();
    let cluster = cluster_figures(&node_cpu, &per_node, on(true), on(false));
    report.figure("watchers", args.watchers as u64);
    report.figure("changes", args.changes);
    report.figures(latencies.figures("latency"));
    all_had_it.sort_by(f64::total_cmp);
    report.figure("all_watchers_had_it_median_ms", round3(all_had_it[all_had_it.len() / 2]));
    report.figure("all_watchers_had_it_max_ms", round3(*all_had_it.last().unwrap_or(&0.0)));
    report.figure("changes_not_reaching_everyone", incomplete);
    report.figure("server_cpu_seconds", round3(cpu));
    report.figure("server_cpu_seconds_per_1000_deliveries", round3(cpu / deliveries.max(1.0) * 1000.0));
    report.figure("nodes", nodes as u64);
    report.figures(cluster);
    report.figures(shared_cpu);
    report
        .notes
        .push("latency = publishSelfPresence sent → poll response parsed by the watcher; includes the store write".into());
    if nodes > 1 {
        report.notes.push(format!(
            "{nodes} nodes: the publisher on node 1, watcher i on node (i mod {nodes}) + 1; server CPU is the nodes' together over the changes and pauses"
        ));
    }
    let title = format!("S2 one change to {} watchers", args.watchers);
    report.plots.push(("latency", latency_cdf(&title, vec![("all deliveries".into(), latencies.cdf(200))])));
    Ok(report)
}
