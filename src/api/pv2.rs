//! Presence as JSON with the Presence V2 (`AsnPresenceV2`) field names, rendered from a
//! [`PresenceView`] — so it holds exactly what the caller's level allows, as the CWA side does.

use crate::model::aggregate::Activity;
use crate::model::presentity::{AppointmentView, PhoneKind, PresenceView};
use crate::model::rights::AccessLevel;
use crate::model::sources::{
    AgentState, AppointmentStatus, Call, CallService, CallState, Forward, ForwardMode, Line, LineState, ManualKind, ManualState,
    Reachability, Timestamp,
};
use serde_json::{json, Map, Value};

fn time(t: Timestamp) -> Value {
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The whole `AsnPresenceV2` object.
pub fn presence(view: &PresenceView, level: Option<AccessLevel>) -> Value {
    let mut out = Map::new();
    out.insert("u8sContactId".into(), json!(view.uri));
    out.insert("iPresenceState".into(), json!(view.state.0));
    out.insert("asnRemoteContact".into(), remote_contact(view));
    if let Some(manual) = &view.manual {
        out.insert("asnAbsentState".into(), absent_state(&view.uri, manual));
    }
    if let Some(note) = &view.personal_note {
        let name = view.display_name.clone().unwrap_or_default();
        out.insert("asnCustomNote".into(), json!({"u8sContactID": view.uri, "u8sUsername": name, "u8sNote": note}));
    }
    if let Some(calendar) = &view.calendar {
        let actual: Vec<Value> = calendar.current.iter().map(appointment).collect();
        out.insert("seqActualAppointments".into(), Value::Array(actual));
        if let Some(next) = &calendar.next {
            out.insert("asnNextAppointment".into(), appointment(next));
        }
    }
    if !view.lines.is_empty() {
        out.insert("seqPhoneLines".into(), Value::Array(view.lines.iter().map(line).collect()));
    }
    if !view.calls.is_empty() {
        out.insert("seqCalls".into(), Value::Array(view.calls.iter().map(call).collect()));
    }
    if !view.forwards.is_empty() {
        out.insert("seqLineForwards".into(), Value::Array(view.forwards.iter().map(forward).collect()));
    }
    if let Some(agent) = view.agent {
        out.insert("asnAgentState".into(), json!({"dwState": agent_state(agent)}));
    }
    if !view.capabilities.is_empty() {
        let caps: Vec<u32> = view.capabilities.iter().map(|c| *c as u32).collect();
        out.insert("asnContactCapabilitiesEx".into(), json!({"eClientCapabilities": caps, "customCapabilities": []}));
    }
    if let Some(level) = level {
        out.insert("asnCurrentUserDynamicRights".into(), json!({"iDynamicRights": level.pv2_value(), "level": level.name()}));
    }
    if view.activity != Activity::None {
        out.insert("activity".into(), serde_json::to_value(view.activity).unwrap_or(Value::Null));
    }
    Value::Object(out)
}

fn remote_contact(view: &PresenceView) -> Value {
    let mut c = Map::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            c.insert(key.into(), json!(v));
        }
    };
    put("u8sDisplayName", &view.display_name);
    put("u8sEMail", &view.email);
    put("u8sJobTitle", &view.card.title);
    put("u8sCompany", &view.card.company);
    put("u8sDepartment", &view.card.department);
    put("u8sOfficeRoomNumber", &view.card.office);
    for (kind, number) in &view.card.phones {
        let key = match kind {
            PhoneKind::Work => "u8sPhoneBusiness",
            PhoneKind::Mobile => "u8sPhoneMobile",
            PhoneKind::Home => "u8sPhoneHome",
            PhoneKind::Other => "u8sOtherTelephoneNumber",
        };
        c.insert(key.into(), json!(number));
    }
    c.insert("u8sSIPAddress".into(), json!(view.uri));
    Value::Object(c)
}

