//! Source reports: what each integration (a PBX connector, a calendar sync, a softphone, a
//! headset, a desktop client, an ACD) last said about a user, under a name the integration chooses,
//! each with an optional expiry so that a dead connector cannot leave a stale "on the phone"
//! forever. The aggregation rule sees them merged.

use super::sources::{
    AgentState, Appointment, Call, CallService, Capability, ComputerState, Forward, Line, SourceReports, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The data of one report, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ReportData {
    Phone {
        #[serde(default)]
        lines: Vec<Line>,
        #[serde(default)]
        calls: Vec<Call>,
        #[serde(default)]
        forwards: Vec<Forward>,
    },
    Softphone {
        #[serde(default)]
        calls: Vec<Call>,
    },
    AudioVideo {
        #[serde(default)]
        calls: Vec<Call>,
    },
    Bluetooth {
        #[serde(default)]
        calls: Vec<Call>,
    },
    Calendar {
        #[serde(default)]
        appointments: Vec<Appointment>,
        #[serde(default, rename = "oofMessage", skip_serializing_if = "Option::is_none")]
        oof_message: Option<String>,
    },
    Computer {
        state: ComputerState,
    },
    Agent {
        state: AgentState,
    },
    Capabilities {
        capabilities: Vec<Capability>,
    },
}

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
            ReportData::Phone { calls, lines, forwards } => {
                if let Some(i) = lines.iter().position(|l| l.number.trim().is_empty()) {
                    return err(format!("lines[{i}].number"), "must not be empty");
                }
                if let Some(i) = forwards.iter().position(|f| f.destination.trim().is_empty()) {
                    return err(format!("forwards[{i}].destination"), "must not be empty");
                }
                calls
            }
            ReportData::Softphone { calls } | ReportData::AudioVideo { calls } | ReportData::Bluetooth { calls } => calls,
            ReportData::Calendar { appointments, .. } => {
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

    fn service(&self) -> Option<CallService> {
        match self {
            ReportData::Phone { .. } => Some(CallService::Phone),
            ReportData::Softphone { .. } => Some(CallService::Softphone),
            ReportData::AudioVideo { .. } => Some(CallService::AudioVideo),
            ReportData::Bluetooth { .. } => Some(CallService::Bluetooth),
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
                ReportData::Phone { lines, calls, forwards } => {
                    out.lines.extend(lines.iter().cloned());
                    out.forwards.extend(forwards.iter().cloned());
                    out.calls.extend(tagged(calls));
                }
                ReportData::Softphone { calls } | ReportData::AudioVideo { calls } | ReportData::Bluetooth { calls } => {
                    out.calls.extend(tagged(calls))
                }
                ReportData::Calendar { appointments, oof_message } => {
                    out.appointments.extend(appointments.iter().cloned());
                    out.oof_message = out.oof_message.take().or_else(|| oof_message.clone());
                }
                ReportData::Computer { state } => out.computer = Some(most_present(out.computer, *state)),
                ReportData::Agent { state } => {
                    out.agent = *state;
                    out.agent_reported = true;
                }
                ReportData::Capabilities { capabilities } => out.capabilities.extend(capabilities.iter().copied()),
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
        let bad = serde_json::from_str::<ReportData>(r#"{"kind":"phone","calls":[{"id":"c1","state":"exploded"}]}"#);
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
        reports.0.insert(
            "pbx".into(),
            SourceReport { data: ReportData::Phone { lines: vec![], calls: vec![call("a")], forwards: vec![] }, expires: None },
        );
        reports.0.insert(
            "headset".into(),
            SourceReport { data: ReportData::Bluetooth { calls: vec![call("b")] }, expires: Some(now + Duration::seconds(5)) },
        );
        reports
            .0
            .insert("pc".into(), SourceReport { data: ReportData::Computer { state: ComputerState::Locked }, expires: None });
        reports
            .0
            .insert("pc2".into(), SourceReport { data: ReportData::Computer { state: ComputerState::LoggedIn }, expires: None });
        let merged = reports.merge();
        let services: Vec<_> = merged.calls.iter().map(|c| c.service).collect();
        assert_eq!(services, [CallService::Bluetooth, CallService::Phone]);
        assert_eq!(merged.computer, Some(ComputerState::LoggedIn));
        assert_eq!(reports.next_expiry(), Some(now + Duration::seconds(5)));
        assert!(reports.drop_expired(now + Duration::seconds(5)));
        assert_eq!(reports.merge().calls.len(), 1);
    }
}
