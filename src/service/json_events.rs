//! JSON subscribers (Presence V2 style): snapshots cut to the requested sections, and on every
//! change an `asnUpdatePresenceV2` delta carrying only the sections that changed and were
//! subscribed, with `iChangedFlags`. They ride the same hub, queues, eids and acks as CWA sessions.

use super::presence::{Live, ViewKey};
use super::Gateway;
use crate::cwa::envelope::EventPayload;
use crate::hub::session::{EventFilter, Session};
use crate::model::presentity::{view, Presentity};
use crate::model::sources::Timestamp;
use crate::pv2;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The `iChangedFlags` / subscription bits (Presence V2 `AsnPresenceSubscriptionFlags`).
pub mod flags {
    pub const PRESENCE: u32 = 1;
    pub const CONTACT_DATA: u32 = 2;
    pub const IMAGE: u32 = 4;
    pub const RIGHTS: u32 = 8;
    pub const ABSENT_STATE: u32 = 16;
    pub const NOTE: u32 = 32;
    pub const APPOINTMENTS: u32 = 64;
    pub const LINES: u32 = 128;
    pub const CALLS: u32 = 256;
    pub const FORWARDS: u32 = 512;
    pub const AGENT_STATE: u32 = 32768;
    pub const ALL: u32 =
        PRESENCE | CONTACT_DATA | IMAGE | RIGHTS | ABSENT_STATE | NOTE | APPOINTMENTS | LINES | CALLS | FORWARDS | AGENT_STATE;
}

/// The section a top-level field of `AsnPresenceV2` belongs to (capabilities and Graph's
/// `availability` and `activity` travel with the presence bit: Presence V2 has no bit of their own).
fn section_flag(field: &str) -> u32 {
    match field {
        "iPresenceState" | "availability" | "activity" | "asnContactCapabilitiesEx" => flags::PRESENCE,
        "asnRemoteContact" => flags::CONTACT_DATA,
        "u8sImageHash" => flags::IMAGE,
        "asnAbsentState" => flags::ABSENT_STATE,
        "asnCustomNote" => flags::NOTE,
        "seqActualAppointments" | "asnNextAppointment" => flags::APPOINTMENTS,
        "seqPhoneLines" => flags::LINES,
        "seqCalls" => flags::CALLS,
        "seqLineForwards" => flags::FORWARDS,
        "asnAgentState" => flags::AGENT_STATE,
        _ => 0,
    }
}

pub type JsonView = Arc<Map<String, Value>>;

