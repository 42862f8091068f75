//! S4 — queries: C sessions, each with a keep-alive command connection of its own, send
//! `queryPresence` for U random users back to back for D seconds while their data channels read the
//! answers. Measures requests/s, the command round trip (p50/p99/max), the gateway's CPU per 1,000
//! requests, and checks that every accepted query was answered on the data channel.
//!
//! Before the measured window one session queries every user once: a user's snapshot is rendered
//! the first time it is shown and then shared until it changes, so the window measures queries of
//! rendered snapshots (the steady state), whatever share of the users a run happens to ask about.

use super::{parameters, setup, Common, Window};
use crate::cwa::{command_on, query_body, Login};
use crate::fleet::{Fleet, SessionSpec};
use crate::gateway::GatewaySettings;
use crate::report::{Checks, Report};
use crate::stats::{round3, Counters, Latencies};
use crate::svg::latency_cdf;
use crate::users::{self, Organisation};
use anyhow::Result;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone, Serialize)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Keep-alive connections (one querying session each).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// URIs per queryPresence.
    #[arg(long, default_value_t = 20)]
    pub uris: usize,
    /// Users in the organisation (queried at random).
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Stop each connection after this many queries (0: no limit but --seconds), so that a run
    /// does a fixed amount of work (instruction counts under callgrind).
    #[arg(long, default_value_t = 0)]
    pub queries: u64,
}

/// One querying client: its own connection, back-to-back queries until `until`.
async fn query_loop(
    ctx: Arc<crate::fleet::Ctx>,
    login: Arc<Login>,
    sid: u64,
    index: usize,
    args: (usize, usize, u64, u64),
    until: Instant,
) -> (Vec<u32>, u64) {
    let (uris, users, seed, limit) = args;
    let mut rng = StdRng::seed_from_u64(seed ^ index as u64);
    let mut samples = Vec::new();
    let mut errors = 0;
    let Ok(mut conn) = ctx.endpoint.connect(index).await else { return (samples, 1) };
    let mut rid = 10u64;
    while Instant::now() < until && (limit == 0 || rid - 10 < limit) {
        rid += 1;
        let list: Vec<String> = (0..uris).map(|_| users::uri(rng.random_range(0..users))).collect();
        let started = Instant::now();
        match command_on(&mut conn, &login, query_body(sid, rid, &list), 1).await {
            Ok(_) => samples.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
            Err(_) => {
                errors += 1;
                Counters::add(&ctx.counters.errors, 1);
                match ctx.endpoint.connect(index).await {
                    Ok(c) => conn = c,
                    Err(_) => break,
                }
            }
        }
        Counters::add(&ctx.counters.requests, 1);
    }
    (samples, errors)
}

/// Queries every user once from the first session, `uris` at a time; returns how many queries
/// of them answer with more than one user (those are counted on the data channel like the
/// measured ones).
async fn warm_up(ctx: &Arc<crate::fleet::Ctx>, fleet: &Fleet, uris: usize, users: usize) -> Result<u64> {
    let Some(session) = fleet.sessions.first() else { return Ok(0) };
    let mut conn = ctx.endpoint.connect(0).await?;
    let all: Vec<String> = (0..users).map(users::uri).collect();
    let mut answers = 0;
    for (rid, chunk) in (1_000_000..).zip(all.chunks(uris.max(1))) {
        command_on(&mut conn, &session.login, query_body(session.sid, rid, chunk), 1).await?;
        answers += u64::from(chunk.len() > 1);
    }
    Ok(answers)
}

pub async fn run(args: QueryArgs) -> Result<Report> {
    let users = args.users.max(args.connections);
    let org = Organisation::plain(users);
    let settings = GatewaySettings {
        sessions_per_user: 10,
        subscriptions_per_session: 1,
        hold_seconds: args.common.hold_seconds,
        session_timeout_seconds: 90.max(args.common.hold_seconds * 2),
    };
    let s = setup(&args.common, &org, settings).await?;
    let mut report = Report::new("s4-query", parameters(&args));
    let mut fleet = Fleet::new(s.ctx.clone(), Vec::new());
    fleet.start((0..args.connections).map(|u| SessionSpec::new(u, Vec::new())).collect(), true).await?;
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(30)).await;

    let warm_up = warm_up(&s.ctx, &fleet, args.uris, users).await?;
    let window = Window::open(&s);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut clients = tokio::task::JoinSet::new();
    for (i, session) in fleet.sessions.iter().enumerate() {
        let (ctx, login, sid) = (s.ctx.clone(), session.login.clone(), session.sid);
        let params = (args.uris, users, args.common.seed, args.queries);
        clients.spawn(query_loop(ctx, login, sid, 100_000 + i, params, until));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    while let Some(done) = clients.join_next().await {
        let (mine, failed) = done?;
        samples.extend(mine);
        errors += failed;
    }
    let (wall, cpu) = window.close(&s);
    let shared_cpu = window.shared_cpu_figures(&s);
    fleet.quiesce(Duration::from_secs(1), Duration::from_secs(20)).await;
    let trackers = fleet.stop().await;
    report.checks = Checks::from(&trackers, &HashMap::new(), &HashMap::new());
    report.checks.errors += errors;
    let answered = trackers.iter().map(|t| t.query_answers).sum::<u64>().saturating_sub(warm_up);
    let accepted = samples.len() as u64;
    report.checks.lost_events += accepted.saturating_sub(answered);
    let latencies = Latencies::new(samples);
    report.figure("connections", args.connections as u64);
    report.figure("uris_per_query", args.uris as u64);
    report.figure("requests", accepted);
    report.figure("requests_per_s", round3(accepted as f64 / wall));
    report.figures(latencies.figures("round_trip"));
    report.figure("answers_on_data_channel", answered);
    report.figure("server_cpu_percent_of_core", round3(cpu / wall * 100.0));
    report.figure("server_cpu_seconds_per_1000_requests", round3(cpu / (accepted as f64).max(1.0) * 1000.0));
    report.figures(shared_cpu);
    report.notes.push(
        "round trip = queryPresence POST until its cwaResponses; the users arrive as one userPresence on the data channel".into(),
    );
    let title = format!("S4 queryPresence, {} URIs, {} connections", args.uris, args.connections);
    report.plots.push(("latency", latency_cdf(&title, vec![("command round trip".into(), latencies.cdf(200))])));
    Ok(report)
}
