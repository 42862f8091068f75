//! Configuration: one TOML file for every knob, each with its default here. Command-line flags and
//! `GATEWAY_*` environment variables override the file (see [`sources`] and `main.rs`).

pub mod sources;

/// A complete configuration file: every key with its default and a comment
/// (`presence-gateway config example`).
pub const EXAMPLE: &str = include_str!("config/example.toml");

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Directory of the embedded SQLite database.
    pub data_dir: PathBuf,
    /// Where durable data lives: `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
    /// (README "Using PostgreSQL"); unset = `gateway.db` in `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The Redis that joins several nodes into one cluster, `redis://[:PASSWORD@]HOST[:PORT][/DB]`
    /// (README "Several nodes"); unset = one node on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Where the other nodes of a cluster reach this one, `http://HOST:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// A node that has not renewed its heartbeat in Redis for this long is gone: its sessions no
    /// longer count (seconds, 2 to 300).
    pub heartbeat_ttl_seconds: u64,
    /// A node keeps receiving a user's changes this long after its last session watching (or of)
    /// the user ended, or after a read of the user (seconds, 1 to 3600).
    pub follow_linger_seconds: u64,
    /// How long an empty data-channel poll is held (seconds, below 60).
    pub hold_seconds: u64,
    /// `pollWaitTime` sent to clients (milliseconds).
    pub poll_wait_ms: u64,
    /// A session without a poll for this long ends (seconds).
    pub session_timeout_seconds: u64,
    /// A client with no user activity (`UA=false`) for this long is idle (seconds).
    pub idle_timeout_seconds: u64,
    /// A ticket value unused for this long expires (seconds).
    pub ticket_idle_seconds: u64,
    /// The newest ticket value of a login is replaced on its first use after this long (seconds);
    /// earlier values stay valid while used.
    pub ticket_rotation_seconds: u64,
    /// Every ticket value of a login ends this long after the sign-in (seconds).
    pub ticket_lifetime_seconds: u64,
    /// Domains that count as the same enterprise; empty = the owner's own domain only.
    pub enterprise_domains: Vec<String>,
    /// Whether users may choose "appear offline".
    pub enable_appear_offline: bool,
    /// The most entries one directory search returns.
    pub search_max_results: usize,
    /// The search field clients should offer first (sent in the `configuration` event).
    pub search_default_field: String,
    /// `and` or `or`: how clients combine search criteria by default.
    pub search_default_function: String,
    /// Lifetime of a source report that names no `ttlSeconds` (seconds).
    pub source_ttl_seconds: u64,
    /// How long a graceful shutdown may take before open connections are cut (seconds).
    pub shutdown_timeout_seconds: u64,
    /// Log format on stderr.
    pub log_format: LogFormat,
    /// PEM certificate chain; with `tls_key`, the gateway serves HTTPS instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Browser origins allowed to call the gateway (CORS); empty = CORS off.
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or networks (`10.0.0.0/8`).
    pub trusted_proxies: Vec<ProxyNet>,
    /// Serve the web app from this directory instead of the copy built into the binary.
    pub static_dir: Option<PathBuf>,
    pub limits: Limits,
    /// Connection limits and timeouts of the HTTP/1.1 driver (README, "Connections").
    pub http: HttpLimits,
    pub logon: LogonPolicy,
    /// Bearer tokens of the JSON API.
    pub api_tokens: Vec<ApiToken>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// A bearer token of the JSON API. `Debug` never shows the token itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds the token (for logs; never the token itself).
    pub name: String,
    pub token: String,
    pub role: ApiRole,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken").field("name", &self.name).field("token", &MASK).field("role", &self.role).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    /// May report presence sources.
    Source,
    /// May administer users and rights.
    Admin,
}

/// What secrets are replaced with when a configuration is shown.
pub const MASK: &str = "********";

/// The shortest API token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

/// An address or network of trusted proxies; a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyNet(pub ipnet::IpNet);

