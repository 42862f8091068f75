//! The aggregation rule (docs/architecture.md §2.2): one pure function from a user's inputs at an instant to the
//! calculated presence and the activity that explains it. Every rule has a unit test below.

use super::sources::{
    AgentState, AppointmentStatus, CallState, ClientActivity, ManualKind, ManualState, Note, SourceReports, Timestamp,
};
use super::state::{flags, BaseState, PresenceState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why the state is what it is: the detail behind the number (shown as a CWA activity token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    #[default]
    None,
    OnThePhone,
    InAConference,
    InAMeeting,
    OutOfOffice,
    BeRightBack,
    AppearOffline,
}

/// The outcome of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Aggregated {
    pub state: PresenceState,
    pub activity: Activity,
}

/// What the rule looks at.
#[derive(Debug, Clone, Copy)]
pub struct AggregateInputs<'a> {
    pub now: Timestamp,
    pub clients: ClientActivity,
    pub manual: Option<&'a ManualState>,
    pub note: Option<&'a Note>,
    pub sources: &'a SourceReports,
}

/// Applies the rule of docs/architecture.md §2.2 (see the README's table).
pub fn aggregate(input: AggregateInputs<'_>) -> Aggregated {
    let manual = input.manual.filter(|m| m.is_active(input.now)).map(|m| m.kind);
    let mut state = PresenceState::new(BaseState::Available);

    let calls = &input.sources.calls;
    let in_call = calls.iter().any(|c| c.state.is_active());
    let conferencing = calls.iter().any(|c| c.state == CallState::Conferenced);
    let ringing = calls.iter().any(|c| c.state == CallState::Offering);
    let after_call = input.sources.agent == AgentState::AfterCallWork;
    let current = input.sources.appointments.iter().filter(|a| a.is_current(input.now));
    let appointment = current.map(|a| a.status).max_by_key(|s| appointment_weight(*s));

    // Facts become flags whatever decides the base.
    if in_call {
        state = state.with(flags::CALL);
    }
    if conferencing {
        state = state.with(flags::CONFERENCING);
    }
    if ringing {
        state = state.with(flags::RINGING);
    }
    if after_call {
        state = state.with(flags::WORKING_AFTER_CALL);
    }
    if appointment.is_some() {
        state = state.with(flags::APPOINTMENT);
    }
    if input.note.is_some_and(|n| n.is_active(input.now)) {
        state = state.with(flags::NOTE_SET);
    }

    // Priority for the base state: DND, calls, manual, calendar, available.
    let (base, why) = if manual == Some(ManualKind::DoNotDisturb) {
        (BaseState::DoNotDisturb, Activity::None)
    } else if in_call {
        let why = if conferencing { Activity::InAConference } else { Activity::OnThePhone };
        (BaseState::Busy, why)
    } else if after_call {
        (BaseState::Busy, Activity::None)
    } else if let Some(kind) = manual.filter(|k| *k != ManualKind::AppearOffline) {
        manual_base(kind)
    } else {
        match appointment {
            Some(AppointmentStatus::Busy) => (BaseState::Busy, Activity::InAMeeting),
            Some(AppointmentStatus::OutOfOffice) => (BaseState::Absent, Activity::OutOfOffice),
            _ => (BaseState::Available, Activity::None),
        }
    };
    state = state.with_base(base);
    let mut activity = why;

    if input.clients.all_idle() {
        state = state.with(flags::IDLE);
    }
    let present = input.clients.signed_in > 0 || input.sources.reports_activity();
    if !present {
        state = state.with(flags::OFFLINE);
    }
    if manual == Some(ManualKind::AppearOffline) {
        state = state.with(flags::OFFLINE);
        activity = Activity::AppearOffline;
    }
    Aggregated { state, activity }
}

fn manual_base(kind: ManualKind) -> (BaseState, Activity) {
    match kind {
        ManualKind::Available => (BaseState::Available, Activity::None),
        ManualKind::Busy => (BaseState::Busy, Activity::None),
        ManualKind::BeRightBack => (BaseState::Absent, Activity::BeRightBack),
        ManualKind::Away => (BaseState::Absent, Activity::None),
        ManualKind::DoNotDisturb => (BaseState::DoNotDisturb, Activity::None),
        ManualKind::AppearOffline => (BaseState::Available, Activity::AppearOffline),
    }
}

