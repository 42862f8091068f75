//! Users files (docs/architecture.md §1.5) and the `--demo` organisation: parsed, validated and upserted into the
//! store, with their `[[grant]]` rights entries. The demo also gives every user a contact list
//! (their team as a group, a few colleagues, one external contact), team rights, and plays signed-in
//! colleagues, a phone call and meetings so that a newcomer's first sign-in shows live presence.

use super::auth::{hash_password, verify_password};
use super::Gateway;
use crate::model::contact::{is_valid_sip_uri, normalize_uri, Phones, Profile};
use crate::model::contacts::{Contact, ContactList, Group, DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME};
use crate::model::reports::{CalendarData, ComputerData, PhoneData, ReportData, SourceReport};
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use crate::model::sources::{
    Appointment, AppointmentStatus, Call, CallDirection, CallService, CallState, ComputerState, Line, LineState, ManualKind,
    ManualState, Note, Reachability,
};
use crate::store::{PresenceUpdate, RightsWrite, Store, StoredPresence, UserRecord};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub user: Vec<UserEntry>,
    #[serde(default)]
    pub grant: Vec<GrantEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub uri: String,
    pub display_name: String,
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub department: Option<String>,
    pub office: Option<String>,
    #[serde(default)]
    pub phones: Phones,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    pub owner: String,
    pub watcher: String,
    pub level: String,
}