impl TryFrom<String> for ProxyNet {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        match (text.parse::<ipnet::IpNet>(), text.parse::<std::net::IpAddr>()) {
            (Ok(net), _) => Ok(ProxyNet(net.trunc())),
            (_, Ok(address)) => Ok(ProxyNet(address.into())),
            _ => Err(format!("{text:?} is not an IP address or network such as 10.0.0.0/8")),
        }
    }
}

impl From<ProxyNet> for String {
    fn from(net: ProxyNet) -> String {
        net.0.to_string()
    }
}

impl ProxyNet {
    pub fn contains(&self, address: &std::net::IpAddr) -> bool {
        self.0.contains(&canonical(*address))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as dual-stack sockets report them) as IPv4.
pub fn canonical(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub sessions_per_user: usize,
    pub subscriptions_per_session: usize,
    pub uris_per_query: usize,
    pub body_bytes: usize,
    pub xml_depth: usize,
    pub xml_elements: usize,
    pub queue_length: usize,
    pub contacts_per_user: usize,
    /// The largest contact image accepted (bytes).
    pub image_bytes: usize,
}

/// The `[http]` table: how many connections, and how long each may take to send a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// The most connections open at once; more are answered 503 and closed. Never more than the
    /// process's descriptor limit allows.
    pub max_connections: usize,
    /// A request head (request line and headers) must arrive within this time of its first byte,
    /// and a new connection's first request within this time of connecting (seconds).
    pub header_timeout_seconds: u64,
    /// A request body must arrive within this time of its head; an answer must be written within
    /// it too (seconds).
    pub body_timeout_seconds: u64,
    /// A kept-alive connection without a new request for this long is closed (seconds).
    pub keep_alive_seconds: u64,
    /// The largest request head accepted (bytes); larger ones are answered 431.
    pub max_head_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 100_000,
            header_timeout_seconds: 20,
            body_timeout_seconds: 30,
            keep_alive_seconds: 75,
            max_head_bytes: 32 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogonPolicy {
    /// Failed sign-ins of one user from one client address within the window; past it that
    /// address waits for the window to pass (for that user).
    pub failures_per_user_and_address: u32,
    /// Failed sign-ins from one client address, whatever the users, within the window.
    pub failures_per_address: u32,
    pub window_seconds: u64,
    /// Failed sign-ins of one user from anywhere before each further attempt from an address the
    /// user has not signed in from waits: 1 s after the previous one, doubling per failure.
    pub user_slowdown_after: u32,
    /// The longest of those waits (seconds).
    pub user_slowdown_max_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            store: None,
            redis: None,
            advertise: None,
            heartbeat_ttl_seconds: 15,
            follow_linger_seconds: 30,
            hold_seconds: 25,
            poll_wait_ms: 0,
            session_timeout_seconds: 90,
            idle_timeout_seconds: 300,
            ticket_idle_seconds: 8 * 3600,
            ticket_rotation_seconds: 900,
            ticket_lifetime_seconds: 24 * 3600,
            enterprise_domains: Vec::new(),
            enable_appear_offline: true,
            search_max_results: 100,
            search_default_field: "displayName".into(),
            search_default_function: "or".into(),
            source_ttl_seconds: 3600,
            shutdown_timeout_seconds: 10,
            log_format: LogFormat::Human,
            tls_cert: None,
            tls_key: None,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            static_dir: None,
            limits: Limits::default(),
            http: HttpLimits::default(),
            logon: LogonPolicy::default(),
            api_tokens: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions_per_user: 10,
            subscriptions_per_session: 1000,
            uris_per_query: 650,
            body_bytes: 256 * 1024,
            xml_depth: 16,
            xml_elements: 10_000,
            queue_length: 2000,
            contacts_per_user: 1000,
            image_bytes: 512 * 1024,
        }
    }
}

