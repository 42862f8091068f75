//! The envelopes around requests' outcomes: `cwaResponses` on the command channel, `cwaEvents` on
//! the data channel, and the `error` element. The events inside `cwaEvents` are rendered by
//! [`super::events`], once each and shared by every session they go to; the `eid` is written in
//! at send time.

use super::events;
use super::writer::XmlWriter;
use super::NS_CWA;
use crate::error::GatewayError;
use crate::hub::event::Event;

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
    let [mut sid_text, mut processed, mut unexpected_text] = [itoa::Buffer::new(); 3];
    let mut w = XmlWriter::new();
    let attrs = [
        ("xmlns", Some(NS_CWA)),
        ("sid", sid.map(|sid| sid_text.format(sid))),
        ("requestProcessed", Some(processed.format(items.len()))),
        ("unexpectedElement", Some(unexpected_text.format(unexpected))),
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

pub fn cwa_events<'a, I>(header: EventsHeader, items: I) -> String
where
    I: IntoIterator<Item = (u64, &'a Event)>,
    I::IntoIter: Clone,
{
    let items = items.into_iter();
    let mut out = String::with_capacity(EVENTS_HEAD_LEN + items.clone().map(|(_, e)| events::written_len(e)).sum::<usize>());
    // The namespace and the numbers need no escaping.
    let EventsHeader { sid, ack_id, poll_wait_ms, session_timeout_s } = header;
    out.push_str("<cwaEvents xmlns=\"");
    out.push_str(NS_CWA);
    for (name, value) in [("\" sid=\"", sid), ("\" ackId=\"", ack_id), ("\" pollWaitTime=\"", poll_wait_ms)] {
        out.push_str(name);
        out.push_str(itoa::Buffer::new().format(value));
    }
    out.push_str("\" sessionTimeout=\"");
    out.push_str(itoa::Buffer::new().format(session_timeout_s));
    out.push('"');
    let mut items = items.peekable();
    if items.peek().is_none() {
        out.push_str("/>");
        return out;
    }
    out.push('>');
    for (eid, event) in items {
        events::write(event, eid, &mut out);
    }
    out.push_str("\n</cwaEvents>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_eid_and_the_header_one_per_line() {
        use crate::hub::event::{EventBody, SubscriptionState};
        let a = Event::new(EventBody::Outcome { rid: "2".into(), error: None });
        let b = Event::new(EventBody::SubscriptionStates {
            uris: Box::new(["sip:a@x".into()]),
            state: SubscriptionState::Subscribed,
        });
        let h = EventsHeader { sid: 9, ack_id: 12, poll_wait_ms: 1000, session_timeout_s: 300 };
        let xml = cwa_events(h, [(11, &*a), (12, &*b)]);
        let expected = format!(
            "<cwaEvents xmlns=\"{NS_CWA}\" sid=\"9\" ackId=\"12\" pollWaitTime=\"1000\" sessionTimeout=\"300\">
  <requestSucceeded eid=\"11\" rid=\"2\"/>
  <presenceSubscriptionState eid=\"12\">
    <user uri=\"sip:a@x\" state=\"subscribed\"/>
  </presenceSubscriptionState>
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
