//! The `Transfer-Encoding: chunked` request body decoder: an incremental state machine fed with
//! whatever bytes have arrived, in one pass (linear; no byte is looked at twice). Strict like the
//! head parser (README, "Connections"): sizes are 1–15 hex digits with nothing before them, every
//! line ends in CRLF, chunk extensions and trailers are skipped but bounded and may not contain
//! control characters.

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not 1–15 hex digits, or a line not ending in CRLF where one must.
    InvalidSize,
    /// Chunk data not followed by CRLF.
    MissingCrlf,
    /// Extensions and trailers together longer than [`MAX_OVERHEAD`], or with control characters.
    BadExtensionOrTrailer,
}

impl ChunkError {
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::InvalidSize => "invalid chunk size line",
            ChunkError::MissingCrlf => "chunk data must be followed by CRLF",
            ChunkError::BadExtensionOrTrailer => "invalid or oversized chunk extension or trailer",
        }
    }
}

/// The most bytes of chunk extensions and trailer lines one body may carry.
pub const MAX_OVERHEAD: usize = 8 * 1024;

/// The largest number of hex digits in a chunk size (sizes stay far below `u64::MAX`).
const MAX_SIZE_DIGITS: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size {
        size: u64,
        digits: u8,
    },
    /// Spaces after the size, before `;` or CR.
    SizeSpace {
        size: u64,
    },
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// In a trailer line (`empty` while nothing but the line start has been seen).
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Decodes one chunked body; feed it with [`ChunkedDecoder::decode`] until it reports done.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    overhead: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size { size: 0, digits: 0 }, overhead: 0 }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of `input`, appending chunk data to `out`. Returns how many bytes were
    /// consumed: all of `input`, or fewer when the body ended (the rest is the next request).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if let State::Data { left } = self.state {
                let take = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[at..at + take]);
                at += take;
                let left = left - take as u64;
                self.state = if left == 0 { State::DataCr } else { State::Data { left } };
                continue;
            }
            self.state = self.step(input[at])?;
            at += 1;
        }
        Ok(at)
    }

    fn step(&mut self, byte: u8) -> Result<State, ChunkError> {
        use State::*;
        let next = match (self.state, byte) {
            (Size { size, digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') if digits < MAX_SIZE_DIGITS => {
                let digit = (byte as char).to_digit(16).unwrap_or(0);
                Size { size: size * 16 + u64::from(digit), digits: digits + 1 }
            }
            (Size { size, digits }, b' ' | b'\t') if digits > 0 => SizeSpace { size },
            (Size { size, digits }, b';') if digits > 0 => self.extension(size)?,
            (Size { size, digits }, b'\r') if digits > 0 => SizeLf { size },
            (SizeSpace { size }, b' ' | b'\t') => SizeSpace { size },
            (SizeSpace { size }, b';') => self.extension(size)?,
            (SizeSpace { size }, b'\r') => SizeLf { size },
            (Size { .. } | SizeSpace { .. }, _) => return Err(ChunkError::InvalidSize),
            (Extension { size }, b'\r') => SizeLf { size },
            (Extension { size }, b) if is_field_byte(b) => self.extension(size)?,
            (Extension { .. }, _) => return Err(ChunkError::BadExtensionOrTrailer),
            (SizeLf { size: 0 }, b'\n') => Trailer { empty: true },
            (SizeLf { size }, b'\n') => Data { left: size },
            (SizeLf { .. }, _) => return Err(ChunkError::InvalidSize),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { size: 0, digits: 0 },
            (DataCr | DataLf, _) => return Err(ChunkError::MissingCrlf),
            (Trailer { empty }, b'\r') => TrailerLf { empty },
            (Trailer { .. }, b) if is_field_byte(b) => {
                self.count_overhead()?;
                Trailer { empty: false }
            }
            (TrailerLf { empty: true }, b'\n') => Done,
            (TrailerLf { empty: false }, b'\n') => Trailer { empty: true },
            (Trailer { .. } | TrailerLf { .. }, _) => return Err(ChunkError::BadExtensionOrTrailer),
            (Data { .. } | Done, _) => self.state,
        };
        Ok(next)
    }

    fn extension(&mut self, size: u64) -> Result<State, ChunkError> {
        self.count_overhead()?;
        Ok(State::Extension { size })
    }

    fn count_overhead(&mut self) -> Result<(), ChunkError> {
        self.overhead += 1;
        if self.overhead > MAX_OVERHEAD {
            return Err(ChunkError::BadExtensionOrTrailer);
        }
        Ok(())
    }
}

/// Bytes allowed in extensions and trailer lines: visible ASCII, space, tab and obs-text.
fn is_field_byte(byte: u8) -> bool {
    byte == b'\t' || (b' '..=b'~').contains(&byte) || byte >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        let used = decoder.decode(input, &mut out)?;
        Ok((out, used, decoder.is_done()))
    }

    #[test]
    fn chunks_and_trailers_decode_and_the_rest_is_left() {
        let input = b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nGET /";
        let (out, used, done) = decode_all(input).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert!(done);
        assert_eq!(&input[used..], b"GET /");
    }

    #[test]
    fn byte_by_byte_gives_the_same_body() {
        let input = b"a\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n";
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        for byte in input.chunks(1) {
            assert_eq!(decoder.decode(byte, &mut out).unwrap(), 1);
        }
        assert!(decoder.is_done());
        assert_eq!(out, b"0123456789x");
    }

    #[test]
    fn invalid_sizes_and_lines_are_refused() {
        for bad in [
            &b"\r\n"[..],
            b" 4\r\nWiki\r\n",
            b"0x4\r\nWiki\r\n",
            b"-1\r\n",
            b"4\nWiki\r\n",
            b"g\r\n",
            b"fffffffffffffffff\r\n",
            b"4 4\r\n",
            b"4\r\nWikiX\r\n",
            b"4\r\nWiki\n",
            b"4;a\x01\r\n",
            b"0\r\nX: 1\n\r\n",
        ] {
            assert!(decode_all(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_OVERHEAD + 1));
        assert_eq!(decode_all(long.as_bytes()).unwrap_err(), ChunkError::BadExtensionOrTrailer);
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (out, used, done) = decode_all(b"4\r\nWi").unwrap();
        assert_eq!((out.as_slice(), used, done), (&b"Wi"[..], 5, false));
    }
}
