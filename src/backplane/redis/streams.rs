//! Which node holds what, for requests that any node may receive (docs/architecture.md §5,
//! "Several nodes"): the live nodes with their addresses, and per sign-in the JSON event stream
//! — `presence-gateway:json-stream:<login>` = `<node> <sid>`, kept for the sign-in's longest
//! life. A record whose node's heartbeat lapsed counts as none, and a new stream replaces it.

use super::{BackplaneError, RedisBackplane};
use crate::backplane::{NodeId, StreamHolder};
use std::time::Duration;

/// The record of a sign-in's stream, if its node is live: `{sid, node, address}`.
/// KEYS: stream record, nodes, advertise.
const STREAM_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('GET', KEYS[1])
if not current then return false end
local node, sid = string.match(current, '^(%S+) (%d+)$')
if not node then return false end
local score = redis.call('ZSCORE', KEYS[2], node)
if not score or tonumber(score) < now then return false end
return {sid, node, redis.call('HGET', KEYS[3], node) or ''}
"#;

/// Records `node sid` unless another live node's stream is recorded; returns the record in force
/// as `{sid, node, address}`. KEYS: stream record, nodes, advertise. ARGV: node, sid, lifetime (ms).
const CLAIM_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('GET', KEYS[1])
if current then
  local node, sid = string.match(current, '^(%S+) (%d+)$')
  if node and node ~= ARGV[1] then
    local score = redis.call('ZSCORE', KEYS[2], node)
    if score and tonumber(score) >= now then
      return {sid, node, redis.call('HGET', KEYS[3], node) or ''}
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return {ARGV[2], ARGV[1], redis.call('HGET', KEYS[3], ARGV[1]) or ''}
"#;

/// Every live node and its address, flat. KEYS: nodes, advertise.
const NODES_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  out[#out + 1] = node
  out[#out + 1] = redis.call('HGET', KEYS[2], node) or ''
end
return out
"#;

fn stream_key(login: u64) -> String {
    format!("presence-gateway:json-stream:{login}")
}

fn holder((sid, node, address): (String, String, String)) -> Result<StreamHolder, BackplaneError> {
    let sid = sid.parse().map_err(|_| BackplaneError::Corrupt("a stream record".into()))?;
    Ok(StreamHolder { node: NodeId::from(node.as_str()), sid, address })
}

impl RedisBackplane {
    pub(super) async fn live_nodes(&self) -> Result<Vec<(NodeId, String)>, BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(NODES_SCRIPT).arg(2).arg(&self.keys.nodes).arg(&self.keys.advertise);
        let (flat,): (Vec<String>,) = self.query(&pipe).await?;
        let pairs = flat.chunks_exact(2).map(|pair| (NodeId::from(pair[0].as_str()), pair[1].clone()));
        Ok(pairs.filter(|(node, _)| *node != self.node).collect())
    }

    pub(super) async fn stream_of(&self, login: u64) -> Result<Option<StreamHolder>, BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(STREAM_SCRIPT).arg(3).arg(stream_key(login)).arg(&self.keys.nodes).arg(&self.keys.advertise);
        let (found,): (Option<(String, String, String)>,) = self.query(&pipe).await?;
        found.map(holder).transpose()
    }

    pub(super) async fn claim_stream(&self, login: u64, sid: u64, lifetime: Duration) -> Result<StreamHolder, BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL")
            .arg(CLAIM_SCRIPT)
            .arg(3)
            .arg(stream_key(login))
            .arg(&self.keys.nodes)
            .arg(&self.keys.advertise)
            .arg(&*self.node)
            .arg(sid)
            .arg(lifetime.as_millis().max(1) as u64);
        let (found,): ((String, String, String),) = self.query(&pipe).await?;
        holder(found)
    }
}
