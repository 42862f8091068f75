//! Where a configuration comes from: the TOML file, then `GATEWAY_<KEY>` environment variables
//! over it (`GATEWAY_HOLD_SECONDS=10`; a double underscore reaches into a table:
//! `GATEWAY_LIMITS__QUEUE_LENGTH=500`). A value is read as TOML (`[..]`, numbers, booleans) and
//! otherwise as a string; an empty variable counts as unset. Every error names the file or the
//! variable, and the key. A `GATEWAY_` variable that is no key at all is reported as a warning and
//! ignored rather than refused: platforms set such variables themselves (Kubernetes does, for a
//! service named `gateway`).

use super::Config;
use std::path::Path;

/// The prefix of every configuration variable.
pub const ENV_PREFIX: &str = "GATEWAY_";

/// A configuration and the warnings met while reading it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// The file (or the defaults) with the environment over it. Variables of command-line flags
/// (`flag_variables`) are left to the flags when they are no configuration key. Not validated
/// yet: flags may still override it, so the caller validates the result.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flag_variables: &[String],
) -> Result<Loaded, String> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            // Parsed as a whole first, so that errors carry the file's line and column.
            toml::from_str::<Config>(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            toml::from_str::<toml::Table>(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => toml::Table::new(),
    };
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(name, value)| name.starts_with(ENV_PREFIX) && !value.is_empty()).collect();
    vars.sort();
    let mut warnings = Vec::new();
    for (name, value) in vars {
        match apply(&mut table, &name, &value) {
            Ok(()) => {}
            Err(Unusable::UnknownKey(_)) if flag_variables.contains(&name) => {}
            Err(Unusable::UnknownKey(message)) => warnings.push(format!("{message}; ignored")),
            Err(Unusable::BadValue(message)) => return Err(message),
        }
    }
    Ok(Loaded { config: Config::deserialize_table(table)?, warnings })
}

enum Unusable {
    UnknownKey(String),
    BadValue(String),
}

impl Config {
    fn deserialize_table(table: toml::Table) -> Result<Config, String> {
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().to_string())
    }
}

/// Sets one variable's key in `table`, after checking it alone against the schema.
fn apply(table: &mut toml::Table, name: &str, raw: &str) -> Result<(), Unusable> {
    let path: Vec<String> = name[ENV_PREFIX.len()..].to_ascii_lowercase().split("__").map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(Unusable::UnknownKey(format!("{name} is not a configuration key")));
    }
    let typed = toml::from_str::<toml::Table>(&format!("v = {raw}")).ok().and_then(|mut t| t.remove("v"));
    let mut first_error = None;
    for value in typed.into_iter().chain([toml::Value::String(raw.to_string())]) {
        let mut probe = toml::Table::new();
        set(&mut probe, &path, value.clone());
        match Config::deserialize_table(probe) {
            Ok(_) => {
                set(table, &path, value);
                return Ok(());
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    let error = first_error.unwrap_or_default();
    let message = format!("{name} ({}): {error}", path.join("."));
    // serde's words for a key that `deny_unknown_fields` refuses.
    Err(if error.starts_with("unknown field") { Unusable::UnknownKey(message) } else { Unusable::BadValue(message) })
}

fn set(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = path.split_last().expect("a key has at least one part");
    let mut here = table;
    for part in parents {
        let entry = here.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        here = entry.as_table_mut().expect("made a table above");
    }
    here.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_overrides_the_file_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, "hold_seconds = 20\nsession_timeout_seconds = 100\n[limits]\nsessions_per_user = 3\n").unwrap();
        let vars = env(&[
            ("GATEWAY_HOLD_SECONDS", "10"),
            ("GATEWAY_LIMITS__QUEUE_LENGTH", "77"),
            ("GATEWAY_DATA_DIR", "/data"),
            ("GATEWAY_ENTERPRISE_DOMAINS", "[\"a.example\", \"b.example\"]"),
            ("GATEWAY_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            ("GATEWAY_CONFIG", "ignored, a flag"),
            ("GATEWAY_TLS_CERT", ""),
            ("OTHER_HOLD_SECONDS", "99"),
        ]);
        let loaded = load(Some(&file), vars, &["GATEWAY_CONFIG".to_string()]).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert_eq!((c.hold_seconds, c.session_timeout_seconds), (10, 100));
        assert_eq!((c.limits.sessions_per_user, c.limits.queue_length), (3, 77));
        assert_eq!(c.data_dir, std::path::PathBuf::from("/data"));
        assert_eq!(c.enterprise_domains, ["a.example", "b.example"]);
        assert_eq!(c.trusted_proxies.len(), 1);
        assert_eq!(c.tls_cert, None, "an empty variable is unset");
    }

    #[test]
    fn a_string_key_takes_text_that_looks_like_a_number() {
        let c = load(None, env(&[("GATEWAY_DATA_DIR", "2024")]), &[]).unwrap().config;
        assert_eq!(c.data_dir, std::path::PathBuf::from("2024"));
    }

    #[test]
    fn errors_name_the_variable_or_the_file_and_the_key() {
        let e = load(None, env(&[("GATEWAY_HOLD_SECONDS", "soon")]), &[]).unwrap_err();
        assert!(e.starts_with("GATEWAY_HOLD_SECONDS (hold_seconds)"), "{e}");
        let e = load(None, env(&[("GATEWAY_LIMITS__QUEUE_LENGTH", "-1")]), &[]).unwrap_err();
        assert!(e.starts_with("GATEWAY_LIMITS__QUEUE_LENGTH (limits.queue_length)"), "{e}");
        let e = load(None, env(&[("GATEWAY_LOG_FORMAT", "xml")]), &["GATEWAY_LOG_FORMAT".into()]).unwrap_err();
        assert!(e.contains("log_format"), "a flag's variable that is a key is still checked: {e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[limits]\nqueue_length = \"long\"\n").unwrap();
        let e = load(Some(&file), Vec::new(), &[]).unwrap_err();
        assert!(e.contains("bad.toml") && e.contains("queue_length") && e.contains("line 2"), "{e}");
        let e = load(Some(&dir.path().join("missing.toml")), Vec::new(), &[]).unwrap_err();
        assert!(e.contains("missing.toml: cannot read"), "{e}");
    }

    #[test]
    fn variables_that_are_no_key_are_warned_about_and_ignored() {
        let vars = env(&[("GATEWAY_HOLDSECONDS", "5"), ("GATEWAY_LIMITS__NOPE", "5"), ("GATEWAY_USERS", "/u.toml")]);
        let loaded = load(None, vars, &["GATEWAY_USERS".into()]).unwrap();
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].starts_with("GATEWAY_HOLDSECONDS (holdseconds): unknown field"), "{:?}", loaded.warnings);
        assert!(loaded.warnings[1].starts_with("GATEWAY_LIMITS__NOPE (limits.nope)"), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.hold_seconds, Config::default().hold_seconds);
    }
}
