//! The cluster's shared counts of failed sign-ins (README "Sign-in limits"): the limits of
//! `service::logon_limit`, counted in Redis so that every node refuses as if there were one.
//! Keys hold digests of the user and the address, never the names themselves:
//!
//! - `presence-gateway:logon:pair:<user>:<address>` — failures of a user from an address in the
//!   window that opened with the first of them (a counter that expires with the window);
//! - `presence-gateway:logon:address:<address>` — the same for an address, whatever the users;
//! - `presence-gateway:logon:user:<user>` — hash `n` (failures in a row) and `last` (ms, Redis's
//!   clock), forgotten when nothing was counted for the user's memory;
//! - `presence-gateway:logon:known:<user>` — sorted set: address → last sign-in (ms), the most
//!   recent [`KNOWN_PER_USER`] of the last [`KNOWN_FOR_DAYS`] days.
//!
//! A check and its count are one script, so a burst spread over the nodes cannot pass together.

use super::keys::PREFIX;
use super::{BackplaneError, RedisBackplane};
use crate::backplane::LogonCount;
use crate::config::LogonPolicy;
use crate::service::logon_limit::{KNOWN_FOR_DAYS, KNOWN_PER_USER};
use std::time::Duration;

/// Checks every limit and, when none refuses, counts the attempt. Returns 0 (counted) or how
/// many ms to wait. KEYS: pair, address, user, known. ARGV: per user and address, per address,
/// window ms, slowdown after, slowdown max ms, user memory ms, address digest, known for ms.
pub const BEGIN_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local function over(key, limit)
  if tonumber(redis.call('GET', key) or '0') >= limit then
    wait = math.max(wait, redis.call('PTTL', key))
  end
end
over(KEYS[1], tonumber(ARGV[1]))
over(KEYS[2], tonumber(ARGV[2]))
local seen = redis.call('ZSCORE', KEYS[4], ARGV[7])
if not (seen and tonumber(seen) > now - tonumber(ARGV[8])) then
  local failures = redis.call('HMGET', KEYS[3], 'n', 'last')
  if failures[1] and failures[2] then
    local beyond = tonumber(failures[1]) - tonumber(ARGV[4])
    if beyond >= 0 then
      local delay = tonumber(ARGV[5])
      if beyond < 40 then delay = math.min(delay, 1000 * 2 ^ beyond) end
      wait = math.max(wait, tonumber(failures[2]) + delay - now)
    end
  end
end
if wait > 0 then return math.ceil(wait) end
local function bump(key)
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[3]) end
end
bump(KEYS[1])
bump(KEYS[2])
redis.call('HINCRBY', KEYS[3], 'n', 1)
redis.call('HSET', KEYS[3], 'last', now)
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return 0
"#;

/// A counted attempt had the right password: the pair's window goes, the address's and the
/// user's counts drop by one, the address becomes known. KEYS: pair, address, user, known.
/// ARGV: address digest, known for ms, known per user.
pub const SUCCEEDED_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
if tonumber(redis.call('HGET', KEYS[3], 'n') or '0') > 0 then redis.call('HINCRBY', KEYS[3], 'n', -1) end
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[2]))
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[3]) + 1))
redis.call('PEXPIRE', KEYS[4], ARGV[2])
return 1
"#;

/// The four keys of an attempt on `user` from `address` (both digests).
pub fn logon_keys(user: &str, address: &str) -> [String; 4] {
    [
        format!("{PREFIX}logon:pair:{user}:{address}"),
        format!("{PREFIX}logon:address:{address}"),
        format!("{PREFIX}logon:user:{user}"),
        format!("{PREFIX}logon:known:{user}"),
    ]
}

fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

/// How long a user's failures are remembered after the last one (as `service::logon_limit`).
fn user_memory_ms(policy: &LogonPolicy) -> u64 {
    ms(policy.window_seconds.max(policy.user_slowdown_max_seconds))
}

fn known_for_ms() -> u64 {
    ms(KNOWN_FOR_DAYS as u64 * 86_400)
}

impl RedisBackplane {
    pub(super) async fn begin_logon(
        &self,
        user: &str,
        address: &str,
        policy: &LogonPolicy,
    ) -> Result<LogonCount, BackplaneError> {
        let keys = logon_keys(user, address);
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(BEGIN_SCRIPT).arg(keys.len()).arg(&keys[..]);
        pipe.arg(policy.failures_per_user_and_address)
            .arg(policy.failures_per_address)
            .arg(ms(policy.window_seconds).max(1))
            .arg(policy.user_slowdown_after)
            .arg(ms(policy.user_slowdown_max_seconds))
            .arg(user_memory_ms(policy).max(1))
            .arg(address)
            .arg(known_for_ms());
        let (wait,): (i64,) = self.query(&pipe).await?;
        Ok(match u64::try_from(wait) {
            Ok(wait) if wait > 0 => LogonCount::Refused(Duration::from_millis(wait)),
            _ => LogonCount::Counted,
        })
    }

    pub(super) async fn logon_success(&self, user: &str, address: &str) -> Result<(), BackplaneError> {
        let keys = logon_keys(user, address);
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(SUCCEEDED_SCRIPT).arg(keys.len()).arg(&keys[..]);
        pipe.arg(address).arg(known_for_ms()).arg(KNOWN_PER_USER).ignore();
        self.query::<()>(&pipe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_s_keys_hold_only_digests_under_the_prefix() {
        let keys = logon_keys("u1", "a1");
        assert_eq!(keys[0], "presence-gateway:logon:pair:u1:a1");
        assert!(keys.iter().all(|k| k.starts_with(PREFIX)));
        let policy = LogonPolicy {
            failures_per_user_and_address: 5,
            failures_per_address: 20,
            window_seconds: 300,
            user_slowdown_after: 5,
            user_slowdown_max_seconds: 600,
        };
        assert_eq!(user_memory_ms(&policy), 600_000, "the longer of window and slowdown");
    }
}
