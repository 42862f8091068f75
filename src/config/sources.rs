//! Where a configuration comes from: the TOML file, then `GATEWAY_<KEY>` environment variables
//! over it (`GATEWAY_HOLD_SECONDS=10`; a double underscore reaches into a table:
//! `GATEWAY_LIMITS__QUEUE_LENGTH=500`). A value is read as TOML (`[..]`, numbers, booleans) and
//! otherwise as a string; an empty variable counts as unset. Every error names the file or the
//! variable, and the key.

use super::Config;
use std::path::Path;

/// The prefix of every configuration variable.
pub const ENV_PREFIX: &str = "GATEWAY_";

/// The file (or the defaults) with the environment over it. Not validated yet: flags may still
/// override it, so the caller validates the result.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    not_config: &[String],
) -> Result<Config, String> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            // Parsed as a whole first, so that errors carry the file's line and column.
            toml::from_str::<Config>(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            toml::from_str::<toml::Table>(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => toml::Table::new(),
    };
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, value)| name.starts_with(ENV_PREFIX) && !value.is_empty() && !not_config.contains(name))
        .collect();
    vars.sort();
    for (name, value) in vars {
        apply(&mut table, &name, &value)?;
    }
    Config::deserialize_table(table)
}

impl Config {
    fn deserialize_table(table: toml::Table) -> Result<Config, String> {
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().to_string())
    }
}

/// Sets one variable's key in `table`, after checking it alone against the schema.
fn apply(table: &mut toml::Table, name: &str, raw: &str) -> Result<(), String> {
    let path: Vec<String> = name[ENV_PREFIX.len()..].to_ascii_lowercase().split("__").map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("{name}: not a configuration key"));
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
    Err(format!("{name} ({}): {}", path.join("."), first_error.unwrap_or_default()))
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
        let c = load(Some(&file), vars, &["GATEWAY_CONFIG".to_string()]).unwrap();
        assert_eq!((c.hold_seconds, c.session_timeout_seconds), (10, 100));
        assert_eq!((c.limits.sessions_per_user, c.limits.queue_length), (3, 77));
        assert_eq!(c.data_dir, std::path::PathBuf::from("/data"));
        assert_eq!(c.enterprise_domains, ["a.example", "b.example"]);
        assert_eq!(c.trusted_proxies.len(), 1);
        assert_eq!(c.tls_cert, None, "an empty variable is unset");
    }

    #[test]
    fn a_string_key_takes_text_that_looks_like_a_number() {
        let c = load(None, env(&[("GATEWAY_DATA_DIR", "2024")]), &[]).unwrap();
        assert_eq!(c.data_dir, std::path::PathBuf::from("2024"));
    }

    #[test]
    fn errors_name_the_variable_or_the_file_and_the_key() {
        let e = load(None, env(&[("GATEWAY_HOLD_SECONDS", "soon")]), &[]).unwrap_err();
        assert!(e.starts_with("GATEWAY_HOLD_SECONDS (hold_seconds)"), "{e}");
        let e = load(None, env(&[("GATEWAY_HOLDSECONDS", "5")]), &[]).unwrap_err();
        assert!(e.contains("GATEWAY_HOLDSECONDS") && e.contains("holdseconds"), "{e}");
        let e = load(None, env(&[("GATEWAY_LIMITS__NOPE", "5")]), &[]).unwrap_err();
        assert!(e.contains("limits.nope"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[limits]\nqueue_length = \"long\"\n").unwrap();
        let e = load(Some(&file), Vec::new(), &[]).unwrap_err();
        assert!(e.contains("bad.toml") && e.contains("queue_length") && e.contains("line 2"), "{e}");
        let e = load(Some(&dir.path().join("missing.toml")), Vec::new(), &[]).unwrap_err();
        assert!(e.contains("missing.toml: cannot read"), "{e}");
    }
}
