//! The in-memory directory: every user's profile and every owner's rights entries, loaded from the
//! store at start and kept in step with it. Answers "what level does this watcher have?". Its maps
//! hold known users only (keys come from the store, not from requests; a request's URI is only
//! looked up), hashed with a keyed hasher faster than SipHash (a query looks up a profile per URI).

use crate::model::contact::Profile;
use crate::model::rights::{domain_of, effective_level_of, AccessLevel, RightsEntry, WatcherFacts};
use foldhash::fast::RandomState;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct Directory {
    profiles: RwLock<ProfileTable>,
    rights: RwLock<RightsTable>,
    /// Entries that apply to every owner.
    global: RwLock<OwnerRights>,
    enterprise_domains: Vec<String>,
}

/// Every owner's rights entries, each stamped with the install that made them this node's.
#[derive(Default)]
struct RightsTable {
    by_owner: HashMap<String, OwnerRights, RandomState>,
    /// Installs so far: the next one's stamp.
    installs: u64,
}

/// One owner's entries. Kept when they become empty (only a removed user's go), so that a stamp
/// never comes back: [`Directory::replace_rights_if`] compares them.
#[derive(Default)]
struct OwnerRights {
    entries: Vec<RightsEntry>,
    stamp: Stamp,
}

/// Which install of an owner's entries (or of a user's profile) this node holds (0: none yet). A
/// read of the store's that began at one stamp is installed only if it is still the stamp when it
/// ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64);

/// Every known user's profile, and the stamp of each user's last install or removal (kept after a
/// removal, so that a stamp never comes back).
#[derive(Default)]
struct ProfileTable {
    by_uri: HashMap<String, Arc<Profile>, RandomState>,
    stamps: HashMap<String, Stamp, RandomState>,
    /// Installs and removals so far: the next one's stamp.
    changes: u64,
}

impl ProfileTable {
    fn stamp(&mut self, uri: &str) {
        self.changes += 1;
        self.stamps.insert(uri.to_string(), Stamp(self.changes));
    }
}

impl RightsTable {
    fn install(&mut self, owner: &str, entries: Vec<RightsEntry>) -> Vec<RightsEntry> {
        self.installs += 1;
        let stamp = Stamp(self.installs);
        let current = self.by_owner.entry(owner.to_string()).or_default();
        current.stamp = stamp;
        std::mem::replace(&mut current.entries, entries)
    }
}

impl Directory {
    pub fn new(enterprise_domains: &[String]) -> Self {
        Directory {
            enterprise_domains: enterprise_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            ..Default::default()
        }
    }

    pub fn profile(&self, uri: &str) -> Option<Arc<Profile>> {
        self.profiles.read().by_uri.get(uri).cloned()
    }

    pub fn put_profile(&self, profile: Arc<Profile>) {
        let mut profiles = self.profiles.write();
        profiles.stamp(&profile.uri);
        profiles.by_uri.insert(profile.uri.clone(), profile);
    }

    /// The stamp of the user's profile as this node holds it now: take it before reading the
    /// store's, to install what was read with [`put_profile_if`](Self::put_profile_if).
    pub fn profile_stamp(&self, uri: &str) -> Stamp {
        self.profiles.read().stamps.get(uri).copied().unwrap_or_default()
    }

    /// Makes `profile` the user's if nothing was installed or removed since `seen` (a change made
    /// meanwhile may hold a later state of the store than a read that began before it); `false`
    /// when something was.
    pub fn put_profile_if(&self, seen: Stamp, profile: Arc<Profile>) -> bool {
        let mut profiles = self.profiles.write();
        if profiles.stamps.get(&profile.uri).copied().unwrap_or_default() != seen {
            return false;
        }
        profiles.stamp(&profile.uri);
        profiles.by_uri.insert(profile.uri.clone(), profile);
        true
    }

    pub fn remove(&self, uri: &str) {
        let mut profiles = self.profiles.write();
        profiles.stamp(uri);
        profiles.by_uri.remove(uri);
        drop(profiles);
        self.rights.write().by_owner.remove(uri);
    }

    pub fn all_profiles(&self) -> Vec<Arc<Profile>> {
        self.profiles.read().by_uri.values().cloned().collect()
    }

    /// Finds the user a logon name means: a `sip:` URI, `user@domain`, or `DOMAIN\user` when the
    /// user part is unique.
    pub fn resolve_logon_name(&self, name: &str) -> Option<String> {
        let name = name.trim().to_ascii_lowercase();
        if let Some((_, user)) = name.split_once('\\') {
            let profiles = self.profiles.read();
            let mut matches = profiles
                .by_uri
                .keys()
                .filter(|uri| uri.strip_prefix("sip:").and_then(|r| r.split_once('@')).is_some_and(|(u, _)| u == user));
            let first = matches.next()?.clone();
            return matches.next().is_none().then_some(first);
        }
        let uri = if name.starts_with("sip:") { name } else { format!("sip:{name}") };
        self.profiles.read().by_uri.contains_key(&uri).then_some(uri)
    }

