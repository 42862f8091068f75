//! The CWA rendering of the hub's events: each [`EventBody`] as the event element of a
//! `cwaEvents` body (`userPresence`, `selfRawCategories`, `contactGroup`, `requestSucceeded`…).
//! An event is rendered once, without its `eid`, and the text is kept in the shared event
//! ([`Dialect::Cwa`]): every session it goes to copies the same text (docs/architecture.md §4).
//! A query's answer copies the `user` elements of the snapshots it shows, rendering each at most
//! once, the same text fan-out sends.

use super::envelope::write_error;
use super::lists;
use super::wire::{wire_raw, wire_user};
use super::writer::{attributes, escape_attr, Fragment, XmlWriter};
use crate::hub::event::{Audience, Dialect, Event, EventBody, SubscriptionState};

/// The depth of an event's children in a `cwaEvents` body (`cwaEvents` 0, the event 1).
pub const EVENT_CONTENT_DEPTH: usize = 2;

/// The event's rendering after `<element eid="N"`: its attributes, then `/>` or `>`, its children
/// and the end tag. Made the first time it is asked for, then shared.
pub fn text(event: &Event) -> &str {
    event.rendered(Dialect::Cwa, render)
}

/// The element an event is written as. Events of the JSON stream never reach a data channel;
/// should one, it is an empty `event`.
pub fn element(body: &EventBody) -> &'static str {
    match body {
        EventBody::Presence { audience: Audience::Owner, .. } => "selfPresence",
        EventBody::Presence { .. } | EventBody::QueryPresence(_) => "userPresence",
        EventBody::RawCategories { audience: Audience::Owner, .. } => "selfRawCategories",
        EventBody::RawCategories { .. } | EventBody::QueryRawCategories(_) => "userRawCategories",
        EventBody::SubscriptionStates { .. } => "presenceSubscriptionState",
        EventBody::Outcome { error: None, .. } => "requestSucceeded",
        EventBody::Outcome { error: Some(_), .. } => "requestFailed",
        EventBody::ContactList(_) | EventBody::ContactListDelta { .. } => "contactGroup",
        EventBody::Containers { .. } => "containers",
        EventBody::Subscribers(_) => "subscribers",
        EventBody::SearchResult { .. } => "searchResult",
        EventBody::Configuration(_) => "configuration",
        EventBody::PresenceUpdate { .. } | EventBody::PresenceRemoved { .. } => "event",
    }
}

/// Whether two events read the same on a data channel (each rendered now if it was not yet).
pub fn same_text(a: &Event, b: &Event) -> bool {
    element(&a.body) == element(&b.body) && text(a) == text(b)
}

/// Whether a (raw-category) event holds any raw category: escaped text never contains `<`, so
/// the tag is found only where an element starts.
pub fn holds_raw_categories(event: &Event) -> bool {
    text(event).contains("<rawCategory")
}

/// Writes `\n  <element eid="N"…>…\n  </element>` (an event line of a `cwaEvents` body). A
/// query's answer goes to one session once: its users' renderings are copied straight into `out`
/// (the text [`text`] would make of it, without making it).
pub(super) fn write(event: &Event, eid: u64, out: &mut String) {
    out.push_str("\n  <");
    out.push_str(element(&event.body));
    out.push_str(" eid=\"");
    out.push_str(itoa::Buffer::new().format(eid));
    out.push('"');
    match &event.body {
        EventBody::QueryPresence(users) | EventBody::QueryRawCategories(users) => {
            write_joined(element(&event.body), users, out);
        }
        EventBody::Outcome { rid, error: None } => write_succeeded(rid, out),
        _ => out.push_str(text(event)),
    }
}

/// ` rid="…"/>`: a method's success goes to one session once, so it is written straight into the
/// answer (the text [`text`] would make of it, without making it).
fn write_succeeded(rid: &str, out: &mut String) {
    out.push_str(" rid=\"");
    escape_attr(out, rid);
    out.push_str("\"/>");
}

