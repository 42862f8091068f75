//! The envelopes around requests' outcomes: `cwaResponses` on the command channel, `cwaEvents` on
//! the data channel, the `error` element, and event payloads. An event payload is rendered once
//! without its `eid` and shared by every session it goes to; the `eid` is written in at send time.

use super::writer::{attributes, Fragment, XmlWriter};
use super::NS_CWA;
use crate::error::GatewayError;

/// The depth of an event's children in a `cwaEvents` body (`cwaEvents` 0, the event 1).
pub const EVENT_CONTENT_DEPTH: usize = 2;

/// A rendered event minus its `eid`: `<element eid="N"{attrs}>{inner}</element>`. Both parts are
/// writer [`Fragment`]s (the inner one laid out for [`EVENT_CONTENT_DEPTH`]), so writing it into
/// each poll's response is a plain copy. JSON events reuse the type with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPayload {
    pub element: &'static str,
    pub attrs: Fragment,
    pub inner: Fragment,
}

impl EventPayload {
    pub fn new(element: &'static str, attrs: Fragment, inner: Fragment) -> Self {
        EventPayload { element, attrs, inner }
    }

    /// A JSON event of the `/api/v1` event stream (never written into a `cwaEvents` body).
    pub fn json(body: String) -> Self {
        EventPayload { element: "json", attrs: Fragment::default(), inner: Fragment::json(body) }
    }

    /// A writer for the children of an event.
    pub fn content_writer() -> XmlWriter {
        XmlWriter::at_depth(EVENT_CONTENT_DEPTH)
    }

    /// The length of this event in a response, apart from its eid.
    fn written_len(&self) -> usize {
        2 * self.element.len() + self.attrs.len() + self.inner.len() + 24
    }

    pub fn request_succeeded(rid: &str) -> Self {
        EventPayload::new("requestSucceeded", rid_attr(rid), Fragment::default())
    }

    pub fn request_failed(rid: &str, error: &GatewayError) -> Self {
        let mut w = EventPayload::content_writer();
        write_error(&mut w, error);
        EventPayload::new("requestFailed", rid_attr(rid), w.finish_fragment())
    }

    /// `userPresence` holding `user` elements rendered by a [`content_writer`](Self::content_writer).
    pub fn user_presence(users: Fragment) -> Self {
        EventPayload::new("userPresence", Fragment::default(), users)
    }

    /// `selfPresence` holding `cwaCategory` elements rendered by a content writer.
    pub fn self_presence(categories: Fragment) -> Self {
        EventPayload::new("selfPresence", Fragment::default(), categories)
    }

    /// `userRawCategories` holding `user` elements with their `rawCategory` children (README,
    /// "Raw categories").
    pub fn user_raw_categories(users: Fragment) -> Self {
        EventPayload::new("userRawCategories", Fragment::default(), users)
    }

    /// `selfRawCategories` holding `rawCategory` elements; empty when the user has none.
    pub fn self_raw_categories(categories: Fragment) -> Self {
        EventPayload::new("selfRawCategories", Fragment::default(), categories)
    }

    /// Whether this (`userRawCategories`) event holds any raw category: escaped text never
    /// contains `<`, so the tag is found only where an element starts.
    pub fn holds_raw_categories(&self) -> bool {
        self.inner.as_str().contains("<rawCategory")
    }

    /// `presenceSubscriptionState` with one `user uri state` per entry.
    pub fn subscription_state(entries: &[(&str, &str)]) -> Self {
        let mut w = EventPayload::content_writer();
        for (uri, state) in entries {
            w.empty("user", &[("uri", Some(uri)), ("state", Some(state))]);
        }
        EventPayload::new("presenceSubscriptionState", Fragment::default(), w.finish_fragment())
    }

    /// Writes `\n  <element eid="N"…>…\n  </element>` (an event line of a `cwaEvents` body).
    fn write(&self, eid: u64, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str("\n  <");
        out.push_str(self.element);
        let _ = write!(out, " eid=\"{eid}\"");
        out.push_str(self.attrs.as_str());
        if self.inner.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(self.inner.as_str());
            out.push_str("\n  </");
            out.push_str(self.element);
            out.push('>');
        }
    }
}

fn rid_attr(rid: &str) -> Fragment {
    attributes(&[("rid", Some(rid))])
}

/// `<error code subCode reason detail/>`.
pub fn write_error(w: &mut XmlWriter, error: &GatewayError) {
    let code = error.cwa_code().to_string();
    let detail = error.detail();
    w.empty(
        "error",
        &[("code", Some(&code)), ("subCode", Some("0")), ("reason", Some(error.reason())), ("detail", Some(&detail))],
    );
}

/// The session data `initiateSession` returns (both documented shapes at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStarted {
    pub sid: u64,
    pub poll_wait_ms: u64,
    pub uri: String,
}

/// One synchronous answer inside `cwaResponses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Accepted { rid: String, session: Option<SessionStarted> },
    Failed { rid: String, error: GatewayError },
    Invalid { rid: Option<String>, error: GatewayError },
}

/// `<cwaResponses sid requestProcessed unexpectedElement>…</cwaResponses>`.
pub fn responses(sid: Option<u64>, unexpected: usize, items: &[Response]) -> String {
    let sid = sid.map(|s| s.to_string());
    let processed = items.len().to_string();
    let unexpected = unexpected.to_string();
    let mut w = XmlWriter::new();
    let attrs = [
        ("xmlns", Some(NS_CWA)),
        ("sid", sid.as_deref()),
        ("requestProcessed", Some(processed.as_str())),
        ("unexpectedElement", Some(unexpected.as_str())),
    ];
    w.open("cwaResponses", &attrs);
    for item in items {
        write_response(&mut w, item);
    }
    w.close("cwaResponses");
    w.finish()
}

