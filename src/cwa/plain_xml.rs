//! The plain reading of a request body. Documents written the way clients write commands —
//! elements, attributes in double quotes, text without references, perhaps an XML declaration —
//! are read by a scan over their bytes, with the same calls to a [`Handler`] and the same result
//! that the general reader (quick-xml's events, [`super::xml::read_general`]) gives them, at a
//! fraction of its cost. Anything else — a reference, a comment, CDATA, a processing instruction,
//! a prefixed name, single quotes, a carriage return or control character, a limit reached, a
//! fault of any kind — is not plain: the scan gives up before the handler hears anything, and the
//! general reader reads the document (and finds the fault, if there is one). The scan notes what
//! it finds as [`Token`]s (spans of the input, no copies), which the handler hears once the whole
//! document has proved plain; it is linear in the input.

use super::xml::{Handler, XmlLimits};
use std::borrow::Cow;
use std::ops::Range;

/// Attributes per element a plain start tag may have (duplicates are found by comparing with each
/// earlier one); a tag with more is read by the general reader.
const MAX_PLAIN_ATTRIBUTES: usize = 8;

/// Tokens reserved before a scan: enough for a query of 650 URIs without growing.
const MAX_RESERVED_TOKENS: usize = 2048;

/// Reads `input` into `handler` if the document is plain, and then `true`; `false`, the handler
/// not called at all, if it is not.
pub(crate) fn read(input: &str, limits: XmlLimits, handler: &mut impl Handler) -> bool {
    // A query's `<uri>` elements make about one token per 10 bytes; room for one per 8 means the
    // one allocation is rarely grown. Bounded, so that a large body (which the element limit or
    // the first non-plain byte may soon end) does not reserve several times its size up front.
    let mut tokens = Vec::with_capacity((input.len() / 8).min(MAX_RESERVED_TOKENS));
    if scan(input, limits, &mut tokens).is_none() {
        return false;
    }
    for token in tokens {
        match token {
            Token::Open { name } => handler.open(&input[name.clone()], name.start - 1),
            Token::Attribute { name, value } if &input[name.clone()] == "xmlns" => {
                handler.namespace(Cow::Borrowed(&input[value]));
            }
            Token::Attribute { name, value } => handler.attribute(&input[name], Cow::Borrowed(&input[value])),
            Token::Text(text) => handler.text(&input[text]),
            Token::Close { after } => handler.close(after),
        }
    }
    true
}

/// What the scan found, in document order: spans of the input.
enum Token {
    /// A start tag (its `<` just before the name).
    Open {
        name: Range<usize>,
    },
    Attribute {
        name: Range<usize>,
        value: Range<usize>,
    },
    /// Text directly inside the innermost open element.
    Text(Range<usize>),
    /// An end tag or the end of an empty element; the offset just past it.
    Close {
        after: usize,
    },
}

/// Scans the whole document into `tokens`; `None` as soon as it is not plain.
fn scan(input: &str, limits: XmlLimits, tokens: &mut Vec<Token>) -> Option<()> {
    let bytes = input.as_bytes();
    let mut pos = declaration_end(bytes)?;
    let mut open: Vec<Range<usize>> = Vec::with_capacity(limits.max_depth.min(32));
    let (mut elements, mut root_done) = (0usize, false);
    loop {
        let (next, plain) = text_end(bytes, pos);
        if next > pos {
            if open.is_empty() {
                if !all_space(&bytes[pos..next]) {
                    return None;
                }
            } else {
                if !plain {
                    return None;
                }
                tokens.push(Token::Text(pos..next));
            }
        }
        if next == bytes.len() {
            break;
        }
        pos = next;
        match bytes.get(pos + 1) {
            Some(b'/') => {
                let name_end = name_end(bytes, pos + 2)?;
                let end = skip_space(bytes, name_end);
                let matches = open.pop().is_some_and(|name| bytes[name] == bytes[pos + 2..name_end]);
                if bytes.get(end) != Some(&b'>') || !matches {
                    return None;
                }
                pos = end + 1;
                tokens.push(Token::Close { after: pos });
                root_done = open.is_empty();
            }
            Some(&first) if is_name_start(first) => {
                if root_done || open.len() + 1 > limits.max_depth || elements + 1 > limits.max_elements {
                    return None;
                }
                elements += 1;
                let name = pos + 1..name_end(bytes, pos + 1)?;
                tokens.push(Token::Open { name: name.clone() });
                let (end, empty) = attributes(bytes, name.end, limits.max_attributes, tokens)?;
                pos = end;
                if empty {
                    tokens.push(Token::Close { after: pos });
                    root_done = open.is_empty();
                } else {
                    open.push(name);
                }
            }
            _ => return None,
        }
    }
    (open.is_empty() && root_done).then_some(())
}

