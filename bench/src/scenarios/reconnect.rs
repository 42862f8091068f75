//! S5 — reconnect storm: the S3 layout plus a beacon user every session watches. While changes go
//! on, every data-channel connection is dropped at once and each session re-attaches on a new
//! connection with its last `AckId`; the beacon changes at the same moment. Recovery time = until
//! every session has the beacon's change. Lost and duplicated events (eid gaps, eids seen twice,
//! sessions without a publisher's last change) must be 0 and 0.

use super::{parameters, setup, steady::layout, users_for, Common, Window};
use crate::driver::{Changer, CwaPublish};
use crate::fleet::{Fleet, SessionSpec};
use crate::gateway::GatewaySettings;
use crate::report::{Checks, Report};
use crate::stats::{round3, Counters, Latencies, Waiter};
use crate::svg::latency_cdf;
use crate::users::Organisation;
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone, Serialize)]
pub struct ReconnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Watching sessions (all of them drop their connection at once).
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Subscriptions per session (besides the beacon).
    #[arg(long, default_value_t = 10)]
    pub subscriptions: usize,
    /// Watchers per publisher.
    #[arg(long, default_value_t = 100)]
    pub watchers_per_change: usize,
    /// Changes per second, before, during and after the drop.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of changes before the drop.
    #[arg(long, default_value_t = 5)]
    pub before: u64,
    /// Seconds of changes after the drop.
    #[arg(long, default_value_t = 15)]
    pub after: u64,
    /// Sessions per signed-in watcher user.
    #[arg(long, default_value_t = 10)]
    pub sessions_per_user: usize,
}

pub async fn run(args: ReconnectArgs) -> Result<Report> {
    let publishers = args.sessions * args.subscriptions / args.watchers_per_change.max(1);
    if publishers < args.subscriptions.max(1) {
        bail!("sessions × subscriptions / watchers-per-change must be at least the subscriptions per session");
    }
    let beacon = publishers;
    let watcher_users = users_for(args.sessions, args.sessions_per_user);
    let org = Organisation::plain(publishers + 1 + watcher_users);
    let settings = GatewaySettings {
        sessions_per_user: args.sessions_per_user,
        subscriptions_per_session: args.subscriptions + 1,
        hold_seconds: args.common.hold_seconds,
        session_timeout_seconds: 90.max(args.common.hold_seconds * 2),
    };
    let s = setup(&args.common, &org, settings).await?;
    let mut report = Report::new("s5-reconnect", parameters(&args));
    let waiter = Waiter::new(beacon as u32);
    let mut fleet = Fleet::new(s.ctx.clone(), vec![waiter.clone()]);
    let mut specs: Vec<SessionSpec> = (0..=publishers).map(|p| SessionSpec::new(p, Vec::new())).collect();
    for (j, mut subs) in layout(args.sessions, args.subscriptions, publishers).into_iter().enumerate() {
        subs.push(beacon);
        specs.push(SessionSpec::new(publishers + 1 + j % watcher_users, subs));
    }
    fleet.start(specs, true).await?;
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(60)).await;

    let driver = Arc::new(CwaPublish::new(&s.ctx, &fleet.sessions[..=publishers]));
    let changer = Changer::new(driver.clone(), s.ctx.counters.clone(), (0..publishers).collect());
    let beacon_changer = Changer::new(driver, s.ctx.counters.clone(), vec![beacon]);
    let background = {
        let changer = changer.clone();
        let (rate, total) = (args.rate, Duration::from_secs(args.before + args.after));
        tokio::spawn(async move { changer.steady(rate, total).await })
    };
    tokio::time::sleep(Duration::from_secs(args.before)).await;
    let errors_before = Counters::get(&s.counters().errors);
    let window = Window::open(&s);
    waiter.arm(1);
    let dropped = Instant::now();
    fleet.drop_connections();
    beacon_changer.change(0).await?;
    let bound = dropped + Duration::from_secs(args.after.max(30));
    while waiter.reached() < args.sessions as u64 && Instant::now() < bound {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let recovered = waiter.reached();
    let recovery_ms = dropped.elapsed().as_secs_f64() * 1000.0;
    let (_, storm_cpu) = window.close(&s);
    let shared_cpu = window.shared_cpu_figures(&s);
    background.await?;
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(30)).await;
    let reconnects = Counters::get(&s.counters().reconnects);
    let errors_during = Counters::get(&s.counters().errors) - errors_before;
    let mut expected = changer.last_accepted();
    expected.extend(beacon_changer.last_accepted());
    let subscriptions: HashMap<u64, Vec<usize>> = fleet.sessions.iter().map(|x| (x.sid, x.subscriptions.clone())).collect();
    let trackers = fleet.stop().await;
    report.checks = Checks::from(&trackers, &subscriptions, &expected);
    let latencies = Latencies::new(trackers.iter().flat_map(|t| t.latencies_us.iter().copied()).collect());
    report.figure("sessions", args.sessions as u64);
    report.figure("connections_dropped", reconnects);
    report.figure("sessions_recovered", recovered);
    report.figure("recovery_ms", round3(recovery_ms));
    report.figure("errors_during_storm", errors_during);
    report.figure("server_cpu_seconds_until_recovered", crate::stats::round3(storm_cpu));
    report.figures(shared_cpu);
    report.figure("changes_sent", changer.sent.load(Ordering::Relaxed));
    report.figures(latencies.figures("latency"));
    report.notes.push(
        "recovery = drop of every data-channel connection → every session has the beacon change published right after the drop"
            .into(),
    );
    let title = format!("S5 reconnect storm, {} sessions", args.sessions);
    report.plots.push(("latency", latency_cdf(&title, vec![("all deliveries".into(), latencies.cdf(200))])));
    Ok(report)
}
