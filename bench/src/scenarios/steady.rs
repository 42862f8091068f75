//! S3 — steady changes: P publishers, W watching sessions with S subscriptions each, laid out so
//! that every publisher has exactly K watchers; R stamped changes per second for D seconds after a
//! warm-up. Measures deliveries/s, latency percentiles, events per HTTP response and the gateway's
//! CPU seconds per 1,000 deliveries. With several nodes the publishers are on node 1 and watching
//! session `j` is on node `j mod N`; CPU and latency are also given per node and split into
//! deliveries on the publishers' node and on the others.

use super::{cluster_figures, node_deliveries, parameters, setup, users_for, Common, Window};
use crate::driver::{Changer, CwaPublish};
use crate::fleet::{Fleet, SessionSpec};
use crate::gateway::GatewaySettings;
use crate::report::{Checks, Report};
use crate::stats::{now_us, round3, Counters, Latencies};
use crate::svg::latency_cdf;
use crate::users::Organisation;
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone, Serialize)]
pub struct SteadyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Watching sessions.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Subscriptions per watching session.
    #[arg(long, default_value_t = 10)]
    pub subscriptions: usize,
    /// Watchers of every change (publishers = sessions × subscriptions / this).
    #[arg(long, default_value_t = 100)]
    pub watchers_per_change: usize,
    /// Changes per second.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Unmeasured seconds of changes before the measurement.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Sessions per signed-in watcher user.
    #[arg(long, default_value_t = 10)]
    pub sessions_per_user: usize,
}

/// Watching session `j` subscribes to publishers `j·S … j·S+S-1` (mod P): every publisher gets
/// exactly `sessions × S / P` watchers.
pub fn layout(sessions: usize, subscriptions: usize, publishers: usize) -> Vec<Vec<usize>> {
    (0..sessions).map(|j| (0..subscriptions).map(|t| (j * subscriptions + t) % publishers).collect()).collect()
}

pub async fn run(args: SteadyArgs) -> Result<Report> {
    let publishers = args.sessions * args.subscriptions / args.watchers_per_change.max(1);
    if publishers < args.subscriptions.max(1) {
        bail!("sessions × subscriptions / watchers-per-change must be at least the subscriptions per session");
    }
    let watcher_users = users_for(args.sessions, args.sessions_per_user);
    let mut org = Organisation::plain(publishers + watcher_users);
    // Every publisher lets one watcher user see it at Team level: two renderings per change.
    org.grants = (0..publishers).map(|p| (p, publishers + p % watcher_users)).collect();
    let settings = GatewaySettings {
        sessions_per_user: args.sessions_per_user,
        subscriptions_per_session: args.subscriptions,
        hold_seconds: args.common.hold_seconds,
        session_timeout_seconds: 90.max(args.common.hold_seconds * 2),
    };
    let s = setup(&args.common, &org, settings).await?;
    let mut report = Report::new("s3-steady", parameters(&args));
    let mut fleet = Fleet::new(s.ctx.clone(), Vec::new());
    let nodes = s.ctx.nodes.len();
    let mut specs: Vec<SessionSpec> = (0..publishers).map(|p| SessionSpec::new(p, Vec::new())).collect();
    for (j, subs) in layout(args.sessions, args.subscriptions, publishers).into_iter().enumerate() {
        specs.push(SessionSpec { user: publishers + j % watcher_users, subscriptions: subs, node: j % nodes });
    }
    fleet.start(specs, true).await?;
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(60)).await;

    let driver = Arc::new(CwaPublish::new(&s.ctx, &fleet.sessions[..publishers]));
    let changer = Changer::new(driver, s.ctx.counters.clone(), (0..publishers).collect());
    let background = {
        let changer = changer.clone();
        let total = Duration::from_secs(args.warmup + args.seconds);
        let rate = args.rate;
        tokio::spawn(async move { changer.steady(rate, total).await })
    };
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let c = s.counters();
    c.measure_from_us.store(now_us(), Ordering::Relaxed);
    let before = (Counters::get(&c.deliveries), Counters::get(&c.events), Counters::get(&c.nonempty_responses));
    let sent_before = changer.sent.load(Ordering::Relaxed);
    let per_node_before = node_deliveries(&s);
    let window = Window::open(&s);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (wall, cpu) = window.close(&s);
    let node_cpu = window.close_nodes(&s);
    let shared_cpu = window.shared_cpu_figures(&s);
    let per_node: Vec<u64> = node_deliveries(&s).iter().zip(&per_node_before).map(|(a, b)| a - b).collect();
    let after = (Counters::get(&c.deliveries), Counters::get(&c.events), Counters::get(&c.nonempty_responses));
    let sent = changer.sent.load(Ordering::Relaxed) - sent_before;
    background.await?;
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(20)).await;
    let subscriptions: HashMap<u64, Vec<usize>> = fleet.sessions.iter().map(|x| (x.sid, x.subscriptions.clone())).collect();
    let trackers = fleet.stop().await;
    report.checks = Checks::from(&trackers, &subscriptions, &changer.last_accepted());

    let latencies = Latencies::new(trackers.iter().flat_map(|t| t.window_latencies_us.iter().copied()).collect());
    let on = |same: bool| {
        trackers.iter().filter(|t| (t.node == 0) == same).flat_map(|t| t.window_latencies_us.iter().copied()).collect()
    };
    let node_cpu_figures = cluster_figures(&node_cpu, &per_node, on(true), on(false));
    let deliveries = (after.0 - before.0) as f64;
    report.figure("publishers", publishers as u64);
    report.figure("watching_sessions", args.sessions as u64);
    report.figure("changes_per_s", round3(sent as f64 / wall));
    report.figure("offered_deliveries_per_s", round3(args.rate * args.watchers_per_change as f64));
    report.figure("deliveries_per_s", round3(deliveries / wall));
    report.figures(latencies.figures("latency"));
    report.figure("events_per_http_response", round3((after.1 - before.1) as f64 / ((after.2 - before.2) as f64).max(1.0)));
    report.figure("server_cpu_percent_of_core", round3(cpu / wall * 100.0));
    report.figure("server_cpu_seconds_per_1000_deliveries", round3(cpu / deliveries.max(1.0) * 1000.0));
    report.figure("nodes", nodes as u64);
    report.figures(node_cpu_figures);
    report.figures(Latencies::new(changer.round_trips()).figures("publish_round_trip"));
    report.figure("changes_skipped_publisher_busy", changer.skipped.load(Ordering::Relaxed));
    report.figure("changes_failed", changer.failed.load(Ordering::Relaxed));
    report.figures(shared_cpu);
    report.notes.push(format!("changes through {}; each change is stored before it is fanned out", changer.driver_name()));
    if nodes > 1 {
        report.notes.push(format!(
            "{nodes} nodes: publishers on node 1, watching session j on node (j mod {nodes}) + 1; server CPU is the nodes' together; same/cross node = watchers on the publishers' node / on the others"
        ));
    }
    let title = format!("S3 {} changes/s × {} watchers", args.rate, args.watchers_per_change);
    report.plots.push(("latency", latency_cdf(&title, vec![("deliveries in the window".into(), latencies.cdf(200))])));
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_publisher_gets_the_same_number_of_watchers() {
        let layout = super::layout(100, 10, 50);
        let mut count = [0; 50];
        for subs in &layout {
            assert_eq!(subs.iter().collect::<std::collections::HashSet<_>>().len(), 10);
            subs.iter().for_each(|p| count[*p] += 1);
        }
        assert!(count.iter().all(|c| *c == 20));
    }
}