/// Where the document's content begins: past an XML declaration of plain characters at its very
/// start (`<?xml version="1.0" encoding="utf-8"?>`), else 0; `None` for any other `<?`.
fn declaration_end(bytes: &[u8]) -> Option<usize> {
    if !bytes.starts_with(b"<?") {
        return Some(0);
    }
    let rest = bytes.strip_prefix(b"<?xml ")?;
    let length = memchr::memmem::find(rest, b"?>")?;
    let plain = rest[..length].iter().all(|&b| b.is_ascii_alphanumeric() || b" =\"._-".contains(&b));
    plain.then_some(b"<?xml ".len() + length + 2)
}

/// The attributes of a start tag whose name ends at `pos`, noted in their order; where the tag
/// ends, and whether it is an empty element (`/>`).
fn attributes(bytes: &[u8], mut pos: usize, max_attributes: usize, tokens: &mut Vec<Token>) -> Option<(usize, bool)> {
    let mut seen: [&[u8]; MAX_PLAIN_ATTRIBUTES] = [b""; MAX_PLAIN_ATTRIBUTES];
    let mut count = 0;
    loop {
        let at = skip_space(bytes, pos);
        match bytes.get(at) {
            Some(b'>') => return Some((at + 1, false)),
            Some(b'/') => return (bytes.get(at + 1) == Some(&b'>')).then_some((at + 2, true)),
            Some(&first) if is_name_start(first) && at > pos => {
                let name = at..name_end(bytes, at)?;
                if bytes.get(name.end..name.end + 2) != Some(b"=\"") {
                    return None;
                }
                let value_start = name.end + 2;
                let value = value_start..value_start + memchr::memchr(b'"', &bytes[value_start..])?;
                let name_bytes = &bytes[name.clone()];
                let duplicate = seen[..count].contains(&name_bytes);
                if count == max_attributes
                    || count == MAX_PLAIN_ATTRIBUTES
                    || duplicate
                    || !all_plain_value(&bytes[value.clone()])
                {
                    return None;
                }
                (seen[count], count) = (name_bytes, count + 1);
                pos = value.end + 1;
                tokens.push(Token::Attribute { name, value });
            }
            _ => return None,
        }
    }
}

/// Where the name starting at `pos` ends; `None` when no name starts there.
fn name_end(bytes: &[u8], pos: usize) -> Option<usize> {
    if !bytes.get(pos).copied().is_some_and(is_name_start) {
        return None;
    }
    let length = bytes[pos..].iter().position(|&b| !is_name_char(b)).unwrap_or(bytes.len() - pos);
    Some(pos + length)
}

fn skip_space(bytes: &[u8], pos: usize) -> usize {
    pos + bytes[pos..].iter().take_while(|&&b| is_space(b)).count()
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where the text starting at `pos` ends (the next `<`, or the end of the input), and whether it
/// is plain text: anything but references, `>`, carriage returns and control characters (which
/// XML normalises or refuses; the general reader decides). One look at each byte.
fn text_end(bytes: &[u8], pos: usize) -> (usize, bool) {
    let mut bad = false;
    for (offset, &b) in bytes[pos..].iter().enumerate() {
        if b == b'<' {
            return (pos + offset, !bad);
        }
        bad |= NOT_PLAIN_TEXT[usize::from(b)];
    }
    (bytes.len(), !bad)
}

/// The bytes [`text_end`] finds not plain.
static NOT_PLAIN_TEXT: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b != b'\t' as usize && b != b'\n' as usize;
        b += 1;
    }
    table[b'&' as usize] = true;
    table[b'>' as usize] = true;
    table
};