/// The length of an event in a response, apart from its eid.
pub(super) fn written_len(event: &Event) -> usize {
    let text_len = match &event.body {
        EventBody::QueryPresence(users) | EventBody::QueryRawCategories(users) => joined_len(element(&event.body), users),
        // An escaped character takes at most six bytes (`&quot;`).
        EventBody::Outcome { rid, error: None } => rid.len() * 6 + " rid=\"\"/>".len(),
        _ => text(event).len(),
    };
    element(&event.body).len() + text_len + 24
}

fn render(body: &EventBody) -> Box<str> {
    let mut w = XmlWriter::at_depth(EVENT_CONTENT_DEPTH);
    let attrs = match body {
        EventBody::Presence { view, audience: Audience::Owner } => {
            wire_user(view, None).render_categories(&mut w);
            Fragment::default()
        }
        EventBody::Presence { view, audience: Audience::Watcher { same_enterprise } } => {
            let network = if *same_enterprise { "sameEnterprise" } else { "federated" };
            wire_user(view, Some(network)).render(&mut w);
            Fragment::default()
        }
        EventBody::RawCategories { view, audience: Audience::Owner, only } => {
            wire_raw(view, only.as_deref()).render_categories(&mut w);
            Fragment::default()
        }
        EventBody::RawCategories { view, only, .. } => {
            wire_raw(view, only.as_deref()).render(&mut w);
            Fragment::default()
        }
        EventBody::QueryPresence(users) | EventBody::QueryRawCategories(users) => return joined(element(body), users),
        EventBody::SubscriptionStates { uris, state } => {
            let state = match state {
                SubscriptionState::Subscribed => "subscribed",
                SubscriptionState::Terminated => "terminated",
            };
            for uri in uris.iter() {
                w.empty("user", &[("uri", Some(uri)), ("state", Some(state))]);
            }
            Fragment::default()
        }
        EventBody::Outcome { rid, error } => {
            if let Some(error) = error {
                write_error(&mut w, error);
            }
            attributes(&[("rid", Some(rid))])
        }
        EventBody::ContactList(list) => lists::contact_group_full(&mut w, list),
        EventBody::ContactListDelta { delta_num, changes } => lists::contact_group_delta(&mut w, *delta_num, changes),
        EventBody::Containers { entries, levels } => {
            lists::containers(&mut w, entries, levels);
            Fragment::default()
        }
        EventBody::Subscribers(list) => {
            lists::subscribers(&mut w, list);
            Fragment::default()
        }
        EventBody::SearchResult { rid, entries, more_available } => lists::search_result(&mut w, rid, entries, *more_available),
        EventBody::Configuration(configuration) => {
            lists::configuration(&mut w, configuration);
            Fragment::default()
        }
        EventBody::PresenceUpdate { .. } | EventBody::PresenceRemoved { .. } => Fragment::default(),
    };
    finish(element(body), &attrs, &w.finish_fragment())
}

/// `{attrs}/>`, or `{attrs}>{children}` and the end tag on a line of its own.
fn finish(element: &str, attrs: &str, children: &str) -> Box<str> {
    if children.is_empty() {
        return [attrs, "/>"].concat().into_boxed_str();
    }
    [attrs, ">", children, "\n  </", element, ">"].concat().into_boxed_str()
}

/// The children of a rendered event without attributes (the `user` elements of a snapshot).
fn children<'a>(text: &'a str, element: &str) -> &'a str {
    let inner = text.strip_prefix('>').and_then(|t| t.strip_suffix('>'));
    let inner = inner.and_then(|t| t.strip_suffix(element)).and_then(|t| t.strip_suffix("\n  </"));
    inner.unwrap_or("")
}

/// An answer holding the children of each event of `users` one after the other, copied from
/// their renderings into a text allocated for its final size.
fn joined(element: &str, users: &[std::sync::Arc<Event>]) -> Box<str> {
    let mut out = String::with_capacity(joined_len(element, users));
    write_joined(element, users, &mut out);
    out.into_boxed_str()
}

/// The children of the events of `users` in one element's rendering: `/>` when there are none.
fn write_joined(element: &str, users: &[std::sync::Arc<Event>], out: &mut String) {
    let start = out.len();
    out.push('>');
    users.iter().for_each(|user| out.push_str(children(text(user), self::element(&user.body))));
    if out.len() == start + 1 {
        out.truncate(start);
        out.push_str("/>");
        return;
    }
    out.push_str("\n  </");
    out.push_str(element);
    out.push('>');
}

