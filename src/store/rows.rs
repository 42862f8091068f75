//! The store's own row shapes and their conversions from and to the model. What is written to a
//! column is defined here and nowhere else: renaming a field of an API or model type cannot
//! change (and so silently corrupt) stored data, because the compiler sends whoever renames it
//! to the conversions below. Structured values that only the gateway reads are JSON documents of
//! these types; keys (the rights member) are plain columns.

use super::{StoreError, StoreResult};
use crate::model::contact::{Phones, Profile};
use crate::model::contacts::{Contact, ContactList, Group};
use crate::model::raw::RawCategory;
use crate::model::reports::ReportData;
use crate::model::rights::{AccessLevel, Member};
use crate::model::sources::{ManualKind, ManualState, Note, Reachability, Timestamp};
use serde::{Deserialize, Serialize};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::corrupt(format!("unknown {what} {value:?} in the store"))
}

/// A rights member as two columns: `(member_kind, member_value)`; the value is empty for kinds
/// that carry none.
pub fn member_columns(member: &Member) -> (&'static str, &str) {
    match member {
        Member::Uri(v) => ("uri", v),
        Member::Domain(v) => ("domain", v),
        Member::Group(v) => ("group", v),
        Member::SameEnterprise => ("sameEnterprise", ""),
        Member::Federated => ("federated", ""),
        Member::PublicCloud => ("publicCloud", ""),
        Member::Everyone => ("everyone", ""),
    }
}

pub fn member_from_columns(kind: &str, value: String) -> StoreResult<Member> {
    Ok(match kind {
        "uri" => Member::Uri(value),
        "domain" => Member::Domain(value),
        "group" => Member::Group(value),
        "sameEnterprise" => Member::SameEnterprise,
        "federated" => Member::Federated,
        "publicCloud" => Member::PublicCloud,
        "everyone" => Member::Everyone,
        other => return Err(corrupt("member kind", other)),
    })
}

/// A moment as a column: Unix milliseconds.
pub fn time_column(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub fn time_from_column(millis: i64) -> StoreResult<Timestamp> {
    chrono::DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt("time", &millis.to_string()))
}

pub fn level_column(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::Blocked => "blocked",
        AccessLevel::Public => "public",
        AccessLevel::Company => "company",
        AccessLevel::Team => "team",
        AccessLevel::Personal => "personal",
    }
}

pub fn level_from_column(name: &str) -> StoreResult<AccessLevel> {
    AccessLevel::ALL.into_iter().find(|l| level_column(*l) == name).ok_or_else(|| corrupt("access level", name))
}

#[derive(Debug, Serialize, Deserialize)]
struct PhonesDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    work: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    home: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    other: Option<String>,
}

/// `users.profile`.
#[derive(Debug, Serialize, Deserialize)]
struct ProfileDoc {
    uri: String,
    display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    office: Option<String>,
    #[serde(default)]
    phones: Option<PhonesDoc>,
    #[serde(default)]
    groups: Vec<String>,
}

pub fn profile_to_column(p: &Profile) -> StoreResult<String> {
    let phones = PhonesDoc {
        work: p.phones.work.clone(),
        mobile: p.phones.mobile.clone(),
        home: p.phones.home.clone(),
        other: p.phones.other.clone(),
    };
    let doc = ProfileDoc {
        uri: p.uri.clone(),
        display_name: p.display_name.clone(),
        email: p.email.clone(),
        title: p.title.clone(),
        company: p.company.clone(),
        department: p.department.clone(),
        office: p.office.clone(),
        phones: Some(phones),
        groups: p.groups.clone(),
    };
    Ok(serde_json::to_string(&doc)?)
}

pub fn profile_from_column(text: &str) -> StoreResult<Profile> {
    let doc: ProfileDoc = serde_json::from_str(text)?;
    let phones = doc.phones.map(|p| Phones { work: p.work, mobile: p.mobile, home: p.home, other: p.other });
    Ok(Profile {
        uri: doc.uri,
        display_name: doc.display_name,
        email: doc.email,
        title: doc.title,
        company: doc.company,
        department: doc.department,
        office: doc.office,
        phones: phones.unwrap_or_default(),
        groups: doc.groups,
    })
}

const MANUAL_KINDS: [(ManualKind, &str); 6] = [
    (ManualKind::Available, "available"),
    (ManualKind::Busy, "busy"),
    (ManualKind::DoNotDisturb, "do-not-disturb"),
    (ManualKind::BeRightBack, "be-right-back"),
    (ManualKind::Away, "away"),
    (ManualKind::AppearOffline, "appear-offline"),
];

