//! The one XML writer of the gateway. Every text and attribute value goes through [`escape_text`]
//! or [`escape_attr`], which escape markup and also replace each character XML 1.0 forbids
//! (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+FFFE, U+FFFF) with U+FFFD, so no rendering —
//! even of data stored before inputs were checked — can produce a body that is not XML. Pieces
//! rendered once and shared (parts of events) are [`Fragment`]s, which only this writer makes.
//!
//! Layout (README, "Bytes on the wire"): an element holding elements puts each child on its own
//! line, indented two spaces per level; an element holding only text, or nothing, stays on one
//! line; inside an inline region (a `note` payload, the contact card's `identity`, raw category
//! content) nothing is broken, as in the reference examples.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The replacement for characters XML 1.0 does not allow.
pub const REPLACEMENT: char = '\u{FFFD}';

/// True for the characters XML 1.0 allows in a document (`Char` of the XML 1.0 grammar).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes character data: `&`, `<`, `>`, and CR as `&#13;` (a parser would turn a literal CR
/// into LF); forbidden characters become U+FFFD.
pub fn escape_text(out: &mut String, text: &str) {
    escape(out, text, false);
}

/// Escapes an attribute value (double-quoted): as text, plus `"`, and TAB/LF as character
/// references so that attribute-value normalisation gives back exactly the stored value.
pub fn escape_attr(out: &mut String, value: &str) {
    escape(out, value, true);
}