/// Presence V2 `AsnAbsentStateEnum` (0 available, 1 out of office, 2 busy, 3 DND) plus the
/// gateway's own kinds, named in `state`.
pub fn absent_state(uri: &str, manual: &ManualState) -> Value {
    let code = match manual.kind {
        ManualKind::Available => 0,
        ManualKind::Away | ManualKind::BeRightBack | ManualKind::AppearOffline => 1,
        ManualKind::Busy => 2,
        ManualKind::DoNotDisturb => 3,
    };
    let reachability = match manual.reachability {
        Reachability::Normal => 0,
        Reachability::Pause => 1,
        Reachability::BusinessTrip => 2,
        Reachability::HomeOffice => 3,
        Reachability::Vacation => 4,
    };
    let mut out = json!({
        "u8sContactId": uri,
        "eAbsentState": code,
        "state": manual.kind,
        "eReachability": reachability,
        "reachability": manual.reachability,
    });
    if let Some(text) = &manual.text {
        out["u8sMessage"] = json!(text);
    }
    if let Some(from) = manual.from {
        out["stTimeFrom"] = time(from);
    }
    if let Some(to) = manual.to {
        out["stTimeTo"] = time(to);
    }
    out
}

fn appointment(a: &AppointmentView) -> Value {
    let status = match a.status {
        AppointmentStatus::Free => 0,
        AppointmentStatus::Tentative => 1,
        AppointmentStatus::Busy => 2,
        AppointmentStatus::OutOfOffice => 3,
    };
    let mut out = json!({"stStart": time(a.start), "stEnd": time(a.end), "iStatus": status});
    if let Some(subject) = &a.subject {
        out["u8sSubject"] = json!(subject);
    }
    if let Some(location) = &a.location {
        out["optionalParams"] = json!({"Location": location});
    }
    out
}

fn line(l: &Line) -> Value {
    let state = match l.state {
        LineState::InService => 1,
        LineState::OutOfService => 0,
    };
    json!({"u8sLinePhoneNumber": l.number, "u8sLineNumber": l.number, "iState": state, "iDoNotDisturb": u8::from(l.dnd)})
}

fn call(c: &Call) -> Value {
    let state = match c.state {
        CallState::Offering => 2,
        CallState::Dialing => 4,
        CallState::Ringback => 8,
        CallState::Connected => 32,
        CallState::Conferenced => 64,
        CallState::Held => 128,
        CallState::Disconnected => 256,
    };
    let journal = match c.service {
        CallService::Phone => 0,
        CallService::AudioVideo => 3,
        CallService::Bluetooth => 5,
        CallService::Softphone => 7,
    };
    let mut out = json!({
        "u8sConnectionID": c.id,
        "eCallState": state,
        "bOutbound": c.direction == crate::model::sources::CallDirection::Outgoing,
        "bInternal": !c.external,
        "eJournalCallType": journal,
    });
    if let Some(line) = &c.line {
        out["u8sLinePhoneNumber"] = json!(line);
    }
    if let Some(partner) = &c.partner_number {
        out["u8sCurrentNumberSC"] = json!(partner);
    }
    out
}

fn forward(f: &Forward) -> Value {
    let mode = match f.mode {
        ForwardMode::Immediate => 1,
        ForwardMode::Busy => 2,
        ForwardMode::NoAnswer => 3,
        ForwardMode::BusyNoAnswer => 10,
    };
    let mut out = json!({"u8sDestination": f.destination, "iForwardMode": mode});
    if let Some(line) = &f.line {
        out["u8sLinePhoneNumber"] = json!(line);
    }
    if let Some(seconds) = f.no_answer_seconds {
        out["iNoAnswerTime"] = json!(seconds);
    }
    out
}

fn agent_state(state: AgentState) -> u32 {
    match state {
        AgentState::LoggedOut => 0,
        AgentState::NotReady => 1,
        AgentState::Ready => 2,
        AgentState::Busy => 3,
        AgentState::AfterCallWork => 4,
    }
}
