//! Generated organisations: `N` users `sip:uN@bench.example` in teams of eight inside departments
//! of 200, and a contact graph of `K` contacts per user that looks like a real one (the team, a few
//! people everybody watches, colleagues from the department, then anyone). Written as a users file
//! with one precomputed argon2id hash for everybody, so that loading it costs no hashing.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

pub const DOMAIN: &str = "bench.example";
pub const PASSWORD: &str = "bench-password";
pub const TEAM: usize = 8;
pub const DEPARTMENT: usize = 200;
/// Users everybody watches (the front desk, the management).
pub const SHARED: usize = 5;

pub fn uri(n: usize) -> String {
    format!("sip:u{n}@{DOMAIN}")
}

/// `count` users, their contacts, and the Team-level grants inside each team.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub count: usize,
    pub contacts: Vec<Vec<usize>>,
    pub grants: Vec<(usize, usize)>,
}

impl Organisation {
    /// Users without contacts or grants (scenarios that choose subscriptions themselves).
    pub fn plain(count: usize) -> Organisation {
        Organisation { count, contacts: vec![Vec::new(); count], grants: Vec::new() }
    }

    /// The realistic graph: `k` distinct contacts per user (at most `count - 1`), from a seed.
    pub fn graph(count: usize, k: usize, seed: u64, team_grants: bool) -> Organisation {
        let mut rng = StdRng::seed_from_u64(seed);
        let k = k.min(count.saturating_sub(1));
        let contacts = (0..count).map(|user| contacts_of(user, count, k, &mut rng)).collect();
        let grants = if team_grants { team_grants_of(count) } else { Vec::new() };
        Organisation { count, contacts, grants }
    }

    /// Writes the users file.
    pub fn write(&self, path: &Path, password_hash: &str) -> Result<()> {
        let mut out = String::with_capacity(self.count * 320 + self.grants.len() * 90);
        for n in 0..self.count {
            let (team, department) = (n / TEAM, n / DEPARTMENT);
            let _ = write!(
                out,
                "[[user]]\nuri = \"{}\"\ndisplay_name = \"User {n}\"\npassword_hash = \"{password_hash}\"\nemail = \"u{n}@{DOMAIN}\"\ntitle = \"Engineer\"\ncompany = \"Bench Ltd\"\ndepartment = \"d{department}\"\noffice = \"B{team}\"\nphones = {{ work = \"tel:+49891{n:07}\", mobile = \"tel:+49170{n:07}\" }}\ngroups = [\"team-{team}\"]\n\n",
                uri(n)
            );
        }
        for (owner, watcher) in &self.grants {
            let _ = write!(out, "[[grant]]\nowner = \"{}\"\nwatcher = \"{}\"\nlevel = \"team\"\n\n", uri(*owner), uri(*watcher));
        }
        std::fs::write(path, out)?;
        Ok(())
    }
}

fn contacts_of(user: usize, count: usize, k: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut taken: HashSet<usize> = HashSet::from([user]);
    let mut take = |c: usize, chosen: &mut Vec<usize>| {
        if chosen.len() < k && c < count && taken.insert(c) {
            chosen.push(c);
        }
    };
    let team = (user / TEAM) * TEAM;
    for c in team..team + TEAM {
        take(c, &mut chosen);
    }
    for c in 0..SHARED {
        take(c, &mut chosen);
    }
    let department = (user / DEPARTMENT) * DEPARTMENT;
    let department_size = DEPARTMENT.min(count - department);
    for _ in 0..k * 4 {
        if chosen.len() >= k * 3 / 4 {
            break;
        }
        take(department + rng.random_range(0..department_size), &mut chosen);
    }
    while chosen.len() < k {
        take(rng.random_range(0..count), &mut chosen);
    }
    chosen
}

fn team_grants_of(count: usize) -> Vec<(usize, usize)> {
    let mut grants = Vec::new();
    for owner in 0..count {
        let team = (owner / TEAM) * TEAM;
        grants.extend((team..(team + TEAM).min(count)).filter(|w| *w != owner).map(|w| (owner, w)));
    }
    grants
}

/// The argon2id hash of [`PASSWORD`], computed once per run: with the gateway's default cost, or
/// with the smallest argon2id parameters (m = 8 KiB, t = 1), which the gateway verifies with the
/// parameters the hash carries, so that setting up thousands of sign-ins takes seconds.
pub fn password_hash(full_cost: bool) -> Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    if full_cost {
        return presence_gateway::service::auth::hash_password(PASSWORD).map_err(anyhow::Error::msg);
    }
    let params = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon.hash_password(PASSWORD.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("{e}"))?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_distinct_team_first_and_never_self() {
        let org = Organisation::graph(1000, 50, 7, true);
        for (user, contacts) in org.contacts.iter().enumerate() {
            assert_eq!(contacts.len(), 50);
            assert!(!contacts.contains(&user));
            assert_eq!(contacts.iter().collect::<HashSet<_>>().len(), 50);
        }
        assert!(org.contacts[17].contains(&16) && org.contacts[17].contains(&0), "team and shared contacts");
        assert_eq!(org.grants.len(), 1000 * 7);
        assert_eq!(Organisation::graph(3, 50, 7, false).contacts[0].len(), 2, "capped at the others");
    }

    #[test]
    fn both_hashes_verify_with_the_gateways_own_check() {
        use presence_gateway::service::auth::verify_password;
        for full in [false, true] {
            let hash = password_hash(full).unwrap();
            assert!(hash.starts_with("$argon2id$"), "{hash}");
            assert!(verify_password(PASSWORD, &hash) && !verify_password("wrong", &hash));
        }
        assert!(password_hash(false).unwrap().contains("m=8,t=1"));
    }
}
