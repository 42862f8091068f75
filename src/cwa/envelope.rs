//! The envelopes around requests' outcomes: `cwaResponses` on the command channel, `cwaEvents` on
//! the data channel, the `error` element, and event payloads. An event payload is rendered once
//! without its `eid` and shared by every session it goes to; the `eid` is written in at send time.

use super::writer::XmlWriter;
use super::NS_CWA;
use crate::error::GatewayError;

/// A rendered event minus its `eid`: `<element eid="N"{attrs}>{inner}</element>`. The text is kept
/// as `str`, so that writing it into each poll's response is a plain copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPayload {
    pub element: &'static str,
    pub attrs: Box<str>,
    pub inner: Box<str>,
}

impl EventPayload {
    pub fn new(element: &'static str, attrs: String, inner: String) -> Self {
        EventPayload { element, attrs: attrs.into_boxed_str(), inner: inner.into_boxed_str() }
    }

    /// The length of this event in a response, apart from its eid.
    fn written_len(&self) -> usize {
        2 * self.element.len() + self.attrs.len() + self.inner.len() + 16
    }

    pub fn request_succeeded(rid: &str) -> Self {
        EventPayload::new("requestSucceeded", rid_attr(rid), String::new())
    }

    pub fn request_failed(rid: &str, error: &GatewayError) -> Self {
        EventPayload::new("requestFailed", rid_attr(rid), error_element(error))
    }

    pub fn user_presence(users_xml: String) -> Self {
        EventPayload::new("userPresence", String::new(), users_xml)
    }

    pub fn self_presence(categories_xml: String) -> Self {
        EventPayload::new("selfPresence", String::new(), categories_xml)
    }

    /// `presenceSubscriptionState` with one `user uri state` per entry.
    pub fn subscription_state(entries: &[(&str, &str)]) -> Self {
        let mut w = XmlWriter::new();
        for (uri, state) in entries {
            w.empty("user", &[("uri", Some(uri)), ("state", Some(state))]);
        }
        EventPayload::new("presenceSubscriptionState", String::new(), w.finish())
    }

    fn write(&self, eid: u64, out: &mut String) {
        use std::fmt::Write as _;
        out.push('<');
        out.push_str(self.element);
        let _ = write!(out, " eid=\"{eid}\"");
        out.push_str(&self.attrs);
        if self.inner.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(&self.inner);
            out.push_str("</");
            out.push_str(self.element);
            out.push('>');
        }
    }
}

fn rid_attr(rid: &str) -> String {
    super::writer::attributes(&[("rid", Some(rid))])
}

/// `<error code subCode reason detail/>`.
pub fn error_element(error: &GatewayError) -> String {
    let mut w = XmlWriter::new();
    let code = error.cwa_code().to_string();
    let detail = error.detail();
    w.empty(
        "error",
        &[("code", Some(&code)), ("subCode", Some("0")), ("reason", Some(error.reason())), ("detail", Some(&detail))],
    );
    w.finish()
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
            w.open("requestFailed", &[("rid", Some(rid))]).raw(&error_element(error)).close("requestFailed");
        }
        Response::Invalid { rid, error } => {
            w.open("requestInvalid", &[("rid", rid.as_deref())]).raw(&error_element(error)).close("requestInvalid");
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
    w.open("requestFailed", &[("rid", rid)]).raw(&error_element(error)).close("requestFailed");
    w.close("cwaResponses");
    w.finish()
}

/// The attributes every `cwaEvents` carries (DESIGN §1.2 item 7).
#[derive(Debug, Clone, Copy)]
pub struct EventsHeader {
    pub sid: u64,
    pub ack_id: u64,
    pub poll_wait_ms: u64,
    pub session_timeout_s: u64,
}

/// `<cwaEvents …>` holding the given events in order.
pub fn cwa_events<'a>(header: EventsHeader, events: impl IntoIterator<Item = (u64, &'a EventPayload)>) -> String {
    use std::fmt::Write as _;
    let events = events.into_iter();
    let mut out = String::with_capacity(256);
    out.push_str("<cwaEvents xmlns=\"");
    out.push_str(NS_CWA);
    let _ = write!(
        out,
        "\" sid=\"{}\" ackId=\"{}\" pollWaitTime=\"{}\" sessionTimeout=\"{}\"",
        header.sid, header.ack_id, header.poll_wait_ms, header.session_timeout_s
    );
    let events: Vec<(u64, &EventPayload)> = events.collect();
    out.reserve(events.iter().map(|(_, p)| p.written_len() + 20).sum::<usize>() + 16);
    let mut any = false;
    for (eid, payload) in events {
        if !any {
            out.push('>');
            any = true;
        }
        payload.write(eid, &mut out);
    }
    out.push_str(if any { "</cwaEvents>" } else { "/>" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_eid_and_the_header() {
        let a = EventPayload::request_succeeded("2");
        let b = EventPayload::user_presence("<user uri=\"sip:a@x\"/>".into());
        let h = EventsHeader { sid: 9, ack_id: 12, poll_wait_ms: 1000, session_timeout_s: 300 };
        let xml = cwa_events(h, [(11, &a), (12, &b)]);
        assert_eq!(
            xml,
            format!("<cwaEvents xmlns=\"{NS_CWA}\" sid=\"9\" ackId=\"12\" pollWaitTime=\"1000\" sessionTimeout=\"300\"><requestSucceeded eid=\"11\" rid=\"2\"/><userPresence eid=\"12\"><user uri=\"sip:a@x\"/></userPresence></cwaEvents>")
        );
        assert!(cwa_events(h, []).ends_with("sessionTimeout=\"300\"/>"));
    }

    #[test]
    fn errors_never_carry_internal_text() {
        let xml = error_element(&GatewayError::Internal);
        assert_eq!(xml, r#"<error code="18400" subCode="0" reason="Internal Failure" detail=""/>"#);
    }
}
