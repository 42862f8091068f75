//! `presence-gateway-bench`: the load generator and benchmark scenarios of presence-gateway.
//!
//! It generates an organisation (users file), starts the gateway (or targets a running one on
//! loopback), signs users in, starts sessions with their subscriptions, holds one data-channel
//! poll per session with exact `AckId` handling, drives stamped presence changes, and checks every
//! delivered event (latency, eid gaps and duplicates per session). Each scenario is one command,
//! bounded in time, that prints progress while it runs, then a table, and saves a JSON file and
//! SVG plots. Server figures come from `/proc/<pid>` of the gateway. `--nodes N` runs the same
//! scenarios across N nodes of one cluster (a PostgreSQL schema and a Redis of the run's own).

mod client;
mod cluster;
mod cwa;
mod driver;
mod events;
mod fleet;
mod floor;
mod gateway;
mod report;
mod scenarios;
mod session;
mod stats;
mod summary;
mod svg;
mod users;

use clap::{Parser, Subcommand};
use scenarios::{FanoutArgs, HoldArgs, IdleArgs, QueryArgs, ReconnectArgs, SigninArgs, SteadyArgs, UsersArgs};

#[derive(Parser)]
#[command(name = "presence-gateway-bench", version, about = "Load generator and benchmarks for presence-gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a users file of a generated organisation (for a gateway started by hand).
    Users(UsersArgs),
    /// S1: hold N idle sessions; server RSS slope per session and idle CPU.
    Idle(IdleArgs),
    /// S2: one change to W watchers; latency until every watcher has it.
    Fanout(FanoutArgs),
    /// S3: steady R changes/s, each to K watchers; deliveries/s, latency, CPU per delivery.
    Steady(SteadyArgs),
    /// S4: queryPresence with U URIs over C keep-alive connections; requests/s and latency.
    Query(QueryArgs),
    /// S5: drop every data-channel connection at once while changes go on; recovery, loss, duplicates.
    Reconnect(ReconnectArgs),
    /// S6: sign-in rate (logon + initiateSession + subscribe K).
    Signin(SigninArgs),
    /// A worker of `idle --nodes N`: holds sessions on one node as told on its standard input.
    #[command(hide = true)]
    Hold(HoldArgs),
    /// The floor under S2: a bare long-poll server's cost per delivery (BENCHMARKS.md).
    Floor(floor::FloorArgs),
    /// The server of `floor`.
    #[command(hide = true)]
    FloorServer,
    /// Medians and spreads of repeated runs' JSON files, as Markdown tables.
    Summarize {
        /// JSON files written by the scenarios.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Users(args) => scenarios::write_users(args).await,
            Command::Idle(args) => scenarios::run(args.common.clone(), scenarios::idle::run(args)).await,
            Command::Fanout(args) => scenarios::run(args.common.clone(), scenarios::fanout::run(args)).await,
            Command::Steady(args) => scenarios::run(args.common.clone(), scenarios::steady::run(args)).await,
            Command::Query(args) => scenarios::run(args.common.clone(), scenarios::query::run(args)).await,
            Command::Reconnect(args) => scenarios::run(args.common.clone(), scenarios::reconnect::run(args)).await,
            Command::Signin(args) => scenarios::run(args.common.clone(), scenarios::signin::run(args)).await,
            Command::Hold(args) => scenarios::hold::worker(args).await,
            Command::Floor(args) => floor::run(args).await,
            Command::FloorServer => floor::serve().await,
            Command::Summarize { files } => {
                print!("{}", summary::summarize(&files)?);
                Ok(())
            }
        }
    })
}