    pub fn set_right(&self, owner: &str, entry: RightsEntry) {
        let mut rights = self.rights.write();
        let mut list = rights.by_owner.get(owner).map(|r| r.entries.clone()).unwrap_or_default();
        list.retain(|e| e.member != entry.member);
        list.push(entry);
        rights.install(owner, list);
    }

    /// Makes `entries` the owner's entries (as the store holds them), in one step.
    pub fn replace_rights(&self, owner: &str, entries: Vec<RightsEntry>) {
        self.rights.write().install(owner, entries);
    }

    /// The stamp of the owner's entries as this node holds them now: take it before reading the
    /// store's, to install what was read with [`replace_rights_if`](Self::replace_rights_if).
    pub fn rights_stamp(&self, owner: &str) -> Stamp {
        self.rights.read().by_owner.get(owner).map(|r| r.stamp).unwrap_or_default()
    }

    /// Makes `entries` the owner's entries if nothing was installed since `seen` (an install made
    /// meanwhile may hold a later state of the store than a read that began before it): the
    /// entries replaced, or `entries` back when something was.
    pub fn replace_rights_if(
        &self,
        owner: &str,
        seen: Stamp,
        entries: Vec<RightsEntry>,
    ) -> Result<Vec<RightsEntry>, Vec<RightsEntry>> {
        let mut rights = self.rights.write();
        let current = rights.by_owner.get(owner).map(|r| r.stamp).unwrap_or_default();
        if current != seen {
            return Err(entries);
        }
        Ok(rights.install(owner, entries))
    }

    pub fn set_global_right(&self, entry: RightsEntry) {
        let mut global = self.global.write();
        global.entries.retain(|e| e.member != entry.member);
        global.entries.push(entry);
        global.stamp.0 += 1;
    }

    pub fn remove_global_right(&self, member: &crate::model::rights::Member) {
        let mut global = self.global.write();
        global.entries.retain(|e| &e.member != member);
        global.stamp.0 += 1;
    }

    pub fn global_rights(&self) -> Vec<RightsEntry> {
        self.global.read().entries.clone()
    }

    /// The stamp of the global entries, as [`rights_stamp`](Self::rights_stamp) for an owner's.
    pub fn global_stamp(&self) -> Stamp {
        self.global.read().stamp
    }

    /// Makes `entries` the global entries, all at once, if nothing changed them since `seen`;
    /// `entries` back when something did.
    pub fn replace_global_rights_if(&self, seen: Stamp, entries: Vec<RightsEntry>) -> Result<(), Vec<RightsEntry>> {
        let mut global = self.global.write();
        if global.stamp != seen {
            return Err(entries);
        }
        global.entries = entries;
        global.stamp.0 += 1;
        Ok(())
    }

    pub fn rights_of(&self, owner: &str) -> Vec<RightsEntry> {
        self.rights.read().by_owner.get(owner).map(|r| r.entries.clone()).unwrap_or_default()
    }

    /// Whether two users belong to the same enterprise.
    pub fn same_enterprise(&self, owner: &str, watcher: &str) -> bool {
        self.same_enterprise_as(owner, &self.domain(watcher))
    }

    /// The rule of [`same_enterprise`](Self::same_enterprise) against a watcher's domain read before.
    fn same_enterprise_as(&self, owner: &str, watcher: &Domain<'_>) -> bool {
        let domain = domain_of(owner);
        same_domain(domain, watcher.name) || (watcher.enterprise && self.is_enterprise(domain))
    }

    fn domain<'a>(&self, uri: &'a str) -> Domain<'a> {
        let name = domain_of(uri);
        Domain { name, enterprise: self.is_enterprise(name) }
    }

    fn is_enterprise(&self, domain: &str) -> bool {
        self.enterprise_domains.iter().any(|d| same_domain(d, domain))
    }

    /// The level `watcher` has on `owner`'s presence (docs/architecture.md §2.3): the owner's entries and the
    /// global ones count alike; an explicit block by the owner still wins.
    pub fn level(&self, owner: &str, watcher: &str) -> AccessLevel {
        self.level_of(owner, &self.watcher(watcher)).0
    }

    /// `uri` as the level rules see a watcher, read once for a watcher who looks at many owners
    /// (a query).
    pub fn watcher<'a>(&self, uri: &'a str) -> Watcher<'a> {
        Watcher { uri, profile: self.profile(uri), domain: self.domain(uri) }
    }

    /// [`level`](Self::level) of a watcher read by [`watcher`](Self::watcher), with whether the
    /// two are of the same enterprise.
    pub fn level_of(&self, owner: &str, watcher: &Watcher<'_>) -> (AccessLevel, bool) {
        let same_enterprise = self.same_enterprise_as(owner, &watcher.domain);
        let groups = watcher.profile.as_deref().map_or(&[][..], |p| p.groups.as_slice());
        let facts = WatcherFacts { uri: watcher.uri, groups, same_enterprise };
        let rights = self.rights.read();
        let own = rights.by_owner.get(owner).map_or(&[][..], |r| r.entries.as_slice());
        let global = self.global.read();
        (effective_level_of(own.iter().chain(global.entries.iter()), &facts), same_enterprise)
    }
}

