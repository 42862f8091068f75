//! The JSON event stream's rendering of the hub's events (Presence V2 style): a presence update
//! as `asnUpdatePresenceV2` carrying the sections it names (removed ones as `null`) with
//! `iChangedFlags`, a presentity gone as `asnRemovePresence`. A view's JSON is the baseline a
//! delta is computed from ([`JsonPresence`]). An event is rendered once, without its `eid`, and the
//! text is kept in the shared event ([`Dialect::Json`], docs/architecture.md §4).

use crate::hub::event::{Dialect, Event, EventBody};
use crate::model::presentity::PresenceView;
use serde_json::{json, Map, Value};
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

/// A view with its full JSON presence: what a JSON subscriber of that view last received.
#[derive(Debug)]
pub struct JsonPresence {
    pub view: Arc<PresenceView>,
    pub json: Map<String, Value>,
}

pub type JsonView = Arc<JsonPresence>;

/// The full JSON presence of a view.
pub fn json_presence(view: Arc<PresenceView>) -> JsonView {
    let json = json_of(&view);
    Arc::new(JsonPresence { view, json })
}

fn json_of(view: &PresenceView) -> Map<String, Value> {
    let mut value = serde_json::to_value(super::presence(view)).unwrap_or(Value::Null);
    if let (Some(hash), Some(object)) = (&view.image_hash, value.as_object_mut()) {
        object.insert("u8sImageHash".into(), json!(hash));
    }
    match value {
        Value::Object(object) => object,
        _ => Map::new(),
    }
}

/// The sections of `presence` selected by `mask` (0 = all), always with `u8sContactId`.
pub fn select(presence: &Map<String, Value>, mask: u32) -> Map<String, Value> {
    let keep = |field: &str| field == "u8sContactId" || mask == 0 || section_flag(field) & mask != 0;
    presence.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Which sections differ between two renderings (a missing old rendering differs everywhere).
pub fn changed_sections(old: Option<&Map<String, Value>>, new: &Map<String, Value>) -> u32 {
    let Some(old) = old else { return flags::ALL };
    let keys = old.keys().chain(new.keys());
    keys.filter(|k| old.get(*k) != new.get(*k)).map(|k| section_flag(k)).fold(0, |a, b| a | b)
}

/// The sections a full update carries for a subscriber of `events`: those `json` has among them.
pub fn full_sections(json: &Map<String, Value>, events: u32) -> u32 {
    select(json, events).keys().map(|k| section_flag(k)).fold(0, |a, b| a | b)
}

/// An update of `uri` carrying `sections` (`old: None`: a full update), rendered now from the
/// JSON at hand.
pub fn update(uri: &Arc<str>, old: Option<&JsonPresence>, new: &JsonPresence, sections: u32) -> Arc<Event> {
    let old_view = old.map(|o| o.view.clone());
    let event = Event::new(EventBody::PresenceUpdate { uri: uri.clone(), sections, old: old_view, new: new.view.clone() });
    event.rendered(Dialect::Json, |_| update_text(uri, old.map(|o| &o.json), &new.json, sections));
    event
}

/// The event's rendering after `{"eid":N`: the rest of its JSON object. Made the first time it is
/// asked for, then shared. Events of CWA sessions never reach a JSON stream; should one, it is
/// written with its eid alone.
pub fn text(event: &Event) -> &str {
    event.rendered(Dialect::Json, render)
}

fn render(body: &EventBody) -> Box<str> {
    match body {
        EventBody::PresenceUpdate { uri, sections, old, new } => {
            let old = old.as_deref().map(json_of);
            update_text(uri, old.as_ref(), &json_of(new), *sections)
        }
        EventBody::PresenceRemoved { uri } => rest(json!({"asnRemovePresence": {"u8sContactId": uri}})),
        _ => "}".into(),
    }
}

/// `asnUpdatePresenceV2` with the given sections of `new` (those only `old` has as `null`).
fn update_text(uri: &str, old: Option<&Map<String, Value>>, new: &Map<String, Value>, changed: u32) -> Box<str> {
    let mut presence = Map::new();
    presence.insert("u8sContactId".into(), json!(uri));
    for key in new.keys().chain(old.iter().flat_map(|o| o.keys())) {
        if section_flag(key) & changed != 0 && !presence.contains_key(key) {
            presence.insert(key.clone(), new.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    rest(json!({"asnUpdatePresenceV2": {"u8sContactId": uri, "iChangedFlags": changed, "asnPresence": presence}}))
}

/// A JSON object's text after its opening brace, with a comma in front: what follows the eid.
fn rest(object: Value) -> Box<str> {
    let text = object.to_string();
    [",", text.strip_prefix('{').unwrap_or("}")].concat().into_boxed_str()
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
        let text = update_text("x", Some(&old), &new, flags::NOTE);
        let body: Value = serde_json::from_str(&format!("{{\"eid\":1{text}")).unwrap();
        assert_eq!(body["asnUpdatePresenceV2"]["asnPresence"]["asnCustomNote"], Value::Null, "a removed section is null");
        assert!(body["asnUpdatePresenceV2"]["asnPresence"].get("iPresenceState").is_none());
        assert_eq!(select(&new, flags::CALLS).len(), 2);
    }

    #[test]
    fn an_update_reads_the_same_rendered_at_once_or_from_its_views() {
        let (old, new) = (PresenceView::unknown("sip:a@x"), PresenceView { known: true, ..PresenceView::unknown("sip:a@x") });
        let (old, new) = (json_presence(Arc::new(old)), json_presence(Arc::new(new)));
        let uri: Arc<str> = Arc::from("sip:a@x");
        let sections = changed_sections(Some(&old.json), &new.json) | flags::PRESENCE;
        let at_once = update(&uri, Some(&old), &new, sections);
        let later = Event::new(EventBody::PresenceUpdate {
            uri: uri.clone(),
            sections,
            old: Some(old.view.clone()),
            new: new.view.clone(),
        });
        assert_eq!(text(&at_once), text(&later));
        let removed = Event::new(EventBody::PresenceRemoved { uri });
        assert_eq!(text(&removed), ",\"asnRemovePresence\":{\"u8sContactId\":\"sip:a@x\"}}");
    }
}
