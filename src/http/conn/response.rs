//! Writing responses: the status line and headers serialised into one buffer, with header names
//! spelled as the original CWA server spelled them (`CWA-Ticket`, `ETag`, `WWW-Authenticate`,
//! every other name in title case: `Content-Type`, `Set-Cookie`, …; README, "Exact header
//! spelling"), then the body: known-length bodies go out with the head in one vectored write,
//! bodies of unknown length as chunks.

use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use axum::http::response::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, Version};
use http_body_util::BodyExt;
use std::io::IoSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Names whose spelling is not plain title case, as the original server and the RFCs spell them.
const SPECIAL_NAMES: &[&str] =
    &["CWA-Ticket", "ETag", "WWW-Authenticate", "Content-MD5", "X-XSS-Protection", "X-UA-Compatible", "TE", "DNT", "SourceMap"];

/// Appends `name` spelled for the wire: a special spelling, or title case (`x-request-id` →
/// `X-Request-Id`).
pub fn push_name(out: &mut Vec<u8>, name: &str) {
    // The names of nearly every answer, as `HeaderName` spells them (lower case).
    let common = match name {
        "content-type" => "Content-Type",
        "content-length" => "Content-Length",
        "cache-control" => "Cache-Control",
        "x-content-type-options" => "X-Content-Type-Options",
        "x-request-id" => "X-Request-Id",
        "cwa-ticket" => "CWA-Ticket",
        "set-cookie" => "Set-Cookie",
        _ => "",
    };
    if !common.is_empty() {
        out.extend_from_slice(common.as_bytes());
        return;
    }
    if let Some(special) = SPECIAL_NAMES.iter().find(|s| s.eq_ignore_ascii_case(name)) {
        out.extend_from_slice(special.as_bytes());
        return;
    }
    let mut upper = true;
    for byte in name.bytes() {
        out.push(if upper { byte.to_ascii_uppercase() } else { byte });
        upper = byte == b'-';
    }
}

/// Whether a response to `method` with `status` carries no body at all (RFC 9110 §6.4.1).
pub fn has_no_body(head_request: bool, status: StatusCode) -> bool {
    head_request || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}

/// Serialises the status line and headers (ending with the empty line).
fn head_bytes(parts: &Parts, version: Version, close: bool, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + extra);
    status_line(&mut out, version, parts.status);
    for (name, value) in &parts.headers {
        push_header(&mut out, name, value);
    }
    end_head(&mut out, !parts.headers.contains_key(DATE), version, close);
    out
}