/// A watcher's part of the level rules: its URI, profile (its groups) and domain.
pub struct Watcher<'a> {
    uri: &'a str,
    profile: Option<Arc<Profile>>,
    domain: Domain<'a>,
}

/// A user's domain, and whether it is one of the enterprise's.
struct Domain<'a> {
    name: &'a str,
    enterprise: bool,
}

impl Watcher<'_> {
    pub fn uri(&self) -> &str {
        self.uri
    }
}

/// Domain names compared without regard to case; most are written alike, which a byte comparison
/// finds at once.
fn same_domain(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a == b || a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rights::Member;

    fn directory() -> Directory {
        Directory::new(&["Corp.example".to_string(), "branch.example".to_string()])
    }

    #[test]
    fn the_enterprise_is_one_domain_or_all_the_enterprise_domains() {
        let d = directory();
        assert!(d.same_enterprise("sip:a@other.example", "sip:b@OTHER.example"), "the same domain, in any case");
        assert!(d.same_enterprise("sip:a@corp.example", "sip:b@Branch.example"), "two enterprise domains");
        assert!(!d.same_enterprise("sip:a@corp.example", "sip:b@other.example"), "an enterprise domain and another");
        assert!(!d.same_enterprise("sip:a@other.example", "sip:b@third.example"));
    }

    #[test]
    fn a_watcher_read_once_gets_the_levels_and_enterprise_relation_read_each_time() {
        let d = directory();
        let block = RightsEntry { member: Member::Uri("sip:w@branch.example".into()), level: AccessLevel::Blocked };
        d.set_right("sip:blocker@other.example", block);
        let watcher = d.watcher("sip:w@branch.example");
        for owner in ["sip:a@corp.example", "sip:b@other.example", "sip:c@branch.example", "sip:blocker@other.example"] {
            let expected = (d.level(owner, "sip:w@branch.example"), d.same_enterprise(owner, "sip:w@branch.example"));
            assert_eq!(d.level_of(owner, &watcher), expected, "{owner}");
        }
        assert_eq!(d.level_of("sip:a@corp.example", &watcher), (AccessLevel::Company, true));
        assert_eq!(d.level_of("sip:b@other.example", &watcher), (AccessLevel::Public, false));
        assert_eq!(d.level_of("sip:blocker@other.example", &watcher).0, AccessLevel::Blocked);
    }

    #[test]
    fn a_read_begun_before_another_install_is_not_installed() {
        let d = directory();
        let owner = "sip:o@corp.example";
        let entry = |level| RightsEntry { member: Member::Uri("sip:w@corp.example".into()), level };
        let seen = d.rights_stamp(owner);
        assert_eq!(d.replace_rights_if(owner, seen, vec![entry(AccessLevel::Team)]), Ok(vec![]));
        let read_begins = d.rights_stamp(owner);
        d.replace_rights(owner, vec![]);
        assert_eq!(d.replace_rights_if(owner, read_begins, vec![entry(AccessLevel::Team)]), Err(vec![entry(AccessLevel::Team)]));
        assert!(d.rights_of(owner).is_empty(), "the later install stands");
        let emptied = d.rights_stamp(owner);
        assert_ne!(emptied, Stamp::default(), "emptied entries keep their stamp");
        assert!(d.replace_rights_if(owner, emptied, vec![entry(AccessLevel::Blocked)]).is_ok());
        assert_eq!(d.level(owner, "sip:w@corp.example"), AccessLevel::Blocked);

        let global_read_begins = d.global_stamp();
        d.set_global_right(RightsEntry { member: Member::Group("board".into()), level: AccessLevel::Team });
        assert!(d.replace_global_rights_if(global_read_begins, vec![]).is_err(), "a global entry set meanwhile stands");
        assert_eq!(d.global_rights().len(), 1);
        assert!(d.replace_global_rights_if(d.global_stamp(), vec![]).is_ok());
        assert!(d.global_rights().is_empty());

        let user = "sip:w@corp.example";
        let profile = |groups: &[&str]| {
            Arc::new(Profile { uri: user.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() })
        };
        let profile_read_begins = d.profile_stamp(user);
        d.put_profile(profile(&["board"]));
        assert!(!d.put_profile_if(profile_read_begins, profile(&[])), "an older read of the profile is refused");
        assert_eq!(d.profile(user).unwrap().groups, ["board"]);
        let before_removal = d.profile_stamp(user);
        d.remove(user);
        assert!(!d.put_profile_if(before_removal, profile(&[])), "a read from before a removal is refused");
        assert!(d.put_profile_if(d.profile_stamp(user), profile(&[])));
    }
}