/// An attribute value: as text, and no whitespace but spaces (XML normalises the others) and no `<`.
fn all_plain_value(value: &[u8]) -> bool {
    !value.iter().fold(false, |bad, &b| bad | (b < 0x20) | (b == b'&') | (b == b'>') | (b == b'<'))
}

fn all_space(text: &[u8]) -> bool {
    text.iter().all(|&b| is_space(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cwa::xml::read_general;
    use proptest::prelude::*;

    /// Every call a reader makes, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Handler for Log {
        fn open(&mut self, name: &str, at: usize) {
            self.0.push(format!("open {name} {at}"));
        }
        fn namespace(&mut self, namespace: Cow<'_, str>) {
            self.0.push(format!("namespace {namespace}"));
        }
        fn attribute(&mut self, name: &str, value: Cow<'_, str>) {
            self.0.push(format!("attribute {name}={value}"));
        }
        fn text(&mut self, text: &str) {
            self.0.push(format!("text {text:?}"));
        }
        fn close(&mut self, after: usize) {
            self.0.push(format!("close {after}"));
        }
    }

    /// Reads `input` both ways: whether it was plain, and both readers' calls when it was.
    fn both(input: &str, limits: XmlLimits) -> (bool, Vec<String>, Vec<String>) {
        let (mut plain, mut general) = (Log::default(), Log::default());
        let was_plain = read(input, limits, &mut plain);
        if was_plain {
            assert_eq!(read_general(input, limits, &mut general), Ok(()), "{input}");
        } else {
            assert!(plain.0.is_empty(), "a document that is not plain is not read at all: {input}");
        }
        (was_plain, plain.0, general.0)
    }

    #[test]
    fn a_command_as_clients_write_it_is_plain_and_read_as_the_general_reader_reads_it() {
        let input = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<cwaRequests xmlns=\"urn:x\" sid=\"3\">\n  \
                     <queryPresence rid=\"4\"><uris><uri>sip:a@x.org</uri><uri> sip:b@x.org </uri></uris></queryPresence>\n  \
                     <terminateSession rid=\"5\" />\n</cwaRequests>\n";
        let (plain, calls, general) = both(input, XmlLimits::default());
        assert!(plain);
        assert_eq!(calls, general);
        assert_eq!(calls[0], "open cwaRequests 39");
        assert_eq!(calls[1..3], ["namespace urn:x", "attribute sid=3"]);
    }

    #[test]
    fn anything_else_goes_to_the_general_reader() {
        let cases = [
            "",
            " ",
            "<a>&amp;</a>",
            "<a b=\"&lt;\"/>",
            "<a><!-- c --></a>",
            "<a><![CDATA[x]]></a>",
            "<a><?pi x?></a>",
            "<?xml-stylesheet x?><a/>",
            "<!DOCTYPE a><a/>",
            "<p:a/>",
            "<a p:b=\"1\"/>",
            "<a xmlns:p=\"urn:p\"/>",
            "<a b='1'/>",
            "<a b=\"1\" b=\"2\"/>",
            "<a b=\"1\"c=\"2\"/>",
            "<a b = \"1\"/>",
            "<a>x\r\ny</a>",
            "<a b=\"x\ty\"/>",
            "<a>\u{1}</a>",
            "<a>x > y</a>",
            "<a></b>",
            "<a>",
            "<a/><b/>",
            "<a/>x",
            "x<a/>",
            "\u{feff}<a/>",
            "<a/ >",
            "< a/>",
            "<1a/>",
            "<a b=\"1/>",
        ];
        for input in cases {
            let (plain, ..) = both(input, XmlLimits::default());
            assert!(!plain, "{input:?} is not plain");
        }
        let limited = XmlLimits { max_depth: 2, max_elements: 3, max_attributes: 1 };
        for input in ["<a><b><c/></b></a>", "<a><b/><b/><b/></a>", "<a b=\"1\" c=\"2\"/>"] {
            assert!(!both(input, limited).0, "{input} reaches a limit");
        }
    }

    const PIECES: &[&str] = &[
        "<a>",
        "</a>",
        "<b x=\"1\">",
        "</b>",
        "<c/>",
        "<c y=\"v w\" />",
        "<d xmlns=\"urn:d\">",
        "</d>",
        "text",
        " ",
        "\n",
        "\t",
        "\r\n",
        "é",
        "&amp;",
        "&#1;",
        "<!-- c -->",
        "<![CDATA[x]]>",
        "<?pi x?>",
        "<p:e>",
        "</p:e>",
        "<a b='1'>",
        "<a b=\"1\" b=\"2\">",
        "<a b=\"1\" c=\"2\">",
        "\u{1}",
        "<",
        ">",
        "&",
        "\"",
        "</a >",
        "<a\n>",
        "<b x=\"\">",
    ];

    /// Text and empty elements, plain and not.
    const LEAVES: &[&str] = &[
        "text",
        " ",
        "\n  ",
        "é",
        "<c/>",
        "<c y=\"v\"/>",
        "<c\ty=\"v\"\n/>",
        "&amp;",
        "\r\n",
        "<!-- c -->",
        "x > y",
        "\"q\"",
        "'",
    ];
    const NAMES: &[&str] = &["a", "b", "uri", "cwa-Requests_2.x"];
    const ATTRS: &[&str] = &[
        "",
        "",
        " x=\"1\"",
        " xmlns=\"urn:x\" rid=\"2\"",
        " x=\"1\" x=\"2\"",
        " x='1'",
        " p:x=\"1\"",
        " x=\"a&amp;b\"",
        " x=\"\"",
        " x=\"it's\"",
    ];

    /// Documents shaped like requests: mostly plain, sometimes with one thing that is not.
    fn element() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(LEAVES).prop_map(str::to_string);
        leaf.prop_recursive(4, 24, 4, |inner| {
            (prop::sample::select(NAMES), prop::sample::select(ATTRS), prop::collection::vec(inner, 0..4))
                .prop_map(|(name, attrs, children)| format!("<{name}{attrs}>{}</{name} >", children.concat()))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn a_request_shaped_document_is_read_as_the_general_reader_reads_it(
            declaration in prop::sample::select(&["", "<?xml version=\"1.0\"?>", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"][..]),
            root in element(),
            tail in prop::sample::select(&["", "\n", " x", "<a/>"][..]),
            max_depth in 2usize..6,
            max_elements in 4usize..30,
        ) {
            let input = format!("{declaration}{root}{tail}");
            let limits = XmlLimits { max_depth, max_elements, max_attributes: 4 };
            let (_, plain, general) = both(&input, limits);
            prop_assert_eq!(plain.is_empty() || plain == general, true, "{:?}", input);
        }

        #[test]
        fn a_plain_document_is_read_exactly_as_the_general_reader_reads_it(
            declaration in prop::sample::select(&["", "", "<?xml version=\"1.0\"?>", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n", " "][..]),
            pieces in prop::collection::vec(prop::sample::select(PIECES), 0..14),
            max_depth in 1usize..5,
            max_elements in 1usize..8,
            max_attributes in 0usize..3,
        ) {
            let input = format!("{declaration}{}", pieces.concat());
            let limits = XmlLimits { max_depth, max_elements, max_attributes };
            let (_, plain, general) = both(&input, limits);
            prop_assert_eq!(plain.is_empty() || plain == general, true, "{:?}", input);
        }
    }
}