fn status_line(out: &mut Vec<u8>, version: Version, status: StatusCode) {
    out.extend_from_slice(if version == Version::HTTP_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `Date` (unless the answer has one), `Connection` as needed, and the empty line.
fn end_head(out: &mut Vec<u8>, date: bool, version: Version, close: bool) {
    if date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(&date::now());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// An answer made without the router (the data channel's own path, `crate::http::data_channel`):
/// its head so far in the buffer it is written from (begun by [`prepared_head`]: the status line,
/// then header lines as wire bytes, each ending in CRLF; no `Content-Length`, `Date` or
/// `Connection`), and its body. Written as [`write`] writes a response with the same headers.
pub struct Prepared {
    pub head: Vec<u8>,
    pub body: String,
}

/// The head of a [`Prepared`] answer: its status line, with room for its header lines and what
/// [`write_prepared`] adds.
pub fn prepared_head(version: Version, status: StatusCode) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    status_line(&mut head, version, status);
    head
}

/// Writes a [`Prepared`] answer (never to a `HEAD` request, never of a status without a body):
/// its head is ended in its own buffer, then head and body go out in one vectored write.
pub async fn write_prepared<W: AsyncWrite + Unpin>(
    io: &mut W,
    answer: Prepared,
    version: Version,
    close: bool,
) -> std::io::Result<Written> {
    let answer = answer.finish(version, close);
    write_rest(io, answer, 0).await
}

impl Prepared {
    /// Ends the head (`Content-Length`, `Date`, `Connection` as needed, the empty line): the
    /// answer is then its wire bytes, head and body.
    pub fn finish(mut self, version: Version, close: bool) -> Prepared {
        self.head.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut self.head, self.body.len());
        self.head.extend_from_slice(b"\r\n");
        end_head(&mut self.head, true, version, close);
        self
    }

    /// The finished answer's length on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The finished answer's bytes from `written` on, as slices for a vectored write.
    pub fn slices(&self, written: usize) -> [IoSlice<'_>; 2] {
        let (head, body) = (self.head.as_slice(), self.body.as_bytes());
        let in_head = written.min(head.len());
        let in_body = (written - in_head).min(body.len());
        [IoSlice::new(&head[in_head..]), IoSlice::new(&body[in_body..])]
    }
}

/// Writes what is left of a finished answer after its first `written` bytes.
pub async fn write_rest<W: AsyncWrite + Unpin>(io: &mut W, answer: Prepared, written: usize) -> std::io::Result<Written> {
    write_all_vectored(io, &mut answer.slices(written)).await?;
    io.flush().await?;
    Ok(Written::Complete)
}

/// Appends `n` in decimal, as `HeaderValue::from(usize)` spells it, without an allocation.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_header(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    push_name(out, name.as_str());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How a response was written.
pub enum Written {
    /// Completely, and the connection may carry another request.
    Complete,
    /// Completely, but delimited by closing the connection (HTTP/1.0 without a length).
    CloseDelimited,
}

/// Writes a whole response. `close` adds `Connection: close`. A body that fails half-way is an
/// error (the connection must then be closed: the client cannot tell where the answer ended).
pub async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    response: axum::response::Response,
    head_request: bool,
    version: Version,
    close: bool,
) -> std::io::Result<Written> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.remove(CONNECTION);
    if has_no_body(head_request, parts.status) {
        if !head_request {
            parts.headers.remove(CONTENT_LENGTH);
        }
        let head = head_bytes(&parts, version, close, 0);
        io.write_all(&head).await?;
        io.flush().await?;
        return Ok(Written::Complete);
    }
    match body.size_hint().exact() {
        Some(_) => {
            let data = collect(body).await?;
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
            let head = head_bytes(&parts, version, close, 0);
            write_all_vectored(io, &mut [IoSlice::new(&head), IoSlice::new(&data)]).await?;
            io.flush().await?;
            Ok(Written::Complete)
        }
        None => write_streamed(io, parts, body, version, close).await,
    }
}

async fn collect(body: Body) -> std::io::Result<Bytes> {
    body.collect().await.map(|c| c.to_bytes()).map_err(std::io::Error::other)
}

/// A body of unknown length: chunked on HTTP/1.1, delimited by closing on HTTP/1.0.
async fn write_streamed<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut parts: Parts,
    mut body: Body,
    version: Version,
    close: bool,
) -> std::io::Result<Written> {
    parts.headers.remove(CONTENT_LENGTH);
    let chunked = version == Version::HTTP_11;
    if chunked {
        parts.headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    let head = head_bytes(&parts, version, close || !chunked, 0);
    io.write_all(&head).await?;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let size = format!("{:x}\r\n", data.len());
            write_all_vectored(io, &mut [IoSlice::new(size.as_bytes()), IoSlice::new(&data), IoSlice::new(b"\r\n")]).await?;
        } else {
            io.write_all(&data).await?;
        }
        io.flush().await?;
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
        io.flush().await?;
        Ok(Written::Complete)
    } else {
        Ok(Written::CloseDelimited)
    }
}

