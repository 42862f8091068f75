//! Request heads: finding where a head ends, parsing it with `httparse`, and deciding how its body
//! is framed. Strict on purpose, so that the gateway and any proxy in front of it can never
//! disagree about where one request ends and the next begins (README, "Connections"):
//! every line ends in CRLF (a bare LF is refused), no obs-fold, `Transfer-Encoding` and
//! `Content-Length` never together, `Transfer-Encoding` only as exactly `chunked`, all
//! `Content-Length` values equal and plain digits. Every check is linear in the head's length.

use crate::request::headers::Headers;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use std::ops::Range;

/// The most header lines one request may carry.
pub const MAX_HEADERS: usize = 100;

/// The longest header name the `http` types hold.
const MAX_NAME: usize = (1 << 16) - 1;

/// The longest request target the `http` types hold.
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// Why a request head is refused; every refusal closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x syntax (request line, header name or value, obs-fold).
    Malformed,
    /// A line ended in LF without CR.
    BareLf,
    /// The head is longer than the configured limit, or has too many header lines.
    TooLarge,
    /// `Content-Length` and `Transfer-Encoding` together.
    LengthAndChunked,
    /// Several `Content-Length` values that differ, or one that is not a plain number.
    BadContentLength,
    /// A transfer coding other than exactly `chunked` (or any on HTTP/1.0).
    BadTransferEncoding,
    /// A request target or method the `http` types cannot hold.
    BadTarget,
}

impl HeadError {
    /// The short reason sent back to the client.
    pub fn reason(self) -> &'static str {
        match self {
            HeadError::Malformed => "the request head is not valid HTTP/1.1",
            HeadError::BareLf => "request lines must end in CRLF",
            HeadError::TooLarge => "the request head is too large",
            HeadError::LengthAndChunked => "Content-Length and Transfer-Encoding must not be sent together",
            HeadError::BadContentLength => "Content-Length must be one number",
            HeadError::BadTransferEncoding => "the only transfer coding accepted is chunked",
            HeadError::BadTarget => "the method or request target is not valid",
        }
    }

    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            HeadError::Malformed => "malformed",
            HeadError::BareLf => "bare_lf",
            HeadError::TooLarge => "head_too_large",
            HeadError::LengthAndChunked => "length_and_chunked",
            HeadError::BadContentLength => "content_length",
            HeadError::BadTransferEncoding => "transfer_encoding",
            HeadError::BadTarget => "target",
        }
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow the head (0: no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head. It keeps the bytes it was parsed from and where each header line's name
/// and value lie in them, so its lines are read where they are needed ([`Head::with_lines`])
/// without parsing the head again: the data channel's own path reads the few it needs that way,
/// and only a request for the router becomes a `Uri` and a `HeaderMap` ([`Head::uri`],
/// [`Head::header_map`]). [`parse`] refuses whatever those could not hold, so building them never
/// fails for a parsed head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub version: Version,
    pub framing: Framing,
    /// Whether the client asked to keep the connection open after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// The head as it arrived, up to and including its empty line.
    bytes: Vec<u8>,
    /// Where the request target lies in `bytes`.
    target: Range<usize>,
    /// The target is a plain path and query that `Uri` holds as it is ([`plain_target`]), with
    /// where its first `?` is, if it has one.
    plain: Option<Option<usize>>,
    /// Where each header line's name and value lie in `bytes`, in the order they came.
    spans: Vec<LineSpan>,
}

/// Where one header line's name and value lie in a head's bytes.
#[derive(Debug)]
struct LineSpan {
    name: Range<usize>,
    value: Range<usize>,
}

/// The header lines of a [`Head`], borrowed from its bytes: read by name through [`Headers`].
pub struct Lines<'a> {
    bytes: &'a [u8],
    spans: &'a [LineSpan],
}

impl<'a> Lines<'a> {
    /// How many header lines the head has.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Each line's name and value, in the order they came.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.spans.iter().map(move |span| (&bytes[span.name.clone()], &bytes[span.value.clone()]))
    }
}

impl Headers for Lines<'_> {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (bytes, wanted) = (self.bytes, name.as_bytes());
        // Lines of another length are passed over without looking at their bytes.
        let named =
            move |span: &&LineSpan| span.name.len() == wanted.len() && bytes[span.name.clone()].eq_ignore_ascii_case(wanted);
        self.spans.iter().filter(named).map(move |span| &bytes[span.value.clone()])
    }
}

