//! Rendering of the contact-list and access-control events: `contactGroup` (full or delta),
//! `containers`, `subscribers`, `searchResult` and `configuration`.

use super::envelope::EventPayload;
use super::writer::{attributes, XmlWriter};
use crate::model::contacts::{Action, Change, Contact, ContactList, Group};
use crate::model::rights::{AccessLevel, Member, RightsEntry};

fn write_group(w: &mut XmlWriter, group: &Group, action: Option<&str>) {
    let id = group.id.to_string();
    w.empty("group", &[("id", Some(&id)), ("name", Some(&group.name)), ("action", action)]);
}

fn write_contact(w: &mut XmlWriter, contact: &Contact, action: Option<&str>) {
    let groups = contact.groups.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    let (subscribed, tag) = (contact.subscribed.to_string(), contact.tag.to_string());
    w.empty(
        "contact",
        &[
            ("uri", Some(&contact.uri)),
            ("name", Some(&contact.name)),
            ("subscribed", Some(&subscribed)),
            ("tag", Some(&tag)),
            ("groups", Some(&groups)),
            ("action", action),
        ],
    );
}

/// The whole list (`fullList="true"`).
pub fn contact_group_full(list: &ContactList) -> EventPayload {
    let mut w = EventPayload::content_writer();
    for group in &list.groups {
        write_group(&mut w, group, None);
    }
    for contact in &list.contacts {
        write_contact(&mut w, contact, None);
    }
    let delta_num = list.delta_num.to_string();
    let head = attributes(&[("fullList", Some("true")), ("deltaNum", Some(&delta_num))]);
    EventPayload::new("contactGroup", head, w.finish_fragment())
}

/// Only what changed, each item with its `action`.
pub fn contact_group_delta(delta_num: u64, changes: &[Change]) -> EventPayload {
    let mut w = EventPayload::content_writer();
    for change in changes {
        match change {
            Change::Group(group, action) => write_group(&mut w, group, Some(action_name(*action))),
            Change::Contact(contact, action) => write_contact(&mut w, contact, Some(action_name(*action))),
        }
    }
    let delta_num = delta_num.to_string();
    let head = attributes(&[("fullList", Some("false")), ("deltaNum", Some(&delta_num))]);
    EventPayload::new("contactGroup", head, w.finish_fragment())
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Added => "added",
        Action::Updated => "updated",
        Action::Deleted => "deleted",
    }
}

/// The CWA `type` and `value` of a member.
pub fn member_type_value(member: &Member) -> (&'static str, &str) {
    match member {
        Member::Uri(uri) => ("uri", uri),
        Member::Domain(domain) => ("domain", domain),
        Member::Group(group) => ("group", group),
        Member::SameEnterprise => ("sameEnterprise", ""),
        Member::Federated => ("federated", ""),
        Member::PublicCloud => ("publicCloud", ""),
        Member::Everyone => ("everyone", ""),
    }
}

fn write_container(w: &mut XmlWriter, level: AccessLevel, entries: &[RightsEntry]) {
    let id = level.container_id().to_string();
    let members: Vec<_> = entries.iter().filter(|e| e.level == level).collect();
    if members.is_empty() {
        w.empty("container", &[("id", Some(&id))]);
        return;
    }
    w.open("container", &[("id", Some(&id))]);
    for entry in members {
        let (kind, value) = member_type_value(&entry.member);
        w.empty("member", &[("type", Some(kind)), ("value", Some(value))]);
    }
    w.close("container");
}

/// `containers` with the given levels' containers in full.
pub fn containers(entries: &[RightsEntry], levels: &[AccessLevel]) -> EventPayload {
    let mut w = EventPayload::content_writer();
    for level in levels {
        write_container(&mut w, *level, entries);
    }
    EventPayload::new("containers", Default::default(), w.finish_fragment())
}

/// One watcher as the `subscribers` event shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberView {
    pub uri: String,
    pub display_name: String,
    pub same_enterprise: bool,
    pub acknowledged: bool,
}

pub fn subscribers(list: &[SubscriberView]) -> EventPayload {
    let mut w = EventPayload::content_writer();
    for s in list {
        let network = if s.same_enterprise { "sameEnterprise" } else { "federated" };
        let acknowledged = s.acknowledged.to_string();
        let attrs = [
            ("uri", Some(s.uri.as_str())),
            ("displayName", Some(s.display_name.as_str())),
            ("sourceNetwork", Some(network)),
            ("acknowledged", Some(acknowledged.as_str())),
        ];
        w.empty("subscriber", &attrs);
    }
    EventPayload::new("subscribers", Default::default(), w.finish_fragment())
}

/// One directory entry of a search result, already cut to what the searcher may see.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryEntry {
    pub uri: String,
    pub display_name: String,
    pub email: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub work_phone: Option<String>,
}

pub fn search_result(rid: &str, entries: &[DirectoryEntry], more_available: bool) -> EventPayload {
    let mut w = EventPayload::content_writer();
    for e in entries {
        let attrs = [
            ("uri", Some(e.uri.as_str())),
            ("displayName", Some(e.display_name.as_str())),
            ("email", e.email.as_deref()),
            ("title", e.title.as_deref()),
            ("company", e.company.as_deref()),
            ("department", e.department.as_deref()),
            ("office", e.office.as_deref()),
            ("phone", e.work_phone.as_deref()),
        ];
        w.empty("user", &attrs);
    }
    let (returned, more) = (entries.len().to_string(), more_available.to_string());
    let head = attributes(&[("rid", Some(rid)), ("returned", Some(&returned)), ("moreAvailable", Some(&more))]);
    EventPayload::new("searchResult", head, w.finish_fragment())
}

/// Policy a client needs: appear offline allowed, default search settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfiguration {
    pub enable_appear_offline: bool,
    pub default_search_field: String,
    pub default_search_function: String,
    pub max_search_results: usize,
}

pub fn configuration(c: &ClientConfiguration) -> EventPayload {
    let mut w = EventPayload::content_writer();
    w.text_element("enableAppearOffline", if c.enable_appear_offline { "True" } else { "False" });
    w.text_element("defaultSearchField", &c.default_search_field);
    w.text_element("defaultSearchFunction", &c.default_search_function);
    w.text_element("maxSearchResults", &c.max_search_results.to_string());
    w.empty("imComposingTimers", &[("refreshInterval", Some("60")), ("timeout", Some("120"))]);
    EventPayload::new("configuration", Default::default(), w.finish_fragment())
}
