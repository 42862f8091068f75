//! Access levels: who sees what. The five levels, the rule that picks a watcher's effective level
//! from an owner's entries, and the visibility table of docs/architecture.md §2.3 — each as one pure function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The five levels, ordered from least to most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Blocked,
    Public,
    Company,
    Team,
    Personal,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 5] =
        [AccessLevel::Blocked, AccessLevel::Public, AccessLevel::Company, AccessLevel::Team, AccessLevel::Personal];

    /// The Presence V2 rights value.
    pub fn pv2_value(self) -> u32 {
        match self {
            AccessLevel::Blocked => 0,
            AccessLevel::Public => 65536,
            AccessLevel::Company => 131072,
            AccessLevel::Team => 262144,
            AccessLevel::Personal => 524288,
        }
    }

    pub fn from_pv2_value(value: u32) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.pv2_value() == value)
    }

    /// The CWA container id.
    pub fn container_id(self) -> u32 {
        match self {
            AccessLevel::Blocked => 32000,
            AccessLevel::Public => 100,
            AccessLevel::Company => 200,
            AccessLevel::Team => 300,
            AccessLevel::Personal => 400,
        }
    }

    pub fn from_container_id(id: u32) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.container_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            AccessLevel::Blocked => "blocked",
            AccessLevel::Public => "public",
            AccessLevel::Company => "company",
            AccessLevel::Team => "team",
            AccessLevel::Personal => "personal",
        }
    }

    pub fn from_name(name: &str) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name))
    }
}

/// Whom an entry applies to (the CWA `addMember` types plus organisational groups).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum Member {
    Uri(String),
    Domain(String),
    Group(String),
    SameEnterprise,
    Federated,
    PublicCloud,
    Everyone,
}

/// One entry of an owner's list: a member at a level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RightsEntry {
    pub member: Member,
    pub level: AccessLevel,
}

/// What the rule needs to know about a watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatcherFacts<'a> {
    pub uri: &'a str,
    pub groups: &'a [String],
    /// The watcher belongs to the owner's enterprise (same domain or a configured enterprise domain).
    pub same_enterprise: bool,
}

/// The domain part of a `sip:` URI, lower-cased.
pub fn domain_of(uri: &str) -> &str {
    let bare = uri.strip_prefix("sip:").unwrap_or(uri);
    // A byte search: `@` is ASCII, so what follows it starts on a character boundary.
    match bare.bytes().rposition(|b| b == b'@') {
        Some(at) => &bare[at + 1..],
        None => "",
    }
}

impl Member {
    fn matches(&self, w: &WatcherFacts<'_>) -> bool {
        match self {
            Member::Uri(uri) => uri.eq_ignore_ascii_case(w.uri),
            Member::Domain(domain) => domain.eq_ignore_ascii_case(domain_of(w.uri)),
            Member::Group(group) => w.groups.iter().any(|g| g == group),
            Member::SameEnterprise => w.same_enterprise,
            Member::Federated => !w.same_enterprise,
            Member::PublicCloud => false,
            Member::Everyone => true,
        }
    }
}

/// docs/architecture.md §2.3: an explicit Blocked entry for the watcher's URI wins; otherwise the
/// highest matching entry; otherwise the default (Company within the enterprise, Public outside).
pub fn effective_level(entries: &[RightsEntry], watcher: &WatcherFacts<'_>) -> AccessLevel {
    effective_level_of(entries.iter(), watcher)
}

/// [`effective_level`] over entries from several lists (an owner's and the global ones) without
/// gathering them first.
pub fn effective_level_of<'e, I>(entries: I, watcher: &WatcherFacts<'_>) -> AccessLevel
where
    I: Iterator<Item = &'e RightsEntry> + Clone,
{
    let explicit_block = entries
        .clone()
        .any(|e| e.level == AccessLevel::Blocked && matches!(&e.member, Member::Uri(u) if u.eq_ignore_ascii_case(watcher.uri)));
    if explicit_block {
        return AccessLevel::Blocked;
    }
    let matching = entries.filter(|e| e.member.matches(watcher)).map(|e| e.level).max();
    matching.unwrap_or(if watcher.same_enterprise { AccessLevel::Company } else { AccessLevel::Public })
}

/// One row per line of the docs/architecture.md §2.3 table: what a watcher at a level may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Visibility {
    pub identity: bool,
    /// Availability as it is; false = always shown as offline.
    pub availability: bool,
    pub activity: bool,
    pub organisation: bool,
    pub work_phone: bool,
    pub mobile_phone: bool,
    pub private_phones: bool,
    pub personal_note: bool,
    pub oof_note: bool,
    pub calendar_free_busy: bool,
    pub appointment_details: bool,
    pub lines_and_calls: bool,
    pub call_partners: bool,
    pub may_set_absent_state: bool,
}

