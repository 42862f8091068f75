//! Source reports: what each integration (a PBX connector, a calendar sync, a softphone, a
//! headset, a desktop client, an ACD) last said about a user, under a name the integration chooses,
//! each with an optional expiry so that a dead connector cannot leave a stale "on the phone"
//! forever. The aggregation rule sees them merged.

use super::sources::{
    AgentState, Appointment, Call, CallService, Capability, ComputerState, Forward, Line, SourceReports, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Lines, calls and forwards reported by a PBX / CTI connector.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhoneData {
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub calls: Vec<Call>,
    #[serde(default)]
    pub forwards: Vec<Forward>,
}

/// Calls of a softphone, an audio/video client or a Bluetooth headset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallsData {
    #[serde(default)]
    pub calls: Vec<Call>,
}

/// Appointments and the out-of-office message reported by a calendar sync.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalendarData {
    #[serde(default)]
    pub appointments: Vec<Appointment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oof_message: Option<String>,
}

/// What a desktop client reports about the computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputerData {
    pub state: ComputerState,
}

/// The agent (ACD) state reported by a contact-centre system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentData {
    pub state: AgentState,
}

/// What the user's clients can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapabilitiesData {
    pub capabilities: Vec<Capability>,
}

/// The data of one report, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ReportData {
    Phone(PhoneData),
    Softphone(CallsData),
    AudioVideo(CallsData),
    Bluetooth(CallsData),
    Calendar(CalendarData),
    Computer(ComputerData),
    Agent(AgentData),
    Capabilities(CapabilitiesData),
}

/// The kinds, as named in reports.
pub const KINDS: [&str; 8] = ["phone", "softphone", "audio-video", "bluetooth", "calendar", "computer", "agent", "capabilities"];

/// Why a report was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    pub field: String,
    pub message: String,
}

