//! The CWA command channel and sign-in form: bytes → UTF-8 → bounded XML tree → typed requests,
//! and the command channel's one-pass reading (`cwa::batch`), which must give the same batch or
//! the same error as the tree. The tree is read as the gateway reads it (a plain document by one
//! scan of its bytes) and by the general reader alone: both must give the same tree or error. Nothing may panic, and whatever is accepted holds only text the
//! input text rule allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use presence_gateway::cwa::batch::read_batch;
use presence_gateway::cwa::requests::{parse_batch, parse_logon, Parsed, Publication, Request};
use presence_gateway::cwa::xml::{parse, parse_general, XmlLimits};
use presence_gateway::error::GatewayError;
use presence_gateway::model::text;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    // A small URI limit, so that bodies of the fuzzer's size reach it.
    let one_pass = read_batch(body, XmlLimits::default(), 3);
    let general = parse_general(body, XmlLimits::default());
    assert_eq!(parse(body, XmlLimits::default()), general);
    let tree = general.map_err(|e| GatewayError::InvalidFormat(e.to_string()));
    assert_eq!(one_pass, tree.clone().and_then(|root| parse_batch(&root, 3)));
    let Ok(root) = tree else { return };
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
