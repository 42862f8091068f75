//! Presence as JSON with the Presence V2 (`AsnPresenceV2`) field names, beside Microsoft Graph's
//! `availability` and `activity` ([`graph`]), rendered from a [`PresenceView`] — so it
//! holds exactly what the caller's level allows, as the CWA side does.
//! The output types are the schema the OpenAPI document shows; fields are declared in the byte
//! order of their JSON names, so the output keeps its sorted key order. (`deny_unknown_fields` on
//! these output-only types tells the schema that no other keys appear.)

pub mod events;
pub mod graph;

use crate::model::presentity::{AppointmentView, PhoneKind, PresenceView};
use crate::model::sources::{
    AgentState, AppointmentStatus, Call, CallService, CallState, Forward, ForwardMode, Line, LineState, ManualKind, ManualState,
    Reachability, Timestamp,
};
use graph::{graph_presence, GraphActivity, GraphAvailability};
use serde::Serialize;
use utoipa::ToSchema;

fn time(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `AsnPresenceV2`: one user's presence as the caller may see it. Parts the caller's level does
/// not show are left out.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceV2 {
    /// Microsoft Graph's `activity`: what the user is doing, as far as the caller may see.
    pub activity: GraphActivity,
    #[serde(rename = "asnAbsentState", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub absent_state: Option<AbsentStateV2>,
    #[serde(rename = "asnAgentState", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub agent_state: Option<AgentStateV2>,
    #[serde(rename = "asnContactCapabilitiesEx", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub capabilities: Option<CapabilitiesV2>,
    #[serde(rename = "asnCustomNote", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub custom_note: Option<CustomNoteV2>,
    #[serde(rename = "asnNextAppointment", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_appointment: Option<AppointmentV2>,
    #[serde(rename = "asnRemoteContact")]
    pub remote_contact: RemoteContactV2,
    /// Microsoft Graph's `availability`: the base state, as far as the caller may see.
    pub availability: GraphAvailability,
    /// The calculated state: availability in the low byte, flags above it.
    #[serde(rename = "iPresenceState")]
    pub presence_state: u32,
    /// The appointment going on now (empty when none); present when the calendar is visible.
    #[serde(rename = "seqActualAppointments", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub actual_appointments: Option<Vec<AppointmentV2>>,
    #[serde(rename = "seqCalls", skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallV2>,
    #[serde(rename = "seqLineForwards", skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<ForwardV2>,
    #[serde(rename = "seqPhoneLines", skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineV2>,
    #[serde(rename = "u8sContactId")]
    pub contact_id: String,
}

/// `AsnRemoteContact`: the contact card parts the caller may see.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteContactV2 {
    #[serde(rename = "u8sCompany", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub company: Option<String>,
    #[serde(rename = "u8sDepartment", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub department: Option<String>,
    #[serde(rename = "u8sDisplayName", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub display_name: Option<String>,
    #[serde(rename = "u8sEMail", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    #[serde(rename = "u8sJobTitle", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub job_title: Option<String>,
    #[serde(rename = "u8sOfficeRoomNumber", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub office: Option<String>,
    #[serde(rename = "u8sOtherTelephoneNumber", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone_other: Option<String>,
    #[serde(rename = "u8sPhoneBusiness", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone_business: Option<String>,
    #[serde(rename = "u8sPhoneHome", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone_home: Option<String>,
    #[serde(rename = "u8sPhoneMobile", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone_mobile: Option<String>,
    #[serde(rename = "u8sSIPAddress")]
    pub sip_address: String,
}

/// `AsnAbsentState`: the manual state, with the gateway's own kind and reachability by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbsentStateV2 {
    /// `AsnAbsentStateEnum`: 0 available, 1 out of office (away, be right back, appear offline),
    /// 2 busy, 3 do not disturb.
    #[serde(rename = "eAbsentState")]
    #[schema(minimum = 0, maximum = 3)]
    pub absent_state: u32,
    /// `AsnReachabilityEnum`: 0 normal, 1 pause, 2 business trip, 3 home office, 4 vacation.
    #[serde(rename = "eReachability")]
    #[schema(minimum = 0, maximum = 4)]
    pub reachability_code: u32,
    pub reachability: Reachability,
    #[serde(rename = "stTimeFrom", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub from: Option<String>,
    #[serde(rename = "stTimeTo", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub to: Option<String>,
    pub state: ManualKind,
    #[serde(rename = "u8sContactId")]
    pub contact_id: String,
    #[serde(rename = "u8sMessage", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
}

