//! The one rule for text that comes in from outside (notes, status texts, names, directory fields,
//! search criteria…): every character must be one XML 1.0 allows, so that no input can break a
//! watcher's `cwaEvents` stream. XML 1.0 allows tab, line feed, carriage return, U+0020–U+D7FF,
//! U+E000–U+FFFD and U+10000 upward; in a Rust string (never a lone surrogate) that leaves
//! U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+FFFE and U+FFFF to refuse. Every input path —
//! JSON bodies, CWA commands, the users file, `presence-gateway user add` — calls [`check`] (or a
//! helper built on it) and turns a refusal into its own error naming the field (README, "Input
//! text").

use std::fmt;

/// True for a character XML 1.0 allows in text and attribute values.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A text holds a character that XML 1.0 does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForbiddenChar {
    /// The first such character.
    pub ch: char,
    /// Its position, counted in characters from 0.
    pub position: usize,
}

impl fmt::Display for ForbiddenChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "contains U+{:04X} at character {}: control characters other than tab, line feed and carriage return, \
             and U+FFFE/U+FFFF, are not allowed",
            self.ch as u32, self.position
        )
    }
}

impl std::error::Error for ForbiddenChar {}

/// Checks one text; linear in its length.
pub fn check(text: &str) -> Result<(), ForbiddenChar> {
    // Printable ASCII, tab, LF and CR are allowed: most texts are nothing else.
    if printable_ascii(text.as_bytes()) || text.bytes().all(|b| is_printable(b) || matches!(b, b'\t' | b'\n' | b'\r')) {
        return Ok(());
    }
    match text.chars().enumerate().find(|(_, c)| !is_xml_char(*c)) {
        None => Ok(()),
        Some((position, ch)) => Err(ForbiddenChar { ch, position }),
    }
}

fn is_printable(byte: u8) -> bool {
    (0x20..0x80).contains(&byte)
}

/// Whether every byte is printable ASCII (0x20–0x7F), read eight at a time and without stopping
/// early, so that the compiler can run it over wide registers: a byte below 0x20 or from 0x80 up
/// marks its word. (Texts with tabs or line breaks go on to the byte-wise check.)
fn printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    let marked = words.fold(0, |marked, word| {
        let word = u64::from_ne_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        // A byte below 0x20 borrows into its top bit; one from 0x80 up has it set already.
        marked | ((word.wrapping_sub(ONES * 0x20) & !word) | word) & TOPS
    });
    marked == 0 && tail.iter().all(|&b| is_printable(b))
}

/// A refused field: its name (`display_name`, `phones.work`, `note.text`…) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: ForbiddenChar,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.problem)
    }
}

impl std::error::Error for FieldError {}

/// Checks a named field.
pub fn check_field(field: &str, text: &str) -> Result<(), FieldError> {
    check(text).map_err(|problem| FieldError { field: field.to_string(), problem })
}

/// Checks a list of named, optional fields in order; the first refusal wins.
pub fn check_fields<'a>(fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Result<(), FieldError> {
    fields.into_iter().filter_map(|(name, text)| text.map(|t| (name, t))).try_for_each(|(name, text)| check_field(name, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_what_xml_allows() {
        for text in ["", "Lunch", "tab\there", "two\r\nlines", "Zoë 東京 🚀", "\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}"]
        {
            assert_eq!(check(text), Ok(()), "{text:?}");
        }
    }

    #[test]
    fn refuses_every_character_xml_forbids() {
        let forbidden = (0u32..0x20).filter(|c| ![9, 10, 13].contains(c)).chain([0xFFFE, 0xFFFF]);
        for code in forbidden {
            let ch = char::from_u32(code).unwrap();
            let text = format!("ab{ch}c");
            assert_eq!(check(&text), Err(ForbiddenChar { ch, position: 2 }), "U+{code:04X}");
        }
    }

    proptest::proptest! {
        /// The word-wise pass says "printable ASCII" exactly when every byte is.
        #[test]
        fn printable_ascii_is_every_byte_printable(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                                                   fill in 0u8..4) {
            let mut bytes = bytes;
            // Mostly printable texts with a few others, so that both answers come up often.
            for (i, b) in bytes.iter_mut().enumerate() {
                if !(i as u8 + fill).is_multiple_of(4) { *b = 0x20 + *b % 0x60; }
            }
            proptest::prop_assert_eq!(printable_ascii(&bytes), bytes.iter().all(|&b| is_printable(b)));
        }
    }

    #[test]
    fn printable_ascii_marks_each_edge_in_each_place() {
        for edge in [0x00, 0x09, 0x1F, 0x80, 0xFF] {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = edge;
                assert!(!printable_ascii(&bytes), "{edge:#x} at {at}");
            }
        }
        assert!(printable_ascii(&[0x20, 0x7F, 0x41, 0x7E, 0x20, 0x20, 0x20, 0x7F, 0x30]));
    }

    #[test]
    fn names_the_field_and_the_character() {
        let error = check_fields([("title", Some("ok")), ("company", None), ("phones.work", Some("12\u{1}3"))]).unwrap_err();
        assert_eq!(error.field, "phones.work");
        assert_eq!(error.problem, ForbiddenChar { ch: '\u{1}', position: 2 });
        assert!(error.to_string().starts_with("phones.work contains U+0001 at character 2"), "{error}");
    }
}