impl Default for LogonPolicy {
    fn default() -> Self {
        LogonPolicy {
            failures_per_user_and_address: 5,
            failures_per_address: 20,
            window_seconds: 300,
            user_slowdown_after: 5,
            user_slowdown_max_seconds: 60,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys and bad values are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("hold_seconds", self.hold_seconds),
            ("session_timeout_seconds", self.session_timeout_seconds),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            ("ticket_idle_seconds", self.ticket_idle_seconds),
            ("ticket_rotation_seconds", self.ticket_rotation_seconds),
            ("ticket_lifetime_seconds", self.ticket_lifetime_seconds),
            ("limits.sessions_per_user", self.limits.sessions_per_user as u64),
            ("limits.subscriptions_per_session", self.limits.subscriptions_per_session as u64),
            ("limits.uris_per_query", self.limits.uris_per_query as u64),
            ("limits.body_bytes", self.limits.body_bytes as u64),
            ("limits.xml_depth", self.limits.xml_depth as u64),
            ("limits.queue_length", self.limits.queue_length as u64),
            ("limits.contacts_per_user", self.limits.contacts_per_user as u64),
            ("limits.image_bytes", self.limits.image_bytes as u64),
            ("search_max_results", self.search_max_results as u64),
            ("source_ttl_seconds", self.source_ttl_seconds),
            ("shutdown_timeout_seconds", self.shutdown_timeout_seconds),
            ("http.max_connections", self.http.max_connections as u64),
            ("http.header_timeout_seconds", self.http.header_timeout_seconds),
            ("http.body_timeout_seconds", self.http.body_timeout_seconds),
            ("http.keep_alive_seconds", self.http.keep_alive_seconds),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be greater than 0"));
        }
        if self.http.max_head_bytes < 1024 {
            return Err("http.max_head_bytes must be at least 1024".into());
        }
        if self.hold_seconds >= 60 {
            return Err("hold_seconds must be below 60 so that proxies do not cut held polls".into());
        }
        if self.session_timeout_seconds <= self.hold_seconds {
            return Err("session_timeout_seconds must be longer than hold_seconds".into());
        }
        if !matches!(self.search_default_function.as_str(), "and" | "or") {
            return Err("search_default_function must be \"and\" or \"or\"".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen: {:?} is not an address such as 127.0.0.1:8080", self.listen));
        }
        if let Some(store) = &self.store {
            crate::store::StoreUrl::parse(store).map_err(|e| format!("store: {e}"))?;
        }
        self.validate_cluster()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key must be set together".into());
        }
        for (i, origin) in self.cors_origins.iter().enumerate() {
            check_origin(origin).map_err(|e| format!("cors_origins[{i}]: {e}"))?;
            if !is_origin(origin) {
                return Err(format!("cors_origins[{i}]: {origin:?} is not an origin such as https://intranet.example"));
            }
        }
        self.validate_tokens()
    }

    fn validate_cluster(&self) -> Result<(), String> {
        if let Some(url) = &self.redis {
            let masked = crate::store::StoreUrl::mask_password(url, MASK);
            match ::redis::Client::open(url.as_str()) {
                Ok(_) if url.starts_with("redis://") || url.starts_with("unix://") => {}
                _ => return Err(format!("redis: {masked:?} is not an address such as redis://127.0.0.1:6379")),
            }
        }
        if let Some(url) = &self.advertise {
            let ok = url
                .parse::<axum::http::Uri>()
                .is_ok_and(|u| u.scheme_str() == Some("http") && u.authority().is_some() && u.path() == "/");
            if !ok {
                return Err(format!("advertise: {url:?} is not a URL such as http://10.0.0.5:8080"));
            }
        }
        if !(2..=300).contains(&self.heartbeat_ttl_seconds) {
            return Err("heartbeat_ttl_seconds must be between 2 and 300".into());
        }
        if !(1..=3600).contains(&self.follow_linger_seconds) {
            return Err("follow_linger_seconds must be between 1 and 3600".into());
        }
        Ok(())
    }