fn escape(out: &mut String, value: &str, attribute: bool) {
    let plain = |c: char| match c {
        '&' | '<' | '>' | '\r' => false,
        '"' | '\t' | '\n' => !attribute,
        c => is_xml_char(c),
    };
    let mut rest = value;
    while let Some(at) = rest.find(|c| !plain(c)) {
        out.push_str(&rest[..at]);
        let c = rest[at..].chars().next().unwrap_or(REPLACEMENT);
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            _ => out.push(REPLACEMENT),
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.push_str(rest);
}

/// Well-formed, escaped XML made by an [`XmlWriter`]; the only pre-rendered text a writer accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Fragment(Box<str>);

impl Fragment {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Fragment {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// ` a="v" b="w"`: escaped attributes for a pre-rendered element head.
pub fn attributes(attrs: &[(&str, Option<&str>)]) -> Fragment {
    let mut w = XmlWriter::new();
    w.push_attrs(attrs);
    Fragment(w.out.into_boxed_str())
}

#[derive(Debug)]
struct Open {
    /// A literal name, or a name read from a stored document (raw categories).
    name: Cow<'static, str>,
    has_children: bool,
    inline: bool,
}

#[derive(Debug)]
pub struct XmlWriter {
    out: String,
    /// Indentation level of the first element written at the top (0 for a document).
    base: usize,
    open: Vec<Open>,
    /// Open elements from which on nothing is broken over lines (`usize::MAX`: none).
    inline_from: usize,
    wrote_any: bool,
}

impl Default for XmlWriter {
    fn default() -> Self {
        XmlWriter::new()
    }
}

impl XmlWriter {
    /// A writer for a whole document (the root element starts the output).
    pub fn new() -> Self {
        XmlWriter::at_depth(0)
    }

    /// A writer that breaks nothing over lines (raw category content as stored).
    pub fn inline() -> Self {
        XmlWriter { inline_from: 0, ..XmlWriter::new() }
    }

    /// A writer for a fragment whose top elements sit at `depth` in the final document: each of
    /// them starts on a new line indented for that depth.
    pub fn at_depth(depth: usize) -> Self {
        XmlWriter { out: String::with_capacity(512), base: depth, open: Vec::new(), inline_from: usize::MAX, wrote_any: false }
    }

    /// `<name a="v"…>`; `None` attribute values are left out.
    pub fn open(&mut self, name: impl Into<Cow<'static, str>>, attrs: &[(&str, Option<&str>)]) -> &mut Self {
        let name = name.into();
        self.start(&name, attrs);
        self.out.push('>');
        let inline = self.in_inline_region();
        self.open.push(Open { name, has_children: false, inline });
        self
    }

    /// Like [`open`](Self::open), but everything up to the matching close stays on this line.
    pub fn open_inline(&mut self, name: impl Into<Cow<'static, str>>, attrs: &[(&str, Option<&str>)]) -> &mut Self {
        self.open(name, attrs);
        self.inline_from = self.inline_from.min(self.open.len());
        if let Some(open) = self.open.last_mut() {
            open.inline = true;
        }
        self
    }

    /// `<name a="v"…/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, Option<&str>)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    /// Closes the innermost open element (`name` must match it).
    pub fn close(&mut self, name: &str) -> &mut Self {
        let Some(open) = self.open.pop() else { return self };
        debug_assert_eq!(open.name, name, "close() must match the innermost open()");
        if self.open.len() < self.inline_from {
            self.inline_from = usize::MAX;
        }
        if open.has_children && !open.inline {
            self.line_break(self.open.len());
        }
        self.out.push_str("</");
        self.out.push_str(&open.name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>` with the text escaped, on one line.
    pub fn text_element(&mut self, name: &str, text: &str) -> &mut Self {
        self.start(name, &[]);
        self.out.push('>');
        escape_text(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Escaped character data inside the current element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        escape_text(&mut self.out, text);
        self
    }

    /// Appends a fragment rendered by another writer for this position.
    pub fn fragment(&mut self, fragment: &Fragment) -> &mut Self {
        if !fragment.is_empty() {
            if let Some(parent) = self.open.last_mut() {
                parent.has_children = true;
            }
            self.wrote_any = true;
        }
        self.out.push_str(fragment.as_str());
        self
    }

    /// Makes room for `additional` more bytes at once (fragments of a known total length).
    pub fn reserve_exact(&mut self, additional: usize) {
        self.out.reserve_exact(additional);
    }

    pub fn finish(self) -> String {
        self.out
    }

    pub fn finish_fragment(self) -> Fragment {
        Fragment(self.out.into_boxed_str())
    }

    fn in_inline_region(&self) -> bool {
        self.open.len() >= self.inline_from
    }

    fn line_break(&mut self, level: usize) {
        self.out.push('\n');
        for _ in 0..self.base + level {
            self.out.push_str("  ");
        }
    }

    fn start(&mut self, name: &str, attrs: &[(&str, Option<&str>)]) {
        let inline = self.in_inline_region();
        if let Some(parent) = self.open.last_mut() {
            parent.has_children = true;
        }
        if !inline && (self.wrote_any || self.base > 0) {
            self.line_break(self.open.len());
        }
        self.wrote_any = true;
        self.out.push('<');
        self.out.push_str(name);
        self.push_attrs(attrs);
    }

    fn push_attrs(&mut self, attrs: &[(&str, Option<&str>)]) {
        for (key, value) in attrs {
            if let Some(value) = value {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_attr(&mut self.out, value);
                self.out.push('"');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = String::new();
        escape_text(&mut out, s);
        out
    }

    fn attr(s: &str) -> String {
        let mut out = String::new();
        escape_attr(&mut out, s);
        out
    }

    #[test]
    fn escapes_text_and_attributes() {
        let mut w = XmlWriter::new();
        w.open("a", &[("x", Some("1\"<2")), ("skip", None)]).text("a&b<c").close("a");
        assert_eq!(w.finish(), r#"<a x="1&quot;&lt;2">a&amp;b&lt;c</a>"#);
        assert_eq!(text("it's \"x\" ]]> a\tb\nc\rd"), "it's \"x\" ]]&gt; a\tb\nc&#13;d");
        assert_eq!(attr("a\tb\nc\rd'"), "a&#9;b&#10;c&#13;d'");
    }

    #[test]
    fn characters_xml_forbids_become_the_replacement_character() {
        let forbidden = ['\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{E}', '\u{1F}', '\u{FFFE}', '\u{FFFF}'];
        for c in forbidden {
            assert!(!is_xml_char(c), "{c:?}");
            assert_eq!(text(&format!("a{c}b")), "a\u{FFFD}b", "{c:?}");
            assert_eq!(attr(&format!("{c}")), "\u{FFFD}", "{c:?}");
        }
        for c in ['\t', '\n', '\r', ' ', '\u{7F}', '\u{85}', '\u{D7FF}', '\u{E000}', '\u{FFFD}', '\u{10000}', '\u{10FFFF}'] {
            assert!(is_xml_char(c), "{c:?}");
        }
        assert_eq!(text("é😀"), "é😀");
    }

    #[test]
    fn element_content_is_indented_and_text_stays_on_its_line() {
        let mut w = XmlWriter::new();
        w.open("a", &[]).open("b", &[]).text_element("c", "x").empty("d", &[]).close("b");
        w.open_inline("e", &[]).open("f", &[]).empty("g", &[]).close("f").close("e").empty("h", &[]).close("a");
        assert_eq!(w.finish(), "<a>\n  <b>\n    <c>x</c>\n    <d/>\n  </b>\n  <e><f><g/></f></e>\n  <h/>\n</a>");
    }

    #[test]
    fn fragments_are_written_for_their_depth() {
        let mut inner = XmlWriter::at_depth(1);
        inner.open("b", &[]).empty("c", &[]).close("b");
        let inner = inner.finish_fragment();
        let mut w = XmlWriter::new();
        w.open("a", &[]).fragment(&inner).close("a");
        assert_eq!(w.finish(), "<a>\n  <b>\n    <c/>\n  </b>\n</a>");
    }
}
