//! S6 — sign-in rate: M users each sign in (logon, argon2id on the gateway), start a session and
//! subscribe to their K contacts, with C in flight at once on connections of their own. Measures
//! sign-ins/s, each step's latency and the gateway's CPU seconds per sign-in.

use super::{parameters, setup, Common, Window};
use crate::cwa::{initiate_on, logon_on, subscribe_on};
use crate::fleet::Ctx;
use crate::gateway::GatewaySettings;
use crate::report::{Checks, Report};
use crate::stats::{round3, Counters, Latencies};
use crate::svg::latency_cdf;
use crate::users::{self, Organisation};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug, Clone, Serialize)]
pub struct SigninArgs {
    #[command(flatten)]
    pub common: Common,
    /// Users who sign in (each once).
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Contacts each one subscribes to.
    #[arg(long, default_value_t = 50)]
    pub contacts: usize,
}

#[derive(Default)]
struct Steps {
    logon: Vec<u32>,
    initiate: Vec<u32>,
    subscribe: Vec<u32>,
    total: Vec<u32>,
    errors: u64,
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

async fn worker(ctx: Arc<Ctx>, org: Arc<Organisation>, next: Arc<AtomicUsize>, count: usize, index: usize) -> Steps {
    let mut steps = Steps::default();
    let Ok(mut conn) = ctx.endpoint.connect(index).await else {
        steps.errors += 1;
        return steps;
    };
    loop {
        let user = next.fetch_add(1, Ordering::Relaxed);
        if user >= count || ctx.check_deadline().is_err() {
            return steps;
        }
        let uris: Vec<String> = org.contacts[user].iter().map(|c| users::uri(*c)).collect();
        let start = Instant::now();
        let result = async {
            let login = logon_on(&mut conn, user, &users::uri(user), users::PASSWORD).await?;
            steps.logon.push(micros(start));
            let t = Instant::now();
            let sid = initiate_on(&mut conn, &login).await?;
            steps.initiate.push(micros(t));
            let t = Instant::now();
            subscribe_on(&mut conn, &login, sid, &uris).await?;
            steps.subscribe.push(micros(t));
            anyhow::Ok(())
        }
        .await;
        Counters::add(&ctx.counters.requests, 3);
        match result {
            Ok(()) => {
                steps.total.push(micros(start));
                Counters::add(&ctx.counters.sessions, 1);
            }
            Err(_) => {
                steps.errors += 1;
                Counters::add(&ctx.counters.errors, 1);
                if let Ok(c) = ctx.endpoint.connect(index).await {
                    conn = c;
                }
            }
        }
    }
}

pub async fn run(mut args: SigninArgs) -> Result<Report> {
    args.common.full_cost_hashes = true;
    let org = Arc::new(Organisation::graph(args.users.max(args.contacts + 1), args.contacts, args.common.seed, true));
    let settings = GatewaySettings {
        sessions_per_user: 10,
        subscriptions_per_session: args.contacts,
        hold_seconds: args.common.hold_seconds,
        session_timeout_seconds: 90.max(args.common.hold_seconds * 2),
    };
    let s = setup(&args.common, &org, settings).await?;
    let mut report = Report::new("s6-signin", parameters(&args));
    let window = Window::open(&s);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..args.common.concurrency.max(1) {
        workers.spawn(worker(s.ctx.clone(), org.clone(), next.clone(), args.users, i));
    }
    let mut all = Steps::default();
    while let Some(done) = workers.join_next().await {
        let steps = done?;
        all.logon.extend(steps.logon);
        all.initiate.extend(steps.initiate);
        all.subscribe.extend(steps.subscribe);
        all.total.extend(steps.total);
        all.errors += steps.errors;
    }
    let (wall, cpu) = window.close(&s);
    report.figures(window.shared_cpu_figures(&s));
    report.checks = Checks { errors: all.errors, ..Checks::default() };
    let signed_in = all.total.len() as f64;
    let (logon, initiate, subscribe, total) =
        (Latencies::new(all.logon), Latencies::new(all.initiate), Latencies::new(all.subscribe), Latencies::new(all.total));
    report.figure("sign_ins", signed_in as u64);
    report.figure("concurrency", args.common.concurrency as u64);
    report.figure("sign_ins_per_s", round3(signed_in / wall));
    report.figures(total.figures("sign_in"));
    report.figures(logon.figures("logon"));
    report.figures(initiate.figures("initiate"));
    report.figures(subscribe.figures("subscribe"));
    report.figure("server_cpu_seconds_per_sign_in", round3(cpu / signed_in.max(1.0)));
    report.notes.push("logon verifies an argon2id hash (m=19 MiB, t=2): by design the dominant cost".into());
    let title = format!("S6 sign-in (logon + initiateSession + subscribe {})", args.contacts);
    let series = vec![("whole sign-in".into(), total.cdf(200)), ("logon".into(), logon.cdf(200))];
    report.plots.push(("latency", latency_cdf(&title, series)));
    Ok(report)
}
