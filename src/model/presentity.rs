//! A presentity: one user's inputs and calculated presence, the timed transitions it is waiting
//! for, and the filtered view a viewer at some access level is allowed to receive.

use super::aggregate::{aggregate, Activity, AggregateInputs, Aggregated};
use super::contact::Profile;
use super::reports::{Reports, SourceReport};
use super::rights::{visibility, AccessLevel};
use super::sources::{
    AgentState, Appointment, AppointmentStatus, Call, Capability, ClientActivity, ComputerState, Forward, Line, ManualKind,
    ManualState, Note, SourceReports, Timestamp,
};
use super::state::{flags, BaseState, PresenceState};
use chrono::Duration;
use std::sync::Arc;

/// How far ahead the "next appointment" looks (Presence V2: 30 days).
const NEXT_APPOINTMENT_HORIZON_DAYS: i64 = 30;

#[derive(Debug, Clone)]
pub struct Presentity {
    pub profile: Arc<Profile>,
    pub manual: Option<ManualState>,
    pub note: Option<Note>,
    /// What each integration reports, by source name.
    pub reports: Reports,
    /// The reports merged (derived from `reports`).
    pub sources: SourceReports,
    pub clients: ClientActivity,
    pub computed: Aggregated,
    /// Hash of the contact image, if there is one.
    pub image_hash: Option<String>,
    /// Published raw categories (durable).
    pub raw: Vec<super::raw::RawCategory>,
}

impl Presentity {
    pub fn new(profile: Arc<Profile>) -> Self {
        Presentity {
            profile,
            manual: None,
            note: None,
            reports: Reports::default(),
            sources: SourceReports::default(),
            clients: ClientActivity::default(),
            image_hash: None,
            raw: Vec::new(),
            computed: Aggregated { state: PresenceState(flags::OFFLINE | BaseState::Available as u32), activity: Activity::None },
        }
    }

    /// Drops a manual state whose `to` has passed and a note that has expired; true if one went.
    pub fn drop_expired(&mut self, now: Timestamp) -> bool {
        let manual_over = self.manual.as_ref().is_some_and(|m| m.has_ended(now));
        let note_over = self.note.as_ref().is_some_and(|n| !n.is_active(now));
        if manual_over {
            self.manual = None;
        }
        if note_over {
            self.note = None;
        }
        manual_over || note_over
    }

    /// This presentity as it would be with no client signed in, no manual state and no source
    /// saying the user is there: what "appear offline" shows watchers.
    fn really_offline(&self, now: Timestamp) -> Presentity {
        let mut twin = self.clone();
        twin.manual = None;
        twin.clients = ClientActivity::default();
        twin.sources.calls.clear();
        twin.sources.agent = AgentState::LoggedOut;
        twin.sources.agent_reported = false;
        twin.sources.computer = None;
        twin.raw.clear();
        twin.recompute(now);
        twin
    }

    /// Stores (or replaces) a source's report.
    pub fn set_report(&mut self, name: &str, report: SourceReport) {
        self.reports.0.insert(name.to_string(), report);
        self.sources = self.reports.merge();
    }

    /// Replaces every report (as re-read from the store).
    pub fn set_reports(&mut self, reports: Reports) {
        self.reports = reports;
        self.sources = self.reports.merge();
    }

    /// Withdraws a source's report; false when there was none.
    pub fn remove_report(&mut self, name: &str) -> bool {
        let removed = self.reports.0.remove(name).is_some();
        self.sources = self.reports.merge();
        removed
    }

    /// Withdraws reports whose TTL has run out; true if one went.
    pub fn drop_expired_reports(&mut self, now: Timestamp) -> bool {
        let dropped = self.reports.drop_expired(now);
        if dropped {
            self.sources = self.reports.merge();
        }
        dropped
    }

    /// Signed-in clients, counting a computer that reports itself logged in, idle or locked.
    fn all_clients(&self) -> ClientActivity {
        let mut clients = self.clients;
        match self.sources.computer {
            Some(ComputerState::LoggedIn) => clients.signed_in += 1,
            Some(ComputerState::Idle | ComputerState::Locked) => {
                clients.signed_in += 1;
                clients.idle += 1;
            }
            Some(ComputerState::LoggedOut) | None => {}
        }
        clients
    }

