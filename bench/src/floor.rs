//! The floor: what the least a long-poll exchange can cost on this runtime and machine, measured
//! the way the gateway's S2 figure is (BENCHMARKS.md, "The floor under a delivery").
//!
//! `floor-server` is an HTTP/1.1 long-poll server with nothing but what every such server does:
//! a tokio multi-threaded runtime as the gateway's, one task per keep-alive connection, a request
//! head read within an idle timeout and parsed (`httparse`), a held `GET /wait?after=N` that waits
//! for the change count to pass `N` (a `tokio::sync::Notify`) while watching for the client
//! hanging up, until a hold time at most, and a small answer written in one call. No sign-in,
//! ticket, session, queue, rendering, metrics or logging.
//! `floor` starts it (optionally under a command prefix such as `valgrind --tool=callgrind`),
//! holds a poll on each of `--watchers` connections, makes `--changes` changes (`POST /change`)
//! `--pause-ms` apart, waits until every watcher has each, and prints the deliveries and the
//! server's CPU time over the changes (per delivery, as S2 reports it). Run under callgrind with two change counts, the difference per extra
//! delivery is the floor of the gateway's own instruction figure.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Options of the `floor` command.
#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// Connections each holding a poll.
    #[arg(long, default_value_t = 500)]
    pub watchers: usize,
    /// Changes made, each delivered to every watcher.
    #[arg(long, default_value_t = 2)]
    pub changes: u64,
    /// Pause before the first change and after each.
    #[arg(long, default_value_t = 200)]
    pub pause_ms: u64,
    /// A command the server runs under, e.g. "valgrind --tool=callgrind --callgrind-out-file=f.out"
    /// (split at spaces; this program's `floor-server` follows it).
    #[arg(long)]
    pub server_prefix: Option<String>,
}

/// The server's shared state: how many changes were made, and who waits for the next.
#[derive(Default)]
struct Changes {
    count: AtomicU64,
    made: Notify,
}

/// How long a poll is held at most (the gateway's default hold).
const HOLD: Duration = Duration::from_secs(25);
/// How long a keep-alive connection may wait for its next request (the gateway's default).
const IDLE: Duration = Duration::from_secs(60);

