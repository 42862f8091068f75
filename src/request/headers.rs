//! Reading a request's header lines by name, whether they are an `http::HeaderMap` (requests the
//! router serves) or the lines of a request head as the connection driver parsed them, borrowed
//! from its bytes (the data channel's own path, `crate::http::data_channel`). The rules that read
//! headers (the ticket, its cookie, framing) are written once against [`Headers`] and so read both
//! alike: names without regard to case, repeated lines in the order they came, the first one where
//! `HeaderMap::get` takes the first, and text only if it is visible ASCII (`HeaderValue::to_str`).

use axum::http::HeaderMap;

/// Header lines looked up by name; names given in lower case.
pub trait Headers {
    /// Every value of the header `name`, in the order the request carried them.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of `name`.
    fn value<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.all(name).next()
    }

    /// Whether the request carries `name` at all.
    fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// The first value of `name` as text: `None` if it is missing or not visible ASCII.
    fn text<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.value(name).and_then(visible_ascii)
    }
}

impl Headers for HeaderMap {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).into_iter().map(|value| value.as_bytes())
    }
}

impl Headers for [httparse::Header<'_>] {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |line| line.name.eq_ignore_ascii_case(name)).map(|line| line.value)
    }
}

/// `value` as text if every byte is visible ASCII or a tab, as `HeaderValue::to_str` reads it.
pub fn visible_ascii(value: &[u8]) -> Option<&str> {
    // Every byte is looked at (no early exit), so the check runs over whole words at a time.
    let visible = value.iter().fold(true, |visible, &b| visible & ((b.wrapping_sub(32) < 95) | (b == b'\t')));
    visible.then(|| std::str::from_utf8(value).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_header_map_and_parsed_lines_read_alike() {
        let head = b"GET / HTTP/1.1\r\nCookie: a=1\r\nX-Id: \xc3\xa9\r\ncookie: b=2\r\nHost: h\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut slots);
        request.parse(head).unwrap();
        let lines: &[httparse::Header<'_>] = request.headers;
        let mut map = HeaderMap::new();
        for line in lines {
            let name = axum::http::HeaderName::from_bytes(line.name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_bytes(line.value).unwrap());
        }
        for name in ["cookie", "x-id", "host", "origin"] {
            assert_eq!(lines.all(name).collect::<Vec<_>>(), map.all(name).collect::<Vec<_>>(), "{name}");
            assert_eq!(lines.text(name), map.get(name).and_then(|v| v.to_str().ok()), "{name}");
            assert_eq!(lines.has(name), map.contains_key(name), "{name}");
        }
        assert_eq!(lines.value("cookie"), Some(&b"a=1"[..]));
        assert_eq!(lines.text("x-id"), None, "not visible ASCII");
    }

    #[test]
    fn visible_ascii_takes_the_bytes_header_value_to_str_takes() {
        for byte in 0..=255u8 {
            for value in [vec![byte], [b"ticket-".as_slice(), &[byte], b"-value-long-enough-for-whole-words"].concat()] {
                let by_http = HeaderValue::from_bytes(&value).ok().and_then(|v| v.to_str().ok().map(str::to_string));
                assert_eq!(visible_ascii(&value).map(str::to_string), by_http, "byte {byte:#04x}");
            }
        }
    }
}
