//! A fleet of virtual sessions: signs each user in once (argon2id makes sign-in deliberately slow,
//! so several sessions share one login's ticket, as browser tabs do), starts every session with its
//! subscriptions in one `initiateSession` + `subscribePresence` batch, and runs one poll task per
//! session. Setup runs with bounded concurrency; the fleet stops on command and hands back what
//! every session's checks found. With several gateway nodes, each session is started on and
//! polled from the node its spec names (no request is passed between nodes).

use crate::client::Endpoint;
use crate::cwa::{self, CommandPool, Login};
use crate::session::{PollTask, Signals, Tracker};
use crate::stats::{Counters, Waiter};
use crate::users;
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// One gateway node as the load generator reaches it: its address, a pool of keep-alive command
/// connections, and the deliveries its sessions have received.
pub struct NodeLink {
    pub endpoint: Arc<Endpoint>,
    pub pool: Arc<CommandPool>,
    pub deliveries: AtomicU64,
}

impl NodeLink {
    pub fn new(endpoint: Endpoint, pool_size: usize) -> Arc<NodeLink> {
        let endpoint = Arc::new(endpoint);
        let pool = Arc::new(CommandPool::new(endpoint.clone(), pool_size));
        Arc::new(NodeLink { endpoint, pool, deliveries: AtomicU64::new(0) })
    }
}

/// What every part of a run shares.
pub struct Ctx {
    /// The first node's endpoint and pool (sign-ins, and scenarios that use one node).
    pub endpoint: Arc<Endpoint>,
    pub pool: Arc<CommandPool>,
    /// Every node; `nodes[0]` is the one of `endpoint` and `pool`.
    pub nodes: Vec<Arc<NodeLink>>,
    pub counters: Arc<Counters>,
    pub concurrency: usize,
    pub deadline: Instant,
}

impl Ctx {
    pub fn new(nodes: Vec<Arc<NodeLink>>, counters: Arc<Counters>, concurrency: usize, deadline: Instant) -> Ctx {
        let first = nodes.first().expect("at least one node").clone();
        Ctx { endpoint: first.endpoint.clone(), pool: first.pool.clone(), nodes, counters, concurrency, deadline }
    }

    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(anyhow!("the run exceeded --max-seconds"));
        }
        Ok(())
    }
}

/// A session to start: whose, whom it subscribes to, and on which node (index into `Ctx::nodes`).
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub user: usize,
    pub subscriptions: Vec<usize>,
    pub node: usize,
}

impl SessionSpec {
    /// A session on the first node.
    pub fn new(user: usize, subscriptions: Vec<usize>) -> SessionSpec {
        SessionSpec { user, subscriptions, node: 0 }
    }
}

/// A started session.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub user: usize,
    pub node: usize,
    pub sid: u64,
    pub login: Arc<Login>,
    pub subscriptions: Vec<usize>,
}

pub struct Fleet {
    pub ctx: Arc<Ctx>,
    pub logins: HashMap<usize, Arc<Login>>,
    pub sessions: Vec<LiveSession>,
    pub waiters: Arc<Vec<Arc<Waiter>>>,
    tasks: Vec<JoinHandle<Tracker>>,
    drained: Vec<Tracker>,
    stop: watch::Sender<bool>,
    drop_connections: watch::Sender<u64>,
}

impl Fleet {
    pub fn new(ctx: Arc<Ctx>, waiters: Vec<Arc<Waiter>>) -> Fleet {
        Fleet {
            ctx,
            logins: HashMap::new(),
            sessions: Vec::new(),
            waiters: Arc::new(waiters),
            tasks: Vec::new(),
            drained: Vec::new(),
            stop: watch::channel(false).0,
            drop_connections: watch::channel(0).0,
        }
    }

