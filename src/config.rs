//! Configuration: one TOML file for every knob, each with its default here. Command-line flags and
//! `GATEWAY_*` environment variables override the file (see `main.rs`).

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
    /// How long an empty data-channel poll is held (seconds, below 60).
    pub hold_seconds: u64,
    /// `pollWaitTime` sent to clients (milliseconds).
    pub poll_wait_ms: u64,
    /// A session without a poll for this long ends (seconds).
    pub session_timeout_seconds: u64,
    /// A client with no user activity (`UA=false`) for this long is idle (seconds).
    pub idle_timeout_seconds: u64,
    /// A ticket unused for this long expires (seconds).
    pub ticket_idle_seconds: u64,
    /// A ticket older than this is replaced on its next use (seconds).
    pub ticket_rotation_seconds: u64,
    /// How long a replaced ticket is still accepted (seconds).
    pub ticket_grace_seconds: u64,
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
    /// Bearer tokens for the JSON API, each with a role.
    pub api_tokens: Vec<ApiToken>,
    /// Lifetime of a source report that names no `ttlSeconds` (seconds).
    pub source_ttl_seconds: u64,
    /// Origins (`scheme://host[:port]`) whose pages may call the gateway with credentials (CORS).
    /// Empty = CORS off: browsers then allow only the gateway's own pages.
    pub cors_origins: Vec<String>,
    /// Serve the web app from this directory instead of the copy built into the binary.
    pub static_dir: Option<PathBuf>,
    pub limits: Limits,
    pub logon: LogonPolicy,
}

/// What a JSON API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    /// May report presence sources.
    Source,
    /// May do everything.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// A label for logs (the token itself is never logged).
    pub name: String,
    pub token: String,
    pub role: ApiRole,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogonPolicy {
    /// Failed logons allowed per user within the window before further attempts are refused.
    pub failures_per_user: u32,
    /// Failed logons allowed per client address within the window.
    pub failures_per_address: u32,
    pub window_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            hold_seconds: 25,
            poll_wait_ms: 0,
            session_timeout_seconds: 90,
            idle_timeout_seconds: 300,
            ticket_idle_seconds: 8 * 3600,
            ticket_rotation_seconds: 900,
            ticket_grace_seconds: 120,
            enterprise_domains: Vec::new(),
            enable_appear_offline: true,
            search_max_results: 100,
            search_default_field: "displayName".into(),
            search_default_function: "or".into(),
            api_tokens: Vec::new(),
            source_ttl_seconds: 3600,
            cors_origins: Vec::new(),
            static_dir: None,
            limits: Limits::default(),
            logon: LogonPolicy::default(),
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
        LogonPolicy { failures_per_user: 5, failures_per_address: 20, window_seconds: 300 }
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
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be greater than 0"));
        }
        if self.hold_seconds >= 60 {
            return Err("hold_seconds must be below 60 so that proxies do not cut held polls".into());
        }
        if self.session_timeout_seconds <= self.hold_seconds {
            return Err("session_timeout_seconds must be longer than hold_seconds".into());
        }
        if let Some(i) = self.api_tokens.iter().position(|t| t.token.len() < 16) {
            return Err(format!("api_tokens[{i}].token must be at least 16 characters"));
        }
        if !matches!(self.search_default_function.as_str(), "and" | "or") {
            return Err("search_default_function must be \"and\" or \"or\"".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen: {:?} is not an address such as 127.0.0.1:8080", self.listen));
        }
        if let Some(bad) = self.cors_origins.iter().find(|o| !is_origin(o)) {
            return Err(format!("cors_origins: {bad:?} is not an origin such as https://intranet.example"));
        }
        Ok(())
    }

    pub fn hold(&self) -> Duration {
        Duration::from_secs(self.hold_seconds)
    }
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
