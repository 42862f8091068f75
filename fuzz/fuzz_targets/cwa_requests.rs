//! The CWA command channel and sign-in form: bytes → UTF-8 → bounded XML tree → typed requests.
//! Nothing may panic, and whatever is accepted holds only text the input text rule allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use presence_gateway::cwa::requests::{parse_batch, parse_logon, Parsed, Publication, Request};
use presence_gateway::cwa::xml::{parse, XmlLimits};
use presence_gateway::model::text;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    let Ok(root) = parse(body, XmlLimits::default()) else { return };
    if let Ok(logon) = parse_logon(&root) {
        assert!(text::check(&logon.user).is_ok() && text::check(&logon.password).is_ok());
    }
    let Ok(batch) = parse_batch(&root, 650) else { return };
    for parsed in &batch.requests {
        let Parsed::Ok { request, .. } = parsed else { continue };
        match request {
            Request::PublishSelfPresence(publications) => {
                for publication in publications {
                    match publication {
                        Publication::Note(note) => assert!(text::check(note).is_ok()),
                        Publication::UserState(_, Some(custom)) => assert!(text::check(custom).is_ok()),
                        _ => {}
                    }
                }
            }
            Request::QueryPresence(uris) | Request::SubscribePresence(uris) | Request::UnsubscribePresence(uris) => {
                assert!(!uris.is_empty() && uris.len() <= 650);
            }
            Request::AddGroup { name } | Request::UpdateGroup { name, .. } => assert!(text::check(name).is_ok()),
            Request::AddContact(spec) | Request::UpdateContact(spec) => assert!(text::check(&spec.name).is_ok()),
            _ => {}
        }
    }
});
