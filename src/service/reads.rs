//! Reads cut by who reads, decided in the service: presence as the reader's level shows it (a
//! user sees themself whole, an administrator sees everyone whole, a source token reads nothing)
//! and a picture only at Public level or above. Changes are `super::permits`.

use super::permits::Actor;
use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::model::presentity::{view, PresenceView, Viewer};
use crate::model::rights::AccessLevel;
use crate::store::StoredImage;

/// Leave to read presence, as one user's level or (`None`) as an administrator. Built only by
/// [`Gateway::presence_reader`].
#[derive(Debug)]
pub struct PresenceReader {
    user: Option<String>,
}

impl Gateway {
    /// Whether a user has this URI.
    pub fn user_exists(&self, uri: &str) -> bool {
        self.directory.profile(uri).is_some()
    }

    /// Leave for `actor` to read presence: a user or an administrator; a source token gets
    /// `RoleRequired`.
    pub fn presence_reader(&self, actor: &Actor<'_>) -> Result<PresenceReader> {
        match actor {
            Actor::Admin => Ok(PresenceReader { user: None }),
            Actor::User(me) => Ok(PresenceReader { user: Some(me.to_string()) }),
            Actor::Source => Err(GatewayError::RoleRequired("reading presence needs a user ticket or an admin token".into())),
        }
    }

    /// Each of `uris`' presence as `reader` may see it (`None` for a URI that names no user),
    /// after catching up with the cluster.
    pub async fn read_presence<S: AsRef<str>>(&self, reader: &PresenceReader, uris: &[S]) -> Result<Vec<Option<PresenceView>>> {
        self.known_and_fresh(uris).await?;
        let now = self.now();
        let one = |uri: &str| {
            let entry = self.presence_entry(uri)?;
            let viewer = match reader.user.as_deref() {
                Some(me) if me != uri => Viewer::Watcher(self.directory.level(uri, me)),
                _ => Viewer::Owner,
            };
            let live = entry.live.lock();
            Some(view(&live.model, viewer, now))
        };
        Ok(uris.iter().map(|uri| one(uri.as_ref())).collect())
    }

    /// The user's picture if `actor` may see it: the user themself, an administrator, or a user
    /// `uri` gave Public level or above. `None` when there is none or it may not be seen.
    pub async fn visible_image(&self, actor: &Actor<'_>, uri: &str, large: bool) -> Result<Option<StoredImage>> {
        let visible = match actor {
            Actor::Admin => true,
            Actor::User(me) => *me == uri || self.directory.level(uri, me) >= AccessLevel::Public,
            Actor::Source => false,
        };
        match visible {
            true => self.image(uri, large).await,
            false => Ok(None),
        }
    }
}