/// The full JSON presence of a presentity for a view key.
pub(crate) fn render_json(model: &Presentity, key: ViewKey, now: Timestamp) -> JsonView {
    let v = view(model, key.viewer, now);
    let mut value = serde_json::to_value(pv2::presence(&v)).unwrap_or(Value::Null);
    if let (Some(hash), Some(object)) = (&v.image_hash, value.as_object_mut()) {
        object.insert("u8sImageHash".into(), json!(hash));
    }
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

/// The sections of `presence` selected by `mask` (0 = all), always with `u8sContactId`.
fn select(presence: &Map<String, Value>, mask: u32) -> Map<String, Value> {
    let keep = |field: &str| field == "u8sContactId" || mask == 0 || section_flag(field) & mask != 0;
    presence.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Which sections differ between two renderings (a missing old rendering differs everywhere).
fn changed_sections(old: Option<&Map<String, Value>>, new: &Map<String, Value>) -> u32 {
    let Some(old) = old else { return flags::ALL };
    let keys = old.keys().chain(new.keys());
    keys.filter(|k| old.get(*k) != new.get(*k)).map(|k| section_flag(k)).fold(0, |a, b| a | b)
}

/// An `asnUpdatePresenceV2` event with the given sections (removed ones as `null`).
fn update_event(uri: &str, old: Option<&Map<String, Value>>, new: &Map<String, Value>, changed: u32) -> Arc<EventPayload> {
    let mut presence = Map::new();
    presence.insert("u8sContactId".into(), json!(uri));
    for key in new.keys().chain(old.iter().flat_map(|o| o.keys())) {
        if section_flag(key) & changed != 0 && !presence.contains_key(key) {
            presence.insert(key.clone(), new.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    let body = json!({"asnUpdatePresenceV2": {"u8sContactId": uri, "iChangedFlags": changed, "asnPresence": presence}});
    Arc::new(EventPayload::json(body.to_string()))
}

/// An `asnRemovePresence` event.
fn removal_event(uri: &str) -> Arc<EventPayload> {
    let body = json!({"asnRemovePresence": {"u8sContactId": uri}});
    Arc::new(EventPayload::json(body.to_string()))
}

impl Gateway {
    /// The current JSON rendering of `uri` for `viewer_uri`, remembered until the state changes.
    pub(crate) fn snapshot_json(&self, uri: &str, viewer_uri: &str) -> Option<JsonView> {
        let key = self.view_key(uri, viewer_uri);
        let entry = self.presence_entry(uri)?;
        let now = self.clock.now();
        let mut live = entry.live.lock();
        if let Some(json) = live.last_json.get(&key) {
            return Some(json.clone());
        }
        let json = render_json(&live.model, key, now);
        live.last_json.insert(key, json.clone());
        Some(json)
    }

    /// A snapshot for a JSON subscription, cut to the requested details.
    pub fn json_snapshot(&self, uri: &str, viewer_uri: &str, details: u32) -> Value {
        match self.snapshot_json(uri, viewer_uri) {
            Some(json) => Value::Object(select(&json, details)),
            None => json!({"u8sContactId": uri, "iPresenceState": 0}),
        }
    }

    /// Queues a full update (every subscribed section) for a JSON session after a rights change.
    pub(crate) fn queue_json_full(&self, session: &Session, uri: &Arc<str>) {
        if let Some(event) = self.json_full_event(session, uri) {
            self.push(session, event, None);
        }
    }

    /// The resync burst of a JSON session: a full update of every subscription, or its removal
    /// when the user is gone.
    pub(crate) fn queue_json_resync(&self, session: &Session) {
        for uri in session.subscriptions() {
            let event = self.json_full_event(session, &uri).unwrap_or_else(|| removal_event(&uri));
            crate::telemetry::record_push(session.push_resync(event, None));
        }
    }

    fn json_full_event(&self, session: &Session, uri: &Arc<str>) -> Option<Arc<EventPayload>> {
        let filter = session.json.as_ref().and_then(|j| j.filter(uri))?;
        let json = self.snapshot_json(uri, &session.user)?;
        let selected = select(&json, filter.events);
        let changed = selected.keys().map(|k| section_flag(k)).fold(0, |a, b| a | b);
        Some(update_event(uri, None, &selected, changed))
    }

    /// Fan-out to JSON sessions: one delta per (view, subscribed sections).
    pub(crate) fn fan_out_json(&self, uri: &Arc<str>, live: &mut Live, sessions: &[(Arc<Session>, ViewKey)], now: Timestamp) {
        let mut rendered: HashMap<ViewKey, JsonView> = HashMap::new();
        let mut events: HashMap<(ViewKey, u32), Option<Arc<EventPayload>>> = HashMap::new();
        for (session, key) in sessions {
            let Some(EventFilter { events: wanted, .. }) = session.json.as_ref().and_then(|j| j.filter(uri)) else { continue };
            let new = rendered.entry(*key).or_insert_with(|| render_json(&live.model, *key, now)).clone();
            let old = live.last_json.get(key).cloned();
            let event = events.entry((*key, wanted)).or_insert_with(|| {
                let changed = changed_sections(old.as_deref(), &new) & wanted;
                (changed != 0).then(|| update_event(uri, old.as_deref(), &new, changed))
            });
            if let Some(event) = event {
                self.push(session, event.clone(), None);
            }
        }
        live.last_json = rendered;
    }

    /// Tells JSON watchers that a presentity is gone (`asnRemovePresence`).
    pub(crate) fn queue_json_removal(&self, session: &Session, uri: &str) {
        self.push(session, removal_event(uri), None);
    }
}

impl Gateway {
    /// The JSON event stream of a sign-in, started on first use (it counts as one of the user's
    /// sessions and expires like one when nobody polls it).
    pub fn json_stream(&self, login: &crate::service::auth::Login, create: bool) -> crate::error::Result<Option<Arc<Session>>> {
        use crate::error::GatewayError;
        use crate::hub::session::SessionOptions;
        let existing = self.json_sessions.read().get(&login.id).copied();
        if let Some(session) = existing.and_then(|sid| self.hub.get(sid)).filter(|s| !s.is_ended()) {
            return Ok(Some(session));
        }
        if !create {
            return Ok(None);
        }
        if self.sessions_everywhere(&login.user) >= self.config.limits.sessions_per_user {
            let limit = self.config.limits.sessions_per_user;
            return Err(GatewayError::LimitExceeded(format!("at most {limit} sessions per user")));
        }
        let queue_limit = self.config.limits.queue_length;
        let options = SessionOptions { json: true, auto_subscribe_contacts: false, queue_limit, ..SessionOptions::default() };
        let session = Arc::new(Session::new(self.hub.allocate_sid(), login.user.clone(), login.id, options, self.clock.now()));
        self.hub.insert(session.clone());
        self.json_sessions.write().insert(login.id, session.sid);
        self.schedule_expiry(&session);
        self.refresh(&login.user);
        Ok(Some(session))
    }

    /// Subscribes a JSON stream to presentities; returns their snapshots (cut to `details`).
    pub async fn json_subscribe(
        &self,
        session: &Arc<Session>,
        uris: &[String],
        filter: EventFilter,
    ) -> crate::error::Result<Vec<Value>> {
        let json = session.json.as_ref().expect("a JSON session");
        let arcs: Vec<Arc<str>> = uris.iter().map(|u| Arc::from(u.as_str())).collect();
        let limit = self.config.limits.subscriptions_per_session;
        let new = session
            .subscribe(&arcs, limit)
            .ok_or_else(|| crate::error::GatewayError::LimitExceeded(format!("at most {limit} subscriptions per stream")))?;
        for uri in &arcs {
            json.set(uri.clone(), filter);
        }
        self.hub.watch(session, &new);
        let snapshots = uris.iter().map(|uri| self.json_snapshot(uri, &session.user, filter.details)).collect();
        self.record_subscriptions(&session.user, uris).await?;
        Ok(snapshots)
    }

    pub fn json_unsubscribe(&self, session: &Session, uris: &[String]) {
        let arcs: Vec<Arc<str>> = uris.iter().map(|u| Arc::from(u.as_str())).collect();
        let removed = session.unsubscribe(&arcs);
        self.hub.unwatch(session, &removed);
        if let Some(json) = &session.json {
            uris.iter().for_each(|u| json.remove(u));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_sections_and_selection() {
        let old: Map<String, Value> =
            serde_json::from_value(json!({"u8sContactId": "x", "iPresenceState": 1, "asnCustomNote": {"u8sNote": "a"}})).unwrap();
        let new: Map<String, Value> =
            serde_json::from_value(json!({"u8sContactId": "x", "iPresenceState": 2, "seqCalls": []})).unwrap();
        assert_eq!(changed_sections(Some(&old), &new), flags::PRESENCE | flags::NOTE | flags::CALLS);
        assert_eq!(changed_sections(None, &new), flags::ALL);
        let event = update_event("x", Some(&old), &new, flags::NOTE);
        let body: Value = serde_json::from_str(&event.inner).unwrap();
        assert_eq!(body["asnUpdatePresenceV2"]["asnPresence"]["asnCustomNote"], Value::Null, "a removed section is null");
        assert!(body["asnUpdatePresenceV2"]["asnPresence"].get("iPresenceState").is_none());
        assert_eq!(select(&new, flags::CALLS).len(), 2);
    }
}
