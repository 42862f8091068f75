//! A user's server-side contact list: groups (the default group `~` always first) and contacts,
//! with a change counter (`deltaNum`). Every operation validates first and changes nothing on
//! error; the limits are those of the CWA/OCS documents (64 groups, 256-character names,
//! 454-character URIs).

use super::contact::{is_valid_sip_uri, normalize_uri};
use serde::{Deserialize, Serialize};

pub const DEFAULT_GROUP_ID: u32 = 1;
pub const DEFAULT_GROUP_NAME: &str = "~";
pub const MAX_GROUP_ID: u32 = 64;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_GROUPS_PER_CONTACT: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub uri: String,
    pub name: String,
    pub subscribed: bool,
    pub tag: bool,
    pub groups: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactList {
    pub groups: Vec<Group>,
    pub contacts: Vec<Contact>,
    pub delta_num: u64,
}

impl Default for ContactList {
    fn default() -> Self {
        ContactList {
            groups: vec![Group { id: DEFAULT_GROUP_ID, name: DEFAULT_GROUP_NAME.into() }],
            contacts: Vec::new(),
            delta_num: 0,
        }
    }
}

/// Why a contact-list operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    NotAllowed(String),
}

/// One item of a delta, as the `contactGroup` event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Group(Group, Action),
    Contact(Contact, Action),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Updated,
    Deleted,
}

/// What `addContact` / `updateContact` carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    pub uri: String,
    pub name: String,
    pub subscribed: bool,
    pub tag: bool,
    /// `None` = keep (update) or the default group (add).
    pub groups: Option<Vec<u32>>,
}

fn check_name(name: &str, what: &str) -> Result<(), ListError> {
    if name.trim().is_empty() {
        return Err(ListError::Invalid(format!("the {what} name must not be empty")));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ListError::Invalid(format!("the {what} name is longer than {MAX_NAME_CHARS} characters")));
    }
    Ok(())
}

impl ContactList {
    pub fn group(&self, id: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn contact(&self, uri: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.uri == uri)
    }

    fn name_taken(&self, name: &str, except: Option<u32>) -> bool {
        self.groups.iter().any(|g| Some(g.id) != except && g.name.eq_ignore_ascii_case(name.trim()))
    }

    pub fn add_group(&mut self, name: &str) -> Result<Vec<Change>, ListError> {
        check_name(name, "group")?;
        if self.name_taken(name, None) {
            return Err(ListError::Invalid(format!("a group named {:?} already exists", name.trim())));
        }
        let id = (DEFAULT_GROUP_ID + 1..=MAX_GROUP_ID)
            .find(|id| self.group(*id).is_none())
            .ok_or_else(|| ListError::Limit(format!("at most {MAX_GROUP_ID} groups")))?;
        let group = Group { id, name: name.trim().to_string() };
        self.groups.push(group.clone());
        Ok(self.bump(vec![Change::Group(group, Action::Added)]))
    }

    pub fn rename_group(&mut self, id: u32, name: &str) -> Result<Vec<Change>, ListError> {
        self.editable_group(id)?;
        check_name(name, "group")?;
        if self.name_taken(name, Some(id)) {
            return Err(ListError::Invalid(format!("a group named {:?} already exists", name.trim())));
        }
        let group = self.groups.iter_mut().find(|g| g.id == id).expect("checked");
        group.name = name.trim().to_string();
        let group = group.clone();
        Ok(self.bump(vec![Change::Group(group, Action::Updated)]))
    }

    /// Deletes a group; its contacts stay (in `~` when it was their only group).
    pub fn delete_group(&mut self, id: u32) -> Result<Vec<Change>, ListError> {
        let group = self.editable_group(id)?.clone();
        self.groups.retain(|g| g.id != id);
        let mut changes = vec![Change::Group(group, Action::Deleted)];
        for contact in self.contacts.iter_mut().filter(|c| c.groups.contains(&id)) {
            contact.groups.retain(|g| *g != id);
            if contact.groups.is_empty() {
                contact.groups.push(DEFAULT_GROUP_ID);
            }
            changes.push(Change::Contact(contact.clone(), Action::Updated));
        }
        Ok(self.bump(changes))
    }

    fn editable_group(&self, id: u32) -> Result<&Group, ListError> {
        if id == DEFAULT_GROUP_ID {
            return Err(ListError::NotAllowed("the default group ~ cannot be renamed or deleted".into()));
        }
        self.group(id).ok_or_else(|| ListError::Invalid(format!("there is no group {id}")))
    }

    fn checked_groups(&self, groups: &[u32]) -> Result<Vec<u32>, ListError> {
        if groups.len() > MAX_GROUPS_PER_CONTACT {
            return Err(ListError::Limit(format!("a contact belongs to at most {MAX_GROUPS_PER_CONTACT} groups")));
        }
        if let Some(unknown) = groups.iter().find(|id| self.group(**id).is_none()) {
            return Err(ListError::Invalid(format!("there is no group {unknown}")));
        }
        let mut out = groups.to_vec();
        out.dedup();
        Ok(if out.is_empty() { vec![DEFAULT_GROUP_ID] } else { out })
    }

    fn checked_spec(&self, spec: &ContactSpec) -> Result<(String, Option<Vec<u32>>), ListError> {
        if !is_valid_sip_uri(&spec.uri) {
            return Err(ListError::Invalid(format!("{:?} is not a sip: URI", spec.uri)));
        }
        check_name(&spec.name, "contact")?;
        let groups = spec.groups.as_deref().map(|g| self.checked_groups(g)).transpose()?;
        Ok((normalize_uri(&spec.uri), groups))
    }

