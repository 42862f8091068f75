//! One connection's life: read a request head and body (within the header and body timeouts),
//! hand the request to the router, write its answer, and again while the client keeps the
//! connection alive (within the idle timeout). Requests are handled one at a time, so pipelined
//! requests are answered in order. Read buffers exist only while a request is being read: once it
//! is handed on the buffer is dropped (only bytes of a pipelined next request are kept), so a
//! connection whose request is held (a long poll) holds no buffer at all.

use super::chunked::ChunkedDecoder;
use super::head::{self, Framing, Head, HeadError};
use super::response::{self, Prepared, Written};
use super::transport::{self, Transport};
use super::Settings;
use crate::http::channels::Channels;
use crate::request::ticket::Remembered;
use crate::telemetry;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use futures_util::future::Either;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

/// How much room each read gets.
const READ_CHUNK: usize = 4096;

/// How long the driver's own refusals (400, 408, 431) may take to write.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything a connection needs besides its transport.
#[derive(Clone)]
pub struct Context {
    pub app: Router,
    pub settings: Arc<Settings>,
    /// Becomes `true` when the server shuts down: idle connections close, busy ones after their
    /// current answer.
    pub shutdown: watch::Receiver<bool>,
    /// Answers command batches and data-channel polls without the router, when set.
    pub channels: Option<Arc<Channels>>,
}

