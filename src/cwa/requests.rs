//! Typed CWA requests: a `cwaRequests` tree turned into methods with their `rid`, each either
//! usable, invalid (schema: `requestInvalid`) or failed validation (`requestFailed`). Every text
//! and attribute value of a method passes the input text rule ([`crate::model::text`]) before the
//! method is read: one refused character fails that method with 18001 naming where it was.

use super::wire::manual_kind_for_availability;
use super::xml::Element;
use super::NS_CWA;
use crate::error::GatewayError;
use crate::model::contact::{is_valid_sip_uri, normalize_uri};
use crate::model::contacts::ContactSpec;
use crate::model::rights::Member;
use crate::model::sources::ManualKind;
use crate::model::text;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logon {
    pub user: String,
    pub password: String,
    pub uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiateSession {
    pub availability: Option<ManualKind>,
    pub auto_publish_machine_state: bool,
    pub auto_subscribe_contacts: bool,
    /// `categoryEventFilter rawCategories="a b"`: the raw categories this session receives
    /// (`None`: all its level admits).
    pub raw_categories: Option<Vec<String>>,
}

/// One category of a `publishSelfPresence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A user (manual) state with its optional free text (`activity/custom`, "In the lab").
    UserState(ManualKind, Option<String>),
    /// The machine state of this client: active or idle.
    MachineState { idle: bool },
    /// The personal note; empty text clears it.
    Note(String),
}

/// `addMember` (true) or `deleteMember` (false) of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub add: bool,
    pub member: Member,
}

/// A directory search: the criteria given, and how to combine them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchQuery {
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email_alias: Option<String>,
    /// true = all criteria must match ("and"); false = any ("or", the default).
    pub all: bool,
}

/// The URIs a `queryPresence`, `subscribePresence` or `unSubscribePresence` names, as read:
/// trimmed, lower-cased, the first of each in order. Held as one text with the span of each URI,
/// so that a request of many URIs costs two buffers, not one per URI.
#[derive(Clone, Default)]
pub struct UriList {
    text: String,
    spans: Vec<std::ops::Range<usize>>,
}

impl UriList {
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.spans.iter().map(|span| &self.text[span.clone()])
    }

    /// The URIs as a slice to lend (one buffer of pointers).
    pub fn to_strs(&self) -> Vec<&str> {
        self.iter().collect()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Appends `uri` as given.
    fn push(&mut self, uri: &str) {
        let start = self.text.len();
        self.text.push_str(uri);
        self.spans.push(start..self.text.len());
    }

    /// Keeps the first of each URI, in order. The set is bounded by the URI limit and keyed per
    /// process (the URIs are the client's); it borrows them.
    fn keep_first_of_each(&mut self) {
        let text = &self.text;
        let mut seen: HashSet<&str, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(self.spans.len(), Default::default());
        self.spans.retain(|span| seen.insert(&text[span.clone()]));
    }
}

impl<'a> FromIterator<&'a str> for UriList {
    /// The URIs as given, each kept (what a test expects a request to read as).
    fn from_iter<I: IntoIterator<Item = &'a str>>(uris: I) -> UriList {
        let mut list = UriList::default();
        for uri in uris {
            list.push(uri);
        }
        list
    }
}

/// Lists are equal when they name the same URIs in the same order (whatever their text holds
/// besides: a repeated URI's bytes stay in it).
impl PartialEq for UriList {
    fn eq(&self, other: &UriList) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for UriList {}

impl std::fmt::Debug for UriList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    InitiateSession(InitiateSession),
    TerminateSession,
    QueryPresence(UriList),
    SubscribePresence(UriList),
    UnsubscribePresence(UriList),
    PublishSelfPresence(Vec<Publication>),
    AddGroup {
        name: String,
    },
    UpdateGroup {
        id: u32,
        name: String,
    },
    DeleteGroup {
        id: u32,
    },
    AddContact(ContactSpec),
    UpdateContact(ContactSpec),
    DeleteContact(String),
    UpdateContainer {
        id: u32,
        changes: Vec<MemberChange>,
    },
    AcknowledgeSubscriber(Vec<String>),
    Search(SearchQuery),
    PublishRawCategories(Vec<crate::model::raw::RawCategory>),
    /// A documented method this gateway does not serve (yet): answered with 18102.
    Unsupported(String),
}

