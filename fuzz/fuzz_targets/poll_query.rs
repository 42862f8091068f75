//! The data channel's query string (`Sid`, `AckId`, `UA`): any text parses or is refused, never
//! panics, and a query that parses says the same when written back in canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use presence_gateway::cwa::requests::parse_poll_query;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(query) = parse_poll_query(Some(raw)) else { return };
    let sid = query.sid.map(|s| format!("Sid={s}&")).unwrap_or_default();
    let canonical = format!("{sid}AckId={}&UA={}", query.ack, query.user_active);
    assert_eq!(parse_poll_query(Some(&canonical)).unwrap(), query);
});