/// Serves until SIGTERM; prints the listening address on its first line.
pub async fn serve() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let changes = Arc::new(Changes::default());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                stream.set_nodelay(true)?;
                tokio::spawn(connection(stream, changes.clone()));
            }
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// One keep-alive connection: a request at a time, until the client closes it.
async fn connection(mut stream: TcpStream, changes: Arc<Changes>) {
    let mut buf = Vec::with_capacity(1024);
    let mut answer = Vec::with_capacity(128);
    loop {
        let Ok(Some(end)) = tokio::time::timeout(IDLE, read_head(&mut stream, &mut buf)).await else { return };
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut slots);
        let wait = match request.parse(&buf[..end]) {
            Ok(httparse::Status::Complete(_)) => {
                request.path.map(|path| path.strip_prefix("/wait?after=").map(str::parse::<u64>))
            }
            _ => return,
        };
        answer.clear();
        match wait {
            Some(Some(Ok(after))) => {
                let Some(count) = wait_past(&stream, &changes, after).await else { return };
                let digits = count.checked_ilog10().unwrap_or(0) + 1;
                let _ = write!(answer, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {digits}\r\n\r\n{count}");
            }
            Some(None) if request.path == Some("/change") => {
                changes.count.fetch_add(1, Ordering::SeqCst);
                changes.made.notify_waiters();
                answer.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
            }
            _ => answer.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        }
        buf.drain(..end);
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Reads until `buf` holds a whole head; its length, or `None` when the client closed.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        if buf.len() > 8192 {
            return None;
        }
        buf.reserve(1024);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The change count once it is past `after` (or when the hold ends); `None` when the client
/// hangs up first.
async fn wait_past(stream: &TcpStream, changes: &Changes, after: u64) -> Option<u64> {
    let held = tokio::time::sleep(HOLD);
    tokio::pin!(held);
    loop {
        let made = changes.made.notified();
        tokio::pin!(made);
        made.as_mut().enable();
        let count = changes.count.load(Ordering::SeqCst);
        if count > after {
            return Some(count);
        }
        tokio::select! {
            _ = &mut made => {}
            _ = &mut held => return Some(count),
            _ = stream.readable() => {
                let mut byte = [0u8; 1];
                match stream.try_read(&mut byte) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
        }
    }
}

/// Runs the floor measurement; see the module documentation.
pub async fn run(args: FloorArgs) -> Result<()> {
    rlimit::increase_nofile_limit(u64::MAX).context("raising the file-descriptor limit")?;
    let mut server = start_server(&args)?;
    let outcome = drive(&args, &server).await;
    server.stop();
    let (deliveries, cpu) = outcome?;
    println!("watchers {}  changes {}  deliveries {deliveries}", args.watchers, args.changes);
    if let Some((total, kernel)) = cpu {
        let per_delivery = total / deliveries.max(1) as f64 * 1e6;
        let kernel_share = kernel / total.max(f64::MIN_POSITIVE) * 100.0;
        println!(
            "server CPU over the changes {total:.2} s: {per_delivery:.1} µs per delivery, {kernel_share:.0} % of it the kernel's"
        );
    }
    if deliveries != args.watchers as u64 * args.changes {
        bail!("{deliveries} deliveries, expected {}", args.watchers as u64 * args.changes);
    }
    Ok(())
}

/// The watchers' polls and the changes: the number of deliveries, and the server's CPU seconds
/// (all, and the kernel's) from just before the first change to when the last was delivered.
async fn drive(args: &FloorArgs, server: &Server) -> Result<(u64, Option<(f64, f64)>)> {
    let address = server.address;
    let delivered = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let mut watchers = Vec::with_capacity(args.watchers);
    for _ in 0..args.watchers {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        watchers.push(tokio::spawn(watch(stream, args.changes, delivered.clone(), progress.clone())));
    }
    let mut control = TcpStream::connect(address).await?;
    tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    let before = server.cpu_seconds();
    for change in 1..=args.changes {
        control.write_all(b"POST /change HTTP/1.1\r\nHost: floor\r\nContent-Length: 0\r\n\r\n").await?;
        let mut answer = [0u8; 27];
        control.read_exact(&mut answer).await?;
        let expected = change * args.watchers as u64;
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let more = progress.notified();
                if delivered.load(Ordering::SeqCst) >= expected {
                    return;
                }
                more.await;
            }
        })
        .await
        .context("watchers did not all get the change")?;
        if change < args.changes {
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
    }
    let after = server.cpu_seconds();
    for watcher in watchers {
        watcher.await??;
    }
    let cpu = before.zip(after).map(|((total0, kernel0), (total1, kernel1))| (total1 - total0, kernel1 - kernel0));
    Ok((delivered.load(Ordering::SeqCst), cpu))
}

/// One watcher: polls until it has seen `changes` changes.
async fn watch(stream: TcpStream, changes: u64, delivered: Arc<AtomicU64>, progress: Arc<Notify>) -> Result<()> {
    let mut stream = BufReader::new(stream);
    let mut seen = 0;
    while seen < changes {
        let request = format!("GET /wait?after={seen} HTTP/1.1\r\nHost: floor\r\n\r\n");
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                bail!("the server closed the connection");
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.trim().parse()?;
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        seen = std::str::from_utf8(&body)?.parse()?;
        delivered.fetch_add(1, Ordering::SeqCst);
        progress.notify_waiters();
    }
    Ok(())
}

/// The server process this run started.
struct Server {
    address: std::net::SocketAddr,
    child: std::process::Child,
}

fn start_server(args: &FloorArgs) -> Result<Server> {
    let this = std::env::current_exe()?;
    let prefix: Vec<String> = args.server_prefix.iter().flat_map(|p| p.split_whitespace().map(str::to_string)).collect();
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut command = std::process::Command::new(program);
            command.args(rest).arg(&this);
            command
        }
        None => std::process::Command::new(&this),
    };
    let mut child =
        command.arg("floor-server").stdout(std::process::Stdio::piped()).spawn().context("starting the floor server")?;
    let stdout = child.stdout.take().context("the server's output")?;
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)?;
    let address = first.trim().parse().with_context(|| format!("the server printed {first:?}"))?;
    Ok(Server { address, child })
}

impl Server {
    /// CPU seconds of the server so far (user and system, and system alone; from `/proc`).
    fn cpu_seconds(&self) -> Option<(f64, f64)> {
        crate::gateway::ProcSample::read(self.child.id()).ok().map(|sample| (sample.cpu_seconds, sample.kernel_seconds))
    }

    /// SIGTERM, then waits for the server to exit (under valgrind it writes its profile first);
    /// SIGKILL if it has not within 60 s.
    fn stop(&mut self) {
        // SAFETY: kill only sends a signal to the process this run started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
