//! Property tests of the request parsers: any bytes at all are parsed or refused without a panic,
//! a head is accepted exactly when the `http` types can hold it (and reads as they read it), and
//! the chunked decoder's result does not depend on how the bytes were split into reads.

use super::chunked::ChunkedDecoder;
use super::head::{self, HeadError};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use proptest::prelude::*;

/// A request head as the `http` types hold it: method, target, every header line.
type HttpHead = (Method, Uri, Vec<(HeaderName, HeaderValue)>);

/// The yardstick of [`head::parse`]: `httparse`'s parse turned into the `http` types, or `None`
/// where one of them refuses.
fn as_http_types(bytes: &[u8]) -> Option<HttpHead> {
    let mut slots = [httparse::EMPTY_HEADER; head::MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    if !matches!(request.parse(bytes), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let uri = Uri::try_from(request.path?).ok()?;
    let lines = request
        .headers
        .iter()
        .map(|line| Some((HeaderName::from_bytes(line.name.as_bytes()).ok()?, HeaderValue::from_bytes(line.value).ok()?)));
    Some((method, uri, lines.collect::<Option<Vec<_>>>()?))
}

/// `head::parse` accepts `bytes` exactly when the `http` types hold them (apart from refusals of
/// the body framing), and reads the method, target and header lines as they do.
fn parsed_as_http_types_read(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = head::parse(bytes.to_vec());
    let framing =
        |e: HeadError| matches!(e, HeadError::LengthAndChunked | HeadError::BadContentLength | HeadError::BadTransferEncoding);
    match (parsed, as_http_types(bytes)) {
        (Ok(h), Some((method, uri, lines))) => {
            prop_assert_eq!(&h.method, &method);
            prop_assert_eq!(h.uri().ok(), Some(uri.clone()));
            let map = h.header_map().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(map.iter().map(|(n, v)| (n.clone(), v.clone())).collect::<Vec<_>>(), lines);
            if let Some((path, query)) = h.path_and_query() {
                prop_assert_eq!((path, query), (uri.path(), uri.query()));
            }
        }
        (Err(e), Some(_)) => prop_assert!(framing(e), "refused only for its framing, not {:?}", e),
        (Ok(_), None) => prop_assert!(false, "accepted what the http types refuse"),
        (Err(_), None) => {}
    }
    Ok(())
}

/// Feeds `input` to a fresh decoder in pieces cut at `cuts`; the body, how much was used, and
/// whether it ended — or the first error.
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), super::chunked::ChunkError> {
    let mut decoder = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut start = 0;
    for end in points {
        if decoder.is_done() {
            break;
        }
        let used = decoder.decode(&input[start..end], &mut out)?;
        start += used;
    }
    Ok((out, start, decoder.is_done()))
}

/// A chunked encoding of `body` with chunk sizes from `sizes`, and the given trailer lines.
fn encode(body: &[u8], sizes: &[usize], upper: bool, trailers: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (sizes.next().copied().unwrap_or(1) % 300).clamp(1, rest.len());
        let size = if upper { format!("{n:X}") } else { format!("{n:x}") };
        out.extend_from_slice(size.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    for trailer in trailers {
        out.extend_from_slice(trailer.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_a_head_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut scanned = 0;
        if let Ok(Some(end)) = head::find_end(&bytes, &mut scanned) {
            prop_assert!(end <= bytes.len());
            parsed_as_http_types_read(&bytes[..end])?;
        }
    }

    #[test]
    fn head_like_bytes_are_a_head_or_refused(
        lines in proptest::collection::vec("[ -~\t]{0,40}", 0..8),
        ending in prop_oneof![Just("\r\n"), Just("\n"), Just("\r")],
    ) {
        let text: String = std::iter::once("POST / HTTP/1.1".to_string()).chain(lines).map(|l| l + ending).collect::<String>() + ending;
        let mut scanned = 0;
        match head::find_end(text.as_bytes(), &mut scanned) {
            Ok(Some(end)) => parsed_as_http_types_read(&text.as_bytes()[..end])?,
            Ok(None) => prop_assert!(!text.contains("\r\n\r\n")),
            Err(e) => prop_assert_eq!(e, head::HeadError::BareLf),
        }
    }

    #[test]
    fn heads_are_accepted_as_the_http_types_accept_them(
        method in prop_oneof![
            Just("GET".to_string()),
            Just("G\u{e9}T".to_string()),
            Just("PATCHED-A-LONG-METHOD".to_string()),
            "[!-~]{1,8}",
        ],
        target in prop_oneof![
            Just("/cwa/AsyncDataChannel.ashx?Sid=1&AckId=2".to_string()),
            "/[!-~]{0,30}",
            "[!-~\u{e9}]{1,30}",
            "/[a-z?#{}\"<>`|^\u{e9}]{0,12}",
        ],
        lines in proptest::collection::vec(
            ("[!-~]{0,10}", "[ -~\t\u{e9}\u{7f}\u{1}]{0,20}").prop_map(|(n, v)| format!("{n}: {v}")),
            0..6,
        ),
    ) {
        let text: String = std::iter::once(format!("{method} {target} HTTP/1.1"))
            .chain(lines)
            .map(|l| l + "\r\n")
            .collect::<String>() + "\r\n";
        parsed_as_http_types_read(text.as_bytes())?;
    }

    #[test]
    fn chunked_decoding_does_not_depend_on_the_reads(
        input in proptest::collection::vec(prop_oneof![
            Just(b'0'), Just(b'1'), Just(b'a'), Just(b'F'), Just(b'\r'), Just(b'\n'), Just(b';'), Just(b' '), any::<u8>()
        ], 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = decode_in_pieces(&input, &[]);
        let pieces = decode_in_pieces(&input, &cuts);
        match (whole, pieces) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
        }
    }

    #[test]
    fn encoded_bodies_decode_to_themselves(
        body in proptest::collection::vec(any::<u8>(), 0..2000),
        sizes in proptest::collection::vec(1usize..300, 1..6),
        upper in any::<bool>(),
        trailers in proptest::collection::vec("[A-Za-z-]{1,10}: [ -~]{0,20}", 0..3),
        next in proptest::collection::vec(any::<u8>(), 0..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut input = encode(&body, &sizes, upper, &trailers);
        let encoded_len = input.len();
        input.extend_from_slice(&next);
        let (out, used, done) = decode_in_pieces(&input, &cuts).expect("a valid encoding decodes");
        prop_assert!(done);
        prop_assert_eq!(used, encoded_len);
        prop_assert_eq!(out, body);
    }
}