    fn validate_tokens(&self) -> Result<(), String> {
        for (i, t) in self.api_tokens.iter().enumerate() {
            let key = format!("api_tokens[{i}]");
            if t.name.trim().is_empty() {
                return Err(format!("{key}.name must not be empty"));
            }
            if t.token.chars().count() < MIN_TOKEN_CHARS || t.token.chars().any(char::is_whitespace) {
                return Err(format!("{key}.token ({}) must be at least {MIN_TOKEN_CHARS} characters without spaces", t.name));
            }
            let earlier = &self.api_tokens[..i];
            if earlier.iter().any(|e| e.name == t.name) {
                return Err(format!("{key}.name {:?} is used twice", t.name));
            }
            if earlier.iter().any(|e| e.token == t.token) {
                return Err(format!("{key}.token ({}) is the same as another token", t.name));
            }
        }
        Ok(())
    }

    pub fn hold(&self) -> Duration {
        Duration::from_secs(self.hold_seconds)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds)
    }

    /// This configuration with every secret replaced by [`MASK`], fit to be shown.
    pub fn masked(&self) -> Config {
        let mut shown = self.clone();
        for token in &mut shown.api_tokens {
            token.token = MASK.into();
        }
        shown.store = shown.store.as_deref().map(|url| crate::store::StoreUrl::mask_password(url, MASK));
        shown.redis = shown.redis.as_deref().map(|url| crate::store::StoreUrl::mask_password(url, MASK));
        shown
    }

    /// The store this configuration names (validated by [`Config::validate`]).
    pub fn store_url(&self) -> crate::store::StoreUrl {
        match self.store.as_deref().map(crate::store::StoreUrl::parse) {
            Some(Ok(url)) => url,
            _ => crate::store::StoreUrl::default_in(&self.data_dir),
        }
    }

    /// The configuration as TOML (secrets included: show [`Config::masked`]).
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}

/// A browser origin: `http(s)://host[:port]`, exactly as browsers send it in `Origin`.
fn check_origin(origin: &str) -> Result<(), String> {
    let uri: axum::http::Uri =
        origin.parse().map_err(|_| format!("{origin:?} is not an origin such as https://intranet.example.com"))?;
    let rebuilt = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme @ ("http" | "https")), Some(authority)) => format!("{scheme}://{authority}"),
        _ => return Err(format!("{origin:?} is not an origin such as https://intranet.example.com")),
    };
    if rebuilt != origin || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{origin:?} must be scheme://host[:port] without a path, user or trailing slash"));
    }
    Ok(())
}

