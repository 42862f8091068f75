//! The `presence-gateway` command line: `serve`, `user add|passwd|remove|list`,
//! `config check|print` and `healthcheck`.

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, Parser, Subcommand};
use presence_gateway::config::sources;
use presence_gateway::config::{ApiRole, ApiToken, Config, LogFormat};
use presence_gateway::model::contact::{is_valid_sip_uri, normalize_uri, Profile};
use presence_gateway::service::auth::{hash_password, random_token};
use presence_gateway::service::clock::SystemClock;
use presence_gateway::service::seed::{demo_users, seed_demo, spawn_demo_activity, UsersFile, DEMO_PASSWORD};
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
    /// List or end the live sessions of a running gateway (through its admin API).
    Session {
        #[command(flatten)]
        target: TargetArgs,
        /// An admin token of the gateway (default: the first admin token of the configuration).
        /// A token may start with `-` (a random one does, one time in 64).
        #[arg(long, env = "GATEWAY_ADMIN_TOKEN", global = true, hide_env_values = true, allow_hyphen_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        action: SessionAction,
    },
    /// Check, show or write an example of the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Ask the configured gateway's /healthz (exit 0 when healthy); for container health checks.
    Healthcheck {
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the configuration: the file, the GATEWAY_* environment over it, flags (TLS files too).
    Check {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        server: ServerFlags,
        /// The file, as an argument instead of --config.
        #[arg(hide = true, conflicts_with = "config")]
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (defaults, file, environment, flags), secrets masked.
    Print {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Print a complete configuration file: every key with its default and what it does.
    Example,
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// TOML file with every other setting.
    #[arg(long, env = "GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory of the embedded database (default ./data).
    #[arg(long, env = "GATEWAY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Where durable data lives: sqlite://PATH or postgres://USER@HOST/DB (default: gateway.db in
    /// the data directory).
    #[arg(long, env = "GATEWAY_STORE", global = true)]
    store: Option<String>,
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
    /// Redis that joins several nodes into a cluster: redis://HOST[:PORT] (default: one node).
    #[arg(long, env = "GATEWAY_REDIS")]
    redis: Option<String>,
    /// Where the other nodes of a cluster reach this one: http://HOST:PORT.
    #[arg(long, env = "GATEWAY_ADVERTISE")]
    advertise: Option<String>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "GATEWAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "GATEWAY_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

/// Where a running gateway is: what `healthcheck` and `session` use of the configuration.
#[derive(Args, Clone)]
struct TargetArgs {
    /// The gateway's TOML configuration (its listen address and certificate are used).
    #[arg(long, env = "GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The gateway's address (default: the configured listen address; 0.0.0.0 means loopback).
    #[arg(long, env = "GATEWAY_LISTEN", global = true)]
    listen: Option<String>,
    /// The gateway's PEM certificate when it serves HTTPS; exactly this certificate is accepted.
    #[arg(long, env = "GATEWAY_TLS_CERT", global = true)]
    tls_cert: Option<PathBuf>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, global = true)]
    timeout: u64,
    /// Not used by a client; accepted so that commands written with it keep working.
    #[arg(long, hide = true, global = true)]
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
    /// Seed a demo organisation (prints its logins and JSON API tokens).
    #[arg(long, env = "GATEWAY_DEMO")]
    demo: bool,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add or update a user; the password is read from stdin. The store must exist (a gateway
    /// has run with this data directory) unless --create is given.
    Add {
        /// The user's sip: URI, e.g. sip:zoe@example.com; they sign in with it (sip: optional).
        uri: String,
        /// Display name shown to watchers, e.g. "Zoe Zimmer".
        #[arg(long)]
        name: String,
        /// E-mail address shown on the contact card.
        #[arg(long)]
        email: Option<String>,
        /// Create a new, empty store when the data directory has none.
        #[arg(long)]
        create: bool,
    },
    /// Set a user's password from stdin.
    Passwd {
        /// The user's sip: URI.
        uri: String,
    },
    /// Remove a user and their data.
    Remove {
        /// The user's sip: URI.
        uri: String,
    },
    /// List users (URI and display name, tab-separated).
    List,
}

#[derive(Subcommand)]
enum SessionAction {
    /// List live sessions: sid, user, node, client address, started, last poll, active or idle.
    List {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End one session (by sid) or every session of a user (--user). Users stay signed in.
    End {
        /// The session id, as listed.
        #[arg(required_unless_present = "user")]
        sid: Option<u64>,
        /// End every session of this user instead.
        #[arg(long, conflicts_with = "sid")]
        user: Option<String>,
    },
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

/// Values from flags, over the file and the environment.
#[derive(Default)]
struct Overrides {
    data_dir: Option<PathBuf>,
    store: Option<String>,
    log_format: Option<LogFormat>,
    listen: Option<String>,
    redis: Option<String>,
    advertise: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl Overrides {
    fn new(common: &CommonArgs, server: Option<&ServerFlags>) -> Overrides {
        Overrides {
            data_dir: common.data_dir.clone(),
            store: common.store.clone(),
            log_format: common.log_format,
            listen: server.and_then(|s| s.listen.clone()),
            redis: server.and_then(|s| s.redis.clone()),
            advertise: server.and_then(|s| s.advertise.clone()),
            tls_cert: server.and_then(|s| s.tls_cert.clone()),
            tls_key: server.and_then(|s| s.tls_key.clone()),
        }
    }
}

/// Defaults, then the file, then `GATEWAY_*` variables, then flags; validated.
fn load_config(file: Option<&std::path::Path>, flags: Overrides) -> anyhow::Result<(Config, Vec<String>)> {
    let sources::Loaded { mut config, warnings } =
        sources::load(file, std::env::vars(), &flag_variables()).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    config.data_dir = flags.data_dir.unwrap_or(config.data_dir);
    config.store = flags.store.or(config.store);
    config.log_format = flags.log_format.unwrap_or(config.log_format);
    config.listen = flags.listen.unwrap_or(config.listen);
    config.redis = flags.redis.or(config.redis);
    config.advertise = flags.advertise.or(config.advertise);
    config.tls_cert = flags.tls_cert.or(config.tls_cert);
    config.tls_key = flags.tls_key.or(config.tls_key);
    config.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    Ok((config, warnings))
}

/// The configuration of a running gateway as a client sees it: its address and, for HTTPS, its
/// certificate (a client needs no key, so `--tls-cert` comes without `--tls-key`).
fn target_config(target: &TargetArgs) -> anyhow::Result<Config> {
    let flags = Overrides { listen: target.listen.clone(), ..Overrides::default() };
    let (mut config, _) = load_config(target.config.as_deref(), flags)?;
    config.tls_cert = target.tls_cert.clone().or(config.tls_cert);
    Ok(config)
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
            let (config, warnings) = load_config(common.config.as_deref(), Overrides::new(&common, None))?;
            start_logging(&config, &warnings);
            user_command(&config, action).await
        }
        Command::Session { target, token, action } => {
            let config = target_config(&target)?;
            let token = presence_gateway::admin_client::admin_token(&config, token.as_deref()).map_err(anyhow::Error::msg)?;
            session_command(&config, &token, std::time::Duration::from_secs(target.timeout), action).await
        }
        Command::Config { action: ConfigAction::Check { common, server, file } } => {
            let file = file.or(common.config.clone());
            let (config, warnings) = load_config(file.as_deref(), Overrides::new(&common, Some(&server)))?;
            tls_config(&config)?;
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            match file {
                Some(file) => println!("{}: ok", file.display()),
                None => println!("configuration (defaults and GATEWAY_* variables): ok"),
            }
            Ok(())
        }
        Command::Config { action: ConfigAction::Print { common, server } } => {
            let (config, _) = load_config(common.config.as_deref(), Overrides::new(&common, Some(&server)))?;
            print!("{}", config.masked().to_toml().map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Config { action: ConfigAction::Example } => {
            print!("{}", presence_gateway::config::EXAMPLE);
            Ok(())
        }
        Command::Healthcheck { target } => {
            let config = target_config(&target)?;
            presence_gateway::healthcheck::probe(&config, std::time::Duration::from_secs(target.timeout))
                .await
                .map_err(anyhow::Error::msg)?;
            println!("healthy");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (mut config, warnings) = load_config(args.common.config.as_deref(), Overrides::new(&args.common, Some(&args.server)))?;
    let demo_tokens = args.demo.then(|| add_demo_tokens(&mut config));
    start_logging(&config, &warnings);
    let tls = tls_config(&config)?;
    let store = open_store(&config).await?;
    if let Some(path) = &args.users {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = UsersFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        file.apply(&*store).await.map_err(|e| anyhow::anyhow!("loading users: {e}"))?;
    }
    if args.demo {
        seed_demo(&*store).await.map_err(|e| anyhow::anyhow!("seeding the demo: {e}"))?;
    }
    let listener = listen(&config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    default_advertise(&mut config, address, tls.is_some());
    presence_gateway::telemetry::install();
    let gateway = presence_gateway::service::Gateway::start(config, store, Arc::new(SystemClock)).await?;
    if args.demo {
        spawn_demo_activity(&gateway);
        print_demo_banner(address, demo_tokens.as_ref());
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

/// The JSON API tokens of a demo run: a new source and admin token each start.
struct DemoTokens {
    source: String,
    admin: String,
}

fn add_demo_tokens(config: &mut Config) -> DemoTokens {
    let tokens = DemoTokens { source: random_token(24), admin: random_token(24) };
    for (name, token, role) in [("demo-source", &tokens.source, ApiRole::Source), ("demo-admin", &tokens.admin, ApiRole::Admin)] {
        config.api_tokens.push(ApiToken { name: name.into(), token: token.clone(), role });
    }
    tokens
}

fn print_demo_banner(address: std::net::SocketAddr, tokens: Option<&DemoTokens>) {
    tracing::warn!("--demo: demo users with a shared, public password are active; never use this in production");
    println!("Demo organisation ready at http://{address}/");
    println!("Sign in as any of these users with password \"{DEMO_PASSWORD}\":");
    for user in demo_users().user {
        println!("  {:<36} {}", user.uri, user.display_name);
    }
    println!("Try:  curl -si -X POST http://{address}/forms/logon.html -d '<cwaRequests><logon><user>alice@example.com</user><password>{DEMO_PASSWORD}</password></logon></cwaRequests>'");
    if let Some(tokens) = tokens {
        println!("JSON API tokens of this run (the README's JSON API examples use these variables):");
        println!("  export SOURCE_TOKEN={} ADMIN_TOKEN={}", tokens.source, tokens.admin);
    }
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

/// In a cluster, other nodes reach this one at `advertise`; unset, the listen address serves
/// when it is one address, and for `0.0.0.0` the address this host reaches Redis from (the
/// interface the other nodes share with it). Not over HTTPS: nodes speak plain HTTP.
fn default_advertise(config: &mut Config, address: std::net::SocketAddr, tls: bool) {
    let Some(redis) = config.redis.as_deref().filter(|_| config.advertise.is_none()) else { return };
    let ip = match address.ip().is_unspecified() {
        true => outward_ip(redis),
        false => Some(address.ip()),
    };
    match ip.filter(|_| !tls) {
        Some(ip) => config.advertise = Some(format!("http://{}", std::net::SocketAddr::new(ip, address.port()))),
        None => tracing::warn!(
            "no advertise URL: other nodes cannot pass requests for this node's sessions here \
             (set advertise = \"http://HOST:PORT\", --advertise or GATEWAY_ADVERTISE)"
        ),
    }
}

/// The local address of the route to the Redis of `url` (a UDP socket is connected, which
/// sends nothing).
fn outward_ip(url: &str) -> Option<std::net::IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    let target = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:6379")
    };
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

/// Opens the configured store (running its migrations).
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store_url();
    presence_gateway::store::open(&url).await.with_context(|| format!("opening the store {}", url.describe()))
}

/// Refuses to work on an SQLite store that does not exist (unless asked to create one), naming
/// where it was looked for: a mistyped or forgotten `--data-dir` would otherwise make a fresh,
/// empty store. (A PostgreSQL database exists before the gateway uses it.)
fn require_store(config: &Config, create: bool) -> anyhow::Result<()> {
    let presence_gateway::store::StoreUrl::Sqlite(file) = config.store_url() else { return Ok(()) };
    if create || file.exists() {
        return Ok(());
    }
    bail!(
        "no store at {} (data_dir {}): give the gateway's data directory with --data-dir DIR \
         (or GATEWAY_DATA_DIR, or data_dir in --config), or add --create to make a new store there",
        file.display(),
        config.data_dir.display()
    )
}

async fn user_command(config: &Config, action: UserAction) -> anyhow::Result<()> {
    require_store(config, matches!(action, UserAction::Add { create: true, .. }))?;
    let store = open_store(config).await?;
    let at = config.store_url().describe();
    let checked_uri = |uri: &str| -> anyhow::Result<String> {
        if !is_valid_sip_uri(uri) {
            bail!("{uri:?} is not a sip: URI");
        }
        Ok(normalize_uri(uri))
    };
    match action {
        UserAction::Add { uri, name, email, .. } => {
            let uri = checked_uri(&uri)?;
            presence_gateway::model::text::check_fields([("--name", Some(name.as_str())), ("--email", email.as_deref())])?;
            let profile = Profile { uri: uri.clone(), display_name: name, email, ..Profile::default() };
            let password = read_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?.map_err(anyhow::Error::msg)?;
            store.upsert_user(&UserRecord { profile, password_hash: Some(hash) }).await?;
            println!("added {uri} to the store at {at}");
        }
        UserAction::Passwd { uri } => {
            let uri = checked_uri(&uri)?;
            let password = read_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?.map_err(anyhow::Error::msg)?;
            if !store.set_password(&uri, &hash).await? {
                bail!("no user {uri}");
            }
            println!("password changed for {uri} in the store at {at}");
        }
        UserAction::Remove { uri } => {
            let uri = checked_uri(&uri)?;
            if !store.remove_user(&uri).await? {
                bail!("no user {uri}");
            }
            println!("removed {uri} from the store at {at}");
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

/// `session list|end` against the running gateway's admin API.
async fn session_command(config: &Config, token: &str, limit: std::time::Duration, action: SessionAction) -> anyhow::Result<()> {
    use hyper::Method;
    use presence_gateway::admin_client::{call, error_text};
    let user_path =
        |uri: &str| -> anyhow::Result<String> { Ok(format!("/api/v1/users/{}/sessions", path_segment(&user_uri(uri)?))) };
    match action {
        SessionAction::List { user, json } => {
            let path = match &user {
                Some(uri) => user_path(uri)?,
                None => "/api/v1/sessions".to_string(),
            };
            let (status, body) = call(config, Method::GET, &path, token, limit).await.map_err(anyhow::Error::msg)?;
            if status != 200 {
                bail!(error_text(status, &body));
            }
            if json {
                println!("{}", String::from_utf8_lossy(&body));
            } else {
                print_sessions(&serde_json::from_slice(&body)?);
            }
        }
        SessionAction::End { sid: Some(sid), .. } => {
            let path = format!("/api/v1/sessions/{sid}");
            let (status, body) = call(config, Method::DELETE, &path, token, limit).await.map_err(anyhow::Error::msg)?;
            if status != 204 {
                bail!(error_text(status, &body));
            }
            println!("ended session {sid}");
        }
        SessionAction::End { user: Some(uri), .. } => {
            let (status, body) =
                call(config, Method::DELETE, &user_path(&uri)?, token, limit).await.map_err(anyhow::Error::msg)?;
            if status != 200 {
                bail!(error_text(status, &body));
            }
            let ended: serde_json::Value = serde_json::from_slice(&body)?;
            println!("ended {} session(s) of {}", ended["ended"], user_uri(&uri)?);
        }
        SessionAction::End { .. } => bail!("name a session id or --user"),
    }
    Ok(())
}

/// A user named on the command line: `sip:` optional, as when signing in.
fn user_uri(name: &str) -> anyhow::Result<String> {
    let uri = normalize_uri(name);
    let uri = if uri.starts_with("sip:") { uri } else { format!("sip:{uri}") };
    if !is_valid_sip_uri(&uri) {
        bail!("{name:?} is not a user's sip: URI");
    }
    Ok(uri)
}

/// Percent-encodes what may not stand in a URL path segment.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' | b'@' | b'+' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The node of a session: its host name, and in a cluster its number (`gw-1/3fa2c`).
fn node_column(session: &serde_json::Value) -> String {
    let host = session["node"].as_str().unwrap_or("-");
    match session["nodeId"].as_str() {
        Some(number) => format!("{host}/{number}"),
        None => host.to_string(),
    }
}

/// The session list as a table, one session a line.
fn print_sessions(sessions: &serde_json::Value) {
    let column = |v: &serde_json::Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
    println!(
        "{:<10} {:<32} {:<16} {:<16} {:<5} {:<20} {:<20} STATE",
        "SID", "USER", "NODE", "CLIENT", "KIND", "STARTED", "LAST POLL"
    );
    for s in sessions.as_array().into_iter().flatten() {
        let time = |key: &str| column(&s[key]).chars().take(19).collect::<String>().replace('T', " ");
        let client = s["clientAddress"].as_str().unwrap_or("-");
        let state = if s["polling"] == true { format!("{} (polling)", column(&s["state"])) } else { column(&s["state"]) };
        println!(
            "{:<10} {:<32} {:<16} {:<16} {:<5} {:<20} {:<20} {state}",
            column(&s["sid"]),
            column(&s["user"]),
            node_column(s),
            client,
            column(&s["kind"]),
            time("started"),
            time("lastPoll"),
        );
    }
}
