//! Rendering of the contact-list and access-control events: `contactGroup` (full or delta),
//! `containers`, `subscribers`, `searchResult` and `configuration`. Each writes the event's
//! children into a content writer and returns the attributes of the event element (used by
//! [`super::events`]).

use super::writer::{attributes, Fragment, XmlWriter};
use crate::hub::event::{ClientConfiguration, DirectoryEntry, SubscriberView};
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
pub fn contact_group_full(w: &mut XmlWriter, list: &ContactList) -> Fragment {
    for group in &list.groups {
        write_group(w, group, None);
    }
    for contact in &list.contacts {
        write_contact(w, contact, None);
    }
    let delta_num = list.delta_num.to_string();
    attributes(&[("fullList", Some("true")), ("deltaNum", Some(&delta_num))])
}

/// Only what changed, each item with its `action`.
pub fn contact_group_delta(w: &mut XmlWriter, delta_num: u64, changes: &[Change]) -> Fragment {
    for change in changes {
        match change {
            Change::Group(group, action) => write_group(w, group, Some(action_name(*action))),
            Change::Contact(contact, action) => write_contact(w, contact, Some(action_name(*action))),
        }
    }
    let delta_num = delta_num.to_string();
    attributes(&[("fullList", Some("false")), ("deltaNum", Some(&delta_num))])
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
pub fn containers(w: &mut XmlWriter, entries: &[RightsEntry], levels: &[AccessLevel]) {
    for level in levels {
        write_container(w, *level, entries);
    }
}

pub fn subscribers(w: &mut XmlWriter, list: &[SubscriberView]) {
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
}

pub fn search_result(w: &mut XmlWriter, rid: &str, entries: &[DirectoryEntry], more_available: bool) -> Fragment {
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
    attributes(&[("rid", Some(rid)), ("returned", Some(&returned)), ("moreAvailable", Some(&more))])
}

pub fn configuration(w: &mut XmlWriter, c: &ClientConfiguration) {
    w.text_element("enableAppearOffline", if c.enable_appear_offline { "True" } else { "False" });
    w.text_element("defaultSearchField", &c.default_search_field);
    w.text_element("defaultSearchFunction", &c.default_search_function);
    w.text_element("maxSearchResults", &c.max_search_results.to_string());
    w.empty("imComposingTimers", &[("refreshInterval", Some("60")), ("timeout", Some("120"))]);
}
