//! The inputs a presentity's presence is calculated from: the manual state, the note, calls,
//! appointments, agent state and the activity of the user's signed-in clients. Plain data, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub type Timestamp = DateTime<Utc>;

/// What a user chose by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ManualKind {
    Available,
    Busy,
    DoNotDisturb,
    BeRightBack,
    Away,
    AppearOffline,
}

/// Where a user can be reached (Presence V2 `AsnReachabilityEnum`), shown next to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Reachability {
    #[default]
    Normal,
    Pause,
    BusinessTrip,
    HomeOffice,
    Vacation,
}

/// The manual ("absent") state with its optional text and time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualState {
    pub kind: ManualKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    #[serde(default)]
    pub reachability: Reachability,
}

impl ManualState {
    pub fn simple(kind: ManualKind) -> Self {
        ManualState { kind, text: None, from: None, to: None, reachability: Reachability::Normal }
    }

    /// In force at `now`: after `from` (if any) and before `to` (if any).
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.from.is_none_or(|from| from <= now) && self.to.is_none_or(|to| now < to)
    }

    /// Over for good: its `to` time has passed.
    pub fn has_ended(&self, now: Timestamp) -> bool {
        self.to.is_some_and(|to| to <= now)
    }
}

/// A personal note with an optional expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

impl Note {
    pub fn is_active(&self, now: Timestamp) -> bool {
        !self.text.is_empty() && self.expires.is_none_or(|at| now < at)
    }
}

/// The service a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallService {
    #[default]
    Phone,
    Softphone,
    AudioVideo,
    Bluetooth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    Offering,
    Dialing,
    Ringback,
    Connected,
    Held,
    Conferenced,
    Disconnected,
}

impl CallState {
    /// A call that occupies the user (rule 3): connected, held, conferenced or being dialled.
    pub fn is_active(self) -> bool {
        matches!(self, CallState::Dialing | CallState::Ringback | CallState::Connected | CallState::Held | CallState::Conferenced)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallDirection {
    #[default]
    Incoming,
    Outgoing,
}

/// A call on a phone line or another service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Call {
    /// Not blank.
    #[schema(pattern = r"\S")]
    pub id: String,
    /// Set from the reporting source's kind.
    #[serde(default)]
    pub service: CallService,
    pub state: CallState,
    #[serde(default)]
    pub direction: CallDirection,
    #[serde(default)]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_number: Option<String>,
    /// The line number the call is on (phone calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LineState {
    #[default]
    InService,
    OutOfService,
}

/// A telephone line of the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Line {
    /// Not blank.
    #[schema(pattern = r"\S")]
    pub number: String,
    #[serde(default)]
    pub state: LineState,
    #[serde(default)]
    pub dnd: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardMode {
    Immediate,
    Busy,
    NoAnswer,
    BusyNoAnswer,
}

/// A call forward set on a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forward {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    pub mode: ForwardMode,
    /// Not blank.
    #[schema(pattern = r"\S")]
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_answer_seconds: Option<u32>,
}

/// What a computer (desktop client) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ComputerState {
    LoggedIn,
    Locked,
    Idle,
    LoggedOut,
}

/// Presence V2 `AsnClientCapabilityEnum` values a user's clients offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Audio = 1,
    Video = 2,
    ScreenShare = 3,
    ExchangeCalendar = 4,
    NotesCalendar = 5,
    CameraControl = 6,
    PublicChat = 7,
    PublicCall = 8,
    Conferencing = 9,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AppointmentStatus {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Appointment {
    /// Not blank.
    #[schema(pattern = r"\S")]
    pub id: String,
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub start: Timestamp,
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub end: Timestamp,
    pub status: AppointmentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default)]
    pub private: bool,
}

impl Appointment {
    pub fn is_current(&self, now: Timestamp) -> bool {
        self.start <= now && now < self.end
    }
}

/// Agent (ACD) state, Presence V2 `AsnAgentStateEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    #[default]
    LoggedOut,
    NotReady,
    Ready,
    Busy,
    AfterCallWork,
}

/// The user's signed-in clients, as the aggregation rule needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientActivity {
    pub signed_in: usize,
    pub idle: usize,
}

impl ClientActivity {
    pub fn all_idle(self) -> bool {
        self.signed_in > 0 && self.idle == self.signed_in
    }
}

/// Everything integrations report about a user, merged over all their sources.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceReports {
    #[serde(default)]
    pub calls: Vec<Call>,
    #[serde(default)]
    pub appointments: Vec<Appointment>,
    #[serde(default)]
    pub agent: AgentState,
    /// The out-of-office message a calendar sync reports (shown as the OOF note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oof_message: Option<String>,
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub forwards: Vec<Forward>,
    /// The most present state any computer reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<ComputerState>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Whether an agent source reported at all.
    #[serde(default)]
    pub agent_reported: bool,
}

impl SourceReports {
    /// Some source says the user is there (rule 1): a live call, a logged-in agent or computer.
    pub fn reports_activity(&self) -> bool {
        self.calls.iter().any(|c| c.state != CallState::Disconnected)
            || self.agent != AgentState::LoggedOut
            || self.computer.is_some_and(|c| c != ComputerState::LoggedOut)
    }
}
