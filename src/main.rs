//! The `presence-gateway` command line: `serve`, and `user add|passwd|remove|list`.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use presence_gateway::config::Config;
use presence_gateway::model::contact::{is_valid_sip_uri, normalize_uri, Profile};
use presence_gateway::service::auth::hash_password;
use presence_gateway::service::clock::SystemClock;
use presence_gateway::service::seed::{demo_users, spawn_demo_activity, UsersFile, DEMO_PASSWORD};
use presence_gateway::store::sqlite::SqliteStore;
use presence_gateway::store::{Store, UserRecord};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "presence-gateway", version, about = "Live presence over plain HTTP (CWA AJAX API dialect)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Manage users in the store (passwords are read from standard input).
    User {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// TOML file with every other setting.
    #[arg(long, env = "GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory of the embedded database.
    #[arg(long, env = "GATEWAY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, default_value = "human", global = true)]
    log_format: LogFormat,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "GATEWAY_LISTEN")]
    listen: Option<String>,
    /// A TOML users file, upserted at start.
    #[arg(long, env = "GATEWAY_USERS")]
    users: Option<PathBuf>,
    /// Seed a demo organisation (prints its logins).
    #[arg(long, env = "GATEWAY_DEMO")]
    demo: bool,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add or update a user; the password is read from stdin.
    Add {
        uri: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a user's password from stdin.
    Passwd { uri: String },
    /// Remove a user and their data.
    Remove { uri: String },
    /// List users.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut config = match &common.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::User { common, action } => {
            init_tracing(common.log_format);
            user_command(&load_config(&common)?, action).await
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.common.log_format);
    let mut config = load_config(&args.common)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let store = SqliteStore::open(&config.data_dir).await.context("opening the store")?;
    if let Some(path) = &args.users {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = UsersFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        file.apply(&store).await.map_err(|e| anyhow::anyhow!("loading users: {e}"))?;
    }
    if args.demo {
        demo_users().apply(&store).await.map_err(|e| anyhow::anyhow!("seeding the demo: {e}"))?;
    }
    let listener = listen(&config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let gateway = presence_gateway::service::Gateway::start(config, Arc::new(store), Arc::new(SystemClock)).await?;
    if args.demo {
        spawn_demo_activity(&gateway);
        print_demo_banner(address);
    }
    println!("presence-gateway listening on http://{address}");
    tracing::info!(%address, "presence-gateway listening");
    presence_gateway::serve(listener, gateway, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Connections waiting to be accepted (the kernel caps it at `net.core.somaxconn`): deep enough
/// that a storm of clients reconnecting at once is queued instead of having its SYNs dropped.
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds the listening socket with [`LISTEN_BACKLOG`].
fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let address: std::net::SocketAddr =
        address.parse().map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an address"))?;
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

fn print_demo_banner(address: std::net::SocketAddr) {
    tracing::warn!("--demo: demo users with a shared, public password are active; never use this in production");
    println!("Demo organisation ready at http://{address}/");
    println!("Sign in as any of these users with password \"{DEMO_PASSWORD}\":");
    for user in demo_users().user {
        println!("  {:<36} {}", user.uri, user.display_name);
    }
    println!("Try:  curl -si -X POST http://{address}/forms/logon.html -d '<cwaRequests><logon><user>alice@example.com</user><password>{DEMO_PASSWORD}</password></logon></cwaRequests>'");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

async fn user_command(config: &Config, action: UserAction) -> anyhow::Result<()> {
    let store = SqliteStore::open(&config.data_dir).await.context("opening the store")?;
    let checked_uri = |uri: &str| -> anyhow::Result<String> {
        if !is_valid_sip_uri(uri) {
            bail!("{uri:?} is not a sip: URI");
        }
        Ok(normalize_uri(uri))
    };
    match action {
        UserAction::Add { uri, name, email } => {
            let uri = checked_uri(&uri)?;
            let password = read_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?.map_err(anyhow::Error::msg)?;
            let profile = Profile { uri: uri.clone(), display_name: name, email, ..Profile::default() };
            store.upsert_user(&UserRecord { profile, password_hash: Some(hash) }).await?;
            println!("added {uri}");
        }
        UserAction::Passwd { uri } => {
            let uri = checked_uri(&uri)?;
            let password = read_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?.map_err(anyhow::Error::msg)?;
            if !store.set_password(&uri, &hash).await? {
                bail!("no user {uri}");
            }
            println!("password changed for {uri}");
        }
        UserAction::Remove { uri } => {
            let uri = checked_uri(&uri)?;
            if !store.remove_user(&uri).await? {
                bail!("no user {uri}");
            }
            println!("removed {uri}");
        }
        UserAction::List => {
            for user in store.users().await? {
                println!("{}\t{}", user.profile.uri, user.profile.display_name);
            }
        }
    }
    store.close().await;
    Ok(())
}
