//! Directory data of a user: identity, organisation and phones (what a contact card shows).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
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

/// The longest URI (the CWA limit).
pub const MAX_URI_BYTES: usize = 454;

/// A `sip:` URI as the gateway accepts it: the prefix, a user part, `@`, a domain; no spaces or
/// markup characters; at most [`MAX_URI_BYTES`] (the CWA limit).
pub fn is_valid_sip_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("sip:") else { return false };
    let Some((user, domain)) = rest.split_once('@') else { return false };
    uri.len() <= MAX_URI_BYTES
        && !user.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && rest.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"<>\"'&".contains(c))
}

/// URIs compare case-insensitively; the gateway keeps them lower-cased.
pub fn normalize_uri(uri: &str) -> String {
    uri.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_validation() {
        assert!(is_valid_sip_uri("sip:alice@example.com"));
        assert!(!is_valid_sip_uri("alice@example.com"));
        assert!(!is_valid_sip_uri("sip:alice"));
        assert!(!is_valid_sip_uri("sip:@example.com"));
        assert!(!is_valid_sip_uri("sip:a b@example.com"));
        assert!(!is_valid_sip_uri("sip:a<b@example.com"));
        assert!(!is_valid_sip_uri(&format!("sip:{}@example.com", "a".repeat(460))));
    }
}
