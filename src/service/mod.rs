//! The gateway's core services, independent of HTTP: the directory, live presence and fan-out,
//! sign-in and sessions, CWA command handling, and the one task that serves every timed
//! transition. [`Gateway`] ties them together; the HTTP layer only translates.

pub mod access;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod directory;
pub mod gates;
pub mod images;
pub mod json_events;
pub mod list_book;
pub mod lists;
pub mod live_sessions;
pub mod logon_limit;
pub mod mandates;
pub mod node;
pub mod permits;
pub mod presence;
pub mod presence_book;
pub mod reads;
pub mod search;
pub mod seed;
pub mod sessions;
pub mod shared_limits;
pub mod sync;
pub mod tickets;
pub mod transitions;
pub mod users;

use crate::backplane::{Backplane, BackplaneError};
use crate::config::Config;
use crate::hub::timers::{TimerKey, Timers};
use crate::hub::Hub;
use crate::store::{Store, StoreError};
use auth::PasswordChecks;
use clock::Clock;
use directory::Directory;
use logon_limit::LogonLimiter;
use std::collections::HashMap;
use std::sync::Arc;
use tickets::{TicketPolicy, Tickets};

/// The gateway's core. Its parts are private: the HTTP layer, tests and tools use its methods
/// (docs/architecture.md §4, "The service's parts").
pub struct Gateway {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    hub: Hub,
    clock: Arc<dyn Clock>,
    tickets: Arc<Tickets>,
    limiter: LogonLimiter,
    /// Password checks, a bounded number at a time.
    password_checks: PasswordChecks,
    directory: Directory,
    backplane: Arc<dyn Backplane>,
    /// Changes to this node's live inputs not yet published.
    outbox: Arc<cluster::Outbox>,
    /// Every known user's live presence.
    presences: presence_book::PresenceBook,
    timers: Timers<TimerKey>,
    /// Contact lists and subscribers.
    lists: list_book::ListBook,
    /// Each sign-in's JSON event stream on this node.
    json_streams: json_events::StreamIndex,
    /// Serialise one owner's contact-list, subscriber and rights writes (held across the store
    /// write); different owners write at once.
    gates: gates::OwnerGates,
    /// Serialises installs of profiles, so that the directory and the presence book end up
    /// holding the same one of a user.
    profile_installs: parking_lot::Mutex<()>,
    /// This gateway, for changes that run to completion on their own task.
    me: std::sync::Weak<Gateway>,
    /// Verified against when the user is unknown, so both failures take the same time.
    decoy_hash: String,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}