/// The outcome of reading one method element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Ok {
        rid: String,
        request: Request,
    },
    /// Schema violation → `requestInvalid`.
    Invalid {
        rid: Option<String>,
        error: GatewayError,
    },
    /// Well-formed but unusable → `requestFailed`.
    Failed {
        rid: String,
        error: GatewayError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBatch {
    pub sid: Option<u64>,
    pub requests: Vec<Parsed>,
    pub unexpected_elements: usize,
}

const KNOWN_UNSUPPORTED: &[&str] = &["conference"];

/// Reads the `cwaRequests` envelope of the command channel from its tree. The command channel
/// reads its bodies in one pass (`super::batch::read_batch`); this is the reference that reading
/// is tested and fuzzed against, and what it falls back to for most methods ([`method_of`]).
pub fn parse_batch(root: &Element, max_uris: usize) -> Result<RequestBatch, GatewayError> {
    if root.name != "cwaRequests" {
        return Err(GatewayError::InvalidFormat("the root element must be cwaRequests".into()));
    }
    let sid = match root.attr("sid") {
        None => None,
        Some(s) => Some(s.trim().parse::<u64>().map_err(|_| GatewayError::InvalidFormat("sid must be an integer".into()))?),
    };
    let mut unexpected = usize::from(root.namespace.as_deref() != Some(NS_CWA));
    let mut requests = Vec::with_capacity(root.children.len());
    for method in &root.children {
        let (parsed, unknown) = method_of(method, max_uris);
        requests.push(parsed);
        unexpected += usize::from(unknown);
    }
    Ok(RequestBatch { sid, requests, unexpected_elements: unexpected })
}

/// One method element of a batch read, and whether it is an element no method has (an
/// `unexpectedElement`).
pub(super) fn method_of(method: &Element, max_uris: usize) -> (Parsed, bool) {
    match parse_method(method, max_uris) {
        Some(parsed) => (parsed, false),
        None => {
            let rid = method.attr("rid").map(str::to_string);
            let error = GatewayError::InvalidFormat(format!("unknown method {}", method.name));
            (Parsed::Invalid { rid, error }, true)
        }
    }
}

fn parse_method(method: &Element, max_uris: usize) -> Option<Parsed> {
    let name = method.name.as_str();
    let Some(rid) = method.attr("rid").map(str::to_string) else {
        let error = GatewayError::InvalidFormat(format!("{name} needs a rid attribute"));
        return Some(Parsed::Invalid { rid: None, error });
    };
    if let Err(error) = check_text(method) {
        return Some(Parsed::Failed { rid, error });
    }
    let result = match name {
        "initiateSession" => parse_initiate(method).map(Request::InitiateSession),
        "terminateSession" => Ok(Request::TerminateSession),
        "queryPresence" => parse_uris(method, max_uris).map(Request::QueryPresence),
        "subscribePresence" => parse_uris(method, max_uris).map(Request::SubscribePresence),
        "unSubscribePresence" | "unsubscribePresence" => parse_uris(method, max_uris).map(Request::UnsubscribePresence),
        "publishSelfPresence" => parse_publish(method).map(Request::PublishSelfPresence),
        "addGroup" => parse_group(method, false, true).map(|(_, name)| Request::AddGroup { name }),
        "updateGroup" => parse_group(method, true, true).map(|(id, name)| Request::UpdateGroup { id, name }),
        "deleteGroup" => parse_group(method, true, false).map(|(id, _)| Request::DeleteGroup { id }),
        "addContact" => parse_contact(method).map(Request::AddContact),
        "updateContact" => parse_contact(method).map(Request::UpdateContact),
        "deleteContact" => parse_single_uri(method).map(Request::DeleteContact),
        "updateContainer" => parse_container(method).map(|(id, changes)| Request::UpdateContainer { id, changes }),
        "acknowledgeSubscriber" => parse_subscriber_uris(method, max_uris).map(Request::AcknowledgeSubscriber),
        "search" => parse_search(method).map(Request::Search),
        "publishRawCategories" => super::raw::parse_publish(method).map(Request::PublishRawCategories),
        "logon" => Err(GatewayError::InvalidOperation("logon goes to /forms/logon.html".into())),
        other if KNOWN_UNSUPPORTED.contains(&other) => Ok(Request::Unsupported(other.to_string())),
        _ => return None,
    };
    Some(match result {
        Ok(request) => Parsed::Ok { rid, request },
        Err(error @ GatewayError::InvalidFormat(_)) => Parsed::Invalid { rid: Some(rid), error },
        Err(error) => Parsed::Failed { rid, error },
    })
}

/// The input text rule over an element and everything in it: attribute values and text.
fn check_text(element: &Element) -> Result<(), GatewayError> {
    let refuse = |place: String, problem: text::ForbiddenChar| GatewayError::InvalidRequest(format!("{place} {problem}"));
    for (name, value) in &element.attrs {
        text::check(value).map_err(|p| refuse(format!("{}@{name}", element.name), p))?;
    }
    text::check(&element.text).map_err(|p| refuse(format!("the text of {}", element.name), p))?;
    element.children.iter().try_for_each(check_text)
}

fn parse_initiate(method: &Element) -> Result<InitiateSession, GatewayError> {
    let availability = match method.child_text("userStateAvailability") {
        None | Some("") => None,
        Some(text) => {
            let number: u32 =
                text.parse().map_err(|_| GatewayError::InvalidFormat("userStateAvailability must be a number".into()))?;
            let kind = manual_kind_for_availability(number)
                .ok_or_else(|| GatewayError::InvalidRequest(format!("userStateAvailability {number} is out of range")))?;
            Some(kind)
        }
    };
    let options = method.child("options");
    let flag = |name: &str| options.and_then(|o| o.attr(name)).map(parse_bool).unwrap_or(Ok(true));
    Ok(InitiateSession {
        availability,
        auto_publish_machine_state: flag("autoPublishMachineState")?,
        auto_subscribe_contacts: flag("autoSubscribePresenceForContacts")?,
        raw_categories: raw_category_filter(method)?,
    })
}

/// The names of `categoryEventFilter rawCategories` (at most 64).
fn raw_category_filter(method: &Element) -> Result<Option<Vec<String>>, GatewayError> {
    let Some(names) = method.child("categoryEventFilter").and_then(|f| f.attr("rawCategories")) else { return Ok(None) };
    let names: Vec<String> = names.split_whitespace().map(str::to_string).collect();
    if names.len() > 64 {
        return Err(GatewayError::LimitExceeded("categoryEventFilter names at most 64 raw categories".into()));
    }
    Ok(Some(names))
}

fn parse_bool(text: &str) -> Result<bool, GatewayError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(GatewayError::InvalidFormat(format!("{text:?} is not a boolean"))),
    }
}

