//! S1 — idle sessions: ramps up to N sessions in steps (each with K subscriptions from the
//! organisation's contact graph and, unless `--no-poll`, one held data-channel poll), samples the
//! gateway's RSS after each step, fits the slope (bytes per session), then measures the gateway's
//! CPU while everything sits idle (held polls expire and are renewed every hold time). Across
//! several nodes the sessions are held by one worker process per node (`hold.rs`).

use super::{parameters, setup, users_for, Common, Window};
use crate::fleet::{Fleet, SessionSpec};
use crate::gateway::{settled_rss, GatewaySettings, ProcSample};
use crate::report::{Checks, Report};
use crate::svg::{Plot, Series};
use crate::users::Organisation;
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Args, Debug, Clone, Serialize)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sessions at the end of the ramp.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// RSS is sampled after each of this many equal steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Subscriptions per session.
    #[arg(long, default_value_t = 50)]
    pub contacts: usize,
    /// Sessions per signed-in user (one ticket each, like browser tabs).
    #[arg(long, default_value_t = 10)]
    pub sessions_per_user: usize,
    /// Hold no polls: each session reads and acknowledges its initial burst, then keeps no
    /// connection (the hub's share of memory per session; the gateway's hold time is set to 1 s).
    #[arg(long)]
    pub no_poll: bool,
    /// How long the idle CPU is measured (seconds; at least one hold time is sensible).
    #[arg(long, default_value_t = 30)]
    pub idle_seconds: u64,
}

/// Least-squares slope of y over x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

pub async fn run(args: IdleArgs) -> Result<Report> {
    let users = users_for(args.sessions, args.sessions_per_user);
    let org = Organisation::graph(users.max(args.contacts + 1), args.contacts, args.common.seed, true);
    let settings = GatewaySettings {
        sessions_per_user: args.sessions_per_user,
        subscriptions_per_session: args.contacts,
        // Without held polls, the acknowledging poll of each burst should return quickly.
        hold_seconds: if args.no_poll { 1 } else { args.common.hold_seconds },
        session_timeout_seconds: if args.no_poll { 3600 } else { 90.max(args.common.hold_seconds * 2) },
    };
    let s = setup(&args.common, &org, settings).await?;
    let mut report = Report::new(if args.no_poll { "s1-idle-no-poll" } else { "s1-idle" }, parameters(&args));
    if s.is_cluster() {
        if args.no_poll {
            bail!("--no-poll is for one node");
        }
        super::hold::cluster_idle(&args, &s, &org, users, &mut report).await?;
        return Ok(report);
    }
    let mut fleet = Fleet::new(s.ctx.clone(), Vec::new());
    fleet.sign_in(0..users).await?;
    let baseline = settled_rss(s.gateway(), Duration::from_millis(300)).await.unwrap_or(0);
    let mut points = vec![(0.0, baseline as f64 / 1024.0)];
    let mut done = 0;
    for step in 1..=args.steps.max(1) {
        let target = args.sessions * step / args.steps.max(1);
        let specs = (done..target).map(|i| SessionSpec::new(i % users, org.contacts[i % users].clone())).collect();
        fleet.start(specs, !args.no_poll).await?;
        if args.no_poll {
            fleet.drain(done, 2000).await?;
        }
        done = target;
        fleet.quiesce(Duration::from_secs(1), Duration::from_secs(60)).await;
        let rss = settled_rss(s.gateway(), Duration::from_millis(300)).await.unwrap_or(0);
        eprintln!("{done} sessions: gateway RSS {:.1} MiB", rss as f64 / 1024.0);
        points.push((done as f64, rss as f64 / 1024.0));
    }
    let window = Window::open(&s);
    let responses_before = crate::stats::Counters::get(&s.counters().responses);
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let (wall, cpu) = window.close(&s);
    let shared_cpu = window.shared_cpu_figures(&s);
    let renewed = crate::stats::Counters::get(&s.counters().responses) - responses_before;
    let own = ProcSample::read(std::process::id()).unwrap_or_default();
    let end = s.gateway().sample().unwrap_or_default();
    let held = s.counters().connections.load(std::sync::atomic::Ordering::Relaxed);
    let subscriptions: HashMap<u64, Vec<usize>> = HashMap::new();
    let trackers = fleet.stop().await;
    report.checks = Checks::from(&trackers, &subscriptions, &HashMap::new());

    // The first sessions also pay one-off costs (maps growing); fit from the first step on.
    let measured: Vec<(f64, f64)> = if points.len() > 2 { points[1..].to_vec() } else { points.clone() };
    let per_session_bytes = slope(&measured) * 1024.0 * 1024.0;
    report.figure("sessions", args.sessions as u64);
    report.figure("held_polls", held);
    report.figure("signed_in_users", users as u64);
    report.figure("rss_baseline_mib", crate::stats::round3(baseline as f64 / 1024.0));
    report.figure("rss_final_mib", crate::stats::round3(end.rss_kib as f64 / 1024.0));
    report.figure("rss_per_session_bytes", per_session_bytes.round());
    report.figure("rss_per_session_kib", crate::stats::round3(per_session_bytes / 1024.0));
    report.figure("idle_cpu_percent_of_core", crate::stats::round3(cpu / wall * 100.0));
    report.figure("idle_polls_renewed_per_s", crate::stats::round3(renewed as f64 / wall));
    report.figure("server_threads", end.threads);
    report.figures(shared_cpu);
    report.figure("loadgen_rss_mib", crate::stats::round3(own.rss_kib as f64 / 1024.0));
    report.notes.push(format!(
        "each signed-in user holds {} sessions on one ticket; RSS slope by least squares over the {} steps",
        args.sessions_per_user, args.steps
    ));
    let fit: Vec<(f64, f64)> = [measured[0].0, args.sessions as f64]
        .iter()
        .map(|x| (*x, measured[0].1 + slope(&measured) * (x - measured[0].0)))
        .collect();
    let plot = Plot {
        title: format!("S1 gateway RSS vs sessions ({} subscriptions each)", args.contacts),
        x_label: "sessions".into(),
        y_label: "RSS (MiB)".into(),
        log_x: false,
        series: vec![
            Series { name: "measured".into(), points, markers: true },
            Series { name: format!("fit: {:.1} KiB per session", per_session_bytes / 1024.0), points: fit, markers: false },
        ],
    };
    report.plots.push(("rss", plot.render()));
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line() {
        assert_eq!(super::slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert_eq!(super::slope(&[(1.0, 1.0)]), 0.0);
    }
}