/// `AsnCustomNote`: the personal note.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomNoteV2 {
    #[serde(rename = "u8sContactID")]
    pub contact_id: String,
    #[serde(rename = "u8sNote")]
    pub note: String,
    #[serde(rename = "u8sUsername")]
    pub username: String,
}

/// `AsnAppointmentEntry`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentV2 {
    /// 0 free, 1 tentative, 2 busy, 3 out of office.
    #[serde(rename = "iStatus")]
    #[schema(minimum = 0, maximum = 3)]
    pub status: u32,
    #[serde(rename = "optionalParams", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub optional_params: Option<AppointmentParamsV2>,
    #[serde(rename = "stEnd")]
    #[schema(format = DateTime)]
    pub end: String,
    #[serde(rename = "stStart")]
    #[schema(format = DateTime)]
    pub start: String,
    #[serde(rename = "u8sSubject", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentParamsV2 {
    #[serde(rename = "Location")]
    pub location: String,
}

/// `AsnPhoneLine`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineV2 {
    /// 1 when do-not-disturb is set on the line.
    #[serde(rename = "iDoNotDisturb")]
    #[schema(minimum = 0, maximum = 1)]
    pub do_not_disturb: u8,
    /// 1 in service, 0 out of service.
    #[serde(rename = "iState")]
    #[schema(minimum = 0, maximum = 1)]
    pub state: u32,
    #[serde(rename = "u8sLineNumber")]
    pub line_number: String,
    #[serde(rename = "u8sLinePhoneNumber")]
    pub line_phone_number: String,
}

/// `AsnCall`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallV2 {
    #[serde(rename = "bInternal")]
    pub internal: bool,
    #[serde(rename = "bOutbound")]
    pub outbound: bool,
    /// 2 offering, 4 dialing, 8 ringback, 32 connected, 64 conferenced, 128 held, 256 disconnected.
    #[serde(rename = "eCallState")]
    pub call_state: u32,
    /// 0 phone, 3 audio/video, 5 Bluetooth, 7 softphone.
    #[serde(rename = "eJournalCallType")]
    pub journal_call_type: u32,
    #[serde(rename = "u8sConnectionID")]
    pub connection_id: String,
    #[serde(rename = "u8sCurrentNumberSC", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub current_number: Option<String>,
    #[serde(rename = "u8sLinePhoneNumber", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub line_phone_number: Option<String>,
}

/// `AsnLineForward`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardV2 {
    /// 1 immediate, 2 busy, 3 no answer, 10 busy or no answer.
    #[serde(rename = "iForwardMode")]
    pub forward_mode: u32,
    #[serde(rename = "iNoAnswerTime", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub no_answer_time: Option<u32>,
    #[serde(rename = "u8sDestination")]
    pub destination: String,
    #[serde(rename = "u8sLinePhoneNumber", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub line_phone_number: Option<String>,
}

/// `AsnAgentState`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStateV2 {
    /// 0 logged out, 1 not ready, 2 ready, 3 busy, 4 after-call work.
    #[serde(rename = "dwState")]
    #[schema(minimum = 0, maximum = 4)]
    pub state: u32,
}

/// `AsnContactCapabilitiesEx`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesV2 {
    /// Always empty: the gateway knows no custom capabilities.
    #[serde(rename = "customCapabilities")]
    pub custom_capabilities: Vec<String>,
    /// `AsnClientCapabilityEnum` values: 1 audio, 2 video, 3 screen share, 4 Exchange calendar,
    /// 5 Notes calendar, 6 camera control, 7 public chat, 8 public call, 9 conferencing.
    #[serde(rename = "eClientCapabilities")]
    pub client_capabilities: Vec<u32>,
}