    pub fn add_contact(&mut self, spec: &ContactSpec, max_contacts: usize) -> Result<Vec<Change>, ListError> {
        let (uri, groups) = self.checked_spec(spec)?;
        if self.contact(&uri).is_some() {
            return Err(ListError::Invalid(format!("{uri} is already in the contact list")));
        }
        if self.contacts.len() >= max_contacts {
            return Err(ListError::Limit(format!("at most {max_contacts} contacts")));
        }
        let contact = Contact {
            uri,
            name: spec.name.trim().to_string(),
            subscribed: spec.subscribed,
            tag: spec.tag,
            groups: groups.unwrap_or_else(|| vec![DEFAULT_GROUP_ID]),
        };
        self.contacts.push(contact.clone());
        Ok(self.bump(vec![Change::Contact(contact, Action::Added)]))
    }

    /// Updates a contact; groups left out are kept.
    pub fn update_contact(&mut self, spec: &ContactSpec) -> Result<Vec<Change>, ListError> {
        let (uri, groups) = self.checked_spec(spec)?;
        let contact = self
            .contacts
            .iter_mut()
            .find(|c| c.uri == uri)
            .ok_or_else(|| ListError::Invalid(format!("{uri} is not in the contact list")))?;
        contact.name = spec.name.trim().to_string();
        contact.subscribed = spec.subscribed;
        contact.tag = spec.tag;
        if let Some(groups) = groups {
            contact.groups = groups;
        }
        let contact = contact.clone();
        Ok(self.bump(vec![Change::Contact(contact, Action::Updated)]))
    }

    pub fn delete_contact(&mut self, uri: &str) -> Result<Vec<Change>, ListError> {
        let uri = normalize_uri(uri);
        let index = self
            .contacts
            .iter()
            .position(|c| c.uri == uri)
            .ok_or_else(|| ListError::Invalid(format!("{uri} is not in the contact list")))?;
        let contact = self.contacts.remove(index);
        Ok(self.bump(vec![Change::Contact(contact, Action::Deleted)]))
    }

    pub fn subscribed_uris(&self) -> impl Iterator<Item = &str> {
        self.contacts.iter().filter(|c| c.subscribed).map(|c| c.uri.as_str())
    }

    fn bump(&mut self, changes: Vec<Change>) -> Vec<Change> {
        self.delta_num += 1;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uri: &str, groups: Option<Vec<u32>>) -> ContactSpec {
        ContactSpec { uri: uri.into(), name: "Someone".into(), subscribed: true, tag: false, groups }
    }

    #[test]
    fn groups_get_server_ids_unique_names_and_the_default_is_protected() {
        let mut list = ContactList::default();
        list.add_group("Friends").unwrap();
        assert_eq!(list.group(2).unwrap().name, "Friends");
        assert!(list.add_group("friends").is_err(), "names are unique regardless of case");
        assert!(list.add_group("").is_err());
        assert!(list.add_group(&"x".repeat(257)).is_err());
        assert!(matches!(list.rename_group(1, "Mine"), Err(ListError::NotAllowed(_))));
        assert!(matches!(list.delete_group(1), Err(ListError::NotAllowed(_))));
        assert!(list.rename_group(9, "Nope").is_err());
        list.rename_group(2, "Pals").unwrap();
        assert_eq!(list.delta_num, 2);
        for i in 3..=64 {
            list.add_group(&format!("g{i}")).unwrap();
        }
        assert!(matches!(list.add_group("one too many"), Err(ListError::Limit(_))));
    }

    #[test]
    fn contacts_stay_when_their_group_goes() {
        let mut list = ContactList::default();
        list.add_group("Team").unwrap();
        list.add_contact(&spec("sip:Bob@x.org", Some(vec![2])), 10).unwrap();
        assert_eq!(list.contact("sip:bob@x.org").unwrap().groups, vec![2]);
        let changes = list.delete_group(2).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(list.contact("sip:bob@x.org").unwrap().groups, vec![1]);
    }

    #[test]
    fn contact_validation_changes_nothing() {
        let mut list = ContactList::default();
        let before = list.clone();
        assert!(list.add_contact(&spec("bob@x.org", None), 10).is_err());
        assert!(list.add_contact(&spec("sip:bob@x.org", Some(vec![7])), 10).is_err());
        assert!(list.add_contact(&spec("sip:bob@x.org", Some((1..=65).collect())), 10).is_err());
        assert!(list.update_contact(&spec("sip:bob@x.org", None)).is_err());
        assert!(list.delete_contact("sip:bob@x.org").is_err());
        assert_eq!(list, before);
        list.add_contact(&spec("sip:bob@x.org", None), 1).unwrap();
        assert!(matches!(list.add_contact(&spec("sip:carol@x.org", None), 1), Err(ListError::Limit(_))));
        assert!(list.add_contact(&spec("sip:bob@x.org", None), 10).is_err(), "no duplicates");
    }

    #[test]
    fn update_keeps_groups_left_out() {
        let mut list = ContactList::default();
        list.add_group("Team").unwrap();
        list.add_contact(&spec("sip:bob@x.org", Some(vec![1, 2])), 10).unwrap();
        let mut update = spec("sip:bob@x.org", None);
        update.subscribed = false;
        list.update_contact(&update).unwrap();
        let bob = list.contact("sip:bob@x.org").unwrap();
        assert_eq!((bob.subscribed, bob.groups.clone()), (false, vec![1, 2]));
    }
}