/// The visibility table of docs/architecture.md §2.3, the single place that decides what leaves for a level.
pub fn visibility(level: AccessLevel) -> Visibility {
    use AccessLevel::*;
    let at_least = |min: AccessLevel| level >= min;
    Visibility {
        identity: true,
        availability: at_least(Public),
        activity: at_least(Company),
        organisation: at_least(Public),
        work_phone: at_least(Public),
        mobile_phone: at_least(Team),
        private_phones: at_least(Personal),
        personal_note: at_least(Company),
        oof_note: at_least(Public),
        calendar_free_busy: at_least(Company),
        appointment_details: at_least(Personal),
        lines_and_calls: at_least(Company),
        call_partners: at_least(Team),
        may_set_absent_state: at_least(Team),
    }
}

#[cfg(test)]
mod tests {
    use super::AccessLevel::*;
    use super::*;

    fn watcher<'a>(uri: &'a str, groups: &'a [String], same: bool) -> WatcherFacts<'a> {
        WatcherFacts { uri, groups, same_enterprise: same }
    }

    fn entry(member: Member, level: AccessLevel) -> RightsEntry {
        RightsEntry { member, level }
    }

    #[test]
    fn level_encodings_round_trip() {
        for l in AccessLevel::ALL {
            assert_eq!(AccessLevel::from_pv2_value(l.pv2_value()), Some(l));
            assert_eq!(AccessLevel::from_container_id(l.container_id()), Some(l));
            assert_eq!(AccessLevel::from_name(l.name()), Some(l));
        }
        assert_eq!(AccessLevel::from_container_id(150), None);
        assert_eq!(AccessLevel::from_pv2_value(3), None);
    }

    #[test]
    fn defaults_follow_the_enterprise() {
        assert_eq!(effective_level(&[], &watcher("sip:b@example.com", &[], true)), Company);
        assert_eq!(effective_level(&[], &watcher("sip:b@other.org", &[], false)), Public);
    }

    #[test]
    fn highest_matching_entry_wins_over_the_default() {
        let groups = vec!["r-and-d".to_string()];
        let w = watcher("sip:b@example.com", &groups, true);
        let entries = vec![entry(Member::Group("r-and-d".into()), Team), entry(Member::Everyone, Public)];
        assert_eq!(effective_level(&entries, &w), Team);
        let demote = vec![entry(Member::Uri("sip:b@example.com".into()), Public)];
        assert_eq!(effective_level(&demote, &w), Public, "an owner may demote a colleague");
        let domain = vec![entry(Member::Domain("EXAMPLE.com".into()), Personal)];
        assert_eq!(effective_level(&domain, &w), Personal);
    }

    #[test]
    fn explicit_block_wins_over_everything() {
        let groups = vec!["r-and-d".to_string()];
        let w = watcher("sip:b@example.com", &groups, true);
        let entries =
            vec![entry(Member::Group("r-and-d".into()), Personal), entry(Member::Uri("sip:B@example.com".into()), Blocked)];
        assert_eq!(effective_level(&entries, &w), Blocked);
        let block_domain =
            vec![entry(Member::Domain("example.com".into()), Blocked), entry(Member::Uri("sip:b@example.com".into()), Team)];
        assert_eq!(effective_level(&block_domain, &w), Team, "a blocked domain yields to a personal entry");
    }

    #[test]
    fn every_cell_of_the_visibility_table() {
        // Columns: Blocked, Public, Company, Team, Personal (docs/architecture.md §2.3).
        type Row = (&'static str, fn(&Visibility) -> bool, [bool; 5]);
        let rows: [Row; 14] = [
            ("identity", |v| v.identity, [true, true, true, true, true]),
            ("availability", |v| v.availability, [false, true, true, true, true]),
            ("activity", |v| v.activity, [false, false, true, true, true]),
            ("organisation", |v| v.organisation, [false, true, true, true, true]),
            ("work phone", |v| v.work_phone, [false, true, true, true, true]),
            ("mobile phone", |v| v.mobile_phone, [false, false, false, true, true]),
            ("home/other phones", |v| v.private_phones, [false, false, false, false, true]),
            ("personal note", |v| v.personal_note, [false, false, true, true, true]),
            ("oof note", |v| v.oof_note, [false, true, true, true, true]),
            ("free/busy", |v| v.calendar_free_busy, [false, false, true, true, true]),
            ("appointment details", |v| v.appointment_details, [false, false, false, false, true]),
            ("lines and calls", |v| v.lines_and_calls, [false, false, true, true, true]),
            ("call partners", |v| v.call_partners, [false, false, false, true, true]),
            ("set absent state", |v| v.may_set_absent_state, [false, false, false, true, true]),
        ];
        for (name, cell, expected) in rows {
            for (level, want) in AccessLevel::ALL.into_iter().zip(expected) {
                assert_eq!(cell(&visibility(level)), want, "{name} at {level:?}");
            }
        }
    }
}