/// The whole `AsnPresenceV2` object. It never says which level the reader has: a watcher learns
/// nothing from it that a user who really is offline would not show (README, "What a watcher
/// sees").
pub fn presence(view: &PresenceView) -> PresenceV2 {
    let calendar = view.calendar.as_ref();
    let (availability, activity) = graph_presence(view);
    PresenceV2 {
        activity,
        absent_state: view.manual.as_ref().map(|manual| absent_state(&view.uri, manual)),
        agent_state: view.agent.map(|agent| AgentStateV2 { state: agent_state(agent) }),
        capabilities: (!view.capabilities.is_empty()).then(|| CapabilitiesV2 {
            custom_capabilities: Vec::new(),
            client_capabilities: view.capabilities.iter().map(|c| *c as u32).collect(),
        }),
        custom_note: view.personal_note.as_ref().map(|note| CustomNoteV2 {
            contact_id: view.uri.clone(),
            note: note.clone(),
            username: view.display_name.clone().unwrap_or_default(),
        }),
        next_appointment: calendar.and_then(|c| c.next.as_ref()).map(appointment),
        remote_contact: remote_contact(view),
        availability,
        presence_state: view.state.0,
        actual_appointments: calendar.map(|c| c.current.iter().map(appointment).collect()),
        calls: view.calls.iter().map(call).collect(),
        forwards: view.forwards.iter().map(forward).collect(),
        lines: view.lines.iter().map(line).collect(),
        contact_id: view.uri.clone(),
    }
}

fn remote_contact(view: &PresenceView) -> RemoteContactV2 {
    let mut c = RemoteContactV2 {
        company: view.card.company.clone(),
        department: view.card.department.clone(),
        display_name: view.display_name.clone(),
        email: view.email.clone(),
        job_title: view.card.title.clone(),
        office: view.card.office.clone(),
        sip_address: view.uri.clone(),
        ..RemoteContactV2::default()
    };
    for (kind, number) in &view.card.phones {
        let slot = match kind {
            PhoneKind::Work => &mut c.phone_business,
            PhoneKind::Mobile => &mut c.phone_mobile,
            PhoneKind::Home => &mut c.phone_home,
            PhoneKind::Other => &mut c.phone_other,
        };
        *slot = Some(number.clone());
    }
    c
}

/// Presence V2 `AsnAbsentStateEnum` (0 available, 1 out of office, 2 busy, 3 DND) plus the
/// gateway's own kinds, named in `state`.
pub fn absent_state(uri: &str, manual: &ManualState) -> AbsentStateV2 {
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
    AbsentStateV2 {
        absent_state: code,
        reachability_code: reachability,
        reachability: manual.reachability,
        from: manual.from.map(time),
        to: manual.to.map(time),
        state: manual.kind,
        contact_id: uri.to_string(),
        message: manual.text.clone(),
    }
}

fn appointment(a: &AppointmentView) -> AppointmentV2 {
    let status = match a.status {
        AppointmentStatus::Free => 0,
        AppointmentStatus::Tentative => 1,
        AppointmentStatus::Busy => 2,
        AppointmentStatus::OutOfOffice => 3,
    };
    AppointmentV2 {
        status,
        optional_params: a.location.clone().map(|location| AppointmentParamsV2 { location }),
        end: time(a.end),
        start: time(a.start),
        subject: a.subject.clone(),
    }
}

fn line(l: &Line) -> LineV2 {
    let state = match l.state {
        LineState::InService => 1,
        LineState::OutOfService => 0,
    };
    LineV2 { do_not_disturb: u8::from(l.dnd), state, line_number: l.number.clone(), line_phone_number: l.number.clone() }
}

fn call(c: &Call) -> CallV2 {
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
    CallV2 {
        internal: !c.external,
        outbound: c.direction == crate::model::sources::CallDirection::Outgoing,
        call_state: state,
        journal_call_type: journal,
        connection_id: c.id.clone(),
        current_number: c.partner_number.clone(),
        line_phone_number: c.line.clone(),
    }
}

fn forward(f: &Forward) -> ForwardV2 {
    let mode = match f.mode {
        ForwardMode::Immediate => 1,
        ForwardMode::Busy => 2,
        ForwardMode::NoAnswer => 3,
        ForwardMode::BusyNoAnswer => 10,
    };
    ForwardV2 {
        forward_mode: mode,
        no_answer_time: f.no_answer_seconds,
        destination: f.destination.clone(),
        line_phone_number: f.line.clone(),
    }
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