impl ReportData {
    /// Checks what serde cannot: time ranges, ids, lengths. Names the offending field.
    pub fn validate(&self) -> Result<(), ReportError> {
        let err = |field: String, message: &str| Err(ReportError { field, message: message.into() });
        let calls = match self {
            ReportData::Phone(PhoneData { calls, lines, forwards }) => {
                if let Some(i) = lines.iter().position(|l| l.number.trim().is_empty()) {
                    return err(format!("lines[{i}].number"), "must not be empty");
                }
                if let Some(i) = forwards.iter().position(|f| f.destination.trim().is_empty()) {
                    return err(format!("forwards[{i}].destination"), "must not be empty");
                }
                calls
            }
            ReportData::Softphone(CallsData { calls })
            | ReportData::AudioVideo(CallsData { calls })
            | ReportData::Bluetooth(CallsData { calls }) => calls,
            ReportData::Calendar(CalendarData { appointments, .. }) => {
                if let Some(i) = appointments.iter().position(|a| a.end <= a.start) {
                    return err(format!("appointments[{i}].end"), "must be after start");
                }
                if let Some(i) = appointments.iter().position(|a| a.id.trim().is_empty()) {
                    return err(format!("appointments[{i}].id"), "must not be empty");
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        if let Some(i) = calls.iter().position(|c| c.id.trim().is_empty()) {
            return err(format!("calls[{i}].id"), "must not be empty");
        }
        Ok(())
    }

    /// The data as the gateway uses it: each call tagged with the service of the report's kind.
    pub fn with_call_services(&self) -> ReportData {
        let Some(service) = self.service() else { return self.clone() };
        let mut data = self.clone();
        if let ReportData::Phone(PhoneData { calls, .. })
        | ReportData::Softphone(CallsData { calls })
        | ReportData::AudioVideo(CallsData { calls })
        | ReportData::Bluetooth(CallsData { calls }) = &mut data
        {
            calls.iter_mut().for_each(|c| c.service = service);
        }
        data
    }

    fn service(&self) -> Option<CallService> {
        match self {
            ReportData::Phone(_) => Some(CallService::Phone),
            ReportData::Softphone(_) => Some(CallService::Softphone),
            ReportData::AudioVideo(_) => Some(CallService::AudioVideo),
            ReportData::Bluetooth(_) => Some(CallService::Bluetooth),
            _ => None,
        }
    }
}

/// A stored report with its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    pub data: ReportData,
    pub expires: Option<Timestamp>,
}

/// All current reports of one user, by source name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reports(pub BTreeMap<String, SourceReport>);

impl Reports {
    /// Removes reports whose expiry has passed; true if one went.
    pub fn drop_expired(&mut self, now: Timestamp) -> bool {
        let before = self.0.len();
        self.0.retain(|_, r| r.expires.is_none_or(|at| now < at));
        before != self.0.len()
    }

    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.0.values().filter_map(|r| r.expires).min()
    }

    /// Everything merged, with calls tagged by the service of the source that reported them.
    pub fn merge(&self) -> SourceReports {
        let mut out = SourceReports::default();
        for report in self.0.values() {
            let service = report.data.service();
            let tagged = |calls: &[Call]| -> Vec<Call> {
                let tag = |mut c: Call| {
                    c.service = service.unwrap_or(c.service);
                    c
                };
                calls.iter().cloned().map(tag).collect()
            };
            match &report.data {
                ReportData::Phone(PhoneData { lines, calls, forwards }) => {
                    out.lines.extend(lines.iter().cloned());
                    out.forwards.extend(forwards.iter().cloned());
                    out.calls.extend(tagged(calls));
                }
                ReportData::Softphone(c) | ReportData::AudioVideo(c) | ReportData::Bluetooth(c) => {
                    out.calls.extend(tagged(&c.calls))
                }
                ReportData::Calendar(CalendarData { appointments, oof_message }) => {
                    out.appointments.extend(appointments.iter().cloned());
                    out.oof_message = out.oof_message.take().or_else(|| oof_message.clone());
                }
                ReportData::Computer(c) => out.computer = Some(most_present(out.computer, c.state)),
                ReportData::Agent(a) => {
                    out.agent = a.state;
                    out.agent_reported = true;
                }
                ReportData::Capabilities(c) => out.capabilities.extend(c.capabilities.iter().copied()),
            }
        }
        out.capabilities.sort();
        out.capabilities.dedup();
        out
    }
}

fn most_present(current: Option<ComputerState>, next: ComputerState) -> ComputerState {
    let rank = |s: ComputerState| match s {
        ComputerState::LoggedIn => 3,
        ComputerState::Idle => 2,
        ComputerState::Locked => 1,
        ComputerState::LoggedOut => 0,
    };
    match current {
        Some(c) if rank(c) >= rank(next) => c,
        _ => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sources::CallState;
    use chrono::{Duration, Utc};

    #[test]
    fn reports_parse_by_kind_and_name_bad_fields() {
        let phone: ReportData = serde_json::from_str(
            r#"{"kind":"phone","lines":[{"number":"+4989100"}],"calls":[{"id":"c1","state":"connected","direction":"outgoing","partnerNumber":"+4930"}],"forwards":[{"mode":"no-answer","destination":"+49170","noAnswerSeconds":20}]}"#,
        )
        .unwrap();
        phone.validate().unwrap();
        let bad = serde_json::from_str::<PhoneData>(r#"{"calls":[{"id":"c1","state":"exploded"}]}"#);
        assert!(bad.is_err());
        let range: ReportData = serde_json::from_str(
            r#"{"kind":"calendar","appointments":[{"id":"a","start":"2026-01-01T10:00:00Z","end":"2026-01-01T09:00:00Z","status":"busy"}]}"#,
        )
        .unwrap();
        assert_eq!(range.validate().unwrap_err().field, "appointments[0].end");
        assert!(serde_json::from_str::<ReportData>(r#"{"kind":"fax"}"#).is_err());
    }

    #[test]
    fn merge_tags_calls_and_expiry_withdraws() {
        let now = Utc::now();
        let call = |id: &str| Call {
            id: id.into(),
            service: CallService::Phone,
            state: CallState::Connected,
            direction: Default::default(),
            external: false,
            partner_number: None,
            line: None,
        };
        let mut reports = Reports::default();
        let phone = ReportData::Phone(PhoneData { calls: vec![call("a")], ..Default::default() });
        reports.0.insert("pbx".into(), SourceReport { data: phone, expires: None });
        let headset = ReportData::Bluetooth(CallsData { calls: vec![call("b")] });
        reports.0.insert("headset".into(), SourceReport { data: headset, expires: Some(now + Duration::seconds(5)) });
        let locked = ReportData::Computer(ComputerData { state: ComputerState::Locked });
        reports.0.insert("pc".into(), SourceReport { data: locked, expires: None });
        let logged_in = ReportData::Computer(ComputerData { state: ComputerState::LoggedIn });
        reports.0.insert("pc2".into(), SourceReport { data: logged_in, expires: None });
        let merged = reports.merge();
        let services: Vec<_> = merged.calls.iter().map(|c| c.service).collect();
        assert_eq!(services, [CallService::Bluetooth, CallService::Phone]);
        assert_eq!(merged.computer, Some(ComputerState::LoggedIn));
        assert_eq!(reports.next_expiry(), Some(now + Duration::seconds(5)));
        assert!(reports.drop_expired(now + Duration::seconds(5)));
        assert_eq!(reports.merge().calls.len(), 1);
    }
}