    /// Applies the aggregation rule at `now`; returns true when the result changed.
    pub fn recompute(&mut self, now: Timestamp) -> bool {
        let next = aggregate(AggregateInputs {
            now,
            clients: self.all_clients(),
            manual: self.manual.as_ref(),
            note: self.note.as_ref(),
            sources: &self.sources,
        });
        let changed = next != self.computed;
        self.computed = next;
        changed
    }

    /// The next instant at which the result may change without any input.
    pub fn next_transition(&self, now: Timestamp) -> Option<Timestamp> {
        let manual = self.manual.iter().flat_map(|m| [m.from, m.to]).flatten();
        let note = self.note.iter().filter_map(|n| n.expires);
        let calendar = self.sources.appointments.iter().flat_map(|a| [a.start, a.end]);
        let expiry = self.reports.next_expiry();
        manual.chain(note).chain(calendar).chain(expiry).filter(|t| *t > now).min()
    }

    fn current_appointment(&self, now: Timestamp) -> Option<&Appointment> {
        let current = self.sources.appointments.iter().filter(|a| a.is_current(now));
        current.max_by_key(|a| (a.status == AppointmentStatus::OutOfOffice, a.status == AppointmentStatus::Busy))
    }

    fn next_appointment(&self, now: Timestamp) -> Option<&Appointment> {
        let horizon = now + Duration::days(NEXT_APPOINTMENT_HORIZON_DAYS);
        let future = self.sources.appointments.iter().filter(|a| a.start > now && a.start <= horizon);
        future.min_by_key(|a| a.start)
    }
}

