//! Metrics: every metric name, the small recording functions the service calls, and the
//! Prometheus rendering behind `GET /metrics`. Recording goes through the `metrics` facade into a
//! `metrics-exporter-prometheus` recorder, installed on first use. Gauges that describe the whole
//! hub are kept up to date where they change (sessions by the hub's map, queue depth by every
//! queue change), so a scrape costs the same whatever the number of sessions; the process's own
//! figures come from [`process`].

mod process;

use crate::error::GatewayError;
use crate::hub::session::{Batch, Pushed};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

pub const SESSIONS: &str = "presence_sessions";
pub const HELD_POLLS: &str = "presence_held_polls";
pub const QUEUE_DEPTH: &str = "presence_queue_depth";
pub const QUEUE_DEPTH_MAX: &str = "presence_queue_depth_max";
pub const EVENTS_QUEUED: &str = "presence_events_queued_total";
pub const EVENTS_COALESCED: &str = "presence_events_coalesced_total";
pub const RESYNCS: &str = "presence_resyncs_total";
pub const EVENTS_DELIVERED: &str = "presence_events_delivered_total";
pub const FANOUT_SECONDS: &str = "presence_fanout_duration_seconds";
pub const COMMAND_SECONDS: &str = "presence_command_duration_seconds";
pub const LOGON_FAILURES: &str = "presence_logon_failures_total";
pub const HTTP_RESPONSES: &str = "presence_http_responses_total";
pub const HTTP_SECONDS: &str = "presence_http_request_duration_seconds";
pub const BUILD_INFO: &str = "presence_build_info";
pub const CONNECTIONS_OPEN: &str = "presence_http_connections_open";
pub const CONNECTIONS_REFUSED: &str = "presence_http_connections_refused_total";
pub const CONNECTIONS_TIMED_OUT: &str = "presence_http_connections_timed_out_total";
pub const REQUESTS_REFUSED: &str = "presence_http_requests_refused_total";
pub const BACKPLANE_MESSAGES: &str = "presence_backplane_messages_total";
pub const BACKPLANE_FOLLOWED: &str = "presence_backplane_followed_presentities";

/// Upper bounds of the latency histograms (seconds).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first, in which case `/metrics` says so.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS);
            match builder.map_err(|e| e.to_string()).and_then(|b| b.install_recorder().map_err(|e| e.to_string())) {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    });
                    if let Err(e) = spawned {
                        tracing::warn!(%e, "metrics upkeep thread not started; samples are folded when scraped");
                    }
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(%e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_gauge!(HELD_POLLS, "Data-channel polls in progress (held or being answered)");
    describe_gauge!(QUEUE_DEPTH, "Unacknowledged events queued over all sessions");
    describe_gauge!(QUEUE_DEPTH_MAX, "The longest session queue seen since the previous scrape");
    describe_gauge!(BUILD_INFO, "Always 1; the labels say which build runs");
    describe_counter!(EVENTS_QUEUED, "Events appended to session queues");
    describe_counter!(EVENTS_COALESCED, "Presence snapshots that replaced an unsent older one");
    describe_counter!(RESYNCS, "Session queues that overflowed and were told to resynchronise");
    describe_counter!(EVENTS_DELIVERED, "Events sent in data-channel responses (re-sends included)");
    describe_histogram!(FANOUT_SECONDS, Unit::Seconds, "Time to render one presence change and queue it for every watcher");
    describe_histogram!(COMMAND_SECONDS, Unit::Seconds, "Time to execute one CWA command, by method");
    describe_counter!(LOGON_FAILURES, "Refused sign-ins, by reason (credentials, throttled, internal)");
    describe_counter!(HTTP_RESPONSES, "HTTP responses, by route and status");
    describe_histogram!(HTTP_SECONDS, Unit::Seconds, "HTTP request duration, by route (held polls included)");
    describe_gauge!(CONNECTIONS_OPEN, "HTTP connections open (TLS handshakes included)");
    describe_counter!(CONNECTIONS_REFUSED, "Connections refused because the connection cap was reached");
    describe_counter!(
        CONNECTIONS_TIMED_OUT,
        "Connections closed by a timeout, by phase (idle, head, body, write, tls_handshake)"
    );
    describe_counter!(REQUESTS_REFUSED, "Requests refused by the connection driver, by reason (malformed, bare_lf, …)");
    describe_counter!(BACKPLANE_MESSAGES, "Presence changes received from the backplane (of presentities this node follows)");
    describe_gauge!(BACKPLANE_FOLLOWED, "Presentities whose changes this node receives from the backplane");
}

