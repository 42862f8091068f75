//! The users file and the config file: any text is read or refused with a message, never a panic;
//! a users file that is accepted holds only text the input text rule allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use presence_gateway::config::Config;
use presence_gateway::model::text;
use presence_gateway::service::seed::UsersFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text_in) = std::str::from_utf8(data) else { return };
    if let Ok(file) = UsersFile::parse(text_in) {
        for user in &file.user {
            assert!(text::check(&user.display_name).is_ok());
            assert!(user.groups.iter().all(|g| text::check(g).is_ok()));
        }
    }
    let _ = Config::from_toml(text_in);
});