    /// Signs in every user not signed in yet (bounded concurrency).
    pub async fn sign_in(&mut self, users: impl IntoIterator<Item = usize>) -> Result<()> {
        let mut set = JoinSet::new();
        let permits = Arc::new(Semaphore::new(self.ctx.concurrency));
        let started = Instant::now();
        let mut wanted: Vec<usize> = users.into_iter().filter(|u| !self.logins.contains_key(u)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for user in wanted {
            let (ctx, permits) = (self.ctx.clone(), permits.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                ctx.check_deadline()?;
                cwa::logon(&ctx.pool, user, &users::uri(user), users::PASSWORD).await
            });
        }
        while let Some(done) = set.join_next().await {
            let login = done??;
            self.logins.insert(login.user, login);
        }
        eprintln!("signed in {} users in {:.1}s", self.logins.len(), started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Starts sessions (signing in their users first); with `poll`, each one holds a poll.
    pub async fn start(&mut self, specs: Vec<SessionSpec>, poll: bool) -> Result<()> {
        self.sign_in(specs.iter().map(|s| s.user)).await?;
        let mut set = JoinSet::new();
        let permits = Arc::new(Semaphore::new(self.ctx.concurrency));
        let first = self.sessions.len();
        for (offset, spec) in specs.into_iter().enumerate() {
            let login = self.logins[&spec.user].clone();
            let (ctx, permits) = (self.ctx.clone(), permits.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                ctx.check_deadline()?;
                let uris: Vec<String> = spec.subscriptions.iter().map(|u| users::uri(*u)).collect();
                let node = ctx.nodes.get(spec.node).ok_or_else(|| anyhow!("no node {}", spec.node))?;
                let sid = cwa::start_session(&node.pool, &login, &uris).await?;
                Counters::add(&ctx.counters.sessions, 1);
                let session = LiveSession { user: spec.user, node: spec.node, sid, login, subscriptions: spec.subscriptions };
                Ok::<_, anyhow::Error>((offset, session))
            });
        }
        let mut started = Vec::new();
        let clock = Instant::now();
        while let Some(done) = set.join_next().await {
            started.push(done??);
        }
        eprintln!("started {} sessions in {:.1}s", started.len(), clock.elapsed().as_secs_f64());
        started.sort_by_key(|(offset, _)| *offset);
        for (offset, session) in started {
            if poll {
                self.spawn_poll(&session, first + offset);
            }
            self.sessions.push(session);
        }
        Ok(())
    }

    fn spawn_poll(&mut self, session: &LiveSession, index: usize) {
        let task = PollTask {
            node: self.ctx.nodes[session.node].clone(),
            node_index: session.node,
            counters: self.ctx.counters.clone(),
            waiters: self.waiters.clone(),
            login: session.login.clone(),
            sid: session.sid,
            index,
            signals: Signals { stop: self.stop.subscribe(), drop_connections: self.drop_connections.subscribe() },
        };
        self.tasks.push(tokio::spawn(task.run()));
    }

    /// For sessions that hold no poll: reads each session's initial burst and acknowledges it (the
    /// acknowledging poll returns empty after the gateway's hold time), so that what stays behind
    /// is an idle session without a connection. `parallel` sessions at once.
    pub async fn drain(&mut self, from: usize, parallel: usize) -> Result<()> {
        let mut set = JoinSet::new();
        let permits = Arc::new(Semaphore::new(parallel.max(1)));
        for (i, session) in self.sessions.iter().enumerate().skip(from) {
            let (ctx, permits, login, sid) = (self.ctx.clone(), permits.clone(), session.login.clone(), session.sid);
            let node = session.node;
            set.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                ctx.check_deadline()?;
                let mut conn = ctx.nodes[node].endpoint.connect(i).await?;
                let mut tracker = Tracker { sid, node, ..Tracker::default() };
                for _ in 0..2 {
                    let reply = conn
                        .send(hyper::Method::GET, &cwa::poll_path(sid, tracker.last_eid), Some(&login.ticket()), None)
                        .await?;
                    login.observe(&reply);
                    if reply.status != 200 {
                        return Err(anyhow!("poll failed: HTTP {}", reply.status));
                    }
                    tracker.absorb(&crate::events::parse(reply.text())?, &[], 0);
                    Counters::add(&ctx.counters.responses, 1);
                }
                Ok::<_, anyhow::Error>(tracker)
            });
        }
        while let Some(done) = set.join_next().await {
            self.drained.push(done??);
        }
        Ok(())
    }

    /// Drops every data-channel connection at once; each session re-attaches with its last ack.
    pub fn drop_connections(&self) {
        self.drop_connections.send_modify(|n| *n += 1);
    }

    /// Waits until no new events arrived for `quiet`, at most `max`.
    pub async fn quiesce(&self, quiet: Duration, max: Duration) -> bool {
        let started = Instant::now();
        let mut last = (Counters::get(&self.ctx.counters.events), Instant::now());
        while started.elapsed() < max && Instant::now() < self.ctx.deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let events = Counters::get(&self.ctx.counters.events);
            if events != last.0 {
                last = (events, Instant::now());
            } else if last.1.elapsed() >= quiet {
                return true;
            }
        }
        false
    }

    /// Stops every poll and returns what each session's checks found.
    pub async fn stop(self) -> Vec<Tracker> {
        self.stop.send_replace(true);
        let mut trackers = self.drained;
        for task in self.tasks {
            if let Ok(tracker) = task.await {
                trackers.push(tracker);
            }
        }
        trackers
    }
}