/// Handles of the unlabelled hot-path metrics, registered once (after the recorder is installed).
struct Hot {
    queued: Counter,
    coalesced: Counter,
    resyncs: Counter,
    delivered: Counter,
    held_polls: Gauge,
    fanout: Histogram,
    connections_open: Gauge,
}

static HOT: LazyLock<Hot> = LazyLock::new(|| {
    install();
    Hot {
        queued: counter!(EVENTS_QUEUED),
        coalesced: counter!(EVENTS_COALESCED),
        resyncs: counter!(RESYNCS),
        delivered: counter!(EVENTS_DELIVERED),
        held_polls: gauge!(HELD_POLLS),
        fanout: histogram!(FANOUT_SECONDS),
        connections_open: gauge!(CONNECTIONS_OPEN),
    }
});

/// Counts what a push into a session queue did, and passes the outcome on.
pub fn record_push(outcome: Pushed) -> Pushed {
    match outcome {
        Pushed::Queued => HOT.queued.increment(1),
        Pushed::Coalesced | Pushed::Covered => HOT.coalesced.increment(1),
        Pushed::Resync => HOT.resyncs.increment(1),
        Pushed::Ended => {}
    }
    outcome
}

/// Counts the events a poll is answered with, and passes the batch on.
pub fn delivered(batch: Batch) -> Batch {
    HOT.delivered.increment(batch.events.len() as u64);
    batch
}

/// A data-channel poll in progress, counted until dropped (answered or abandoned by the client).
#[must_use = "the poll is counted while this guard lives"]
pub struct HeldPoll(());

impl HeldPoll {
    pub fn start() -> HeldPoll {
        HOT.held_polls.increment(1.0);
        HeldPoll(())
    }
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        HOT.held_polls.decrement(1.0);
    }
}

/// An open HTTP connection, counted until dropped.
#[must_use = "the connection is counted while this guard lives"]
pub struct OpenConnection(());

impl OpenConnection {
    pub fn start() -> OpenConnection {
        HOT.connections_open.increment(1.0);
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        HOT.connections_open.decrement(1.0);
    }
}

/// Counts a connection refused over the connection cap.
pub fn connection_refused() {
    LazyLock::force(&HOT);
    counter!(CONNECTIONS_REFUSED).increment(1);
}

/// Counts a connection closed by a timeout in `phase` (idle, head, body, write, tls_handshake).
pub fn connection_timed_out(phase: &'static str) {
    LazyLock::force(&HOT);
    counter!(CONNECTIONS_TIMED_OUT, "phase" => phase).increment(1);
}

/// Counts a request the connection driver refused (`reason`: malformed, bare_lf, chunked, …).
pub fn request_refused(reason: &'static str) {
    LazyLock::force(&HOT);
    counter!(REQUESTS_REFUSED, "reason" => reason).increment(1);
}

/// Counts a change received from the backplane, and passes it on.
pub fn backplane_message(payload: &[u8]) -> &[u8] {
    LazyLock::force(&HOT);
    counter!(BACKPLANE_MESSAGES).increment(1);
    payload
}

/// How many presentities the node follows now.
pub fn backplane_followed(count: usize) {
    LazyLock::force(&HOT);
    gauge!(BACKPLANE_FOLLOWED).set(count as f64);
}

/// Times one fan-out until dropped.
#[must_use = "the fan-out is timed until this guard is dropped"]
pub struct FanOutTimer(Instant);

impl FanOutTimer {
    pub fn start() -> FanOutTimer {
        FanOutTimer(Instant::now())
    }
}

impl Drop for FanOutTimer {
    fn drop(&mut self) {
        HOT.fanout.record(self.0.elapsed().as_secs_f64());
    }
}

/// Times one command of a batch until dropped, labelled with its CWA method.
#[must_use = "the command is timed until this guard is dropped"]
pub struct CommandTimer {
    method: &'static str,
    started: Instant,
}

impl CommandTimer {
    pub fn start(parsed: &crate::cwa::requests::Parsed) -> CommandTimer {
        LazyLock::force(&HOT);
        CommandTimer { method: method_label(parsed), started: Instant::now() }
    }
}

impl Drop for CommandTimer {
    fn drop(&mut self) {
        histogram!(COMMAND_SECONDS, "method" => self.method).record(self.started.elapsed().as_secs_f64());
    }
}