/// `uris/uri` children: 1..=max (counted as sent, before anything else is done with them), each a
/// `sip:` URI; duplicates collapse, in order of first appearance.
fn parse_uris(method: &Element, max_uris: usize) -> Result<UriList, GatewayError> {
    let uris =
        method.child("uris").ok_or_else(|| GatewayError::InvalidFormat(format!("{} needs a uris element", method.name)))?;
    read_uris(uris.children.iter().filter(|c| c.name == "uri").map(|uri| uri.text.as_str()), max_uris)
}

/// The texts of the `uri` elements of a `uris` as [`parse_uris`] reads them.
pub(super) fn read_uris<'a>(texts: impl Iterator<Item = &'a str> + Clone, max_uris: usize) -> Result<UriList, GatewayError> {
    let (count, length) = texts.clone().fold((0, 0), |(count, length), text| (count + 1, length + text.len()));
    if count == 0 {
        return Err(GatewayError::InvalidFormat("uris must hold at least one uri".into()));
    }
    if count > max_uris {
        return Err(GatewayError::LimitExceeded(format!("at most {max_uris} URIs per request")));
    }
    let mut list = UriList { text: String::with_capacity(length), spans: Vec::with_capacity(count) };
    for text in texts {
        let text = text.trim();
        if !is_valid_sip_uri(text) {
            return Err(GatewayError::InvalidRequest(format!("{text:?} is not a sip: URI")));
        }
        // Trimmed already: lower-cased as `normalize_uri` would.
        let start = list.text.len();
        list.push(text);
        list.text[start..].make_ascii_lowercase();
    }
    list.keep_first_of_each();
    Ok(list)
}

fn parse_publish(method: &Element) -> Result<Vec<Publication>, GatewayError> {
    let mut out = Vec::new();
    for category in &method.children {
        if category.name != "cwaCategory" {
            return Err(GatewayError::InvalidFormat(format!("unexpected element {}", category.name)));
        }
        out.push(parse_category(category)?);
    }
    if out.is_empty() {
        return Err(GatewayError::InvalidFormat("publishSelfPresence needs at least one cwaCategory".into()));
    }
    Ok(out)
}

