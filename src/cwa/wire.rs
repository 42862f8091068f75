//! CWA wire types for a presentity (`user` with its `cwaCategory` children) and the mapping from
//! the model's [`PresenceView`]: availability numbers and activity tokens (docs/architecture.md §3), the note,
//! the contact card and calendar data. Each type parses from and renders to XML, so documented
//! samples can be round-tripped in tests. The raw categories a viewer receives — the gateway's
//! telephony and the published ones — are [`WireRaw`], sent in events of their own
//! (`userRawCategories`, `selfRawCategories`).

use super::writer::XmlWriter;
use super::xml::Element;
use super::{NS_CALENDAR, NS_CONTACT_CARD, NS_NOTE, NS_STATE, NS_TELEPHONY, NS_XSI};
use crate::model::aggregate::Activity;
use crate::model::presentity::{AppointmentView, PhoneKind, PresenceView};
use crate::model::raw::RawCategory;
use crate::model::rights::AccessLevel;
use crate::model::sources::{AppointmentStatus, ManualKind};
use crate::model::state::BaseState;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireState {
    pub availability: u32,
    pub token: Option<String>,
    pub custom: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireNoteBody {
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireContactCard {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    pub office: Option<String>,
    pub phones: Vec<(String, String)>,
    /// Hash of the contact image (fetch it from `/api/v1/users/{uri}/image`).
    pub photo_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireAppointment {
    pub status: String,
    pub start: String,
    pub end: String,
    pub subject: Option<String>,
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireCalendar {
    pub current: Option<WireAppointment>,
    pub next: Option<WireAppointment>,
}

/// Lines, calls, forwards and agent state, sent as a `rawCategory` in [`NS_TELEPHONY`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireTelephony {
    /// (number, state, dnd)
    pub lines: Vec<(String, String, bool)>,
    /// attributes of each `call`
    pub calls: Vec<Vec<(&'static str, String)>>,
    pub forwards: Vec<Vec<(&'static str, String)>>,
    pub agent: Option<String>,
}

/// One `<user>` of a `userPresence` (or the categories of a `selfPresence`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireUser {
    pub uri: String,
    pub source_network: Option<String>,
    pub state: WireState,
    pub note: Vec<WireNoteBody>,
    pub contact_card: Option<WireContactCard>,
    pub calendar: Option<WireCalendar>,
}

/// The raw categories a viewer receives of one user: the gateway's telephony and the published
/// ones, as one `user` of a `userRawCategories` (or the children of a `selfRawCategories`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireRaw {
    pub uri: String,
    pub telephony: Option<WireTelephony>,
    pub raw: Vec<RawCategory>,
}

// ---------- model → wire ----------

/// Availability number and token for a view (docs/architecture.md §3).
pub fn wire_state(view: &PresenceView) -> WireState {
    let (availability, token) = availability_and_token(view);
    WireState { availability, token: Some(token.to_string()), custom: view.manual_text.clone() }
}

fn availability_and_token(view: &PresenceView) -> (u32, &'static str) {
    if view.appear_offline {
        return (18500, "Offline");
    }
    let s = view.state;
    if s.is_offline() {
        return (0, "Offline");
    }
    let idle = s.has(crate::model::state::flags::IDLE);
    match s.base() {
        BaseState::DoNotDisturb if view.urgent_interruptions_only => (9500, "urgent-interruptions-only"),
        BaseState::DoNotDisturb => (9500, "DoNotDisturb"),
        BaseState::Busy => {
            let token = match view.activity {
                Activity::OnThePhone => "on-the-phone",
                Activity::InAConference => "in-a-conference",
                Activity::InAMeeting => "in-a-meeting",
                _ => "Busy",
            };
            (if idle { 7500 } else { 6500 }, token)
        }
        BaseState::Absent => match view.activity {
            Activity::BeRightBack => (12500, "BeRightBack"),
            Activity::OutOfOffice => (15500, "out-of-office"),
            _ => (15500, "Away"),
        },
        BaseState::Available if idle => (4500, "Inactive"),
        BaseState::Available => (3500, "Available"),
        BaseState::Unknown | BaseState::OutOfOrder => (0, "Offline"),
    }
}

/// The manual state an incoming `publishSelfPresence` availability stands for (CWA ranges).
pub fn manual_kind_for_availability(availability: u32) -> Option<ManualKind> {
    match availability {
        3000..=5999 => Some(ManualKind::Available),
        6000..=8999 => Some(ManualKind::Busy),
        9000..=11999 => Some(ManualKind::DoNotDisturb),
        12000..=14999 => Some(ManualKind::BeRightBack),
        15000..=17999 => Some(ManualKind::Away),
        18000..=u32::MAX => Some(ManualKind::AppearOffline),
        _ => None,
    }
}

pub fn wire_user(view: &PresenceView, source_network: Option<&str>) -> WireUser {
    let mut note = vec![WireNoteBody { kind: "personal".into(), text: view.personal_note.clone().unwrap_or_default() }];
    if let Some(oof) = &view.oof_note {
        note.push(WireNoteBody { kind: "OOF".into(), text: oof.clone() });
    }
    let contact_card = view.known.then(|| contact_card(view));
    let calendar = view
        .calendar
        .as_ref()
        .map(|c| WireCalendar { current: c.current.as_ref().map(appointment), next: c.next.as_ref().map(appointment) });
    WireUser {
        uri: view.uri.clone(),
        source_network: source_network.map(str::to_string),
        state: wire_state(view),
        note,
        contact_card,
        calendar,
    }
}

/// The raw categories of a view; with `only`, just those named (`telephony` for the gateway's
/// own), as `categoryEventFilter` chose.
pub fn wire_raw(view: &PresenceView, only: Option<&[String]>) -> WireRaw {
    let wanted = |name: &str| only.is_none_or(|names| names.iter().any(|n| n == name));
    WireRaw {
        uri: view.uri.clone(),
        telephony: if wanted("telephony") { telephony(view) } else { None },
        raw: view.raw.iter().filter(|c| wanted(&c.name)).cloned().collect(),
    }
}

fn kebab<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn telephony(view: &PresenceView) -> Option<WireTelephony> {
    if view.lines.is_empty() && view.calls.is_empty() && view.forwards.is_empty() && view.agent.is_none() {
        return None;
    }
    let lines = view.lines.iter().map(|l| (l.number.clone(), kebab(&l.state), l.dnd)).collect();
    let calls = view
        .calls
        .iter()
        .map(|c| {
            let mut attrs = vec![("id", c.id.clone()), ("service", kebab(&c.service)), ("state", kebab(&c.state))];
            attrs.push(("direction", kebab(&c.direction)));
            attrs.push(("external", c.external.to_string()));
            attrs.extend(c.line.clone().map(|l| ("line", l)));
            attrs.extend(c.partner_number.clone().map(|p| ("partner", p)));
            attrs
        })
        .collect();
    let forwards = view
        .forwards
        .iter()
        .map(|f| {
            let mut attrs = vec![("mode", kebab(&f.mode)), ("destination", f.destination.clone())];
            attrs.extend(f.line.clone().map(|l| ("line", l)));
            attrs.extend(f.no_answer_seconds.map(|s| ("noAnswerSeconds", s.to_string())));
            attrs
        })
        .collect();
    Some(WireTelephony { lines, calls, forwards, agent: view.agent.map(|a| kebab(&a)) })
}

fn contact_card(view: &PresenceView) -> WireContactCard {
    let phone_kind = |k: PhoneKind| match k {
        PhoneKind::Work => "work",
        PhoneKind::Mobile => "mobile",
        PhoneKind::Home => "home",
        PhoneKind::Other => "other",
    };
    WireContactCard {
        display_name: view.display_name.clone(),
        email: view.email.clone(),
        company: view.card.company.clone(),
        department: view.card.department.clone(),
        title: view.card.title.clone(),
        office: view.card.office.clone(),
        phones: view.card.phones.iter().map(|(k, n)| (phone_kind(*k).to_string(), n.clone())).collect(),
        photo_hash: view.image_hash.clone(),
    }
}

fn appointment(a: &AppointmentView) -> WireAppointment {
    let status = match a.status {
        AppointmentStatus::Free => "free",
        AppointmentStatus::Tentative => "tentative",
        AppointmentStatus::Busy => "busy",
        AppointmentStatus::OutOfOffice => "out-of-office",
    };
    WireAppointment {
        status: status.into(),
        start: a.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        end: a.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        subject: a.subject.clone(),
        location: a.location.clone(),
    }
}

// ---------- wire → XML ----------

impl WireUser {
    /// `<user uri sourceNetwork>categories</user>`.
    pub fn render(&self, w: &mut XmlWriter) {
        w.open("user", &[("uri", Some(&self.uri)), ("sourceNetwork", self.source_network.as_deref())]);
        self.render_categories(w);
        w.close("user");
    }

    /// The `cwaCategory` children alone (for `selfPresence`).
    pub fn render_categories(&self, w: &mut XmlWriter) {
        self.render_state(w);
        self.render_note(w);
        if let Some(card) = &self.contact_card {
            card.render(w);
        }
        if let Some(cal) = &self.calendar {
            cal.render(w);
        }
    }

    fn render_state(&self, w: &mut XmlWriter) {
        w.open("cwaCategory", &[("name", Some("state")), ("instanceMask", Some("0"))]);
        let availability = self.state.availability.to_string();
        w.open("state", &[("xmlns", Some(NS_STATE)), ("xmlns:xsi", Some(NS_XSI)), ("xsi:type", Some("aggregateState"))]);
        w.text_element("availability", &availability);
        match &self.state.custom {
            Some(custom) => {
                w.open("activity", &[("token", self.state.token.as_deref())]);
                w.open("custom", &[("LCID", Some("1033"))]).text(custom).close("custom");
                w.close("activity");
            }
            None => {
                w.empty("activity", &[("token", self.state.token.as_deref())]);
            }
        }
        w.close("state").close("cwaCategory");
    }

    fn render_note(&self, w: &mut XmlWriter) {
        w.open("cwaCategory", &[("name", Some("note")), ("instanceMask", Some("0"))]);
        w.open_inline("note", &[("xmlns", Some(NS_NOTE))]);
        for body in &self.note {
            if body.text.is_empty() {
                w.empty("body", &[("type", Some(&body.kind))]);
            } else {
                w.open("body", &[("type", Some(&body.kind))]).text(&body.text).close("body");
            }
        }
        w.close("note").close("cwaCategory");
    }
}

impl WireRaw {
    pub fn is_empty(&self) -> bool {
        self.telephony.is_none() && self.raw.is_empty()
    }

    /// `<user uri>` holding the `rawCategory` elements; `<user uri/>` when there are none.
    pub fn render(&self, w: &mut XmlWriter) {
        if self.is_empty() {
            w.empty("user", &[("uri", Some(&self.uri))]);
            return;
        }
        w.open("user", &[("uri", Some(&self.uri))]);
        self.render_categories(w);
        w.close("user");
    }

    /// The `rawCategory` elements alone (for `selfRawCategories`): telephony first.
    pub fn render_categories(&self, w: &mut XmlWriter) {
        if let Some(telephony) = &self.telephony {
            telephony.render(w);
        }
        for category in &self.raw {
            super::raw::render(w, category);
        }
    }
}

impl WireContactCard {
    fn render(&self, w: &mut XmlWriter) {
        w.open("cwaCategory", &[("name", Some("contactCard")), ("instance", Some("0"))]);
        w.open("contactCard", &[("xmlns", Some(NS_CONTACT_CARD))]);
        w.open_inline("identity", &[]).open("name", &[]);
        if let Some(name) = &self.display_name {
            w.text_element("displayName", name);
        }
        w.close("name");
        if let Some(email) = &self.email {
            w.text_element("email", email);
        }
        w.close("identity");
        let fields =
            [("company", &self.company), ("department", &self.department), ("title", &self.title), ("office", &self.office)];
        for (name, value) in fields {
            if let Some(value) = value {
                w.text_element(name, value);
            }
        }
        for (kind, number) in &self.phones {
            w.open("phone", &[("type", Some(kind))]).text_element("uri", number).close("phone");
        }
        if let Some(hash) = &self.photo_hash {
            w.empty("photo", &[("hash", Some(hash))]);
        }
        w.close("contactCard").close("cwaCategory");
    }
}

impl WireTelephony {
    /// Rendered like every raw category (the gateway publishes it into the Company container).
    fn render(&self, w: &mut XmlWriter) {
        let leaf = |name: &str, attrs: Vec<(String, String)>| Element { name: name.into(), attrs, ..Element::default() };
        let owned = |attrs: &[(&'static str, String)]| attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let mut children = Vec::new();
        for (number, state, dnd) in &self.lines {
            let attrs = vec![("number".into(), number.clone()), ("state".into(), state.clone()), ("dnd".into(), dnd.to_string())];
            children.push(leaf("line", attrs));
        }
        children.extend(self.calls.iter().map(|attrs| leaf("call", owned(attrs))));
        children.extend(self.forwards.iter().map(|attrs| leaf("forward", owned(attrs))));
        if let Some(agent) = &self.agent {
            children.push(leaf("agent", vec![("state".into(), agent.clone())]));
        }
        let namespace: std::sync::Arc<str> = std::sync::Arc::from(NS_TELEPHONY);
        let children = children.into_iter().map(|c| Element { namespace: Some(namespace.clone()), ..c }).collect();
        let content = Element { name: "telephony".into(), namespace: Some(namespace.clone()), children, ..Element::default() };
        let category = RawCategory {
            name: "telephony".into(),
            namespace: NS_TELEPHONY.into(),
            instance: 0,
            level: AccessLevel::Company,
            expire_type: "user".into(),
            content: String::new(),
        };
        super::raw::render_elements(w, &category, &[content]);
    }
}

impl WireCalendar {
    fn render(&self, w: &mut XmlWriter) {
        w.open("cwaCategory", &[("name", Some("calendarData")), ("instance", Some("0"))]);
        w.open("calendarData", &[("xmlns", Some(NS_CALENDAR))]);
        for (name, appt) in [("current", &self.current), ("next", &self.next)] {
            let Some(a) = appt else { continue };
            w.open(name, &[("status", Some(&a.status)), ("start", Some(&a.start)), ("end", Some(&a.end))]);
            if let Some(subject) = &a.subject {
                w.text_element("subject", subject);
            }
            if let Some(location) = &a.location {
                w.text_element("location", location);
            }
            w.close(name);
        }
        w.close("calendarData").close("cwaCategory");
    }
}

// ---------- XML → wire ----------

impl WireUser {
    pub fn parse(user: &Element) -> Option<WireUser> {
        let mut out = WireUser {
            uri: user.attr("uri")?.to_string(),
            source_network: user.attr("sourceNetwork").map(str::to_string),
            ..WireUser::default()
        };
        for category in user.children_named("cwaCategory") {
            match category.attr("name")? {
                "state" => out.state = parse_state(category.child("state")?)?,
                "note" => out.note = parse_note(category.child("note")?),
                "contactCard" => out.contact_card = Some(parse_card(category.child("contactCard")?)),
                "calendarData" => out.calendar = Some(parse_calendar(category.child("calendarData")?)),
                _ => {}
            }
        }
        Some(out)
    }
}

fn parse_state(state: &Element) -> Option<WireState> {
    let availability = state.child_text("availability")?.parse().ok()?;
    let activity = state.child("activity");
    Some(WireState {
        availability,
        token: activity.and_then(|a| a.attr("token")).map(str::to_string),
        custom: activity.and_then(|a| a.child_text("custom")).map(str::to_string),
    })
}

fn parse_note(note: &Element) -> Vec<WireNoteBody> {
    let body =
        |b: &Element| WireNoteBody { kind: b.attr("type").unwrap_or("personal").to_string(), text: b.text.trim().to_string() };
    note.children_named("body").map(body).collect()
}

fn parse_card(card: &Element) -> WireContactCard {
    let identity = card.child("identity");
    let text = |name: &str| card.child_text(name).map(str::to_string);
    WireContactCard {
        display_name: identity.and_then(|i| i.child("name")).and_then(|n| n.child_text("displayName")).map(str::to_string),
        email: identity.and_then(|i| i.child_text("email")).map(str::to_string),
        company: text("company"),
        department: text("department"),
        title: text("title"),
        office: text("office"),
        phones: card
            .children_named("phone")
            .filter_map(|p| Some((p.attr("type")?.to_string(), p.child_text("uri")?.to_string())))
            .collect(),
        photo_hash: card.child("photo").and_then(|p| p.attr("hash")).map(str::to_string),
    }
}

fn parse_calendar(cal: &Element) -> WireCalendar {
    let appt = |e: &Element| {
        Some(WireAppointment {
            status: e.attr("status")?.to_string(),
            start: e.attr("start")?.to_string(),
            end: e.attr("end")?.to_string(),
            subject: e.child_text("subject").map(str::to_string),
            location: e.child_text("location").map(str::to_string),
        })
    };
    WireCalendar { current: cal.child("current").and_then(appt), next: cal.child("next").and_then(appt) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_ranges_map_to_manual_states() {
        let cases = [
            (3500, Some(ManualKind::Available)),
            (4500, Some(ManualKind::Available)),
            (6500, Some(ManualKind::Busy)),
            (7500, Some(ManualKind::Busy)),
            (9500, Some(ManualKind::DoNotDisturb)),
            (12500, Some(ManualKind::BeRightBack)),
            (15500, Some(ManualKind::Away)),
            (18500, Some(ManualKind::AppearOffline)),
            (2999, None),
            (0, None),
        ];
        for (availability, kind) in cases {
            assert_eq!(manual_kind_for_availability(availability), kind, "{availability}");
        }
    }
}
