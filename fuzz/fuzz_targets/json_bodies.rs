//! Every JSON body of `/api/v1`: each parses or is refused with the documented error — never a
//! panic, never a message naming the gateway's own types (unless the input itself said them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use presence_gateway::api::parse_every_body;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    for outcome in parse_every_body(data) {
        let Err(error) = outcome else { continue };
        assert!(matches!(error.status.as_u16(), 400 | 422), "{error:?}");
        for leak in ["struct ", "enum ", "Body", "presence_gateway"] {
            assert!(!error.message.contains(leak) || input.contains(leak), "{error:?}");
        }
        if let Some(field) = &error.field {
            assert!(!field.is_empty(), "{error:?}");
        }
    }
});
