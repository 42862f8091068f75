//! Where the cluster's live state lives in Redis, and the scripts that change it atomically.
//!
//! - `presence-gateway:p:<uri>` — hash: `v` (version), `s:<node>` (`signed-in idle`), `m` (the
//!   manual state and note, JSON), `r:<source>` (a report, JSON), `g` (the token of the owner's
//!   last rights change);
//! - `presence-gateway:nodes` — sorted set: node → when its heartbeat lapses (ms, Redis's clock);
//! - `presence-gateway:advertise` — hash: node → the URL other nodes reach it at;
//! - `presence-gateway:node:<node>:users` — set: the presentities where the node has sessions;
//! - `presence-gateway:json-stream:<login>` — `<node> <sid>` of a sign-in's JSON event stream
//!   (`streams.rs`);
//! - `presence-gateway:epoch` — a random value set once: a new one means Redis lost its data;
//! - channel `presence-gateway:c:<uri>` — `version\n{"uri":…,"change":…}` per change of the
//!   presentity, heard by the nodes that follow it;
//! - channel `presence-gateway:levels` — `0\n{"uri":…,"change":…}` when the global rights
//!   (`uri` `*`) or a user's profile changed, heard by every node (one connection carries it and every presentity's channel, so
//!   it arrives ahead of every change published after it).

use super::super::{BackplaneError, LiveChange, LiveInputs, NodeId};
use std::collections::HashMap;

pub(super) const PREFIX: &str = "presence-gateway:";

/// Writes one field of a presentity (or removes it, for an empty value), bumps the version and
/// publishes the change, all at once; does nothing when the field already holds the value (or,
/// with "only new", holds anything). Returns the new version, or 0 when nothing changed.
/// KEYS: presentity hash, node's user set. ARGV: field, value, channel, message, only new, uri,
/// whether the node's user set is kept.
pub const PUBLISH_SCRIPT: &str = r#"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[5] == '1' and current then return 0 end
if ARGV[2] == '' then
  if not current then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
  if ARGV[7] == '1' then redis.call('SREM', KEYS[2], ARGV[6]) end
else
  if current == ARGV[2] then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if ARGV[7] == '1' then redis.call('SADD', KEYS[2], ARGV[6]) end
end
local version = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PUBLISH', ARGV[3], version .. '\n' .. ARGV[4])
return version
"#;

/// Writes a heartbeat. Returns whether this node's previous one had lapsed (or was missing),
/// and the nodes whose heartbeat has lapsed. KEYS: nodes, advertise. ARGV: node, lifetime (ms),
/// advertised URL.
pub const HEARTBEAT_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local previous = redis.call('ZSCORE', KEYS[1], ARGV[1])
local lapsed = 1
if previous and tonumber(previous) >= now then lapsed = 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {lapsed, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)}
"#;

/// A live node's advertised URL (nil when its heartbeat lapsed). KEYS: nodes, advertise.
/// ARGV: node.
pub const ADDRESS_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < now then return false end
return redis.call('HGET', KEYS[2], ARGV[1])
"#;

/// Forgets a node whose heartbeat has lapsed (only then, unless it is leaving). KEYS: nodes,
/// advertise, the node's user set. ARGV: node, whether it is leaving.
pub const FORGET_NODE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[2] ~= '1' and score and tonumber(score) >= now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"#;

pub struct Keys {
    pub nodes: String,
    pub advertise: String,
    pub epoch: String,
    /// The channel of global rights changes.
    pub levels: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            nodes: format!("{PREFIX}nodes"),
            advertise: format!("{PREFIX}advertise"),
            epoch: format!("{PREFIX}epoch"),
            levels: format!("{PREFIX}levels"),
        }
    }
}

impl Keys {
    pub fn presentity(&self, uri: &str) -> String {
        format!("{PREFIX}p:{uri}")
    }

    /// The channel of a presentity's changes.
    pub fn channel(&self, uri: &str) -> String {
        format!("{PREFIX}c:{uri}")
    }

    pub fn node_users(&self, node: &str) -> String {
        format!("{PREFIX}node:{node}:users")
    }
}

