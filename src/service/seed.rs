//! Users files (DESIGN §1.5) and the `--demo` organisation: parsed, validated and upserted into the
//! store, with their `[[grant]]` rights entries. The demo also plays a phone call and a meeting
//! so that a newcomer sees presence move.

use super::auth::hash_password;
use super::Gateway;
use crate::model::contact::{is_valid_sip_uri, normalize_uri, Phones, Profile};
use crate::model::reports::{CalendarData, ComputerData, PhoneData, ReportData, SourceReport};
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use crate::model::sources::{
    Appointment, AppointmentStatus, Call, CallDirection, CallService, CallState, ComputerState, Line, LineState,
};
use crate::store::{Store, UserRecord};
use serde::Deserialize;
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

    /// Writes every user and grant to the store (hashing plain passwords with argon2id).
    pub async fn apply(&self, store: &dyn Store) -> Result<(), String> {
        for entry in &self.user {
            let hash = match (&entry.password, &entry.password_hash) {
                (Some(plain), _) => {
                    let plain = plain.clone();
                    Some(tokio::task::spawn_blocking(move || hash_password(&plain)).await.map_err(|e| e.to_string())??)
                }
                (None, hash) => hash.clone(),
            };
            let record = UserRecord { profile: entry.profile(), password_hash: hash };
            store.upsert_user(&record).await.map_err(|e| e.to_string())?;
        }
        for grant in &self.grant {
            let level = AccessLevel::from_name(&grant.level).expect("validated");
            let entry = RightsEntry { member: Member::Uri(normalize_uri(&grant.watcher)), level };
            store.set_right(&normalize_uri(&grant.owner), &entry).await.map_err(|e| e.to_string())?;
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

/// A dozen users, team rights and a blocked contractor.
pub fn demo_users() -> UsersFile {
    let user = DEMO_PEOPLE
        .iter()
        .enumerate()
        .map(|(i, (name, display, title, group))| {
            let domain = if *group == "external" { "partner.example.org" } else { "example.com" };
            UserEntry {
                uri: format!("sip:{name}@{domain}"),
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
    UsersFile {
        user,
        grant: vec![
            grant("sip:alice@example.com", "sip:bob@example.com", "team"),
            grant("sip:bob@example.com", "sip:alice@example.com", "personal"),
            grant("sip:alice@example.com", "sip:carol@example.com", "team"),
            grant("sip:alice@example.com", "sip:mallory@partner.example.org", "blocked"),
        ],
    }
}

/// Plays the demo's live activity: Dave takes a phone call now and then; Frank sits in a meeting.
pub fn spawn_demo_activity(gateway: &Arc<Gateway>) {
    let weak = Arc::downgrade(gateway);
    tokio::spawn(async move {
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
            let _ = gw.set_source("sip:frank@example.com", "calendar", SourceReport { data: calendar, expires: None });
            let desktop = ReportData::Computer(ComputerData { state: ComputerState::LoggedIn });
            let _ = gw.set_source("sip:frank@example.com", "desktop", SourceReport { data: desktop, expires: None });
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
            let _ = gw.set_source("sip:dave@example.com", "pbx", SourceReport { data: phone, expires: None });
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
}
