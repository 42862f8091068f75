//! Shared counters of a run, the once-a-second progress line, latency percentiles, and the clock
//! that stamps are measured with (microseconds since the load generator started).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Microseconds since the load generator started (the clock of every stamp).
pub fn now_us() -> u64 {
    BASE.elapsed().as_micros() as u64
}

/// Counters every task adds to; read by the progress line and the report.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicI64,
    pub sessions: AtomicU64,
    pub responses: AtomicU64,
    /// Responses that carried at least one event.
    pub nonempty_responses: AtomicU64,
    pub events: AtomicU64,
    /// First sightings of stamped changes (one per watcher per change).
    pub deliveries: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    /// Stamps sent before this (microseconds, [`now_us`]) are left out of the windowed latencies.
    pub measure_from_us: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Prints connections, rates and errors to stderr once a second until dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(counters: Arc<Counters>, quiet: bool) -> Progress {
        let task = tokio::spawn(async move {
            if quiet {
                return;
            }
            let started = Instant::now();
            let mut last = (0u64, 0u64, 0u64);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now =
                    (Counters::get(&counters.deliveries), Counters::get(&counters.responses), Counters::get(&counters.requests));
                eprintln!(
                    "[{:6.1}s] conns {:6} sessions {:6} | deliveries/s {:7} responses/s {:6} requests/s {:6} | errors {}",
                    started.elapsed().as_secs_f64(),
                    counters.connections.load(Ordering::Relaxed),
                    Counters::get(&counters.sessions),
                    now.0 - last.0,
                    now.1 - last.1,
                    now.2 - last.2,
                    Counters::get(&counters.errors),
                );
                last = now;
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Latency samples (microseconds) and their percentiles.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    sorted: Vec<u32>,
}

impl Latencies {
    pub fn new(mut samples: Vec<u32>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `q` quantile (0–1) in milliseconds; 0 when there are no samples.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.sorted.len() as f64).ceil() as usize).clamp(1, self.sorted.len());
        f64::from(self.sorted[rank - 1]) / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.sorted.last().map_or(0.0, |v| f64::from(*v) / 1000.0)
    }

    /// Points of the cumulative distribution: (latency ms, fraction ≤ it), at most `n` of them.
    pub fn cdf(&self, n: usize) -> Vec<(f64, f64)> {
        let len = self.sorted.len();
        if len == 0 {
            return Vec::new();
        }
        let step = len.div_ceil(n.max(1)).max(1);
        let mut points: Vec<(f64, f64)> =
            (0..len).step_by(step).map(|i| (f64::from(self.sorted[i]) / 1000.0, (i + 1) as f64 / len as f64)).collect();
        points.push((self.max_ms(), 1.0));
        points
    }

    /// The usual figures under a prefix: `{prefix}_p50_ms`, `_p99_ms`, `_max_ms`, `_samples`.
    pub fn figures(&self, prefix: &str) -> Vec<(String, serde_json::Value)> {
        vec![
            (format!("{prefix}_p50_ms"), round3(self.quantile_ms(0.5)).into()),
            (format!("{prefix}_p90_ms"), round3(self.quantile_ms(0.9)).into()),
            (format!("{prefix}_p99_ms"), round3(self.quantile_ms(0.99)).into()),
            (format!("{prefix}_max_ms"), round3(self.max_ms()).into()),
            (format!("{prefix}_samples"), (self.len() as u64).into()),
        ]
    }
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Counts the sessions that have seen a publisher's change number `target` (or a later one).
#[derive(Debug)]
pub struct Waiter {
    pub publisher: u32,
    target: AtomicU64,
    reached: AtomicU64,
}

impl Waiter {
    pub fn new(publisher: u32) -> Arc<Waiter> {
        Arc::new(Waiter { publisher, target: AtomicU64::new(u64::MAX), reached: AtomicU64::new(0) })
    }

    /// Starts waiting for change `seq`.
    pub fn arm(&self, seq: u64) {
        self.reached.store(0, Ordering::SeqCst);
        self.target.store(seq, Ordering::SeqCst);
    }

    /// A session saw `publisher` move from change `before` to `after`.
    pub fn observe(&self, before: u64, after: u64) {
        let target = self.target.load(Ordering::SeqCst);
        if before < target && after >= target {
            self.reached.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn reached(&self) -> u64 {
        self.reached.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let l = Latencies::new((1..=100).map(|v| v * 1000).collect());
        assert_eq!((l.quantile_ms(0.5), l.quantile_ms(0.99), l.max_ms()), (50.0, 99.0, 100.0));
        assert_eq!(Latencies::default().quantile_ms(0.5), 0.0);
        assert_eq!(l.cdf(10).last(), Some(&(100.0, 1.0)));
    }
}