/// Why reading a request stopped.
enum Stop {
    /// The client closed the connection (or the server is shutting down) between requests.
    Quiet,
    /// The connection failed or the client went away mid-request; nothing can be answered.
    Broken,
    /// The request is refused with this status and reason, and the connection closed.
    Refused { status: StatusCode, reason: &'static str, label: &'static str },
    /// A timeout; `answer` when some of a request had arrived (it gets a 408).
    TimedOut { phase: &'static str, answer: bool },
}

impl From<HeadError> for Stop {
    fn from(error: HeadError) -> Stop {
        let status =
            if error == HeadError::TooLarge { StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE } else { StatusCode::BAD_REQUEST };
        Stop::Refused { status, reason: error.reason(), label: error.label() }
    }
}

/// A request read completely, and what follows it.
struct Incoming {
    head: Head,
    /// The whole body (empty when the request has none, or when it is left unread).
    body: Bytes,
    /// The body was over the limit and left unread: answer, then close.
    unread_body: bool,
    /// Bytes already read of the next request (pipelining).
    next: Vec<u8>,
}

/// How the answer to a request is written.
struct Answering {
    head_request: bool,
    version: axum::http::Version,
    keep_alive: bool,
    /// The body was over the limit and left unread: answer, then close.
    unread_body: bool,
}

/// An answer: from the router, or made by the channels' own path.
enum Reply {
    Routed(axum::response::Response),
    Prepared(Prepared),
}

/// Serves one connection until it closes.
pub async fn serve<T: Transport>(mut io: T, peer: SocketAddr, mut context: Context) {
    let mut next: Vec<u8> = Vec::new();
    let mut first_byte_deadline = Instant::now() + context.settings.header_timeout;
    let mut json_errors = false;
    let mut remembered = Remembered::default();
    loop {
        // Reading and writing run boxed, and what reading produced goes out of scope before the
        // handler's future is awaited: a connection whose request is held (a long poll) keeps a
        // task little larger than that future.
        let (answer, how) = {
            let read = read_request(&mut io, std::mem::take(&mut next), first_byte_deadline, &mut context, &mut json_errors);
            let incoming = match Box::pin(read).await {
                Ok(incoming) => incoming,
                Err(stop) => return Box::pin(refuse(&mut io, stop, json_errors)).await,
            };
            let Incoming { head, body, unread_body, next: rest } = incoming;
            next = only_the_bytes(rest);
            let how = Answering {
                head_request: head.method == Method::HEAD,
                version: head.version,
                keep_alive: head.keep_alive,
                unread_body,
            };
            let watch_hang_up = next.is_empty();
            let own_path = context.channels.as_ref().filter(|_| !unread_body);
            let taken = own_path.and_then(|channels| channels.takes(&head, &body).map(|channel| (channels, channel)));
            let answer = match taken {
                Some((channels, channel)) => {
                    // Boxed where it is made: moved around as a pointer, not as a future.
                    let answer = channels.clone().answer(channel, head, body, peer, &mut remembered);
                    Either::Left(until_hang_up(&io, async move { Reply::Prepared(answer.await) }, watch_hang_up))
                }
                None => match request(head, routed_body(body, unread_body), peer) {
                    Ok(request) => Either::Right(call(&io, &context.app, request, watch_hang_up)),
                    Err(error) => return Box::pin(refuse(&mut io, error.into(), json_errors)).await,
                },
            };
            (answer, how)
        };
        let Some(reply) = answer.await else { return };
        let close = !how.keep_alive
            || how.unread_body
            || *context.shutdown.borrow()
            || matches!(&reply, Reply::Routed(response) if closes(response));
        let deadline = Instant::now() + context.settings.body_timeout;
        let written = match reply {
            Reply::Routed(response) => {
                let write = response::write(&mut io, response, how.head_request, how.version, close);
                Box::pin(timeout_at(deadline, write)).await
            }
            Reply::Prepared(answer) => {
                // Usually the socket takes a whole answer at once: then no write is awaited.
                let answer = answer.finish(how.version, close);
                match transport::write_ready(&io, &answer.slices(0)) {
                    Ok(n) if n == answer.len() => Ok(Ok(Written::Complete)),
                    Ok(n) => Box::pin(timeout_at(deadline, response::write_rest(&mut io, answer, n))).await,
                    Err(error) => Ok(Err(error)),
                }
            }
        };
        match written {
            Ok(Ok(Written::Complete)) if !close => {}
            Ok(Ok(_)) => return Box::pin(finish(&mut io)).await,
            Ok(Err(_)) => return,
            Err(_) => return telemetry::connection_timed_out("write"),
        }
        first_byte_deadline = Instant::now() + context.settings.keep_alive_timeout;
    }
}

/// Bytes of a pipelined next request, without the spare room of the buffer they were read into
/// (no allocation at all when there are none), so nothing more is held while a request waits.
fn only_the_bytes(mut next: Vec<u8>) -> Vec<u8> {
    if next.is_empty() {
        return Vec::new();
    }
    next.shrink_to_fit();
    next
}

/// The body the router's handler reads: a body over the limit fails as axum's limits fail.
fn routed_body(body: Bytes, unread: bool) -> Body {
    if unread {
        return too_large();
    }
    Body::from(body)
}

fn closes(response: &axum::response::Response) -> bool {
    let connection = response.headers().get(axum::http::header::CONNECTION);
    connection.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// The request the router sees.
fn request(head: Head, body: Body, peer: SocketAddr) -> Result<Request<Body>, HeadError> {
    let mut request = Request::new(body);
    *request.uri_mut() = head.uri()?;
    *request.headers_mut() = head.header_map()?;
    *request.method_mut() = head.method;
    *request.version_mut() = head.version;
    request.extensions_mut().insert(ConnectInfo(peer));
    Ok(request)
}

/// Hands the request to the router. `None` when the client hung up meanwhile (the handler's
/// future is dropped, as when a held poll's client goes away). The router's future is made before
/// the returned one, which holds nothing else but the hang-up watch: a held poll's task stays small.
fn call<'a, T: Transport>(
    io: &'a T,
    app: &Router,
    request: Request<Body>,
    watch_hang_up: bool,
) -> impl std::future::Future<Output = Option<Reply>> + 'a {
    // A `Router` is always ready: no `poll_ready` needed before `call`.
    let answer = tower::Service::call(&mut app.clone(), request);
    until_hang_up(io, async move { Reply::Routed(answer.await.unwrap_or_else(|never| match never {})) }, watch_hang_up)
}

/// `answer`, or `None` (and `answer` dropped) when the client hangs up first; with
/// `watch_hang_up` false (bytes of a next request are already here) the answer is awaited alone.
async fn until_hang_up<T: Transport, F: std::future::Future<Output = Reply>>(
    io: &T,
    answer: F,
    watch_hang_up: bool,
) -> Option<Reply> {
    if !watch_hang_up {
        return Some(answer.await);
    }
    tokio::select! {
        answered = answer => Some(answered),
        () = transport::hung_up(io) => None,
    }
}