/// Writes every slice, with as few system calls as the kernel allows (one, usually).
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(io: &mut W, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// A small answer of the connection driver itself (refused or timed-out requests): JSON for the
/// JSON API, plain text otherwise; always closes the connection.
pub fn driver_answer(status: StatusCode, message: &str, json: bool) -> Vec<u8> {
    let (content_type, body) = if json {
        let code = status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_");
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        ("application/json", body)
    } else {
        ("text/plain; charset=utf-8", format!("{message}\n"))
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nX-Content-Type-Options: nosniff\r\n\
         Cache-Control: no-store\r\nDate: {}\r\nConnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error"),
        body.len(),
        String::from_utf8_lossy(&date::now()),
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

/// The `Date` header's value, formatted at most once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }

    pub fn now() -> [u8; 29] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            if cached.0 != second {
                let text = httpdate::fmt_http_date(now);
                if let Ok(bytes) = <[u8; 29]>::try_from(text.as_bytes()) {
                    *cached = (second, bytes);
                }
            }
            cached.1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spelled(name: &str) -> String {
        let mut out = Vec::new();
        push_name(&mut out, name);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_are_spelled_as_the_original_server_spelled_them() {
        assert_eq!(spelled("cwa-ticket"), "CWA-Ticket");
        assert_eq!(spelled("etag"), "ETag");
        assert_eq!(spelled("www-authenticate"), "WWW-Authenticate");
        assert_eq!(spelled("content-type"), "Content-Type");
        assert_eq!(spelled("set-cookie"), "Set-Cookie");
        assert_eq!(spelled("access-control-expose-headers"), "Access-Control-Expose-Headers");
        assert_eq!(spelled("x-request-id"), "X-Request-Id");
        assert_eq!(spelled("x-content-type-options"), "X-Content-Type-Options");
    }

    #[tokio::test]
    async fn known_length_bodies_go_out_with_their_head() {
        let mut response = axum::response::Response::new(Body::from("hello"));
        response.headers_mut().insert("cwa-ticket", HeaderValue::from_static("t1"));
        let mut out = Vec::new();
        write(&mut out, response, false, Version::HTTP_11, false).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nCWA-Ticket: t1\r\nContent-Length: 5\r\nDate: "), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    }

    #[tokio::test]
    async fn a_finished_answer_reads_the_same_from_any_point() {
        let answer = || {
            let mut head = prepared_head(Version::HTTP_11, StatusCode::OK);
            head.extend_from_slice(b"Content-Type: text/xml\r\n");
            Prepared { head, body: "<a/>".to_string() }
        };
        let mut whole = Vec::new();
        write_prepared(&mut whole, answer(), Version::HTTP_11, false).await.unwrap();
        let text = String::from_utf8(whole.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 4\r\nDate: "), "{text}");
        assert!(text.ends_with("GMT\r\n\r\n<a/>"), "{text}");
        let finished = answer().finish(Version::HTTP_11, false);
        let bytes = |from: usize| -> Vec<u8> { finished.slices(from).iter().flat_map(|s| s.to_vec()).collect() };
        let full = bytes(0);
        assert_eq!((finished.len(), full.len()), (whole.len(), whole.len()));
        for from in 0..=full.len() {
            assert_eq!(bytes(from), full[from..], "{from}");
        }
        let mut rest = Vec::new();
        write_rest(&mut rest, answer().finish(Version::HTTP_11, true), 5).await.unwrap();
        let text = String::from_utf8(rest).unwrap();
        assert!(text.starts_with("1.1 200 OK\r\n") && text.contains("Connection: close\r\n\r\n<a/>"), "{text}");
    }

    /// A body of unknown length that yields its parts one by one.
    struct Parts(std::collections::VecDeque<&'static str>);

    impl HttpBody for Parts {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes())))))
        }
    }

    #[tokio::test]
    async fn streamed_bodies_are_chunked() {
        let response = axum::response::Response::new(Body::new(Parts(["ab", "", "cde"].into())));
        let mut out = Vec::new();
        write(&mut out, response, false, Version::HTTP_11, true).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Transfer-Encoding: chunked\r\n") && text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"), "{text}");
    }
}
