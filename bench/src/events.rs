//! Reading a `cwaEvents` body without building a tree: its `ackId`, every event's `eid`, and the
//! stamps the load generator put into published notes (`bench SEQ MICROS`), with the publisher
//! taken from the `user uri` they arrived in. Streaming, so that reading costs the load generator
//! little of the CPU it shares with the gateway.

use anyhow::{anyhow, bail, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// What a published change carries: who changed, the publisher's change number, when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Stamp {
    /// The note text that carries a stamp.
    pub fn note(seq: u64, sent_us: u64) -> String {
        format!("bench {seq} {sent_us}")
    }

    fn parse(publisher: u32, text: &str) -> Option<Stamp> {
        let mut parts = text.strip_prefix("bench ")?.split(' ');
        let seq = parts.next()?.parse().ok()?;
        let sent_us = parts.next()?.parse().ok()?;
        Some(Stamp { publisher, seq, sent_us })
    }
}

/// One event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    pub eid: u64,
    /// `userPresence` with one `user` (a subscription snapshot or a change), not a query answer.
    pub users: u32,
    pub stamps: Vec<Stamp>,
}

/// A parsed `cwaEvents` body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ack_id: u64,
    pub events: Vec<EventInfo>,
}

fn attr(start: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// The user number of a generated URI (`sip:uN@…`).
pub fn user_number(uri: &str) -> Option<u32> {
    uri.strip_prefix("sip:u")?.split('@').next()?.parse().ok()
}

/// Parses a `cwaEvents` reply body.
pub fn parse(body: &str) -> Result<Batch> {
    let mut reader = Reader::from_str(body);
    let mut batch = Batch::default();
    let mut depth = 0usize;
    let mut user: Option<u32> = None;
    let mut in_personal_note = false;
    loop {
        match reader.read_event().map_err(|e| anyhow!("malformed cwaEvents: {e}"))? {
            Event::Start(start) => {
                open(&start, depth, &mut batch, &mut user, &mut in_personal_note)?;
                depth += 1;
            }
            Event::Empty(start) => open(&start, depth, &mut batch, &mut user, &mut in_personal_note)?,
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_personal_note = false;
            }
            Event::Text(text) if in_personal_note => {
                let text = text.decode().map_err(|e| anyhow!("bad note text: {e}"))?;
                if let (Some(publisher), Some(event)) = (user, batch.events.last_mut()) {
                    event.stamps.extend(Stamp::parse(publisher, &text));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(batch)
}

fn open(start: &BytesStart<'_>, depth: usize, batch: &mut Batch, user: &mut Option<u32>, note: &mut bool) -> Result<()> {
    let name = start.local_name();
    match (depth, name.as_ref()) {
        (0, b"cwaEvents") => {
            batch.ack_id = attr(start, b"ackId").ok_or_else(|| anyhow!("cwaEvents without ackId"))?.parse()?;
        }
        (0, other) => bail!("expected cwaEvents, got {}", String::from_utf8_lossy(other)),
        (1, _) => {
            let eid = attr(start, b"eid").ok_or_else(|| anyhow!("an event without eid"))?.parse()?;
            batch.events.push(EventInfo { eid, users: 0, stamps: Vec::new() });
            *user = None;
        }
        (_, b"user") => {
            *user = attr(start, b"uri").as_deref().and_then(user_number);
            if let Some(event) = batch.events.last_mut() {
                event.users += 1;
            }
        }
        (_, b"body") => *note = attr(start, b"type").as_deref() == Some("personal"),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_eids_acks_and_stamps() {
        let body = r#"<cwaEvents xmlns="x" sid="9" ackId="4" pollWaitTime="0" sessionTimeout="90"><selfPresence eid="3"><cwaCategory name="note"><note><body type="personal">bench 1 2</body></note></cwaCategory></selfPresence><userPresence eid="4"><user uri="sip:u17@bench.example"><cwaCategory name="note"><note><body type="personal">bench 5 123456</body></note></cwaCategory></user></userPresence></cwaEvents>"#;
        let batch = parse(body).unwrap();
        assert_eq!(batch.ack_id, 4);
        assert_eq!(batch.events.len(), 2);
        assert!(batch.events[0].stamps.is_empty(), "own presence carries no publisher");
        assert_eq!(batch.events[1].stamps, vec![Stamp { publisher: 17, seq: 5, sent_us: 123456 }]);
        assert_eq!(batch.events[1].users, 1);
    }

    #[test]
    fn empty_batches_and_errors() {
        let batch = parse(r#"<cwaEvents xmlns="x" sid="9" ackId="7" pollWaitTime="0" sessionTimeout="90"/>"#).unwrap();
        assert_eq!((batch.ack_id, batch.events.len()), (7, 0));
        assert!(parse("<cwaResponses/>").is_err());
        assert!(parse(r#"<cwaEvents ackId="1"><userPresence/></cwaEvents>"#).is_err());
    }
}