impl Gateway {
    /// Loads users, presence and rights from the store, starts the timer task and joins the
    /// cluster when the configuration names one.
    pub async fn start(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Arc<Gateway>, StartError> {
        let backplane = crate::backplane::connect(&config)?;
        let decoy_hash = tokio::task::spawn_blocking(auth::decoy_hash).await.unwrap_or_default();
        let gateway = Arc::new_cyclic(|me| Gateway {
            tickets: Arc::new(Tickets::new(store.clone(), TicketPolicy::from_config(&config))),
            limiter: LogonLimiter::new(config.logon.clone()),
            password_checks: PasswordChecks::per_core(),
            directory: Directory::new(&config.enterprise_domains),
            config: Arc::new(config),
            store,
            hub: Hub::starting_at(crate::backplane::sid_base(backplane.node())),
            clock,
            backplane,
            outbox: Arc::default(),
            presences: presence_book::PresenceBook::default(),
            timers: Timers::default(),
            lists: list_book::ListBook::default(),
            gates: gates::OwnerGates::default(),
            profile_installs: parking_lot::Mutex::default(),
            me: me.clone(),
            json_streams: json_events::StreamIndex::default(),
            decoy_hash,
        });
        // Follow other processes' changes from before the load, so none falls between the two.
        let feed = gateway.store.changes().await?;
        gateway.load().await?;
        tokio::spawn(sync::follow(Arc::downgrade(&gateway), feed));
        tokio::spawn(run_timers(Arc::downgrade(&gateway)));
        tokio::spawn(tickets::upkeep(Arc::downgrade(&gateway.tickets), gateway.clock.clone()));
        gateway.join_cluster().await?;
        Ok(gateway)
    }

    /// (Re)reads the directory, stored presence (with source reports) and rights.
    pub async fn load(&self) -> Result<(), StoreError> {
        for user in self.store.users().await? {
            self.add_user(Arc::new(user.profile));
        }
        for (uri, stored) in self.store.presences().await? {
            if let Some(entry) = self.presence_entry(&uri) {
                let mut live = entry.live.lock();
                live.model.manual = stored.manual;
                live.model.note = stored.note;
            }
        }
        // Reports that expired while no gateway ran are dropped, from the store too.
        let now = self.clock.now();
        self.store.sweep_source_reports(now).await?;
        for (uri, source, report) in self.store.source_reports(now).await? {
            if let Some(entry) = self.presence_entry(&uri) {
                entry.live.lock().model.set_report(&source, report);
            }
        }
        for (uri, categories) in self.store.raw_categories().await? {
            if let Some(entry) = self.presence_entry(&uri) {
                entry.live.lock().model.raw = categories;
            }
        }
        for (owner, entry) in self.store.rights().await? {
            self.directory.set_right(&owner, entry);
        }
        for entry in self.store.global_rights().await? {
            self.directory.set_global_right(entry);
        }
        let contact_lists = self.store.contact_lists().await?.into_iter().collect();
        for (uri, hash) in self.store.image_hashes().await? {
            if let Some(entry) = self.presence_entry(&uri) {
                entry.live.lock().model.image_hash = Some(hash);
            }
        }
        let mut subscribers: HashMap<String, Vec<(String, bool)>> = HashMap::new();
        for (owner, watcher, acknowledged) in self.store.subscribers().await? {
            subscribers.entry(owner).or_default().push((watcher, acknowledged));
        }
        self.lists.load(contact_lists, subscribers);
        for uri in self.presences.uris() {
            self.refresh(&uri);
        }
        Ok(())
    }

    /// Makes a (new or updated) profile live.
    pub fn add_user(&self, profile: Arc<crate::model::contact::Profile>) {
        let _one_at_a_time = self.profile_installs.lock();
        self.directory.put_profile(profile.clone());
        self.presences.put_profile(profile);
    }

    /// [`add_user`](Self::add_user) of a profile read from the store, if nothing was installed
    /// since `seen` (the stamp taken before the read); `false` when something was.
    pub(crate) fn add_user_if(&self, seen: directory::Stamp, profile: Arc<crate::model::contact::Profile>) -> bool {
        let _one_at_a_time = self.profile_installs.lock();
        if !self.directory.put_profile_if(seen, profile.clone()) {
            return false;
        }
        self.presences.put_profile(profile);
        true
    }

    pub fn idle_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.idle_timeout_seconds as i64)
    }

    pub fn session_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.session_timeout_seconds as i64)
    }

    /// Runs a change on its own task to its end, so that a client hanging up cannot stop it
    /// between its store write and applying it (docs/architecture.md, "Cancellation safety").
    pub(crate) async fn complete<T, F, Fut>(&self, change: F) -> crate::error::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Gateway>) -> Fut,
        Fut: std::future::Future<Output = crate::error::Result<T>> + Send + 'static,
    {
        let gateway = self.me.upgrade().ok_or(crate::error::GatewayError::Internal)?;
        tokio::spawn(change(gateway)).await.map_err(|e| crate::error::GatewayError::internal("completing a change", e))?
    }

    pub(crate) fn decoy_hash(&self) -> &str {
        &self.decoy_hash
    }

    /// Graceful shutdown: answer every held poll, leave the cluster, record the last ticket uses,
    /// then close the store.
    pub async fn shutdown(&self) {
        self.hub.begin_shutdown();
        match tokio::time::timeout(std::time::Duration::from_secs(3), self.backplane.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leaving the cluster; this node's sessions fade with its heartbeat"),
            Err(_) => tracing::warn!("leaving the cluster timed out; this node's sessions fade with its heartbeat"),
        }
        if let Err(e) = self.tickets.flush().await {
            tracing::warn!(error = %e, "recording the last ticket uses");
        }
        self.store.close().await;
    }
}

/// The single task behind every timed transition: sleeps until the earliest deadline (or until
/// an earlier one is scheduled, or the clock jumps), then handles what is due.
async fn run_timers(gateway: std::sync::Weak<Gateway>) {
    let mut last_sweep = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    loop {
        let Some(gw) = gateway.upgrade() else { return };
        let now = gw.clock.now();
        for key in gw.timers.pop_due(now) {
            match key {
                TimerKey::Presentity(uri) => gw.expire_presence(&uri).await,
                TimerKey::Session(sid) => gw.check_session_expiry(sid),
            }
        }
        if now - last_sweep >= chrono::Duration::seconds(60) {
            gw.limiter.sweep(now);
            let store = gw.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.sweep_source_reports(now).await {
                    tracing::warn!(error = %e, "sweeping expired source reports");
                }
            });
            last_sweep = now;
        }
        let wait = gw.timers.next_deadline().map(|at| (at - now).to_std().unwrap_or_default());
        let wait = wait.unwrap_or(std::time::Duration::from_secs(60)).min(std::time::Duration::from_secs(60));
        let gw2 = gw.clone();
        drop(gw);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = gw2.timers.changed() => {}
            _ = gw2.clock.jumped() => {}
        }
    }
}