/// The CWA method name of a parsed command (a small, fixed set of label values).
fn method_label(parsed: &crate::cwa::requests::Parsed) -> &'static str {
    use crate::cwa::requests::{Parsed, Request};
    match parsed {
        Parsed::Ok { request, .. } => match request {
            Request::InitiateSession(_) => "initiateSession",
            Request::TerminateSession => "terminateSession",
            Request::QueryPresence(_) => "queryPresence",
            Request::SubscribePresence(_) => "subscribePresence",
            Request::UnsubscribePresence(_) => "unSubscribePresence",
            Request::PublishSelfPresence(_) => "publishSelfPresence",
            Request::AddGroup { .. } => "addGroup",
            Request::UpdateGroup { .. } => "updateGroup",
            Request::DeleteGroup { .. } => "deleteGroup",
            Request::AddContact(_) => "addContact",
            Request::UpdateContact(_) => "updateContact",
            Request::DeleteContact(_) => "deleteContact",
            Request::UpdateContainer { .. } => "updateContainer",
            Request::AcknowledgeSubscriber(_) => "acknowledgeSubscriber",
            Request::Search(_) => "search",
            Request::PublishRawCategories(_) => "publishRawCategories",
            Request::Unsupported(_) => "unsupported",
        },
        Parsed::Invalid { .. } => "invalid",
        Parsed::Failed { .. } => "rejected",
    }
}

/// Counts a refused sign-in by reason, and passes the result on.
pub fn logon_outcome<T>(result: Result<T, GatewayError>) -> Result<T, GatewayError> {
    if let Err(error) = &result {
        let reason = match error {
            GatewayError::LimitExceeded(_) => "throttled",
            GatewayError::Internal | GatewayError::StoreUnavailable | GatewayError::LiveStateUnavailable => "internal",
            _ => "credentials",
        };
        LazyLock::force(&HOT);
        counter!(LOGON_FAILURES, "reason" => reason).increment(1);
    }
    result
}

/// Counts one HTTP response and its duration, labelled with the matched route (or `unmatched`).
/// Each thread looks the handles of a route and status up once; routes and statuses are few, so
/// they are found by comparing, without hashing the route on every response.
pub fn http_response(route: Option<&str>, status: u16, took: Duration) {
    /// Per route: its duration histogram and a response counter per status.
    type Handles = Vec<(Box<str>, metrics::Histogram, Vec<(u16, metrics::Counter)>)>;
    thread_local! {
        static HANDLES: std::cell::RefCell<Handles> = std::cell::RefCell::default();
    }
    LazyLock::force(&HOT);
    let route = route.unwrap_or("unmatched");
    HANDLES.with_borrow_mut(|handles| {
        let at = match handles.iter().position(|(known, ..)| &**known == route) {
            Some(at) => at,
            None => {
                handles.push((route.into(), histogram!(HTTP_SECONDS, "route" => route.to_string()), Vec::new()));
                handles.len() - 1
            }
        };
        let (_, seconds, by_status) = &mut handles[at];
        seconds.record(took.as_secs_f64());
        match by_status.iter().find(|(s, _)| *s == status) {
            Some((_, responses)) => responses.increment(1),
            None => {
                let responses = counter!(HTTP_RESPONSES, "route" => route.to_string(), "status" => status.to_string());
                responses.increment(1);
                by_status.push((status, responses));
            }
        }
    });
}

/// The Prometheus text exposition, given the hub's live session count. `None` without a
/// recorder. Reads counters kept up to date, never the sessions themselves. The session count is
/// the calling gateway's own, written beside the recorder's text rather than into the recorder:
/// the recorder is the process's, and gateways sharing a process (tests) must not read each
/// other's count between setting it and rendering.
pub fn render(sessions: usize) -> Option<String> {
    let handle = install()?;
    let (queued, longest) = crate::hub::session::queue_totals();
    gauge!(QUEUE_DEPTH).set(queued.max(0) as f64);
    gauge!(QUEUE_DEPTH_MAX).set(longest as f64);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "profile" => if cfg!(debug_assertions) { "debug" } else { "release" })
        .set(1.0);
    LazyLock::force(&HOT);
    handle.run_upkeep();
    let own = format!("# HELP {SESSIONS} Live sessions\n# TYPE {SESSIONS} gauge\n{SESSIONS} {sessions}\n");
    Some(handle.render() + &own + &process::render(&process::read()))
}