fn parse_category(category: &Element) -> Result<Publication, GatewayError> {
    let name = category.attr("name").ok_or_else(|| GatewayError::InvalidFormat("cwaCategory needs a name".into()))?;
    match name {
        "state" => {
            let state =
                category.child("state").ok_or_else(|| GatewayError::InvalidFormat("state category needs a state".into()))?;
            let text = state
                .child_text("availability")
                .ok_or_else(|| GatewayError::InvalidFormat("state needs an availability".into()))?;
            let number: u32 = text.parse().map_err(|_| GatewayError::InvalidFormat("availability must be a number".into()))?;
            if state.attr("type") == Some("machineState") {
                if !(3000..18000).contains(&number) {
                    return Err(GatewayError::InvalidRequest(format!("machine availability {number} is out of range")));
                }
                let idle = matches!(number, 4500..=5999 | 7500..=8999) || number >= 12000;
                return Ok(Publication::MachineState { idle });
            }
            let kind = manual_kind_for_availability(number)
                .ok_or_else(|| GatewayError::InvalidRequest(format!("availability {number} is out of range")))?;
            let text = state.child("activity").and_then(|a| a.child_text("custom")).map(str::trim).filter(|t| !t.is_empty());
            Ok(Publication::UserState(kind, text.map(str::to_string)))
        }
        "note" => {
            let note = category.child("note").ok_or_else(|| GatewayError::InvalidFormat("note category needs a note".into()))?;
            let personal = note.children_named("body").find(|b| b.attr("type").is_none_or(|t| t == "personal"));
            Ok(Publication::Note(personal.map(|b| b.text.trim().to_string()).unwrap_or_default()))
        }
        other => Err(GatewayError::InvalidOperation(format!("publishing the {other} category is not supported"))),
    }
}

fn required<'a>(element: &'a Element, attr: &str) -> Result<&'a str, GatewayError> {
    element.attr(attr).ok_or_else(|| GatewayError::InvalidRequest(format!("{} needs the {attr} attribute", element.name)))
}

/// `group` child: its `id` (when wanted) and `name` (when wanted).
fn parse_group(method: &Element, want_id: bool, want_name: bool) -> Result<(u32, String), GatewayError> {
    let group =
        method.child("group").ok_or_else(|| GatewayError::InvalidFormat(format!("{} needs a group element", method.name)))?;
    let id = if want_id {
        let text = required(group, "id")?;
        text.trim().parse().map_err(|_| GatewayError::InvalidRequest(format!("group id {text:?} is not a number")))?
    } else {
        0
    };
    let name = if want_name { required(group, "name")?.to_string() } else { String::new() };
    Ok((id, name))
}