/// When several appointments overlap, the strongest status decides.
fn appointment_weight(status: AppointmentStatus) -> u8 {
    match status {
        AppointmentStatus::Free => 0,
        AppointmentStatus::Tentative => 1,
        AppointmentStatus::Busy => 2,
        AppointmentStatus::OutOfOffice => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sources::{Appointment, Call, CallService};
    use chrono::{Duration, TimeZone, Utc};

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn online() -> ClientActivity {
        ClientActivity { signed_in: 1, idle: 0 }
    }

    fn run(clients: ClientActivity, manual: Option<ManualKind>, sources: &SourceReports) -> Aggregated {
        let manual = manual.map(ManualState::simple);
        aggregate(AggregateInputs { now: now(), clients, manual: manual.as_ref(), note: None, sources })
    }

    fn call(state: CallState) -> Call {
        Call {
            id: "c1".into(),
            service: CallService::Phone,
            state,
            direction: Default::default(),
            external: false,
            partner_number: None,
            line: None,
        }
    }

    fn appointment(status: AppointmentStatus, start_min: i64, end_min: i64) -> Appointment {
        Appointment {
            id: "a1".into(),
            start: now() + Duration::minutes(start_min),
            end: now() + Duration::minutes(end_min),
            status,
            subject: None,
            location: None,
            private: false,
        }
    }

    fn with_calls(states: &[CallState]) -> SourceReports {
        SourceReports { calls: states.iter().map(|s| call(*s)).collect(), ..Default::default() }
    }

    #[test]
    fn rule1_offline_when_nothing_signed_in_but_base_is_kept() {
        let cal = SourceReports { appointments: vec![appointment(AppointmentStatus::Busy, -5, 5)], ..Default::default() };
        let out = run(ClientActivity::default(), None, &cal);
        assert!(out.state.has(flags::OFFLINE));
        assert_eq!(out.state.base(), BaseState::Busy, "offline but in a meeting stays expressible");
        assert!(out.state.is_offline());
    }

    #[test]
    fn rule1_a_source_reporting_activity_counts_as_present() {
        let out = run(ClientActivity::default(), None, &with_calls(&[CallState::Connected]));
        assert!(!out.state.has(flags::OFFLINE));
        assert_eq!(out.state.base(), BaseState::Busy);
    }

    #[test]
    fn rule2_appear_offline_and_dnd() {
        let out = run(online(), Some(ManualKind::AppearOffline), &SourceReports::default());
        assert!(out.state.has(flags::OFFLINE));
        assert_eq!(out.activity, Activity::AppearOffline);
        let out = run(online(), Some(ManualKind::DoNotDisturb), &with_calls(&[CallState::Connected]));
        assert_eq!(out.state.base(), BaseState::DoNotDisturb, "DND wins over a call");
        assert!(out.state.has(flags::CALL), "the call is still a fact");
    }

    #[test]
    fn rule3_calls_ringing_and_after_call_work() {
        for s in [CallState::Connected, CallState::Held, CallState::Dialing, CallState::Conferenced] {
            let out = run(online(), Some(ManualKind::Available), &with_calls(&[s]));
            assert_eq!(out.state.base(), BaseState::Busy, "{s:?}");
            assert!(out.state.has(flags::CALL));
        }
        let conf = run(online(), None, &with_calls(&[CallState::Conferenced]));
        assert_eq!(conf.activity, Activity::InAConference);
        assert!(conf.state.has(flags::CONFERENCING));
        let phone = run(online(), None, &with_calls(&[CallState::Connected]));
        assert_eq!(phone.activity, Activity::OnThePhone);

        let ringing = run(online(), None, &with_calls(&[CallState::Offering]));
        assert_eq!(ringing.state.base(), BaseState::Available, "ringing adds the flag only");
        assert!(ringing.state.has(flags::RINGING));
        assert!(!ringing.state.has(flags::CALL));

        let gone = run(online(), None, &with_calls(&[CallState::Disconnected]));
        assert_eq!(gone.state.0, BaseState::Available as u32);

        let acw = SourceReports { agent: AgentState::AfterCallWork, ..Default::default() };
        let out = run(online(), Some(ManualKind::Available), &acw);
        assert_eq!(out.state.base(), BaseState::Busy);
        assert!(out.state.has(flags::WORKING_AFTER_CALL));
    }

    #[test]
    fn rule4_manual_state_decides_the_base() {
        let busy_cal = SourceReports { appointments: vec![appointment(AppointmentStatus::Busy, -5, 5)], ..Default::default() };
        let cases = [
            (ManualKind::Busy, BaseState::Busy, Activity::None),
            (ManualKind::Away, BaseState::Absent, Activity::None),
            (ManualKind::BeRightBack, BaseState::Absent, Activity::BeRightBack),
            (ManualKind::Available, BaseState::Available, Activity::None),
        ];
        for (kind, base, activity) in cases {
            let out = run(online(), Some(kind), &busy_cal);
            assert_eq!((out.state.base(), out.activity), (base, activity), "{kind:?}");
            assert!(out.state.has(flags::APPOINTMENT));
        }
    }

    #[test]
    fn rule4_manual_state_outside_its_window_is_ignored() {
        let mut manual = ManualState::simple(ManualKind::Busy);
        manual.to = Some(now());
        let src = SourceReports::default();
        let out = aggregate(AggregateInputs { now: now(), clients: online(), manual: Some(&manual), note: None, sources: &src });
        assert_eq!(out.state.base(), BaseState::Available);
        manual.to = None;
        manual.from = Some(now() + Duration::minutes(1));
        let out = aggregate(AggregateInputs { now: now(), clients: online(), manual: Some(&manual), note: None, sources: &src });
        assert_eq!(out.state.base(), BaseState::Available);
    }

    #[test]
    fn rule5_calendar() {
        let cases = [
            (AppointmentStatus::Busy, BaseState::Busy, Activity::InAMeeting),
            (AppointmentStatus::OutOfOffice, BaseState::Absent, Activity::OutOfOffice),
            (AppointmentStatus::Tentative, BaseState::Available, Activity::None),
            (AppointmentStatus::Free, BaseState::Available, Activity::None),
        ];
        for (status, base, activity) in cases {
            let src = SourceReports { appointments: vec![appointment(status, -5, 5)], ..Default::default() };
            let out = run(online(), None, &src);
            assert_eq!((out.state.base(), out.activity), (base, activity), "{status:?}");
            assert!(out.state.has(flags::APPOINTMENT));
        }
        let later = SourceReports { appointments: vec![appointment(AppointmentStatus::Busy, 5, 10)], ..Default::default() };
        let out = run(online(), None, &later);
        assert_eq!(out.state.0, BaseState::Available as u32, "a future appointment changes nothing yet");
    }

    #[test]
    fn rule6_available_and_idle() {
        let out = run(online(), None, &SourceReports::default());
        assert_eq!(out, Aggregated { state: PresenceState::new(BaseState::Available), activity: Activity::None });
        let idle = run(ClientActivity { signed_in: 2, idle: 2 }, None, &SourceReports::default());
        assert!(idle.state.has(flags::IDLE));
        let half = run(ClientActivity { signed_in: 2, idle: 1 }, None, &SourceReports::default());
        assert!(!half.state.has(flags::IDLE), "one active client is enough");
    }

    #[test]
    fn note_sets_its_flag_until_it_expires() {
        let note = Note { text: "Back at 3".into(), expires: Some(now() + Duration::minutes(1)) };
        let src = SourceReports::default();
        let out = aggregate(AggregateInputs { now: now(), clients: online(), manual: None, note: Some(&note), sources: &src });
        assert!(out.state.has(flags::NOTE_SET));
        let later = now() + Duration::minutes(2);
        let out = aggregate(AggregateInputs { now: later, clients: online(), manual: None, note: Some(&note), sources: &src });
        assert!(!out.state.has(flags::NOTE_SET));
    }
}