impl UsersFile {
    pub fn parse(text: &str) -> Result<UsersFile, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| e.to_string())?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), String> {
        for (i, u) in self.user.iter().enumerate() {
            if !is_valid_sip_uri(&u.uri) {
                return Err(format!("user[{i}].uri: {:?} is not a sip: URI", u.uri));
            }
            if u.password.is_some() && u.password_hash.is_some() {
                return Err(format!("user[{i}]: give password or password_hash, not both"));
            }
            if let Some(hash) = &u.password_hash {
                argon2::PasswordHash::new(hash).map_err(|_| format!("user[{i}].password_hash is not a PHC string"))?;
            }
            u.profile().check_text().map_err(|e| format!("user[{i}].{e}"))?;
        }
        for (i, g) in self.grant.iter().enumerate() {
            if AccessLevel::from_name(&g.level).is_none() {
                return Err(format!("grant[{i}].level: {:?} is not blocked, public, company, team or personal", g.level));
            }
            if !is_valid_sip_uri(&g.owner) || !is_valid_sip_uri(&g.watcher) {
                return Err(format!("grant[{i}]: owner and watcher must be sip: URIs"));
            }
        }
        Ok(())
    }

    /// Writes every user and grant to the store (hashing plain passwords with argon2id). A plain
    /// password the stored hash already verifies keeps that hash: applying the same file again
    /// (at every start) is no password change, so nobody is signed out by a restart.
    pub async fn apply(&self, store: &dyn Store) -> Result<(), String> {
        for entry in &self.user {
            let hash = match (&entry.password, &entry.password_hash) {
                (Some(plain), _) => {
                    let stored = store.user(&normalize_uri(&entry.uri)).await.map_err(|e| e.to_string())?;
                    let (plain, stored) = (plain.clone(), stored.and_then(|u| u.password_hash));
                    let rehash = move || match stored {
                        Some(hash) if verify_password(&plain, &hash) => Ok(None),
                        _ => hash_password(&plain).map(Some),
                    };
                    tokio::task::spawn_blocking(rehash).await.map_err(|e| e.to_string())??
                }
                (None, hash) => hash.clone(),
            };
            let record = UserRecord { profile: entry.profile(), password_hash: hash };
            store.upsert_user(&record).await.map_err(|e| e.to_string())?;
        }
        for grant in &self.grant {
            let level = AccessLevel::from_name(&grant.level).expect("validated");
            let entry = RightsEntry { member: Member::Uri(normalize_uri(&grant.watcher)), level };
            store.apply_rights(&normalize_uri(&grant.owner), &[RightsWrite::Set(entry)]).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl UserEntry {
    fn profile(&self) -> Profile {
        Profile {
            uri: normalize_uri(&self.uri),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            title: self.title.clone(),
            company: self.company.clone(),
            department: self.department.clone(),
            office: self.office.clone(),
            phones: self.phones.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// The demo password every demo user shares.
pub const DEMO_PASSWORD: &str = "demo";

const DEMO_PEOPLE: [(&str, &str, &str, &str); 12] = [
    ("alice", "Alice Example", "Engineering Lead", "r-and-d"),
    ("bob", "Bob Builder", "Engineer", "r-and-d"),
    ("carol", "Carol Chen", "Engineer", "r-and-d"),
    ("dave", "Dave Dunn", "Support Agent", "support"),
    ("erin", "Erin Evans", "Support Agent", "support"),
    ("frank", "Frank Fischer", "Sales Manager", "sales"),
    ("grace", "Grace Green", "Account Executive", "sales"),
    ("heidi", "Heidi Hall", "Office Manager", "office"),
    ("ivan", "Ivan Ivanov", "Designer", "r-and-d"),
    ("judy", "Judy Jones", "CFO", "board"),
    ("mallory", "Mallory Miller", "Contractor", "external"),
    ("oscar", "Oscar Olsen", "Partner", "external"),
];

fn demo_uri(name: &str, department: &str) -> String {
    let domain = if department == "external" { "partner.example.org" } else { "example.com" };
    format!("sip:{name}@{domain}")
}

/// The group a demo user's teammates are listed under (the office manager and the CFO are one team).
fn team_name(department: &str) -> &'static str {
    match department {
        "r-and-d" => "R&D team",
        "support" => "Support team",
        "sales" => "Sales team",
        "office" | "board" => "Management",
        _ => "Partners",
    }
}

/// (uri, display name, team) of every demo user, in `DEMO_PEOPLE` order.
fn demo_people() -> Vec<(String, &'static str, &'static str)> {
    DEMO_PEOPLE
        .iter()
        .map(|(name, display, _, department)| (demo_uri(name, department), *display, team_name(department)))
        .collect()
}

/// A dozen users; teammates see each other at Team, Bob gives Alice Personal, Alice blocks the
/// contractor.
pub fn demo_users() -> UsersFile {
    let user = DEMO_PEOPLE
        .iter()
        .enumerate()
        .map(|(i, (name, display, title, group))| {
            let domain = if *group == "external" { "partner.example.org" } else { "example.com" };
            UserEntry {
                uri: demo_uri(name, group),
                display_name: display.to_string(),
                password: Some(DEMO_PASSWORD.into()),
                password_hash: None,
                email: Some(format!("{name}@{domain}")),
                title: Some(title.to_string()),
                company: Some(if domain == "example.com" { "Example Ltd" } else { "Partner Org" }.into()),
                department: Some(group.to_string()),
                office: Some(format!("B{}.{:02}", 1 + i / 4, 10 + i)),
                phones: Phones {
                    work: Some(format!("tel:+4989123456{i:02}")),
                    mobile: Some(format!("tel:+49170123456{i:02}")),
                    home: Some(format!("tel:+4989987654{i:02}")),
                    other: None,
                },
                groups: vec![group.to_string()],
            }
        })
        .collect();
    let grant = |owner: &str, watcher: &str, level: &str| GrantEntry {
        owner: owner.into(),
        watcher: watcher.into(),
        level: level.into(),
    };
    let people = demo_people();
    let mut grants: Vec<GrantEntry> = people
        .iter()
        .flat_map(|(owner, _, team)| {
            people
                .iter()
                .filter(move |(other, _, t)| t == team && other != owner)
                .map(move |(other, _, _)| grant(owner, other, "team"))
        })
        .collect();
    grants.extend([
        grant("sip:bob@example.com", "sip:alice@example.com", "personal"),
        grant("sip:alice@example.com", "sip:mallory@partner.example.org", "blocked"),
    ]);
    UsersFile { user, grant: grants }
}

/// The one contact outside the company every internal demo user has.
const DEMO_EXTERNAL_CONTACT: &str = "sip:oscar@partner.example.org";
/// The colleagues outside the team in each demo list.
const DEMO_COLLEAGUES: usize = 3;

/// Every demo user's contact list: the team as a group, a few colleagues from other teams, one
/// external contact in the default group, and a teammate who is also a favourite (a contact in
/// two groups, as CWA allows).
pub fn demo_contact_lists() -> Vec<(String, ContactList)> {
    let people = demo_people();
    let is_external = |uri: &str| uri.ends_with("@partner.example.org");
    people
        .iter()
        .enumerate()
        .map(|(i, (owner, _, team))| {
            let (team_id, colleagues_id, favourites_id) = (2, 3, 4);
            let groups = vec![
                Group { id: DEFAULT_GROUP_ID, name: DEFAULT_GROUP_NAME.into() },
                Group { id: team_id, name: (*team).into() },
                Group { id: colleagues_id, name: "Colleagues".into() },
                Group { id: favourites_id, name: "Favourites".into() },
            ];
            let contact = |uri: &str, name: &str, groups: Vec<u32>| Contact {
                uri: uri.to_string(),
                name: name.to_string(),
                subscribed: true,
                tag: false,
                groups,
            };
            let mut contacts: Vec<Contact> = people
                .iter()
                .filter(|(uri, _, t)| t == team && uri != owner)
                .map(|(uri, name, _)| contact(uri, name, vec![team_id]))
                .collect();
            if let Some(first) = contacts.first_mut() {
                first.groups.push(favourites_id);
            }
            let others = people.iter().cycle().skip(i + 1).take(people.len());
            let colleagues = others.filter(|(uri, _, t)| t != team && !is_external(uri));
            contacts.extend(colleagues.take(DEMO_COLLEAGUES).map(|(uri, name, _)| contact(uri, name, vec![colleagues_id])));
            if !is_external(owner) {
                let (uri, name, _) = people.iter().find(|(uri, _, _)| uri == DEMO_EXTERNAL_CONTACT).expect("a demo user");
                contacts.push(contact(uri, name, vec![DEFAULT_GROUP_ID]));
            }
            (owner.clone(), ContactList { groups, contacts, delta_num: 1 })
        })
        .collect()
}

/// Manual states and notes of the demo's colleagues, so that their rows differ at first sight.
fn demo_presences() -> Vec<(String, StoredPresence)> {
    let manual = |kind, text: Option<&str>| ManualState {
        kind,
        text: text.map(str::to_string),
        from: None,
        to: None,
        reachability: Reachability::Normal,
    };
    let note = |text: &str| Note { text: text.into(), expires: None };
    vec![
        ("sip:bob@example.com".into(), StoredPresence { manual: None, note: Some(note("Ask me about the build server")) }),
        (
            "sip:carol@example.com".into(),
            StoredPresence { manual: Some(manual(ManualKind::Busy, Some("Code review"))), note: None },
        ),
        ("sip:erin@example.com".into(), StoredPresence { manual: Some(manual(ManualKind::BeRightBack, None)), note: None }),
        (
            "sip:heidi@example.com".into(),
            StoredPresence { manual: Some(manual(ManualKind::Away, None)), note: Some(note("At the post office")) },
        ),
        (
            "sip:ivan@example.com".into(),
            StoredPresence { manual: Some(manual(ManualKind::DoNotDisturb, Some("Focus time"))), note: None },
        ),
    ]
}

/// Seeds the demo organisation: users and rights at every start; contact lists, manual states and
/// notes only where the store has none yet, so that what demo users change survives a restart.
pub async fn seed_demo(store: &dyn Store) -> Result<(), String> {
    demo_users().apply(store).await?;
    let listed: HashSet<String> =
        store.contact_lists().await.map_err(|e| e.to_string())?.into_iter().map(|(owner, _)| owner).collect();
    for (owner, list) in demo_contact_lists().into_iter().filter(|(owner, _)| !listed.contains(owner)) {
        store.save_contact_list(&owner, None, &list, &[]).await.map_err(|e| e.to_string())?;
    }
    let stored: HashSet<String> = store.presences().await.map_err(|e| e.to_string())?.into_iter().map(|(uri, _)| uri).collect();
    for (uri, presence) in demo_presences().into_iter().filter(|(uri, _)| !stored.contains(uri)) {
        store.update_presence(&uri, &PresenceUpdate::whole(&presence)).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The demo users whose computers count as signed in, so they show live presence at once.
const DEMO_SIGNED_IN: [&str; 8] = [
    "sip:bob@example.com",
    "sip:carol@example.com",
    "sip:erin@example.com",
    "sip:grace@example.com",
    "sip:heidi@example.com",
    "sip:ivan@example.com",
    "sip:judy@example.com",
    "sip:oscar@partner.example.org",
];

/// Signed-in computers for [`DEMO_SIGNED_IN`], Grace out of office, Judy's next board meeting.
async fn start_demo_colleagues(gw: &Gateway) {
    for uri in DEMO_SIGNED_IN {
        let desktop = ReportData::Computer(ComputerData { state: ComputerState::LoggedIn });
        let _ = gw.set_source(uri, "desktop", SourceReport { data: desktop, expires: None }).await;
    }
    let now = gw.clock.now();
    let appointment = |id: &str, start, end, status, subject: &str, location: &str| Appointment {
        id: id.into(),
        start,
        end,
        status,
        subject: Some(subject.into()),
        location: Some(location.into()),
        private: false,
    };
    let trip = appointment(
        "trip",
        now - chrono::Duration::hours(2),
        now + chrono::Duration::days(3),
        AppointmentStatus::OutOfOffice,
        "Customer visits",
        "Munich",
    );
    let oof = Some("Visiting customers in Munich, back on Monday".to_string());
    let calendar = ReportData::Calendar(CalendarData { appointments: vec![trip], oof_message: oof });
    let _ = gw.set_source("sip:grace@example.com", "calendar", SourceReport { data: calendar, expires: None }).await;
    let board = appointment(
        "board",
        now + chrono::Duration::minutes(90),
        now + chrono::Duration::minutes(150),
        AppointmentStatus::Busy,
        "Board meeting",
        "Room 1.01",
    );
    let calendar = ReportData::Calendar(CalendarData { appointments: vec![board], oof_message: None });
    let _ = gw.set_source("sip:judy@example.com", "calendar", SourceReport { data: calendar, expires: None }).await;
}

/// Plays the demo's live activity: colleagues signed in, Dave takes a phone call now and then,
/// Frank sits in a meeting.
pub fn spawn_demo_activity(gateway: &Arc<Gateway>) {
    let weak = Arc::downgrade(gateway);
    tokio::spawn(async move {
        if let Some(gw) = weak.upgrade() {
            start_demo_colleagues(&gw).await;
        }
        let mut round = 0u64;
        loop {
            let Some(gw) = weak.upgrade() else { return };
            let now = gw.clock.now();
            let meeting = Appointment {
                id: "weekly".into(),
                start: now - chrono::Duration::minutes(5),
                end: now + chrono::Duration::minutes(55),
                status: AppointmentStatus::Busy,
                subject: Some("Weekly sales review".into()),
                location: Some("Room 2.01".into()),
                private: false,
            };
            let calendar = ReportData::Calendar(CalendarData { appointments: vec![meeting], oof_message: None });
            let _ = gw.set_source("sip:frank@example.com", "calendar", SourceReport { data: calendar, expires: None }).await;
            let desktop = ReportData::Computer(ComputerData { state: ComputerState::LoggedIn });
            let _ = gw.set_source("sip:frank@example.com", "desktop", SourceReport { data: desktop, expires: None }).await;
            let state = if round.is_multiple_of(2) { CallState::Connected } else { CallState::Disconnected };
            let call = Call {
                id: format!("demo-{round}"),
                service: CallService::Phone,
                state,
                direction: CallDirection::Incoming,
                external: true,
                partner_number: Some("tel:+4930111222".into()),
                line: Some("tel:+498912345603".into()),
            };
            let line = Line { number: "tel:+498912345603".into(), state: LineState::InService, dnd: false };
            let phone = ReportData::Phone(PhoneData { lines: vec![line], calls: vec![call], forwards: vec![] });
            let _ = gw.set_source("sip:dave@example.com", "pbx", SourceReport { data: phone, expires: None }).await;
            drop(gw);
            round += 1;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_parses_and_validates() {
        let ok = UsersFile::parse(
            r#"
            [[user]]
            uri = "sip:alice@example.com"
            display_name = "Alice"
            password = "x"
            phones = { work = "tel:+1", mobile = "tel:+2" }
            groups = ["r-and-d"]
            [[grant]]
            owner = "sip:alice@example.com"
            watcher = "sip:bob@example.com"
            level = "team"
            "#,
        )
        .unwrap();
        assert_eq!(ok.user[0].phones.mobile.as_deref(), Some("tel:+2"));
        assert!(UsersFile::parse("[[user]]\nuri = \"alice@x\"\ndisplay_name = \"A\"").unwrap_err().contains("user[0].uri"));
        let bad_level = "[[grant]]\nowner = \"sip:a@x\"\nwatcher = \"sip:b@x\"\nlevel = \"boss\"";
        assert!(UsersFile::parse(bad_level).unwrap_err().contains("grant[0].level"));
        assert!(UsersFile::parse("[[user]]\nuri = \"sip:a@x\"\ndisplay_name = \"A\"\nshoe = 1").is_err());
    }

    #[test]
    fn users_file_refuses_text_that_xml_forbids() {
        let name = "[[user]]\nuri = \"sip:a@x\"\ndisplay_name = \"A\\u0001\"";
        assert_eq!(
            UsersFile::parse(name).unwrap_err(),
            "user[0].display_name contains U+0001 at character 1: control characters other than tab, line feed and \
             carriage return, and U+FFFE/U+FFFF, are not allowed"
        );
        let phone = "[[user]]\nuri = \"sip:a@x\"\ndisplay_name = \"A\"\nphones = { home = \"\\uFFFF\" }";
        assert!(UsersFile::parse(phone).unwrap_err().starts_with("user[0].phones.home contains U+FFFF"));
        let group = "[[user]]\nuri = \"sip:a@x\"\ndisplay_name = \"A\"\ngroups = [\"ok\", \"a\\u001bb\"]";
        assert!(UsersFile::parse(group).unwrap_err().starts_with("user[0].groups[1] contains U+001B"));
        let fax = "[[user]]\nuri = \"sip:a@x\"\ndisplay_name = \"A\"\nphones = { fax = \"1\" }";
        assert!(UsersFile::parse(fax).unwrap_err().contains("fax"), "unknown nested fields are refused");
    }

    #[test]
    fn demo_is_valid() {
        let demo = demo_users();
        demo.validate().unwrap();
        assert_eq!(demo.user.len(), 12);
    }

    fn level(demo: &UsersFile, owner: &str, watcher: &str) -> Option<String> {
        demo.grant.iter().rev().find(|g| g.owner == owner && g.watcher == watcher).map(|g| g.level.clone())
    }

    #[test]
    fn demo_teammates_see_each_other_at_team() {
        let demo = demo_users();
        demo.validate().unwrap();
        assert_eq!(level(&demo, "sip:carol@example.com", "sip:ivan@example.com").as_deref(), Some("team"));
        assert_eq!(level(&demo, "sip:heidi@example.com", "sip:judy@example.com").as_deref(), Some("team"));
        assert_eq!(level(&demo, "sip:bob@example.com", "sip:alice@example.com").as_deref(), Some("personal"));
        assert_eq!(level(&demo, "sip:alice@example.com", "sip:mallory@partner.example.org").as_deref(), Some("blocked"));
        assert_eq!(level(&demo, "sip:alice@example.com", "sip:frank@example.com"), None, "other teams: the default");
    }

    #[test]
    fn every_demo_user_has_a_team_colleagues_and_one_external_contact() {
        let users: HashSet<String> = demo_users().user.into_iter().map(|u| u.uri).collect();
        let lists = demo_contact_lists();
        assert_eq!(lists.len(), users.len());
        for (owner, list) in &lists {
            let in_group = |id: u32| list.contacts.iter().filter(move |c| c.groups.contains(&id));
            assert!(list.contacts.iter().all(|c| users.contains(&c.uri) && &c.uri != owner), "{owner}: demo users only");
            let unique: HashSet<&str> = list.contacts.iter().map(|c| c.uri.as_str()).collect();
            assert_eq!(unique.len(), list.contacts.len(), "{owner}: each contact once");
            assert!(in_group(2).count() >= 1, "{owner}: a team");
            assert_eq!(in_group(3).count(), DEMO_COLLEAGUES, "{owner}: colleagues");
            let outside = list
                .contacts
                .iter()
                .filter(|c| c.uri.ends_with("@partner.example.org") && !owner.ends_with("@partner.example.org"));
            assert_eq!(outside.count(), usize::from(!owner.ends_with("@partner.example.org")), "{owner}: one external contact");
            assert!(list.contacts.iter().any(|c| c.groups.len() == 2), "{owner}: a contact in two groups");
            let group_ids: HashSet<u32> = list.groups.iter().map(|g| g.id).collect();
            assert!(list.contacts.iter().all(|c| c.groups.iter().all(|g| group_ids.contains(g))), "{owner}: known groups");
        }
        let (_, alice) = lists.iter().find(|(owner, _)| owner == "sip:alice@example.com").unwrap();
        let names =
            |id: u32| alice.contacts.iter().filter(|c| c.groups.contains(&id)).map(|c| c.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names(2), ["Bob Builder", "Carol Chen", "Ivan Ivanov"]);
        assert_eq!(names(1), ["Oscar Olsen"], "one external contact");
        assert!(!alice.contacts.iter().any(|c| c.uri.starts_with("sip:mallory")), "nobody Alice blocks");
    }
}
