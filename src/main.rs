//! The `presence-gateway` command line: `serve`, `user add|passwd|remove|list`,
//! `config check|print` and `healthcheck`.

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, Parser, Subcommand};
use presence_gateway::config::sources;
use presence_gateway::config::{Config, LogFormat};
use presence_gateway::model::contact::{is_valid_sip_uri, normalize_uri, Profile};
use presence_gateway::service::auth::hash_password;
use presence_gateway::service::clock::SystemClock;
use presence_gateway::service::seed::{demo_users, seed_demo, spawn_demo_activity, UsersFile, DEMO_PASSWORD};
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
    /// Check or show the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Ask the configured gateway's /healthz (exit 0 when healthy); for container health checks.
    Healthcheck {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        server: ServerFlags,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate a configuration file (with the GATEWAY_* environment over it).
    Check { file: PathBuf },
    /// Print the effective configuration (defaults, file, environment, flags), secrets masked.
    Print {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        server: ServerFlags,
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
    /// Log format on stderr (default human).
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, global = true)]
    log_format: Option<LogFormat>,
}

/// Flags that override the configuration of the server.
#[derive(Args, Clone)]
struct ServerFlags {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "GATEWAY_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "GATEWAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "GATEWAY_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    server: ServerFlags,
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

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The environment variables of flags: the configuration loader leaves those that are no
/// configuration key to the flags.
fn flag_variables() -> Vec<String> {
    fn walk(command: &clap::Command, names: &mut Vec<String>) {
        names.extend(command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()));
        command.get_subcommands().for_each(|sub| walk(sub, names));
    }
    let mut names = Vec::new();
    walk(&Cli::command(), &mut names);
    names
}

/// Defaults, then the file, then `GATEWAY_*` variables, then flags; validated.
fn load_config(common: &CommonArgs, server: Option<&ServerFlags>) -> anyhow::Result<(Config, Vec<String>)> {
    let sources::Loaded { mut config, warnings } = sources::load(common.config.as_deref(), std::env::vars(), &flag_variables())
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(format) = common.log_format {
        config.log_format = format;
    }
    if let Some(flags) = server {
        config.listen = flags.listen.clone().unwrap_or(config.listen);
        config.tls_cert = flags.tls_cert.clone().or(config.tls_cert);
        config.tls_key = flags.tls_key.clone().or(config.tls_key);
    }
    config.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    Ok((config, warnings))
}

/// Starts logging in the configured format, then reports the configuration's warnings.
fn start_logging(config: &Config, warnings: &[String]) {
    init_tracing(config.log_format);
    for warning in warnings {
        tracing::warn!("configuration: {warning}");
    }
}

/// The HTTPS configuration when TLS is configured.
fn tls_config(config: &Config) -> anyhow::Result<Option<Arc<presence_gateway::tls::TlsServerConfig>>> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(presence_gateway::tls::server_config(cert, key).map_err(anyhow::Error::msg)?)),
        _ => Ok(None),
    }
}

/// Errors end the process with exit status 1 and one message (no backtrace): logged once logging
/// runs, else printed to stderr.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("presence-gateway: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if tracing::dispatcher::has_been_set() => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("presence-gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::User { common, action } => {
            let (config, warnings) = load_config(&common, None)?;
            start_logging(&config, &warnings);
            user_command(&config, action).await
        }
        Command::Config { action: ConfigAction::Check { file } } => {
            let common = CommonArgs { config: Some(file.clone()), data_dir: None, log_format: None };
            let (config, warnings) = load_config(&common, None)?;
            tls_config(&config)?;
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::Config { action: ConfigAction::Print { common, server } } => {
            let (config, _) = load_config(&common, Some(&server))?;
            print!("{}", config.masked().to_toml().map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Healthcheck { common, server, timeout } => {
            let (config, _) = load_config(&common, Some(&server))?;
            presence_gateway::healthcheck::probe(&config, std::time::Duration::from_secs(timeout))
                .await
                .map_err(anyhow::Error::msg)?;
            println!("healthy");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (config, warnings) = load_config(&args.common, Some(&args.server))?;
    start_logging(&config, &warnings);
    let tls = tls_config(&config)?;
    let store = SqliteStore::open(&config.data_dir).await.context("opening the store")?;
    if let Some(path) = &args.users {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = UsersFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        file.apply(&store).await.map_err(|e| anyhow::anyhow!("loading users: {e}"))?;
    }
    if args.demo {
        seed_demo(&store).await.map_err(|e| anyhow::anyhow!("seeding the demo: {e}"))?;
    }
    let listener = listen(&config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    presence_gateway::telemetry::install();
    let gateway = presence_gateway::service::Gateway::start(config, Arc::new(store), Arc::new(SystemClock)).await?;
    if args.demo {
        spawn_demo_activity(&gateway);
        print_demo_banner(address);
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("presence-gateway listening on {scheme}://{address}");
    tracing::info!(%address, scheme, "presence-gateway listening");
    presence_gateway::serve_with(listener, tls, gateway, shutdown_signal()).await?;
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
            presence_gateway::model::text::check_fields([("--name", Some(name.as_str())), ("--email", email.as_deref())])?;
            let profile = Profile { uri: uri.clone(), display_name: name, email, ..Profile::default() };
            let password = read_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?.map_err(anyhow::Error::msg)?;
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
