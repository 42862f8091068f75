//! The events the hub queues: what happened, as model-level data ([`EventBody`]), with no wire
//! format. Each transport renders an event in its dialect — the CWA data channel in
//! `cwa::events`, the JSON event stream in `pv2::events` — and the text is kept in the shared
//! event, so one rendering per dialect serves every session the event is queued on
//! (docs/architecture.md §4). A rendering is everything but the `eid`, which each session writes
//! in at send time.

use crate::error::GatewayError;
use crate::model::contacts::{Change, ContactList};
use crate::model::presentity::PresenceView;
use crate::model::rights::{AccessLevel, RightsEntry};
use std::sync::{Arc, OnceLock};

/// Whom a presence event shows a presentity to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The presentity's own user (CWA `selfPresence`, `selfRawCategories`).
    Owner,
    /// Someone watching, from the same enterprise or federated.
    Watcher { same_enterprise: bool },
}

/// A subscription's state as a `presenceSubscriptionState` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    Subscribed,
    Terminated,
}

/// One watcher as the subscribers event shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberView {
    pub uri: String,
    pub display_name: String,
    pub same_enterprise: bool,
    pub acknowledged: bool,
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

/// Policy a client needs: appear offline allowed, default search settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfiguration {
    pub enable_appear_offline: bool,
    pub default_search_field: String,
    pub default_search_function: String,
    pub max_search_results: usize,
}

/// What an event says.
#[derive(Debug)]
pub enum EventBody {
    /// A presentity's presence (the well-known categories) as `audience` may see it.
    Presence {
        view: Arc<PresenceView>,
        audience: Audience,
    },
    /// The raw categories of a view among those a session chose (`None`: all).
    RawCategories {
        view: Arc<PresenceView>,
        audience: Audience,
        only: Option<Arc<[String]>>,
    },
    /// A query's answer: the [`EventBody::Presence`] events of the users queried, in order.
    QueryPresence(Box<[Arc<Event>]>),
    /// A query's answer: the [`EventBody::RawCategories`] events of the users queried that have any.
    QueryRawCategories(Box<[Arc<Event>]>),
    SubscriptionStates {
        uris: Box<[Arc<str>]>,
        state: SubscriptionState,
    },
    /// A command done (`error: None`) or failed, named by its `rid`.
    Outcome {
        rid: Box<str>,
        error: Option<Box<GatewayError>>,
    },
    /// The whole contact list.
    ContactList(Box<ContactList>),
    /// What changed in the contact list, numbered `delta_num`.
    ContactListDelta {
        delta_num: u64,
        changes: Box<[Change]>,
    },
    /// The containers of the given levels with their members.
    Containers {
        entries: Box<[RightsEntry]>,
        levels: Box<[AccessLevel]>,
    },
    Subscribers(Box<[SubscriberView]>),
    SearchResult {
        rid: Box<str>,
        entries: Box<[DirectoryEntry]>,
        more_available: bool,
    },
    Configuration(Box<ClientConfiguration>),
    /// A JSON stream's delta: the `sections` (Presence V2 section bits) that changed from `old`
    /// to `new` (`old: None`: a full update of those sections).
    PresenceUpdate {
        uri: Arc<str>,
        sections: u32,
        old: Option<Arc<PresenceView>>,
        new: Arc<PresenceView>,
    },
    /// A JSON stream's presentity is gone.
    PresenceRemoved {
        uri: Arc<str>,
    },
}

/// The dialects an event is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Cwa,
    Json,
}

/// A queued event: its body and, once asked for, its rendering in each dialect.
#[derive(Debug)]
pub struct Event {
    pub body: EventBody,
    cwa: OnceLock<Box<str>>,
    json: OnceLock<Box<str>>,
}

impl Event {
    pub fn new(body: EventBody) -> Arc<Event> {
        Arc::new(Event { body, cwa: OnceLock::new(), json: OnceLock::new() })
    }

    /// The event's text in `dialect`, made by `render` the first time it is asked for.
    pub fn rendered(&self, dialect: Dialect, render: impl FnOnce(&EventBody) -> Box<str>) -> &str {
        let cell = match dialect {
            Dialect::Cwa => &self.cwa,
            Dialect::Json => &self.json,
        };
        cell.get_or_init(|| render(&self.body))
    }
}
