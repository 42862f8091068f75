//! A real HAProxy (Debian's `haproxy`, which `scripts/test` installs) in front of gateway nodes:
//! HTTP mode, plain round-robin per request, no affinity, `/readyz` as the health check (so a
//! node that is gone or not ready leaves the rotation), a configuration written by the test.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct HaProxy {
    pub base: String,
    _dir: tempfile::TempDir,
    child: Child,
}

impl HaProxy {
    /// Balances over `servers` (`http://127.0.0.1:PORT` each).
    pub fn start(servers: &[&str]) -> HaProxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let backends: String = servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("    server node{i} {} check inter 300ms fall 2 rise 1\n", s.trim_start_matches("http://")))
            .collect();
        let config = format!(
            "global\n    maxconn 1000\n\ndefaults\n    mode http\n    option http-server-close\n    timeout connect 2s\n    \
             timeout client 60s\n    timeout server 60s\n\nfrontend gateways\n    bind 127.0.0.1:{port}\n    \
             default_backend nodes\n\nbackend nodes\n    balance roundrobin\n    option httpchk GET /readyz\n{backends}"
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        HaProxy { base: format!("http://127.0.0.1:{port}"), _dir: dir, child }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