const REACHABILITIES: [(Reachability, &str); 5] = [
    (Reachability::Normal, "normal"),
    (Reachability::Pause, "pause"),
    (Reachability::BusinessTrip, "business-trip"),
    (Reachability::HomeOffice, "home-office"),
    (Reachability::Vacation, "vacation"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table.iter().find(|(v, _)| *v == value).map(|(_, n)| *n).unwrap_or_default()
}

fn value_of<T: Copy>(table: &[(T, &'static str)], what: &str, name: &str) -> StoreResult<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v).ok_or_else(|| corrupt(what, name))
}

/// `presence.manual`.
#[derive(Debug, Serialize, Deserialize)]
struct ManualDoc {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<Timestamp>,
    #[serde(default)]
    reachability: Option<String>,
}

pub fn manual_to_column(m: &ManualState) -> StoreResult<String> {
    let doc = ManualDoc {
        kind: name_of(&MANUAL_KINDS, m.kind).into(),
        text: m.text.clone(),
        from: m.from,
        to: m.to,
        reachability: Some(name_of(&REACHABILITIES, m.reachability).into()),
    };
    Ok(serde_json::to_string(&doc)?)
}

pub fn manual_from_column(text: &str) -> StoreResult<ManualState> {
    let doc: ManualDoc = serde_json::from_str(text)?;
    let reachability = match doc.reachability {
        Some(name) => value_of(&REACHABILITIES, "reachability", &name)?,
        None => Reachability::Normal,
    };
    Ok(ManualState {
        kind: value_of(&MANUAL_KINDS, "manual state", &doc.kind)?,
        text: doc.text,
        from: doc.from,
        to: doc.to,
        reachability,
    })
}

/// `presence.note`.
#[derive(Debug, Serialize, Deserialize)]
struct NoteDoc {
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<Timestamp>,
}

/// A [`PresenceUpdate`](super::PresenceUpdate) as the parameters of the presence upsert: for each
/// part whether it is set, and its column value.
pub struct PresenceUpdateColumns {
    pub set_manual: bool,
    pub manual: Option<String>,
    pub set_note: bool,
    pub note: Option<String>,
    /// Whether the parts set must still hold `expected_manual` / `expected_note` (as written by
    /// this module, which writes a value the same way every time).
    pub conditional: bool,
    pub expected_manual: Option<String>,
    pub expected_note: Option<String>,
}

impl PresenceUpdateColumns {
    pub fn of(update: &super::PresenceUpdate) -> StoreResult<PresenceUpdateColumns> {
        let expected = update.only_if.as_ref();
        Ok(PresenceUpdateColumns {
            set_manual: update.manual.is_some(),
            manual: update.manual.as_ref().and_then(Option::as_ref).map(manual_to_column).transpose()?,
            set_note: update.note.is_some(),
            note: update.note.as_ref().and_then(Option::as_ref).map(note_to_column).transpose()?,
            conditional: expected.is_some(),
            expected_manual: expected.and_then(|p| p.manual.as_ref()).map(manual_to_column).transpose()?,
            expected_note: expected.and_then(|p| p.note.as_ref()).map(note_to_column).transpose()?,
        })
    }
}

pub fn note_to_column(n: &Note) -> StoreResult<String> {
    Ok(serde_json::to_string(&NoteDoc { text: n.text.clone(), expires: n.expires })?)
}

pub fn note_from_column(text: &str) -> StoreResult<Note> {
    let doc: NoteDoc = serde_json::from_str(text)?;
    Ok(Note { text: doc.text, expires: doc.expires })
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupDoc {
    id: u32,
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContactDoc {
    uri: String,
    name: String,
    subscribed: bool,
    tag: bool,
    groups: Vec<u32>,
}

/// `contact_lists.list`.
#[derive(Debug, Serialize, Deserialize)]
struct ContactListDoc {
    groups: Vec<GroupDoc>,
    contacts: Vec<ContactDoc>,
    delta_num: u64,
}

pub fn contact_list_to_column(list: &ContactList) -> StoreResult<String> {
    let doc = ContactListDoc {
        groups: list.groups.iter().map(|g| GroupDoc { id: g.id, name: g.name.clone() }).collect(),
        contacts: list
            .contacts
            .iter()
            .map(|c| ContactDoc {
                uri: c.uri.clone(),
                name: c.name.clone(),
                subscribed: c.subscribed,
                tag: c.tag,
                groups: c.groups.clone(),
            })
            .collect(),
        delta_num: list.delta_num,
    };
    Ok(serde_json::to_string(&doc)?)
}

pub fn contact_list_from_column(text: &str) -> StoreResult<ContactList> {
    let doc: ContactListDoc = serde_json::from_str(text)?;
    Ok(ContactList {
        groups: doc.groups.into_iter().map(|g| Group { id: g.id, name: g.name }).collect(),
        contacts: doc
            .contacts
            .into_iter()
            .map(|c| Contact { uri: c.uri, name: c.name, subscribed: c.subscribed, tag: c.tag, groups: c.groups })
            .collect(),
        delta_num: doc.delta_num,
    })
}

/// `raw_categories.category`.
#[derive(Debug, Serialize, Deserialize)]
struct RawCategoryDoc {
    name: String,
    namespace: String,
    instance: u32,
    level: String,
    expire_type: String,
    content: String,
}

pub fn raw_category_to_column(c: &RawCategory) -> StoreResult<String> {
    let doc = RawCategoryDoc {
        name: c.name.clone(),
        namespace: c.namespace.clone(),
        instance: c.instance,
        level: level_column(c.level).into(),
        expire_type: c.expire_type.clone(),
        content: c.content.clone(),
    };
    Ok(serde_json::to_string(&doc)?)
}

pub fn raw_category_from_column(text: &str) -> StoreResult<RawCategory> {
    let doc: RawCategoryDoc = serde_json::from_str(text)?;
    Ok(RawCategory {
        name: doc.name,
        namespace: doc.namespace,
        instance: doc.instance,
        level: level_from_column(&doc.level)?,
        expire_type: doc.expire_type,
        content: doc.content,
    })
}

/// `source_reports.report`: the report as the JSON API takes it (`kind` plus that kind's fields,
/// README "Sources"). Unlike the other documents this is not a store-own shape: the body of
/// `PUT …/sources/{source}` is a published interface that does not change, so the column reads
/// back as long as the API does (pinned by a test below).
pub fn report_to_column(report: &ReportData) -> StoreResult<String> {
    Ok(serde_json::to_string(report)?)
}

pub fn report_from_column(text: &str) -> StoreResult<ReportData> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows written before the store had its own types (the model's serde shapes of the time)
    /// still read back.
    #[test]
    fn documents_of_the_earlier_layout_still_read() {
        let profile = profile_from_column(
            r#"{"uri":"sip:a@x.test","display_name":"A","title":"Boss","phones":{"work":"+1"},"groups":["g"]}"#,
        )
        .unwrap();
        assert_eq!(profile.phones.work.as_deref(), Some("+1"));
        assert_eq!(profile.groups, vec!["g".to_string()]);
        let manual = manual_from_column(r#"{"kind":"do-not-disturb","reachability":"home-office"}"#).unwrap();
        assert_eq!(manual.kind, ManualKind::DoNotDisturb);
        assert_eq!(manual.reachability, Reachability::HomeOffice);
        let list = contact_list_from_column(
            r#"{"groups":[{"id":1,"name":"~"}],"contacts":[{"uri":"sip:b@x.test","name":"B","subscribed":true,"tag":false,"groups":[1]}],"delta_num":3}"#,
        )
        .unwrap();
        assert_eq!(list.delta_num, 3);
        assert_eq!(list.contacts[0].groups, vec![1]);
    }

    /// Stored reports read back as the API wrote them (a renamed field would strand them).
    #[test]
    fn stored_reports_keep_reading() {
        let text = r#"{"kind":"phone","lines":[{"number":"tel:+1","state":"in-service","dnd":false}],"calls":[{"id":"c1","service":"phone","state":"connected","direction":"incoming","external":true,"partnerNumber":"tel:+2","line":"tel:+1"}],"forwards":[{"mode":"no-answer","destination":"tel:+3","noAnswerSeconds":20}]}"#;
        let report = report_from_column(text).unwrap();
        assert_eq!(report_from_column(&report_to_column(&report).unwrap()).unwrap(), report);
        let ReportData::Phone(phone) = &report else { panic!("{report:?}") };
        assert_eq!((phone.calls[0].id.as_str(), phone.forwards[0].destination.as_str()), ("c1", "tel:+3"));
        let calendar = r#"{"kind":"calendar","appointments":[{"id":"a","start":"2026-01-01T09:00:00Z","end":"2026-01-01T10:00:00Z","status":"busy"}],"oofMessage":"away"}"#;
        assert!(
            matches!(report_from_column(calendar).unwrap(), ReportData::Calendar(c) if c.oof_message.as_deref() == Some("away"))
        );
        assert!(report_from_column(r#"{"kind":"fax"}"#).is_err());
    }

    #[test]
    fn every_member_and_level_survives_its_columns() {
        for member in [
            Member::Uri("sip:a@x.test".into()),
            Member::Domain("x.test".into()),
            Member::Group("g".into()),
            Member::SameEnterprise,
            Member::Federated,
            Member::PublicCloud,
            Member::Everyone,
        ] {
            let (kind, value) = member_columns(&member);
            assert_eq!(member_from_columns(kind, value.to_string()).unwrap(), member);
        }
        for level in AccessLevel::ALL {
            assert_eq!(level_from_column(level_column(level)).unwrap(), level);
        }
        assert!(member_from_columns("nope", String::new()).is_err());
    }
}