/// Who is looking: the user themself, or a watcher at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Viewer {
    Owner,
    Watcher(AccessLevel),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhoneKind {
    Work,
    Mobile,
    Home,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CardView {
    pub title: Option<String>,
    pub company: Option<String>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub phones: Vec<(PhoneKind, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentView {
    pub start: Timestamp,
    pub end: Timestamp,
    pub status: AppointmentStatus,
    pub subject: Option<String>,
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarView {
    pub current: Option<AppointmentView>,
    pub next: Option<AppointmentView>,
}

/// What one viewer may receive about a presentity: every field already cut by the visibility table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    pub uri: String,
    /// False when the URI names no user of this gateway.
    pub known: bool,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub state: PresenceState,
    pub activity: Activity,
    /// The user chose "appear offline" (only ever true in the owner's own view).
    pub appear_offline: bool,
    /// DND shown as "urgent interruptions only" (Team and Personal may break through).
    pub urgent_interruptions_only: bool,
    pub manual_text: Option<String>,
    pub personal_note: Option<String>,
    pub oof_note: Option<String>,
    pub card: CardView,
    pub calendar: Option<CalendarView>,
    /// The manual state in force, with its text, window and reachability (Company and up).
    pub manual: Option<ManualState>,
    /// Lines, calls and forwards (Company and up; call partners from Team up).
    pub lines: Vec<Line>,
    pub calls: Vec<Call>,
    pub forwards: Vec<Forward>,
    /// Agent state when an agent source reports one (Company and up).
    pub agent: Option<AgentState>,
    /// What the user's clients can do (Public and up).
    pub capabilities: Vec<Capability>,
    /// Hash of the contact image (Public and up).
    pub image_hash: Option<String>,
    /// Raw categories whose container admits the viewer (all of them for the owner).
    pub raw: Vec<super::raw::RawCategory>,
}

impl PresenceView {
    /// The view of a URI that names nobody: offline, nothing else.
    pub fn unknown(uri: &str) -> Self {
        PresenceView {
            uri: uri.to_string(),
            known: false,
            display_name: None,
            email: None,
            state: PresenceState(0),
            activity: Activity::None,
            appear_offline: false,
            urgent_interruptions_only: false,
            manual_text: None,
            personal_note: None,
            oof_note: None,
            card: CardView::default(),
            calendar: None,
            manual: None,
            lines: Vec::new(),
            calls: Vec::new(),
            forwards: Vec::new(),
            agent: None,
            capabilities: Vec::new(),
            image_hash: None,
            raw: Vec::new(),
        }
    }
}

/// The one place that cuts a presentity down to what a viewer may see (docs/architecture.md §2.3). A watcher
/// of a user who chose "appear offline" gets exactly the view of that user really offline, and a
/// Blocked watcher exactly what any watcher sees of a user who is offline with nothing to show:
/// neither can tell the difference (README, "What a watcher sees").
pub fn view(p: &Presentity, viewer: Viewer, now: Timestamp) -> PresenceView {
    if viewer != Viewer::Owner && p.computed.activity == Activity::AppearOffline {
        return view(&p.really_offline(now), viewer, now);
    }
    let level = match viewer {
        Viewer::Owner => AccessLevel::Personal,
        Viewer::Watcher(level) => level,
    };
    let owner = viewer == Viewer::Owner;
    let vis = visibility(level);
    let profile = &p.profile;
    let mut out = PresenceView::unknown(&profile.uri);
    out.known = true;
    out.display_name = Some(profile.display_name.clone());
    out.email = profile.email.clone();

    let computed = p.computed;
    let appear_offline = computed.activity == Activity::AppearOffline;
    if vis.availability {
        out.state = visible_state(computed.state, vis.activity);
        out.activity = if vis.activity { computed.activity } else { Activity::None };
        out.appear_offline = owner && appear_offline;
        out.urgent_interruptions_only = level >= AccessLevel::Team && computed.state.base() == BaseState::DoNotDisturb;
    } else {
        out.state = PresenceState::OFFLINE;
    }
    let offline = out.state.is_offline() && !out.appear_offline;
    if vis.activity && !offline {
        out.manual_text = p.manual.as_ref().filter(|m| m.is_active(now)).and_then(|m| m.text.clone());
    }
    if vis.personal_note {
        out.personal_note = p.note.as_ref().filter(|n| n.is_active(now)).map(|n| n.text.clone());
    }
    if vis.oof_note {
        out.oof_note = p.sources.oof_message.clone().filter(|_| computed.activity == Activity::OutOfOffice || owner);
    }
    out.card = card_view(profile, &vis);
    if vis.calendar_free_busy {
        out.calendar = calendar_view(p, now, vis.appointment_details, owner);
    }
    if vis.activity {
        out.manual = p.manual.clone().filter(|m| m.is_active(now));
    }
    if vis.lines_and_calls {
        out.lines = p.sources.lines.clone();
        out.forwards = p.sources.forwards.clone();
        out.agent = p.sources.agent_reported.then_some(p.sources.agent);
        out.calls = p.sources.calls.iter().filter(|c| c.state != super::sources::CallState::Disconnected).cloned().collect();
        if !vis.call_partners {
            out.calls.iter_mut().for_each(|c| c.partner_number = None);
        }
    }
    if vis.availability {
        out.capabilities = p.sources.capabilities.clone();
        out.image_hash = p.image_hash.clone();
    }
    out.raw = p.raw.iter().filter(|c| owner || c.visible_to(level)).cloned().collect();
    out
}

/// The number a watcher receives: Public sees the base state only, without activity flags.
fn visible_state(state: PresenceState, detail: bool) -> PresenceState {
    if detail {
        return state;
    }
    let coarse = flags::OFFLINE | flags::IDLE;
    PresenceState(state.0 & (PresenceState::BASE_MASK | coarse))
}

fn card_view(profile: &Profile, vis: &super::rights::Visibility) -> CardView {
    let mut card = CardView::default();
    if vis.organisation {
        card.title = profile.title.clone();
        card.company = profile.company.clone();
        card.department = profile.department.clone();
        card.office = profile.office.clone();
    }
    let phones = &profile.phones;
    let allowed = [
        (PhoneKind::Work, &phones.work, vis.work_phone),
        (PhoneKind::Mobile, &phones.mobile, vis.mobile_phone),
        (PhoneKind::Home, &phones.home, vis.private_phones),
        (PhoneKind::Other, &phones.other, vis.private_phones),
    ];
    card.phones = allowed.into_iter().filter(|(_, _, ok)| *ok).filter_map(|(k, n, _)| n.clone().map(|n| (k, n))).collect();
    card
}

fn calendar_view(p: &Presentity, now: Timestamp, details: bool, owner: bool) -> Option<CalendarView> {
    let show = |a: &Appointment| AppointmentView {
        start: a.start,
        end: a.end,
        status: a.status,
        subject: a.subject.clone().filter(|_| details && (owner || !a.private)),
        location: a.location.clone().filter(|_| details && (owner || !a.private)),
    };
    let cal = CalendarView { current: p.current_appointment(now).map(show), next: p.next_appointment(now).map(show) };
    (cal.current.is_some() || cal.next.is_some()).then_some(cal)
}

/// Maps a manual kind to what a user sees chosen in their own client.
pub fn manual_kind_of(p: &Presentity, now: Timestamp) -> Option<ManualKind> {
    p.manual.as_ref().filter(|m| m.is_active(now)).map(|m| m.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sources::{Call, CallDirection, CallService, CallState};
    use chrono::TimeZone;

    fn now() -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    /// Bob, offline, with a note and a meeting going on now.
    fn offline_bob() -> Presentity {
        let profile = Profile { uri: "sip:bob@x.org".into(), display_name: "Bob".into(), ..Profile::default() };
        let mut bob = Presentity::new(Arc::new(profile));
        bob.note = Some(Note { text: "Back on Monday".into(), expires: None });
        bob.sources.appointments.push(Appointment {
            id: "1".into(),
            start: now() - Duration::hours(1),
            end: now() + Duration::hours(1),
            status: AppointmentStatus::Busy,
            subject: None,
            location: None,
            private: false,
        });
        bob.recompute(now());
        bob
    }

    /// The same Bob signed in, on the phone, with "appear offline" chosen.
    fn hiding_bob() -> Presentity {
        let mut bob = offline_bob();
        bob.clients = ClientActivity { signed_in: 1, idle: 0 };
        bob.sources.calls.push(Call {
            id: "c1".into(),
            state: CallState::Connected,
            direction: CallDirection::Outgoing,
            service: CallService::Phone,
            external: false,
            partner_number: Some("+49 1".into()),
            line: None,
        });
        bob.manual = Some(ManualState::simple(ManualKind::AppearOffline));
        bob.recompute(now());
        bob
    }

    #[test]
    fn watchers_see_appear_offline_exactly_as_really_offline() {
        let (offline, hiding) = (offline_bob(), hiding_bob());
        assert_eq!(hiding.computed.activity, Activity::AppearOffline);
        for level in AccessLevel::ALL {
            let viewer = Viewer::Watcher(level);
            assert_eq!(view(&hiding, viewer, now()), view(&offline, viewer, now()), "{level:?}");
        }
        let own = view(&hiding, Viewer::Owner, now());
        assert!(own.appear_offline && !own.calls.is_empty(), "the user still sees their own choice and calls");
    }

    #[test]
    fn blocked_watchers_see_the_plain_offline_state() {
        let blocked = view(&hiding_bob(), Viewer::Watcher(AccessLevel::Blocked), now());
        assert_eq!(blocked.state, PresenceState::OFFLINE);
        assert_eq!(blocked.state.0, 0x0800_0001);
        assert_eq!(view(&offline_bob(), Viewer::Watcher(AccessLevel::Public), now()).state.0 & !flags::APPOINTMENT, 0x0800_0002);
        let mut online = offline_bob();
        online.clients = ClientActivity { signed_in: 1, idle: 0 };
        online.note = None;
        online.sources.appointments.clear();
        online.recompute(now());
        assert_eq!(view(&online, Viewer::Watcher(AccessLevel::Blocked), now()).state, PresenceState::OFFLINE);
        let mut really_offline = online.clone();
        really_offline.clients = ClientActivity::default();
        really_offline.recompute(now());
        assert_eq!(view(&really_offline, Viewer::Watcher(AccessLevel::Public), now()).state, PresenceState::OFFLINE);
    }
}
