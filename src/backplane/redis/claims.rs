//! Timed transitions carried out once in the cluster (docs/architecture.md §5). Every node
//! notices a deadline and shows it to its own watchers; the store write and the published change
//! are done by the node that claims the transition first:
//!
//! - `presence-gateway:claim:<uri>:<part>:<deadline ms>` — the claiming node, for
//!   [`CLAIM_HOLD`]; then `done` for [`DONE_KEPT`] once it is carried out. A claim that lapses
//!   without `done` (its node died or failed) is taken by the next node to ask.
//!
//! An expired report is withdrawn from a presentity's hash only while the hash still holds that
//! very report (read, found expired, removed if unchanged), so a newer report from the source is
//! never lost to an old expiry.

use super::keys::PREFIX;
use super::{BackplaneError, RedisBackplane};
use crate::backplane::{Claim, LiveChange, Published};
use crate::model::reports::SourceReport;
use crate::model::sources::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// How long a claim is this node's before another may take the transition over.
pub const CLAIM_HOLD: Duration = Duration::from_secs(3);
/// How long a carried-out transition stays marked so (longer than any node takes to notice it).
pub const DONE_KEPT: Duration = Duration::from_secs(300);

/// Claims a transition. Returns {1, 0} won (also when this node holds it already), {2, 0} done,
/// {0, ms left} held by another node. KEYS: claim. ARGV: node, hold ms.
pub const CLAIM_SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == 'done' then return {2, 0} end
if holder and holder ~= ARGV[1] then return {0, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, 0}
"#;

/// Removes a report field only while it holds exactly the expired report read, bumps the version and
/// publishes the withdrawal. Returns the new version, or 0 when the field holds something else.
/// KEYS: presentity hash. ARGV: field, the expired report, channel, message.
pub const WITHDRAW_SCRIPT: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local version = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PUBLISH', ARGV[3], version .. '\n' .. ARGV[4])
return version
"#;

/// The claim key of a transition (`key`: presentity, part and deadline, as the caller names it).
pub fn claim_key(key: &str) -> String {
    format!("{PREFIX}claim:{key}")
}

impl RedisBackplane {
    pub(super) async fn claim_now(&self, key: &str) -> Result<Claim, BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(CLAIM_SCRIPT).arg(1).arg(claim_key(key)).arg(&*self.node).arg(CLAIM_HOLD.as_millis() as u64);
        let ((state, left),): ((i64, i64),) = self.query(&pipe).await?;
        Ok(match state {
            1 => Claim::Won,
            2 => Claim::Done,
            _ => Claim::Held(Duration::from_millis(u64::try_from(left).unwrap_or(0))),
        })
    }

    pub(super) async fn mark_done(&self, key: &str) -> Result<(), BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("SET").arg(claim_key(key)).arg("done").arg("PX").arg(DONE_KEPT.as_millis() as u64).ignore();
        self.query::<()>(&pipe).await
    }

    /// Reads the source's report as Redis holds it and, if it has expired at `now`, withdraws
    /// exactly that report (the script finds a newer one and leaves it).
    pub(super) async fn withdraw(&self, uri: &str, source: &str, now: Timestamp) -> Result<bool, BackplaneError> {
        let presentity = self.keys.presentity(uri);
        let field = format!("r:{source}");
        let mut pipe = ::redis::pipe();
        pipe.cmd("HGET").arg(&presentity).arg(&field);
        let (held,): (Option<String>,) = self.query(&pipe).await?;
        let Some(held) = held else { return Ok(false) };
        let report: SourceReport =
            serde_json::from_str(&held).map_err(|_| BackplaneError::Corrupt(format!("presentity field {field}")))?;
        if report.expires.is_none_or(|at| at > now) {
            return Ok(false);
        }
        let withdrawal =
            Published { uri: Arc::from(uri), change: LiveChange::Report { source: source.to_string(), report: None } };
        let message = serde_json::to_string(&withdrawal).map_err(|e| BackplaneError::Corrupt(e.to_string()))?;
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(WITHDRAW_SCRIPT).arg(1).arg(&presentity).arg(&field).arg(held).arg(&self.keys.channel).arg(message);
        let (version,): (i64,) = self.query(&pipe).await?;
        Ok(version > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_live_under_the_prefix_and_hold_for_less_than_they_stay_done() {
        assert_eq!(claim_key("sip:a@x:m:1700000000000"), "presence-gateway:claim:sip:a@x:m:1700000000000");
        assert!(CLAIM_HOLD < DONE_KEPT);
    }
}
