//! Several real gateway processes on one PostgreSQL schema and a Redis of the test's own (README
//! "Several nodes"), as every cluster suite starts them: each node `serve`s the same users file
//! and store with a data directory of its own, a heartbeat TTL of [`TTL`] seconds and the suite's
//! further `GATEWAY_*` settings, and [`Cluster::start`] returns once every node says it is ready.
//! Also what the suites do with a cluster: a round-robin HAProxy over its nodes, a connection to
//! its Redis, a restart or a SIGKILL of one node, and a client's session on a node.
#![allow(dead_code)]

use crate::common::*;
use crate::{haproxy, pg, process, redis};
use std::time::{Duration, Instant};

/// The heartbeat TTL of the test's nodes (seconds): short, so a lost node is noticed quickly.
pub const TTL: u64 = 2;
/// How long a change may take to reach another node.
pub const CROSS_NODE: Duration = Duration::from_secs(1);

pub struct Cluster {
    /// The running nodes; one removed from here is killed (SIGKILL).
    pub nodes: Vec<process::Running>,
    pub redis: redis::RedisServer,
    pub schema: pg::PgSchema,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// `count` nodes with these `GATEWAY_*` variables besides the heartbeat TTL, each ready.
    pub async fn start(count: usize, env: &[(&str, &str)]) -> Cluster {
        let schema = pg::PgSchema::create().await;
        let redis = redis::RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.toml"), USERS).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut cluster = Cluster { nodes: Vec::new(), redis, schema, dir, env };
        for index in 0..count {
            let node = cluster.spawn_at(index, "127.0.0.1:0");
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            assert!(process::ready_within(&node.base, Duration::from_secs(10), true).await, "{}", node.log.text());
        }
        cluster
    }

    /// Starts node `index` listening on `listen` (without waiting until it is ready).
    fn spawn_at(&self, index: usize, listen: &str) -> process::Running {
        let data = self.dir.path().join(format!("node{index}"));
        let mut command = process::gateway(&["serve", "--listen", listen, "--store", &self.schema.url()]);
        command.arg("--redis").arg(self.redis.url()).arg("--users").arg(self.dir.path().join("users.toml"));
        command.arg("--data-dir").arg(data).env("GATEWAY_HEARTBEAT_TTL_SECONDS", TTL.to_string());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        process::start(command)
    }

    /// Stops node `index` gracefully (SIGTERM) and starts a new one on the same address.
    pub async fn restart(&mut self, index: usize) {
        let address = self.nodes[index].base.trim_start_matches("http://").to_string();
        self.nodes[index].terminate();
        let status = self.nodes[index].exit_status(Duration::from_secs(15)).await;
        assert!(status.success(), "{status}");
        self.nodes[index] = self.spawn_at(index, &address);
        assert!(process::ready_within(self.base(index), Duration::from_secs(10), true).await, "{}", self.nodes[index].log.text());
    }

    /// SIGKILL (nothing of the node's shutdown runs); the other nodes keep their indexes.
    pub fn kill(&mut self, node: usize) {
        let mut child = self.nodes[node].child.take().expect("a running node");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn base(&self, node: usize) -> &str {
        &self.nodes[node].base
    }

    /// A round-robin HAProxy over the nodes.
    pub fn proxy(&self) -> haproxy::HaProxy {
        haproxy::HaProxy::start(&self.nodes.iter().map(|n| n.base.as_str()).collect::<Vec<_>>())
    }

    /// A connection to the cluster's Redis, to look at what the nodes keep there.
    pub async fn redis_connection(&self) -> ::redis::aio::MultiplexedConnection {
        let client = ::redis::Client::open(self.redis.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

/// A signed-in client with a session on `base`.
pub async fn session(base: &str, user: &str) -> Client {
    let mut client = Client::sign_in(base, user, "pw").await.unwrap_or_else(|r| panic!("{}", r.body));
    client.initiate().await;
    client
}

pub async fn sign_out(client: &mut Client) {
    let rid = client.next_rid();
    assert!(client.command(&format!(r#"<terminateSession rid="{rid}"/>"#)).await.body.contains("requestAccepted"));
}

/// Waits (at most `limit`) until `watcher` receives a snapshot of `uri` that satisfies `pred`.
pub async fn sees_within(watcher: &mut Client, limit: Duration, uri: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
    let started = Instant::now();
    let found = tokio::time::timeout(limit, watcher.wait_for_user(uri, |u| pred(&seen(u)))).await;
    let user = found.unwrap_or_else(|_| panic!("nothing seen of {uri} within {limit:?} (after {:?})", started.elapsed()));
    seen(&user)
}
