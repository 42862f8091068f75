//! The connection driver's request parsers: any bytes are a request head or refused, never a
//! panic, and a head accepted always becomes the `http` types the router is handed (its target
//! read as `Uri` reads it, every header line in the `HeaderMap`); any bytes fed to the chunked body decoder give the same body, the same end and the same
//! refusal whether they arrive at once or split into reads (the first byte chooses the splits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use presence_gateway::http::conn::chunked::{ChunkError, ChunkedDecoder};
use presence_gateway::http::conn::head;

fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
    let mut decoder = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut used = 0;
    for piece in input.chunks(step.max(1)) {
        if decoder.is_done() {
            break;
        }
        let before = used;
        used += decoder.decode(piece, &mut out)?;
        assert!(decoder.is_done() || used == before + piece.len(), "a decoder that is not done takes every byte");
    }
    Ok((out, used, decoder.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    // Heads: found incrementally in the same place as at once, then parsed or refused.
    let mut scanned = 0;
    let at_once = head::find_end(rest, &mut scanned);
    let mut scanned = 0;
    let mut pieces = Ok(None);
    for end in (1..=rest.len()).step_by(usize::from(split).max(1)).chain([rest.len()]) {
        pieces = head::find_end(&rest[..end], &mut scanned);
        if !matches!(pieces, Ok(None)) {
            break;
        }
    }
    assert_eq!(at_once, pieces);
    if let Ok(Some(end)) = at_once {
        if let Ok(parsed) = head::parse(rest[..end].to_vec()) {
            let uri = parsed.uri().expect("an accepted target is a Uri");
            let headers = parsed.header_map().expect("accepted header lines are a HeaderMap");
            assert_eq!(parsed.with_lines(|lines| lines.len()), headers.len());
            if let Some((path, query)) = parsed.path_and_query() {
                assert_eq!((path, query), (uri.path(), uri.query()));
            }
        }
    }
    // Chunked bodies: the reads do not matter.
    let whole = decode(rest, rest.len());
    let split = decode(rest, usize::from(split));
    assert_eq!(whole, split);
    if let Ok((body, used, _)) = whole {
        assert!(body.len() <= used && used <= rest.len());
    }
});