/// Finds the end of a head in `buf`, scanning only from `scanned` (what earlier calls already
/// looked at), so that a head arriving a byte at a time costs linear time. Returns the length of
/// the head including its final empty line, or `None` (with `scanned` advanced) if it is not
/// complete yet. A LF not preceded by CR is refused at once.
pub fn find_end(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, HeadError> {
    let mut from = *scanned;
    while let Some(offset) = memchr::memchr(b'\n', &buf[from..]) {
        let at = from + offset;
        from = at + 1;
        if at == 0 || buf[at - 1] != b'\r' {
            return Err(HeadError::BareLf);
        }
        if at >= 3 && &buf[at - 3..at] == b"\r\n\r" {
            *scanned = at + 1;
            return Ok(Some(at + 1));
        }
    }
    *scanned = buf.len();
    Ok(None)
}

/// Parses a complete head (`bytes` ends with its empty line, as found by [`find_end`]), keeping
/// its bytes. Refused exactly as building the `http` types from it would refuse it: the method,
/// the target (checked without building a `Uri` when it is a plain path and query), and header
/// names (`httparse` accepts the same name and value bytes as `HeaderName` and `HeaderValue`;
/// only the length of a name is left to check).
pub fn parse(bytes: Vec<u8>) -> Result<Head, HeadError> {
    // Slots httparse fills as it parses, left uninitialised until then (100 empty ones cost more
    // to write than a short head costs to parse).
    let mut slots = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(&bytes, &mut slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    }
    let method = Method::from_bytes(request.method.unwrap_or("").as_bytes()).map_err(|_| HeadError::BadTarget)?;
    let target_text = request.path.unwrap_or("");
    let plain = plain_target(target_text.as_bytes());
    if plain.is_none() {
        Uri::try_from(target_text).map_err(|_| HeadError::BadTarget)?;
    }
    let target = span_of(&bytes, target_text.as_bytes());
    let version = if request.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };
    let lines: &[httparse::Header<'_>] = request.headers;
    if lines.iter().any(|line| line.name.is_empty() || line.name.len() > MAX_NAME) {
        return Err(HeadError::Malformed);
    }
    let framing = framing(lines, version)?;
    let keep_alive = keep_alive(lines, version);
    let expect_continue = version == Version::HTTP_11
        && lines.value("expect").is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    let spans = lines
        .iter()
        .map(|line| LineSpan { name: span_of(&bytes, line.name.as_bytes()), value: span_of(&bytes, line.value) })
        .collect();
    Ok(Head { method, version, framing, keep_alive, expect_continue, bytes, target, plain, spans })
}

/// Where `part`, a slice of `whole`, lies in it.
fn span_of(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// The bytes valid unescaped in both a path and a query (no `#`, no quotes or braces, nothing
/// outside ASCII), as a table.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x5F | 0x61..=0x7A | 0x7C | 0x7E);
        b += 1;
    }
    table
};

/// Whether `target` is an origin-form path and query of bytes that `Uri` keeps as they are: a
/// `/`, then only [`PLAIN`] bytes, within `Uri`'s length. `Some` with where its first `?` is, if
/// any; `None` when it is not plain.
fn plain_target(target: &[u8]) -> Option<Option<usize>> {
    let plain = target.first() == Some(&b'/') && target.len() <= MAX_TARGET && target.iter().all(|&b| PLAIN[usize::from(b)]);
    plain.then(|| memchr::memchr(b'?', target))
}

impl Head {
    /// The request target as sent.
    pub fn target(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.target.clone()]).unwrap_or("")
    }

    /// The path and the query (after the first `?`) of a plain target, as `Uri::path` and
    /// `Uri::query` give them; `None` for any other target (an absolute URL, a fragment,
    /// characters `Uri` treats specially).
    pub fn path_and_query(&self) -> Option<(&str, Option<&str>)> {
        let question = self.plain?;
        let target = self.target();
        Some(match question.and_then(|at| Some((target.get(..at)?, target.get(at + 1..)?))) {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        })
    }

    /// Calls `read` with the header lines, borrowed from the head, in the order they came.
    pub fn with_lines<R>(&self, read: impl FnOnce(&Lines<'_>) -> R) -> R {
        read(&Lines { bytes: &self.bytes, spans: &self.spans })
    }

    /// The target as a `Uri`, for the router.
    pub fn uri(&self) -> Result<Uri, HeadError> {
        Uri::try_from(self.target()).map_err(|_| HeadError::BadTarget)
    }

    /// The header lines as a `HeaderMap`, for the router.
    pub fn header_map(&self) -> Result<HeaderMap, HeadError> {
        self.with_lines(|lines| {
            let mut headers = HeaderMap::with_capacity(lines.len());
            for (name, value) in lines.iter() {
                let name = HeaderName::from_bytes(name).map_err(|_| HeadError::Malformed)?;
                let value = HeaderValue::from_bytes(value).map_err(|_| HeadError::Malformed)?;
                headers.append(name, value);
            }
            Ok(headers)
        })
    }
}

/// The body framing of RFC 9112 §6, minus everything that invites request smuggling.
fn framing(headers: &(impl Headers + ?Sized), version: Version) -> Result<Framing, HeadError> {
    let chunked = headers.has("transfer-encoding");
    let length = content_length(headers)?;
    match (chunked, length) {
        (true, Some(_)) => Err(HeadError::LengthAndChunked),
        (true, None) => {
            let mut codings = headers.all("transfer-encoding").flat_map(|v| v.split(|b| *b == b','));
            let only_chunked =
                codings.next().is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")) && codings.next().is_none();
            if only_chunked && version == Version::HTTP_11 {
                Ok(Framing::Chunked)
            } else {
                Err(HeadError::BadTransferEncoding)
            }
        }
        (false, length) => Ok(Framing::Length(length.unwrap_or(0))),
    }
}