/// The hash field a change sets and its value (empty = remove the field).
pub fn field_of(change: &LiveChange) -> Result<(String, String), BackplaneError> {
    Ok(match change {
        LiveChange::Sessions { node, signed_in: 0, .. } => (format!("s:{node}"), String::new()),
        LiveChange::Sessions { node, signed_in, idle } => (format!("s:{node}"), format!("{signed_in} {idle}")),
        LiveChange::Manual { manual, note } => ("m".into(), json(&(manual, note))?),
        LiveChange::Report { source, report: None } => (format!("r:{source}"), String::new()),
        LiveChange::Report { source, report: Some(report) } => (format!("r:{source}"), json(report)?),
        LiveChange::Rights { token, .. } => (RIGHTS_FIELD.into(), token.to_string()),
        LiveChange::GlobalRights { .. } | LiveChange::Profile { .. } => {
            return Err(BackplaneError::Corrupt("levels changes are no presentity's field".into()))
        }
    })
}

/// The field of the token of an owner's last rights change.
const RIGHTS_FIELD: &str = "g";

fn json<T: serde::Serialize>(value: &T) -> Result<String, BackplaneError> {
    serde_json::to_string(value).map_err(|e| BackplaneError::Corrupt(e.to_string()))
}

/// A presentity's hash as inputs and version.
pub fn inputs_of(hash: HashMap<String, String>) -> Result<(u64, LiveInputs), BackplaneError> {
    let corrupt = |field: &str| BackplaneError::Corrupt(format!("presentity field {field}"));
    let mut inputs = LiveInputs::default();
    let mut version = 0;
    for (field, value) in &hash {
        if field == "v" {
            version = value.parse().map_err(|_| corrupt(field))?;
        } else if field == RIGHTS_FIELD {
            inputs.rights = Some(value.parse().map_err(|_| corrupt(field))?);
        } else if field == "m" {
            inputs.manual = Some(serde_json::from_str(value).map_err(|_| corrupt(field))?);
        } else if let Some(source) = field.strip_prefix("r:") {
            inputs.reports.insert(source.to_string(), serde_json::from_str(value).map_err(|_| corrupt(field))?);
        } else if let Some(node) = field.strip_prefix("s:") {
            let (signed_in, idle) = value.split_once(' ').ok_or_else(|| corrupt(field))?;
            let counts = (signed_in.parse().map_err(|_| corrupt(field))?, idle.parse().map_err(|_| corrupt(field))?);
            inputs.sessions.insert(NodeId::from(node), counts);
        }
    }
    Ok((version, inputs))
}

/// Splits a channel message into its version and change.
pub fn parse_message(payload: &[u8]) -> Result<(u64, super::super::Published), BackplaneError> {
    let corrupt = || BackplaneError::Corrupt("a change message".into());
    let split = payload.iter().position(|b| *b == b'\n').ok_or_else(corrupt)?;
    let version = std::str::from_utf8(&payload[..split]).ok().and_then(|v| v.parse().ok()).ok_or_else(corrupt)?;
    let published = serde_json::from_slice(&payload[split + 1..]).map_err(|_| corrupt())?;
    Ok((version, published))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backplane::Published;
    use std::sync::Arc;

    #[test]
    fn fields_and_messages_read_back() {
        let hash: HashMap<String, String> =
            [("v", "7"), ("s:n1", "2 1"), ("s:n2", "1 0"), ("m", r#"[{"kind":"busy","reachability":"normal"},null]"#)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let (version, inputs) = inputs_of(hash.clone()).unwrap();
        assert_eq!(version, 7);
        assert_eq!(inputs.rights, None);
        let mut with_rights = hash;
        with_rights.insert("g".into(), "42".into());
        assert_eq!(inputs_of(with_rights).unwrap().1.rights, Some(42));
        let rights = LiveChange::Rights { node: NodeId::from("n1"), token: 42 };
        assert_eq!(field_of(&rights).unwrap(), ("g".to_string(), "42".to_string()));
        let sessions: Vec<(NodeId, (u32, u32))> = inputs.sessions.into_iter().collect();
        assert_eq!(sessions, vec![(NodeId::from("n1"), (2, 1)), (NodeId::from("n2"), (1, 0))]);
        assert!(inputs.manual.unwrap().0.is_some());

        let change = LiveChange::Sessions { node: NodeId::from("n1"), signed_in: 0, idle: 0 };
        assert_eq!(field_of(&change).unwrap(), ("s:n1".to_string(), String::new()));
        let published = Published { uri: Arc::from("sip:a@x"), change };
        let message = format!("12\n{}", serde_json::to_string(&published).unwrap());
        assert_eq!(parse_message(message.as_bytes()).unwrap(), (12, published));
        assert!(parse_message(b"x\n{}").is_err());
        assert!(parse_message(b"3").is_err());
    }
}