fn parse_contact(method: &Element) -> Result<ContactSpec, GatewayError> {
    let contact =
        method.child("contact").ok_or_else(|| GatewayError::InvalidFormat(format!("{} needs a contact element", method.name)))?;
    let flag = |name: &str| contact.attr(name).map(parse_bool).transpose();
    let groups = match contact.attr("groups") {
        None => None,
        Some(text) => Some(
            text.split_whitespace()
                .map(|id| id.parse::<u32>().map_err(|_| GatewayError::InvalidRequest(format!("group id {id:?} is not a number"))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let tag = flag("tag")?.ok_or_else(|| GatewayError::InvalidRequest("contact needs the tag attribute".into()))?;
    Ok(ContactSpec {
        uri: required(contact, "uri")?.trim().to_string(),
        name: required(contact, "name")?.to_string(),
        subscribed: flag("subscribed")?.unwrap_or(false),
        tag,
        groups,
    })
}

fn parse_single_uri(method: &Element) -> Result<String, GatewayError> {
    let uri =
        method.child_text("uri").ok_or_else(|| GatewayError::InvalidFormat(format!("{} needs a uri element", method.name)))?;
    if !is_valid_sip_uri(uri) {
        return Err(GatewayError::InvalidRequest(format!("{uri:?} is not a sip: URI")));
    }
    Ok(normalize_uri(uri))
}

/// Subscriber URIs; the `sip:` prefix is optional here because `subscribers` events show both forms.
fn parse_subscriber_uris(method: &Element, max_uris: usize) -> Result<Vec<String>, GatewayError> {
    if method.children_named("uri").count() > max_uris {
        return Err(GatewayError::LimitExceeded(format!("at most {max_uris} URIs per request")));
    }
    let mut out = Vec::new();
    for uri in method.children_named("uri") {
        let text = uri.text.trim();
        let full = if text.starts_with("sip:") { text.to_string() } else { format!("sip:{text}") };
        if !is_valid_sip_uri(&full) {
            return Err(GatewayError::InvalidRequest(format!("{text:?} is not a user URI")));
        }
        out.push(normalize_uri(&full));
    }
    if out.is_empty() {
        return Err(GatewayError::InvalidFormat("acknowledgeSubscriber needs at least one uri".into()));
    }
    Ok(out)
}

fn parse_container(method: &Element) -> Result<(u32, Vec<MemberChange>), GatewayError> {
    let container = method
        .child("container")
        .ok_or_else(|| GatewayError::InvalidFormat("updateContainer needs a container element".into()))?;
    let text = required(container, "id")?;
    let id: u32 =
        text.trim().parse().map_err(|_| GatewayError::InvalidRequest(format!("container id {text:?} is not a number")))?;
    let mut changes = Vec::new();
    for child in &container.children {
        let add = match child.name.as_str() {
            "addMember" => true,
            "deleteMember" => false,
            other => return Err(GatewayError::InvalidFormat(format!("unexpected element {other} in container"))),
        };
        changes.push(MemberChange { add, member: parse_member(child)? });
    }
    Ok((id, changes))
}

fn parse_member(element: &Element) -> Result<Member, GatewayError> {
    let value = element.attr("value").unwrap_or("").trim();
    let member = match required(element, "type")? {
        "uri" if is_valid_sip_uri(value) => Member::Uri(normalize_uri(value)),
        "uri" => return Err(GatewayError::InvalidRequest(format!("{value:?} is not a sip: URI"))),
        "domain" if !value.is_empty() && !value.contains(['@', ' ', '<', '>']) => Member::Domain(value.to_ascii_lowercase()),
        "domain" => return Err(GatewayError::InvalidRequest(format!("{value:?} is not a domain"))),
        "sameEnterprise" => Member::SameEnterprise,
        "federated" => Member::Federated,
        "publicCloud" => Member::PublicCloud,
        "everyone" => Member::Everyone,
        other => return Err(GatewayError::InvalidRequest(format!("unknown member type {other:?}"))),
    };
    Ok(member)
}

fn parse_search(method: &Element) -> Result<SearchQuery, GatewayError> {
    let text = |name: &str| method.child_text(name).filter(|t| !t.is_empty()).map(str::to_string);
    let all = match method.child_text("function").unwrap_or("or").to_ascii_lowercase().as_str() {
        "and" => true,
        "or" | "" => false,
        other => return Err(GatewayError::InvalidRequest(format!("search function {other:?} is not and/or"))),
    };
    let query = SearchQuery {
        display_name: text("displayName"),
        first_name: text("firstName"),
        last_name: text("lastName"),
        email_alias: text("emailAlias"),
        all,
    };
    let criteria = [&query.display_name, &query.first_name, &query.last_name, &query.email_alias];
    if criteria.iter().all(|c| c.is_none()) {
        return Err(GatewayError::InvalidRequest("search needs at least one criterion".into()));
    }
    if criteria.iter().flat_map(|c| c.iter()).any(|c| c.chars().count() > 256) {
        return Err(GatewayError::InvalidRequest("search criteria are at most 256 characters".into()));
    }
    Ok(query)
}

/// Reads the body of `POST /forms/logon.html`.
pub fn parse_logon(root: &Element) -> Result<Logon, GatewayError> {
    let logon = (root.name == "cwaRequests").then(|| root.child("logon")).flatten();
    let logon = logon.ok_or_else(|| GatewayError::InvalidFormat("expected cwaRequests/logon".into()))?;
    check_text(logon).map_err(|e| GatewayError::InvalidFormat(e.detail()))?;
    Ok(Logon {
        user: logon.child_text("user").unwrap_or("").to_string(),
        password: logon.child("password").map(|p| p.text.clone()).unwrap_or_default(),
        uri: logon.child_text("uri").filter(|u| !u.is_empty()).map(str::to_string),
    })
}

/// The data channel's query: `Sid`, `AckId`, `UA`, read case-insensitively, empty pairs ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PollQuery {
    pub sid: Option<u64>,
    pub ack: u64,
    pub user_active: bool,
}

pub fn parse_poll_query(raw: Option<&str>) -> Result<PollQuery, GatewayError> {
    let mut query = PollQuery::default();
    for pair in pairs(raw.unwrap_or("")) {
        let (name, value) = match pair.bytes().position(|b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, ""),
        };
        let bad = |what: &str| {
            GatewayError::InvalidFormat(format!("{what} must be {}", if what == "UA" { "true or false" } else { "a number" }))
        };
        // Names and `UA` values in any case, compared without a lower-case copy.
        let is = |name: &str, expected: &str| name.eq_ignore_ascii_case(expected);
        if is(name, "sid") {
            query.sid = Some(value.parse().map_err(|_| bad("Sid"))?);
        } else if is(name, "ackid") {
            query.ack = if value.is_empty() { 0 } else { value.parse().map_err(|_| bad("AckId"))? };
        } else if is(name, "ua") {
            query.user_active = match value {
                "1" => true,
                "0" | "" => false,
                _ if is(value, "true") => true,
                _ if is(value, "false") => false,
                _ => return Err(bad("UA")),
            };
        }
    }
    Ok(query)
}

/// The non-empty `&`-separated pairs of a query, found byte by byte: a query is a few dozen bytes,
/// where that costs less than the search a `char` pattern sets up.
fn pairs(query: &str) -> impl Iterator<Item = &str> {
    let mut rest = query;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = rest.bytes().position(|b| b == b'&').unwrap_or(rest.len());
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        if !pair.is_empty() {
            return Some(pair);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cwa::xml::{parse, XmlLimits};

    fn batch(xml: &str) -> RequestBatch {
        parse_batch(&parse(xml, XmlLimits::default()).unwrap(), 650).unwrap()
    }

    #[test]
    fn reads_methods_with_rids() {
        let b = batch(&format!(
            r#"<cwaRequests sid="7" xmlns="{NS_CWA}"><queryPresence rid="1"><uris><uri>sip:A@x.org</uri></uris></queryPresence><terminateSession rid="2"/></cwaRequests>"#
        ));
        assert_eq!(b.sid, Some(7));
        assert_eq!(b.unexpected_elements, 0);
        assert_eq!(
            b.requests[0],
            Parsed::Ok { rid: "1".into(), request: Request::QueryPresence(UriList::from_iter(["sip:a@x.org"])) }
        );
        assert_eq!(b.requests[1], Parsed::Ok { rid: "2".into(), request: Request::TerminateSession });
    }

    #[test]
    fn sorts_errors_into_invalid_and_failed() {
        let b = batch(
            r#"<cwaRequests><queryPresence rid="1"><uris><uri>a@x.org</uri></uris></queryPresence><queryPresence/><bogus rid="3"/><conference rid="4"/></cwaRequests>"#,
        );
        assert_eq!(b.unexpected_elements, 2, "no namespace and one unknown element");
        assert!(matches!(&b.requests[0], Parsed::Failed { rid, error: GatewayError::InvalidRequest(_) } if rid == "1"));
        assert!(matches!(&b.requests[1], Parsed::Invalid { rid: None, .. }));
        assert!(matches!(&b.requests[2], Parsed::Invalid { rid: Some(r), .. } if r == "3"));
        assert_eq!(b.requests[3], Parsed::Ok { rid: "4".into(), request: Request::Unsupported("conference".into()) });
    }

    #[test]
    fn publish_reads_user_machine_state_and_note() {
        let b = batch(
            r#"<cwaRequests><publishSelfPresence rid="1">
            <cwaCategory name="state"><state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>6500</availability></state></cwaCategory>
            <cwaCategory name="state"><state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>15500</availability><activity><custom LCID="1033"> In the lab </custom></activity></state></cwaCategory>
            <cwaCategory name="state"><state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="machineState"><availability>5000</availability></state></cwaCategory>
            <cwaCategory name="note"><note><body type="personal">Lunch</body></note></cwaCategory>
        </publishSelfPresence></cwaRequests>"#,
        );
        let Parsed::Ok { request: Request::PublishSelfPresence(p), .. } = &b.requests[0] else { panic!("{:?}", b.requests) };
        assert_eq!(
            p,
            &[
                Publication::UserState(ManualKind::Busy, None),
                Publication::UserState(ManualKind::Away, Some("In the lab".into())),
                Publication::MachineState { idle: true },
                Publication::Note("Lunch".into())
            ]
        );
    }

    #[test]
    fn contact_list_container_and_search_methods() {
        let b = batch(
            r#"<cwaRequests>
            <addContact rid="1"><contact uri="sip:Jo@x.org" name="Jo" subscribed="true" tag="false" groups="1 2"/></addContact>
            <addContact rid="2"><contact uri="sip:jo@x.org" name="Jo"/></addContact>
            <updateContainer rid="3"><container id="400"><addMember type="uri" value="sip:b@x.org"/><deleteMember type="everyone" value=""/></container></updateContainer>
            <updateContainer rid="4"><container id="400"><addMember type="galaxy" value=""/></container></updateContainer>
            <search rid="5"><displayName>Jo</displayName><function>and</function></search>
            <search rid="6"><displayName/></search>
            <deleteGroup rid="7"><group id="x"/></deleteGroup>
        </cwaRequests>"#,
        );
        let Parsed::Ok { request: Request::AddContact(spec), .. } = &b.requests[0] else { panic!("{:?}", b.requests[0]) };
        assert_eq!((spec.subscribed, spec.groups.clone()), (true, Some(vec![1, 2])));
        assert!(matches!(&b.requests[1], Parsed::Failed { .. }), "tag is required");
        let Parsed::Ok { request: Request::UpdateContainer { id, changes }, .. } = &b.requests[2] else { panic!() };
        assert_eq!(*id, 400);
        assert_eq!(changes[0], MemberChange { add: true, member: Member::Uri("sip:b@x.org".into()) });
        assert_eq!(changes[1], MemberChange { add: false, member: Member::Everyone });
        assert!(matches!(&b.requests[3], Parsed::Failed { .. }));
        assert!(matches!(&b.requests[4], Parsed::Ok { request: Request::Search(SearchQuery { all: true, .. }), .. }));
        assert!(matches!(&b.requests[5], Parsed::Failed { .. }), "no criteria");
        assert!(matches!(&b.requests[6], Parsed::Failed { .. }));
    }

    #[test]
    fn text_that_xml_forbids_fails_the_method_and_names_the_place() {
        let b = batch(&format!(
            r#"<cwaRequests>
            <publishSelfPresence rid="1"><cwaCategory name="note"><note><body type="personal">Lunch&#1;</body></note></cwaCategory></publishSelfPresence>
            <publishSelfPresence rid="2"><cwaCategory name="state"><state><availability>6500</availability><activity><custom>In{}lab</custom></activity></state></cwaCategory></publishSelfPresence>
            <addContact rid="3"><contact uri="sip:jo@x.org" name="Jo&#x1B;" tag="false"/></addContact>
            <addGroup rid="4"><group name="Friends&#xFFFF;"/></addGroup>
            <search rid="5"><displayName>Jo{}</displayName></search>
            <publishSelfPresence rid="6"><cwaCategory name="note"><note><body type="personal">Tab&#9;and line&#10;break</body></note></cwaCategory></publishSelfPresence>
        </cwaRequests>"#,
            '\u{7}', '\u{0}'
        ));
        let detail = |i: usize| match &b.requests[i] {
            Parsed::Failed { error: error @ GatewayError::InvalidRequest(_), .. } => {
                assert_eq!(error.cwa_code(), 18001);
                error.detail()
            }
            other => panic!("{other:?}"),
        };
        assert!(detail(0).starts_with("the text of body contains U+0001 at character 5"), "{}", detail(0));
        assert!(detail(1).starts_with("the text of custom contains U+0007"), "{}", detail(1));
        assert!(detail(2).starts_with("contact@name contains U+001B"), "{}", detail(2));
        assert!(detail(3).starts_with("group@name contains U+FFFF"), "{}", detail(3));
        assert!(detail(4).starts_with("the text of displayName contains U+0000"), "{}", detail(4));
        let Parsed::Ok { request: Request::PublishSelfPresence(p), .. } = &b.requests[5] else { panic!("{:?}", b.requests[5]) };
        assert_eq!(p, &[Publication::Note("Tab\tand line\nbreak".into())]);
    }

    #[test]
    fn logon_refuses_text_that_xml_forbids() {
        let root =
            parse("<cwaRequests><logon><user>bob&#2;</user><password>x</password></logon></cwaRequests>", XmlLimits::default());
        let error = parse_logon(&root.unwrap()).unwrap_err();
        assert!(matches!(&error, GatewayError::InvalidFormat(d) if d.contains("U+0002")), "{error:?}");
    }

    #[test]
    fn uris_are_counted_before_they_are_read_and_collapse_in_order() {
        let limit = |uris: &str, max: usize| {
            let xml = format!(r#"<cwaRequests><queryPresence rid="1"><uris>{uris}</uris></queryPresence></cwaRequests>"#);
            parse_batch(&parse(&xml, XmlLimits::default()).unwrap(), max).unwrap().requests.remove(0)
        };
        let same = "<uri>sip:a@x.org</uri>".repeat(3);
        assert!(matches!(limit(&same, 2), Parsed::Failed { error: GatewayError::LimitExceeded(_), .. }), "3 sent, 2 allowed");
        let invalid_beyond_limit = "<uri>nonsense</uri>".repeat(3);
        assert!(matches!(limit(&invalid_beyond_limit, 2), Parsed::Failed { error: GatewayError::LimitExceeded(_), .. }));
        let mixed = "<uri>sip:B@x.org</uri><uri>sip:a@x.org</uri><uri>sip:b@x.org</uri><uri>sip:c@x.org</uri>";
        let Parsed::Ok { request: Request::QueryPresence(uris), .. } = limit(mixed, 650) else { panic!() };
        assert_eq!(uris.to_strs(), ["sip:b@x.org", "sip:a@x.org", "sip:c@x.org"]);
        let ack = format!(r#"<cwaRequests><acknowledgeSubscriber rid="1">{}</acknowledgeSubscriber></cwaRequests>"#, same);
        let b = parse_batch(&parse(&ack, XmlLimits::default()).unwrap(), 2).unwrap();
        assert!(matches!(&b.requests[0], Parsed::Failed { error: GatewayError::LimitExceeded(_), .. }));
    }

    #[test]
    fn the_first_of_each_uri_stays_in_its_place() {
        let first = |s: &str| {
            let mut list: UriList = s.split_whitespace().collect();
            list.keep_first_of_each();
            list
        };
        let uris = |s: &str| s.split_whitespace().collect::<UriList>();
        assert_eq!(first("c a b a c d b c"), uris("c a b d"));
        assert_eq!(first("c a b a c d b c").to_strs(), ["c", "a", "b", "d"]);
        assert_eq!(first("a"), uris("a"));
        assert_eq!(first(""), uris(""));
        let many: Vec<String> = (0..300).map(|i| format!("sip:u{}@x", (i * 7) % 100)).collect();
        let expected: Vec<String> = (0..100).map(|i| format!("sip:u{}@x", (i * 7) % 100)).collect();
        assert_eq!(first(&many.join(" ")), expected.iter().map(String::as_str).collect());
    }

    #[test]
    fn uri_limit_is_enforced() {
        let uris: String = (0..3).map(|i| format!("<uri>sip:u{i}@x.org</uri>")).collect();
        let root = parse(
            &format!(r#"<cwaRequests><queryPresence rid="1"><uris>{uris}</uris></queryPresence></cwaRequests>"#),
            XmlLimits::default(),
        )
        .unwrap();
        let b = parse_batch(&root, 2).unwrap();
        assert!(matches!(&b.requests[0], Parsed::Failed { error: GatewayError::LimitExceeded(_), .. }));
    }

    proptest::proptest! {
        #[test]
        fn a_querys_pairs_are_its_non_empty_ampersand_separated_parts(query in "[a&=é1]{0,12}") {
            let expected: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            proptest::prop_assert_eq!(pairs(&query).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn poll_query_is_case_insensitive_and_ignores_empty_pairs() {
        let q = parse_poll_query(Some("Sid=12&&AckID=7&UA=true")).unwrap();
        assert_eq!((q.sid, q.ack, q.user_active), (Some(12), 7, true));
        let q = parse_poll_query(Some("sid=3&ackid=&ua=FALSE")).unwrap();
        assert_eq!((q.sid, q.ack, q.user_active), (Some(3), 0, false));
        assert!(parse_poll_query(Some("Sid=x")).is_err());
        assert!(parse_poll_query(Some("Sid=1&UA=maybe")).is_err());
        assert_eq!(parse_poll_query(None).unwrap().sid, None);
    }
}
