//! Directory search: display name (substring), first and last name (prefix of the first and last
//! word of the display name), e-mail alias (the whole address when the query has an `@`, else a
//! prefix of the part before it), combined with and/or. Results carry only directory attributes
//! the searcher may see at their level, never presence.

use super::Gateway;
use crate::cwa::requests::SearchQuery;
use crate::hub::event::DirectoryEntry;
use crate::model::contact::Profile;
use crate::model::rights::visibility;

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn matches(profile: &Profile, q: &SearchQuery) -> bool {
    let name = lower(&profile.display_name);
    let words: Vec<&str> = name.split_whitespace().collect();
    let email = profile.email.as_deref().map(lower).unwrap_or_default();
    let checks = [
        q.display_name.as_ref().map(|v| name.contains(&lower(v))),
        q.first_name.as_ref().map(|v| words.first().is_some_and(|w| w.starts_with(&lower(v)))),
        q.last_name.as_ref().map(|v| words.last().is_some_and(|w| w.starts_with(&lower(v)))),
        q.email_alias.as_ref().map(|v| match v.contains('@') {
            true => email == lower(v),
            false => email.split('@').next().is_some_and(|alias| !alias.is_empty() && alias.starts_with(&lower(v))),
        }),
    ];
    let mut given = checks.iter().flatten();
    if q.all {
        given.all(|ok| *ok)
    } else {
        given.any(|ok| *ok)
    }
}

impl Gateway {
    /// Up to the configured cap of matching entries, sorted by name, and whether more matched.
    pub fn search_directory(&self, searcher: &str, query: &SearchQuery) -> (Vec<DirectoryEntry>, bool) {
        let mut found: Vec<_> = self.directory.all_profiles().into_iter().filter(|p| matches(p, query)).collect();
        found.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.uri.cmp(&b.uri)));
        let cap = self.config.search_max_results;
        let more = found.len() > cap;
        let entries = found.iter().take(cap).map(|p| self.directory_entry(p, searcher)).collect();
        (entries, more)
    }

    fn directory_entry(&self, profile: &Profile, searcher: &str) -> DirectoryEntry {
        let vis = visibility(self.directory.level(&profile.uri, searcher));
        let org = |v: &Option<String>| v.clone().filter(|_| vis.organisation);
        DirectoryEntry {
            uri: profile.uri.clone(),
            display_name: profile.display_name.clone(),
            email: profile.email.clone(),
            title: org(&profile.title),
            company: org(&profile.company),
            department: org(&profile.department),
            office: org(&profile.office),
            work_phone: profile.phones.work.clone().filter(|_| vis.work_phone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, email: &str) -> Profile {
        Profile { uri: format!("sip:{email}"), display_name: name.into(), email: Some(email.into()), ..Profile::default() }
    }

    #[test]
    fn criteria_and_functions() {
        let jo = profile("Joanna Smith", "jsmith@example.com");
        let q = |f: fn(&mut SearchQuery)| {
            let mut q = SearchQuery::default();
            f(&mut q);
            q
        };
        assert!(matches(&jo, &q(|q| q.display_name = Some("anna s".into()))));
        assert!(matches(&jo, &q(|q| q.first_name = Some("jo".into()))));
        assert!(!matches(&jo, &q(|q| q.first_name = Some("smith".into()))));
        assert!(matches(&jo, &q(|q| q.last_name = Some("SMI".into()))));
        assert!(matches(&jo, &q(|q| q.email_alias = Some("jsm".into()))));
        assert!(matches(&jo, &q(|q| q.email_alias = Some("JSmith@example.com".into()))));
        assert!(!matches(&jo, &q(|q| q.email_alias = Some("jsm@example.com".into()))), "with @ the whole address must match");
        let either = q(|q| {
            q.first_name = Some("jo".into());
            q.last_name = Some("brown".into());
        });
        assert!(matches(&jo, &either));
        assert!(!matches(&jo, &SearchQuery { all: true, ..either }));
    }
}