/// At least the length of what [`write_joined`] writes (each user's children are less than its
/// rendering).
fn joined_len(element: &str, users: &[std::sync::Arc<Event>]) -> usize {
    users.iter().map(|user| text(user).len()).sum::<usize>() + element.len() + "></>\n  ".len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::GatewayError;
    use crate::model::presentity::PresenceView;
    use std::sync::Arc;

    fn line(event: &Event, eid: u64) -> String {
        let mut out = String::new();
        write(event, eid, &mut out);
        out
    }

    #[test]
    fn outcomes_carry_their_rid_and_error() {
        let done = Event::new(EventBody::Outcome { rid: "2".into(), error: None });
        assert_eq!(line(&done, 11), "\n  <requestSucceeded eid=\"11\" rid=\"2\"/>");
        let failed = Event::new(EventBody::Outcome { rid: "3".into(), error: Some(Box::new(GatewayError::Internal)) });
        assert_eq!(
            line(&failed, 12),
            "\n  <requestFailed eid=\"12\" rid=\"3\">\n    <error code=\"18400\" subCode=\"0\" reason=\"Internal Failure\" detail=\"\"/>\n  </requestFailed>"
        );
    }

    #[test]
    fn a_success_is_written_as_its_text_reads_without_making_it() {
        for rid in ["2", "", "a&b\"<c>\t\u{1}", "\"\"\"\""] {
            let done = Event::new(EventBody::Outcome { rid: rid.into(), error: None });
            let written = line(&done, 4);
            assert_eq!(written, format!("\n  <requestSucceeded eid=\"4\"{}", text(&done)));
            assert!(written.len() <= written_len(&done) - 24 + " eid=\"4\"".len() + "\n  <".len());
        }
    }

    #[test]
    fn a_query_answer_copies_the_snapshots_it_shows() {
        let snapshot = |uri: &str| {
            let view = Arc::new(PresenceView::unknown(uri));
            Event::new(EventBody::Presence { view, audience: Audience::Watcher { same_enterprise: false } })
        };
        let (a, b) = (snapshot("sip:a@x"), snapshot("sip:b@x"));
        let answer = Event::new(EventBody::QueryPresence(Box::new([a.clone(), b.clone()])));
        let expected =
            format!(">{}{}\n  </userPresence>", children(text(&a), "userPresence"), children(text(&b), "userPresence"));
        assert_eq!(text(&answer), expected);
        assert!(text(&a).starts_with(">\n    <user uri=\"sip:a@x\" sourceNetwork=\"federated\">"));
        let raw = |uri: &str| {
            let view = Arc::new(PresenceView::unknown(uri));
            Event::new(EventBody::RawCategories { view, audience: Audience::Watcher { same_enterprise: true }, only: None })
        };
        assert!(!holds_raw_categories(&raw("sip:a@x")));
        assert_eq!(text(&raw("sip:a@x")), ">\n    <user uri=\"sip:a@x\"/>\n  </userRawCategories>");
    }

    #[test]
    fn a_query_answer_is_written_as_its_text_reads_without_making_it() {
        let presence = |uri: &str| {
            let view = Arc::new(PresenceView::unknown(uri));
            Event::new(EventBody::Presence { view, audience: Audience::Watcher { same_enterprise: true } })
        };
        let raw = |uri: &str| {
            let view = Arc::new(PresenceView::unknown(uri));
            Event::new(EventBody::RawCategories { view, audience: Audience::Watcher { same_enterprise: true }, only: None })
        };
        let answers = [
            Event::new(EventBody::QueryPresence(Box::new([presence("sip:a@x"), presence("sip:b@x")]))),
            Event::new(EventBody::QueryPresence(Box::new([]))),
            Event::new(EventBody::QueryRawCategories(Box::new([raw("sip:a@x")]))),
        ];
        for answer in &answers {
            let written = line(answer, 7);
            assert!(written.len() <= written_len(answer) - 24 + " eid=\"7\"".len() + "\n  <".len());
            let element = element(&answer.body);
            assert_eq!(written, format!("\n  <{element} eid=\"7\"{}", text(answer)));
        }
    }
}
