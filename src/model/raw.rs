//! Raw categories: application-defined presence data a user publishes (README, "Raw
//! categories"). The content is opaque to the model — checked XML text the wire layer made — and
//! each category names the access level (container) from which on watchers may receive it.

use super::rights::AccessLevel;
use serde::{Deserialize, Serialize};

/// At most this many raw categories per user.
pub const MAX_PER_USER: usize = 16;
/// At most this many bytes of content per raw category.
pub const MAX_CONTENT_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCategory {
    pub name: String,
    pub namespace: String,
    pub instance: u32,
    /// The lowest level that receives it (the container the publisher chose).
    pub level: AccessLevel,
    /// `static`, `user`, `endpoint` or `time`, as published.
    pub expire_type: String,
    /// The category's XML content, as the wire layer checked and wrote it; empty = withdrawn.
    pub content: String,
}

impl RawCategory {
    /// Whether a viewer at `level` receives it (Blocked never does).
    pub fn visible_to(&self, level: AccessLevel) -> bool {
        level != AccessLevel::Blocked && level >= self.level
    }
}

/// Applies a publication to a user's raw categories: each published category replaces the one
/// with the same name and instance; one with empty content withdraws it. `None` when the result
/// would hold more than [`MAX_PER_USER`].
pub fn apply(current: &[RawCategory], published: &[RawCategory]) -> Option<Vec<RawCategory>> {
    let mut next: Vec<RawCategory> = current.to_vec();
    for category in published {
        next.retain(|c| !(c.name == category.name && c.instance == category.instance));
        if !category.content.is_empty() {
            next.push(category.clone());
        }
    }
    (next.len() <= MAX_PER_USER).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str, instance: u32, content: &str) -> RawCategory {
        RawCategory {
            name: name.into(),
            namespace: "urn:x".into(),
            instance,
            level: AccessLevel::Company,
            expire_type: "user".into(),
            content: content.into(),
        }
    }

    #[test]
    fn publications_replace_withdraw_and_are_bounded() {
        let one = apply(&[], &[cat("gps", 0, "<a/>"), cat("gps", 1, "<b/>")]).unwrap();
        assert_eq!(one.len(), 2);
        let two = apply(&one, &[cat("gps", 0, "<c/>"), cat("gps", 1, "")]).unwrap();
        assert_eq!(two, vec![cat("gps", 0, "<c/>")]);
        let many: Vec<_> = (0..=MAX_PER_USER as u32).map(|i| cat("n", i, "<a/>")).collect();
        assert!(apply(&[], &many).is_none());
    }

    #[test]
    fn the_container_is_the_lowest_level_that_sees_it() {
        let c = cat("gps", 0, "<a/>");
        assert!(!c.visible_to(AccessLevel::Public));
        assert!(c.visible_to(AccessLevel::Company) && c.visible_to(AccessLevel::Personal));
        let public = RawCategory { level: AccessLevel::Public, ..c };
        assert!(!public.visible_to(AccessLevel::Blocked));
    }
}
