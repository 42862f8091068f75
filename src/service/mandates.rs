//! Authorisation of administration that spans users — the user list and accounts, live sessions,
//! rights entries that apply to every owner — decided in the service: it needs a [`Mandate`] for
//! that duty, and only [`Gateway::mandate`] grants one, to an administrator's token. The methods
//! that do these things take the mandate, so no handler can forget the check. What is done to one
//! user at their own or an admin's request is `super::permits`.

use super::permits::Actor;
use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::model::contact::Profile;
use std::sync::Arc;

/// A kind of administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Listing, creating, replacing and deleting users.
    Users,
    /// Listing and ending live sessions.
    Sessions,
    /// Rights entries that apply to every owner.
    GlobalRights,
}

/// Leave for one kind of administration. Built only by [`Gateway::mandate`].
#[derive(Debug)]
pub struct Mandate {
    duty: Duty,
}

impl Mandate {
    pub(crate) fn check(&self, duty: Duty) -> Result<()> {
        match self.duty == duty {
            true => Ok(()),
            false => Err(GatewayError::internal("using a mandate", format!("{:?} for {:?}", self.duty, duty))),
        }
    }
}

impl Gateway {
    /// Leave for `actor` to do `duty`: an administrator's token only, else `RoleRequired`.
    pub fn mandate(&self, actor: &Actor<'_>, duty: Duty) -> Result<Mandate> {
        match actor {
            Actor::Admin => Ok(Mandate { duty }),
            _ => Err(GatewayError::RoleRequired(refusal(duty).into())),
        }
    }

    /// Every user's profile, in no particular order.
    pub fn users(&self, mandate: &Mandate) -> Result<Vec<Arc<Profile>>> {
        mandate.check(Duty::Users)?;
        Ok(self.directory.all_profiles())
    }
}

fn refusal(duty: Duty) -> &'static str {
    match duty {
        Duty::Users => "user administration needs an admin token",
        Duty::Sessions => "session administration needs an admin token",
        Duty::GlobalRights => "group and global rights need an admin token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_an_admin_token_gets_a_mandate_and_it_is_for_one_duty() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config { data_dir: dir.path().into(), ..Default::default() };
        let gateway = crate::build(config, Arc::new(crate::service::clock::SystemClock)).await.unwrap();
        for duty in [Duty::Users, Duty::Sessions, Duty::GlobalRights] {
            assert!(gateway.mandate(&Actor::Admin, duty).is_ok());
            for actor in [Actor::Source, Actor::User("sip:bob@example.com")] {
                assert_eq!(gateway.mandate(&actor, duty).unwrap_err().json_code(), "forbidden");
            }
        }
        let sessions = gateway.mandate(&Actor::Admin, Duty::Sessions).unwrap();
        assert!(gateway.users(&sessions).is_err());
        gateway.shutdown().await;
    }
}