/// The one `Content-Length`: every value (repeated headers, comma lists) must be the same plain
/// number.
fn content_length(headers: &(impl Headers + ?Sized)) -> Result<Option<u64>, HeadError> {
    let mut found: Option<u64> = None;
    for value in headers.all("content-length") {
        for part in value.split(|b| *b == b',') {
            let digits = part.trim_ascii();
            if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::BadContentLength);
            }
            let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(HeadError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
fn keep_alive(headers: &(impl Headers + ?Sized), version: Version) -> bool {
    let has = |token: &[u8]| {
        headers.all("connection").flat_map(|v| v.split(|b| *b == b',')).any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_11 {
        !has(b"close")
    } else {
        has(b"keep-alive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, HeadError> {
        let mut scanned = 0;
        let end = find_end(text.as_bytes(), &mut scanned)?.expect("complete head");
        assert_eq!(end, text.len());
        parse(text.as_bytes().to_vec())
    }

    #[test]
    fn a_plain_request_parses() {
        let h = head("POST /cwa/MainCommandHandler.ashx?x=1 HTTP/1.1\r\nHost: a\r\nCWA-Ticket: t\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        assert_eq!(h.path_and_query(), Some(("/cwa/MainCommandHandler.ashx", Some("x=1"))));
        assert_eq!(
            (h.method.clone(), h.uri().unwrap().path(), h.version),
            (Method::POST, "/cwa/MainCommandHandler.ashx", Version::HTTP_11)
        );
        assert_eq!(h.header_map().unwrap().get("cwa-ticket").unwrap(), "t");
        assert_eq!(h.with_lines(|lines| lines.text("cwa-ticket").map(str::to_string)).as_deref(), Some("t"));
        assert_eq!((h.framing, h.keep_alive, h.expect_continue), (Framing::Length(5), true, false));
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(0), true));
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").unwrap().keep_alive);
        let h = head("PUT /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!((h.framing, h.expect_continue), (Framing::Chunked, true));
    }

    #[test]
    fn the_end_is_found_incrementally_and_bare_lf_is_refused() {
        let text = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
        let mut scanned = 0;
        for cut in 1..text.len() {
            match find_end(&text[..cut], &mut scanned).unwrap() {
                Some(end) => {
                    assert_eq!(end, 27);
                    return;
                }
                None => assert_eq!(scanned, cut),
            }
        }
        panic!("no end found");
    }

    #[test]
    fn smuggling_classics_are_refused() {
        let refused = |text: &str| head(text).unwrap_err();
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::LengthAndChunked
        );
        assert_eq!(refused("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), HeadError::BadContentLength);
        assert_eq!(refused("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n"), HeadError::BadContentLength);
        assert_eq!(refused("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n"), HeadError::BadContentLength);
        assert_eq!(refused("POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\n"), HeadError::BadContentLength);
        assert_eq!(refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), HeadError::BadTransferEncoding);
        assert_eq!(refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), HeadError::BadTransferEncoding);
        assert_eq!(refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HeadError::BadTransferEncoding);
        assert_eq!(refused("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n"), HeadError::Malformed);
        assert_eq!(refused("GET / HTTP/1.1\r\nX A: 1\r\n\r\n"), HeadError::Malformed);
        assert_eq!(refused("GET / HTTP/2.0\r\n\r\n"), HeadError::Malformed);
        let mut scanned = 0;
        assert_eq!(find_end(b"GET / HTTP/1.1\nHost: a\n\n", &mut scanned), Err(HeadError::BareLf));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")), HeadError::TooLarge);
        // Identical repeated lengths are one length.
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").unwrap().framing,
            Framing::Length(3)
        );
    }

    #[test]
    fn targets_are_read_as_uri_reads_them() {
        for (target, plain) in [
            ("/cwa/AsyncDataChannel.ashx?Sid=1&AckId=2", Some(("/cwa/AsyncDataChannel.ashx", Some("Sid=1&AckId=2")))),
            ("/a?", Some(("/a", Some("")))),
            ("/a?b?c", Some(("/a", Some("b?c")))),
            ("/", Some(("/", None))),
            ("/a#frag", None),
            ("/a?b#frag", None),
            ("/a{b}", None),
            ("/a?`", None),
            ("http://gw/cwa/AsyncDataChannel.ashx", None),
            ("*", None),
        ] {
            let h = head(&format!("GET {target} HTTP/1.1\r\n\r\n")).unwrap();
            assert_eq!(h.path_and_query(), plain, "{target}");
            let uri = h.uri().unwrap();
            if let Some((path, query)) = plain {
                assert_eq!((uri.path(), uri.query()), (path, query), "{target}");
            }
        }
        for target in ["/a\"b<", "/a b", "/\u{e9}\u{ff}"] {
            let text = format!("GET {target} HTTP/1.1\r\n\r\n");
            let old = httparse::Request::new(&mut []).parse(text.as_bytes()).is_ok() && Uri::try_from(target).is_ok();
            assert_eq!(head(&text).is_ok(), old, "{target}");
        }
    }
}