/// Reads the next request: waits for its first byte until `first_byte_deadline` (or shutdown),
/// then for the rest of its head within the header timeout, then its body within the body timeout.
async fn read_request<T: Transport>(
    io: &mut T,
    mut buf: Vec<u8>,
    first_byte_deadline: Instant,
    context: &mut Context,
    json_errors: &mut bool,
) -> Result<Incoming, Stop> {
    if buf.is_empty() {
        await_first_byte(io, first_byte_deadline, context).await?;
    }
    let settings = context.settings.clone();
    let read = read_head(io, &mut buf, first_byte_deadline, &settings).await;
    *json_errors = targets_json_api(&buf);
    // The head keeps the bytes it was read into; what follows it (a body, a next request) moves.
    let rest = buf.split_off(read?);
    let head = head::parse(buf)?;
    tracing::debug!(method = %head.method, target = head.target(), "request head read");
    let deadline = Instant::now() + settings.body_timeout;
    read_body(io, head, rest, deadline, &settings).await
}

/// Whether the request line in `buf` names a path of the JSON API (whose errors are JSON).
fn targets_json_api(buf: &[u8]) -> bool {
    let target = buf.splitn(3, |b| *b == b' ').nth(1).unwrap_or(b"");
    target.starts_with(b"/api/")
}

/// Waits without a buffer until the client sends something, the deadline passes or the server
/// shuts down.
async fn await_first_byte<T: Transport>(io: &T, deadline: Instant, context: &mut Context) -> Result<(), Stop> {
    let shutdown = context.shutdown.wait_for(|stopping| *stopping);
    tokio::select! {
        biased;
        _ = shutdown => Err(Stop::Quiet),
        ready = timeout_at(deadline, transport::readable(io)) => match ready {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Broken),
            Err(_) => Err(Stop::TimedOut { phase: "idle", answer: false }),
        },
    }
}

