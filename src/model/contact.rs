//! Directory data of a user: identity, organisation and phones (what a contact card shows).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Phones {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// A user as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub uri: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<String>,
    #[serde(default)]
    pub phones: Phones,
    /// Organisational groups (rights can be granted per group).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Profile {
    /// Every text of the profile against the input text rule ([`super::text`]), fields named as in
    /// the users file (`display_name`, `phones.work`, `groups[2]`).
    pub fn check_text(&self) -> Result<(), super::text::FieldError> {
        let p = &self.phones;
        super::text::check_fields([
            ("uri", Some(self.uri.as_str())),
            ("display_name", Some(self.display_name.as_str())),
            ("email", self.email.as_deref()),
            ("title", self.title.as_deref()),
            ("company", self.company.as_deref()),
            ("department", self.department.as_deref()),
            ("office", self.office.as_deref()),
            ("phones.work", p.work.as_deref()),
            ("phones.mobile", p.mobile.as_deref()),
            ("phones.home", p.home.as_deref()),
            ("phones.other", p.other.as_deref()),
        ])?;
        for (i, group) in self.groups.iter().enumerate() {
            super::text::check_field(&format!("groups[{i}]"), group)?;
        }
        Ok(())
    }
}

/// The longest URI (the CWA limit).
pub const MAX_URI_BYTES: usize = 454;

/// A `sip:` URI as the gateway accepts it: the prefix, a user part, `@`, a domain; no spaces or
/// markup characters; at most [`MAX_URI_BYTES`] (the CWA limit).
pub fn is_valid_sip_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("sip:") else { return false };
    if uri.len() > MAX_URI_BYTES {
        return false;
    }
    if rest.is_ascii() {
        return ascii_uri_rest(rest.as_bytes());
    }
    let Some((user, domain)) = rest.split_once('@') else { return false };
    !user.is_empty() && !domain.is_empty() && !domain.contains('@') && allowed_text(rest)
}

/// Bytes an ASCII URI may hold: visible ASCII but markup characters.
const ALLOWED_ASCII: [bool; 128] = {
    let mut allowed = [false; 128];
    let mut b = 0;
    while b < 128 {
        allowed[b] = (b as u8).is_ascii_graphic() && !matches!(b as u8, b'<' | b'>' | b'"' | b'\'' | b'&');
        b += 1;
    }
    allowed
};

/// An ASCII URI after `sip:`, in one pass: allowed bytes only, and exactly one `@` with
/// something on both sides (every ASCII character allowed here meets the input text rule).
fn ascii_uri_rest(rest: &[u8]) -> bool {
    let mut at = None;
    for (i, &b) in rest.iter().enumerate() {
        if !ALLOWED_ASCII[usize::from(b & 0x7f)] {
            return false;
        }
        if b == b'@' {
            if at.is_some() {
                return false;
            }
            at = Some(i);
        }
    }
    at.is_some_and(|i| i > 0 && i + 1 < rest.len())
}

/// Every character allowed in a URI, and the input text rule met.
fn allowed_text(rest: &str) -> bool {
    rest.chars().all(allowed_in_uri) && super::text::check(rest).is_ok()
}

fn allowed_in_uri(c: char) -> bool {
    if c.is_ascii() {
        return usize::try_from(u32::from(c)).is_ok_and(|i| ALLOWED_ASCII[i]);
    }
    !c.is_whitespace() && !c.is_control()
}

/// URIs compare case-insensitively; the gateway keeps them lower-cased.
pub fn normalize_uri(uri: &str) -> String {
    uri.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule as first written, character by character: what the one-pass check must agree with.
    fn reference(uri: &str) -> bool {
        let Some(rest) = uri.strip_prefix("sip:") else { return false };
        let Some((user, domain)) = rest.split_once('@') else { return false };
        uri.len() <= MAX_URI_BYTES
            && !user.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && rest.chars().all(allowed_in_uri)
            && crate::model::text::check(rest).is_ok()
    }

    proptest! {
        #[test]
        fn the_one_pass_check_agrees_with_the_rule(uri in "(sip:)?[a-z@<& .\\x00-\\x7f\u{e9}\u{2028}]{0,12}") {
            prop_assert_eq!(is_valid_sip_uri(&uri), reference(&uri), "{:?}", uri);
        }
    }

    #[test]
    fn sip_uri_validation() {
        assert!(is_valid_sip_uri("sip:alice@example.com"));
        assert!(!is_valid_sip_uri("alice@example.com"));
        assert!(!is_valid_sip_uri("sip:alice"));
        assert!(!is_valid_sip_uri("sip:@example.com"));
        assert!(!is_valid_sip_uri("sip:a b@example.com"));
        assert!(!is_valid_sip_uri("sip:a<b@example.com"));
        assert!(!is_valid_sip_uri("sip:a\u{FFFF}b@example.com"), "the input text rule holds for URIs too");
        assert!(!is_valid_sip_uri("sip:a\u{1}b@example.com") && !is_valid_sip_uri("sip:a\tb@example.com"));
        assert!(!is_valid_sip_uri("sip:a&b@example.com") && !is_valid_sip_uri("sip:a\u{7F}b@example.com"));
        assert!(is_valid_sip_uri("sip:j\u{FC}rgen@example.com") && !is_valid_sip_uri("sip:j\u{FC}r\u{A0}gen@example.com"));
        assert!(!is_valid_sip_uri(&format!("sip:{}@example.com", "a".repeat(460))));
    }
}