fn write_response(w: &mut XmlWriter, item: &Response) {
    match item {
        Response::Accepted { rid, session: None } => {
            w.empty("requestAccepted", &[("rid", Some(rid))]);
        }
        Response::Accepted { rid, session: Some(s) } => {
            let (sid, wait) = (s.sid.to_string(), s.poll_wait_ms.to_string());
            w.open("requestAccepted", &[("rid", Some(rid)), ("sid", Some(&sid)), ("pollWaitTime", Some(&wait))]);
            w.text_element("sid", &sid).text_element("pollWaitTime", &wait).text_element("uri", &s.uri);
            w.close("requestAccepted");
        }
        Response::Failed { rid, error } => {
            w.open("requestFailed", &[("rid", Some(rid))]);
            write_error(w, error);
            w.close("requestFailed");
        }
        Response::Invalid { rid, error } => {
            w.open("requestInvalid", &[("rid", rid.as_deref())]);
            write_error(w, error);
            w.close("requestInvalid");
        }
    }
}

/// A body that could not be used at all: `requestInvalid` without a rid.
pub fn unusable_body(error: &GatewayError) -> String {
    responses(None, 0, &[Response::Invalid { rid: None, error: error.clone() }])
}

/// The logon reply (`requestSucceeded` with `signInData` and `uri`).
pub fn logon_succeeded(sign_in_data: &str, uri: &str) -> String {
    let mut w = XmlWriter::new();
    w.open("cwaResponses", &[("xmlns", Some(NS_CWA))]).open("requestSucceeded", &[]);
    w.text_element("signInData", sign_in_data).text_element("uri", uri);
    w.close("requestSucceeded").close("cwaResponses");
    w.finish()
}

/// A failed logon or command: `requestFailed` with the error.
pub fn request_failed(rid: Option<&str>, error: &GatewayError) -> String {
    let mut w = XmlWriter::new();
    w.open("cwaResponses", &[("xmlns", Some(NS_CWA))]);
    w.open("requestFailed", &[("rid", rid)]);
    write_error(&mut w, error);
    w.close("requestFailed");
    w.close("cwaResponses");
    w.finish()
}

/// The attributes every `cwaEvents` carries (docs/architecture.md §1.2 item 7).
#[derive(Debug, Clone, Copy)]
pub struct EventsHeader {
    pub sid: u64,
    pub ack_id: u64,
    pub poll_wait_ms: u64,
    pub session_timeout_s: u64,
}

/// `<cwaEvents …>` holding the given events in order, one event per line (README, "Bytes on the
/// wire").
/// Room for the `cwaEvents` start and end tags with the longest numbers.
const EVENTS_HEAD_LEN: usize = NS_CWA.len() + 160;

pub fn cwa_events<'a>(header: EventsHeader, events: impl IntoIterator<Item = (u64, &'a EventPayload)>) -> String {
    use std::fmt::Write as _;
    let events: Vec<(u64, &EventPayload)> = events.into_iter().collect();
    let mut out = String::with_capacity(EVENTS_HEAD_LEN + events.iter().map(|(_, p)| p.written_len()).sum::<usize>());
    // The namespace and the numbers need no escaping.
    let EventsHeader { sid, ack_id, poll_wait_ms, session_timeout_s } = header;
    let _ = write!(
        out,
        "<cwaEvents xmlns=\"{NS_CWA}\" sid=\"{sid}\" ackId=\"{ack_id}\" pollWaitTime=\"{poll_wait_ms}\" sessionTimeout=\"{session_timeout_s}\""
    );
    if events.is_empty() {
        out.push_str("/>");
        return out;
    }
    out.push('>');
    for (eid, payload) in events {
        payload.write(eid, &mut out);
    }
    out.push_str("\n</cwaEvents>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_eid_and_the_header_one_per_line() {
        let a = EventPayload::request_succeeded("2");
        let mut users = EventPayload::content_writer();
        users.empty("user", &[("uri", Some("sip:a@x"))]);
        let b = EventPayload::user_presence(users.finish_fragment());
        let h = EventsHeader { sid: 9, ack_id: 12, poll_wait_ms: 1000, session_timeout_s: 300 };
        let xml = cwa_events(h, [(11, &a), (12, &b)]);
        let expected = format!(
            "<cwaEvents xmlns=\"{NS_CWA}\" sid=\"9\" ackId=\"12\" pollWaitTime=\"1000\" sessionTimeout=\"300\">
  <requestSucceeded eid=\"11\" rid=\"2\"/>
  <userPresence eid=\"12\">
    <user uri=\"sip:a@x\"/>
  </userPresence>
</cwaEvents>"
        );
        assert_eq!(xml, expected);
        assert!(cwa_events(h, []).ends_with("sessionTimeout=\"300\"/>"));
    }

    #[test]
    fn responses_are_laid_out_like_the_reference() {
        let items = [
            Response::Accepted { rid: "2".into(), session: None },
            Response::Failed { rid: "3".into(), error: GatewayError::Internal },
        ];
        assert_eq!(
            responses(Some(141), 0, &items),
            format!(
                "<cwaResponses xmlns=\"{NS_CWA}\" sid=\"141\" requestProcessed=\"2\" unexpectedElement=\"0\">
  <requestAccepted rid=\"2\"/>
  <requestFailed rid=\"3\">
    <error code=\"18400\" subCode=\"0\" reason=\"Internal Failure\" detail=\"\"/>
  </requestFailed>
</cwaResponses>"
            )
        );
    }
}