/// Reads until `buf` holds a complete head; returns its length.
async fn read_head<T: Transport>(
    io: &mut T,
    buf: &mut Vec<u8>,
    first_byte_deadline: Instant,
    settings: &Settings,
) -> Result<usize, Stop> {
    let mut scanned = 0;
    let mut deadline = if buf.is_empty() { first_byte_deadline } else { Instant::now() + settings.header_timeout };
    loop {
        if let Some(end) = head::find_end(buf, &mut scanned)? {
            if end > settings.max_head_bytes {
                return Err(HeadError::TooLarge.into());
            }
            return Ok(end);
        }
        if buf.len() > settings.max_head_bytes {
            return Err(HeadError::TooLarge.into());
        }
        let had_bytes = !buf.is_empty();
        if !had_bytes {
            // A request's first bytes have usually arrived by now: taken without a read buffer.
            match transport::read_ready(io, buf) {
                Ok(0) => return Err(Stop::Quiet),
                Ok(_) => {
                    deadline = Instant::now() + settings.header_timeout;
                    continue;
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Stop::Broken),
            }
        }
        buf.reserve(READ_CHUNK);
        let phase = if had_bytes { "head" } else { "idle" };
        match timeout_at(deadline, io.read_buf(buf)).await {
            Err(_) => return Err(Stop::TimedOut { phase, answer: had_bytes }),
            Ok(Err(_)) => return Err(Stop::Broken),
            Ok(Ok(0)) => return Err(if had_bytes { Stop::Broken } else { Stop::Quiet }),
            Ok(Ok(_)) if !had_bytes => deadline = Instant::now() + settings.header_timeout,
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads the body `head` announces; `buf` holds what already arrived after the head.
async fn read_body<T: Transport>(
    io: &mut T,
    head: Head,
    mut buf: Vec<u8>,
    deadline: Instant,
    settings: &Settings,
) -> Result<Incoming, Stop> {
    let limit = settings.max_body_bytes;
    match head.framing {
        Framing::Length(0) => Ok(Incoming { head, body: Bytes::new(), unread_body: false, next: buf }),
        Framing::Length(n) if n > limit as u64 => Ok(Incoming { head, body: Bytes::new(), unread_body: true, next: Vec::new() }),
        Framing::Length(n) => {
            let n = n as usize;
            if buf.len() >= n {
                let next = buf.split_off(n);
                return Ok(Incoming { head, body: Bytes::from(buf), unread_body: false, next });
            }
            if head.expect_continue && buf.is_empty() {
                continue_(io).await?;
            }
            buf.reserve_exact(n - buf.len());
            while buf.len() < n {
                let missing = n - buf.len();
                let mut room = bytes::BufMut::limit(&mut buf, missing);
                read_some(io, &mut room, deadline).await?;
            }
            Ok(Incoming { head, body: Bytes::from(buf), unread_body: false, next: Vec::new() })
        }
        Framing::Chunked => {
            if head.expect_continue && buf.is_empty() {
                continue_(io).await?;
            }
            read_chunked(io, head, buf, deadline, limit).await
        }
    }
}

async fn read_chunked<T: Transport>(
    io: &mut T,
    head: Head,
    mut buf: Vec<u8>,
    deadline: Instant,
    limit: usize,
) -> Result<Incoming, Stop> {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    loop {
        let used = decoder.decode(&buf, &mut body).map_err(|e| Stop::Refused {
            status: StatusCode::BAD_REQUEST,
            reason: e.reason(),
            label: "chunked",
        })?;
        if body.len() > limit {
            return Ok(Incoming { head, body: Bytes::new(), unread_body: true, next: Vec::new() });
        }
        if decoder.is_done() {
            let next = buf.split_off(used);
            return Ok(Incoming { head, body: Bytes::from(body), unread_body: false, next });
        }
        buf.clear();
        buf.reserve(READ_CHUNK);
        read_some(io, &mut buf, deadline).await?;
    }
}

/// One read of body bytes into `room`; the end of the stream or the deadline stop the request.
async fn read_some<T: Transport, B: bytes::BufMut>(io: &mut T, room: &mut B, deadline: Instant) -> Result<(), Stop> {
    match timeout_at(deadline, io.read_buf(room)).await {
        Err(_) => Err(Stop::TimedOut { phase: "body", answer: true }),
        Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Broken),
        Ok(Ok(_)) => Ok(()),
    }
}

/// The interim `100 Continue` a client sending `Expect: 100-continue` waits for.
async fn continue_<T: Transport>(io: &mut T) -> Result<(), Stop> {
    let sent = timeout_at(Instant::now() + ANSWER_TIMEOUT, async {
        io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        io.flush().await
    });
    match sent.await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Stop::Broken),
    }
}

/// A body that is over the limit: reading it fails at once with the error axum's body limits
/// report, so each handler answers "too large" in its own dialect.
fn too_large() -> Body {
    Body::new(http_body_util::Limited::new(http_body_util::Full::new(Bytes::from_static(b"!")), 0))
}

/// Ends a connection whose request could not be served: answers refusals and timeouts, counts.
async fn refuse<T: Transport>(io: &mut T, stop: Stop, json: bool) {
    let (status, reason) = match stop {
        Stop::Quiet | Stop::Broken => return,
        Stop::Refused { status, reason, label } => {
            telemetry::request_refused(label);
            (status, reason)
        }
        Stop::TimedOut { phase, answer } => {
            telemetry::connection_timed_out(phase);
            if !answer {
                return finish(io).await;
            }
            (StatusCode::REQUEST_TIMEOUT, "the request did not arrive in time")
        }
    };
    let answer = response::driver_answer(status, reason, json);
    let _ = timeout_at(Instant::now() + ANSWER_TIMEOUT, async {
        io.write_all(&answer).await?;
        io.flush().await
    })
    .await;
    finish(io).await;
}

/// How much a closing connection still reads and discards, so that bytes the client sent after
/// what was answered do not make the kernel reset the connection before the answer is read.
const LINGER_BYTES: usize = 256 * 1024;

/// Closes the connection cleanly: our FIN after the last answer, then whatever the client still
/// sends is read and discarded (for a short while) until it closes its side too.
async fn finish<T: Transport>(io: &mut T) {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    if !matches!(timeout_at(deadline, io.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    let mut sink = vec![0u8; 2048];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match timeout_at(deadline, io.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}