/// `http(s)://host[:port]` exactly as a browser sends it in `Origin`: lower case, no path, no wildcard.
fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else { return false };
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, tail)) if tail.starts_with(':') => (addr, Some(&tail[1..])),
            _ => return false,
        },
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c));
    host_ok && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_files_override_them() {
        Config::default().validate().unwrap();
        let c = Config::from_toml("hold_seconds = 10\n[limits]\nsessions_per_user = 3\n").unwrap();
        assert_eq!((c.hold_seconds, c.limits.sessions_per_user, c.limits.uris_per_query), (10, 3, 650));
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(Config::from_toml("hold_seconds = 75").unwrap_err().contains("hold_seconds"));
        assert!(Config::from_toml("holdseconds = 5").unwrap_err().contains("holdseconds"));
        assert!(Config::from_toml("[limits]\nqueue_length = 0").unwrap_err().contains("limits.queue_length"));
        assert!(Config::from_toml("listen = \"nowhere\"").unwrap_err().contains("listen"));
    }

    #[test]
    fn operations_keys_are_checked_and_name_their_key() {
        let err = |text: &str| Config::from_toml(text).unwrap_err();
        assert!(err("shutdown_timeout_seconds = 0").contains("shutdown_timeout_seconds"));
        assert!(err("log_format = \"xml\"").contains("log_format"));
        assert!(err("tls_cert = \"c.pem\"").contains("tls_cert and tls_key"));
        assert!(err("cors_origins = [\"https://a.example\", \"https://b.example/\"]").contains("cors_origins[1]"));
        assert!(err("cors_origins = [\"*\"]").contains("cors_origins[0]"));
        assert!(err("trusted_proxies = [\"10.0.0.0/33\"]").contains("trusted_proxies"));
        let short = err("[[api_tokens]]\nname = \"pbx\"\ntoken = \"short\"\nrole = \"source\"");
        assert!(short.contains("api_tokens[0].token") && !short.contains("short\""), "{short}");
        assert!(err("[[api_tokens]]\nname = \"pbx\"\ntoken = \"0123456789abcdef\"\nrole = \"root\"").contains("role"));
        let twice = "[[api_tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nrole = \"admin\"\n\
                     [[api_tokens]]\nname = \"b\"\ntoken = \"0123456789abcdef\"\nrole = \"source\"";
        assert!(err(twice).contains("api_tokens[1].token (b) is the same"));
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let c = Config::from_toml("trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]").unwrap();
        let has = |a: &str| c.trusted_proxies.iter().any(|p| p.contains(&a.parse().unwrap()));
        assert!(has("10.1.2.3") && has("192.0.2.7") && has("::1") && has("::ffff:10.9.9.9"));
        assert!(!has("192.0.2.8") && !has("11.0.0.1"));
    }

    #[test]
    fn masked_configuration_hides_tokens_and_prints_as_toml() {
        let text = "cors_origins = [\"https://intranet.example.com\"]\n\
                    [[api_tokens]]\nname = \"pbx\"\ntoken = \"s3cret-s3cret-s3cret\"\nrole = \"source\"";
        let c = Config::from_toml(text).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"), "Debug masks tokens");
        let shown = c.masked().to_toml().unwrap();
        assert!(!shown.contains("s3cret") && shown.contains(MASK) && shown.contains("name = \"pbx\""), "{shown}");
        let reread = Config::from_toml(&c.to_toml().unwrap()).unwrap();
        assert_eq!(reread.api_tokens, c.api_tokens, "printed TOML reads back");
    }

    #[test]
    fn the_example_holds_every_key_at_its_default() {
        let example = Config::from_toml(EXAMPLE).expect("the example parses");
        assert_eq!(example.to_toml().unwrap(), Config::default().to_toml().unwrap(), "the example's values are the defaults");
        // The keys without a default value are there too, commented out, and parse when uncommented.
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if ["tls_", "static_dir", "[[api_tokens]]", "redis", "advertise"].iter().any(|k| rest.starts_with(k)) =>
                {
                    rest
                }
                Some(rest) if ["name =", "token =", "role ="].iter().any(|k| rest.starts_with(k)) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let full = Config::from_toml(&uncommented).expect("the commented keys parse");
        assert!(full.tls_cert.is_some() && full.tls_key.is_some() && full.static_dir.is_some() && full.api_tokens.len() == 2);
        assert!(full.redis.is_some() && full.advertise.is_some());
        let every_key = toml::Value::try_from(&full).unwrap().as_table().unwrap().clone();
        let mut keys: Vec<String> = Vec::new();
        for (key, value) in &every_key {
            match value.as_table() {
                Some(table) => keys.extend(table.keys().map(|k| format!("{key}.{k}"))),
                None => keys.push(key.clone()),
            }
        }
        for key in keys {
            let last = key.rsplit('.').next().unwrap();
            let shown = [format!("\n{last} ="), format!("# {last} ="), format!("[[{last}]]")];
            assert!(shown.iter().any(|s| EXAMPLE.contains(s.as_str())), "{key} is missing");
        }
    }

    #[test]
    fn cors_origins_must_be_exact_origins() {
        let ok =
            Config::from_toml("cors_origins = [\"https://intranet.example\", \"http://127.0.0.1:8081\", \"http://[::1]:80\"]")
                .unwrap();
        assert_eq!(ok.cors_origins.len(), 3);
        for bad in [
            "*",
            "null",
            "intranet.example",
            "https://intranet.example/",
            "https://Intranet.example",
            "http://a:b",
            "ftp://x",
            "http://[::1]x",
        ] {
            let err = Config::from_toml(&format!("cors_origins = [{bad:?}]")).unwrap_err();
            assert!(err.contains("cors_origins"), "{bad}: {err}");
        }
        assert!(Config::default().cors_origins.is_empty(), "CORS is off by default");
    }
}
