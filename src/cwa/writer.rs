//! A minimal XML writer over a `String`: elements, attributes and escaped text. Rendering code
//! builds bodies with it so every value is escaped in exactly one place.

use quick_xml::escape::escape;

#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
}

/// ` a="v" b="w"`: escaped attributes for a pre-rendered element head.
pub fn attributes(attrs: &[(&str, Option<&str>)]) -> String {
    let mut w = XmlWriter { out: String::new() };
    w.push_attrs(attrs);
    w.out
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter { out: String::with_capacity(512) }
    }

    /// `<name a="v"…>`; `None` attribute values are left out.
    pub fn open(&mut self, name: &str, attrs: &[(&str, Option<&str>)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        self
    }

    /// `<name a="v"…/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, Option<&str>)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>` with the text escaped.
    pub fn text_element(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name, &[]);
        self.text(text);
        self.close(name)
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&escape(text));
        self
    }

    /// Appends already-rendered XML (a shared, pre-escaped body).
    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.out.push_str(xml);
        self
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn start(&mut self, name: &str, attrs: &[(&str, Option<&str>)]) {
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
                self.out.push_str(&escape(*value));
                self.out.push('"');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        let mut w = XmlWriter::new();
        w.open("a", &[("x", Some("1\"<2")), ("skip", None)]).text("a&b<c").empty("b", &[]).close("a");
        assert_eq!(w.finish(), r#"<a x="1&quot;&lt;2">a&amp;b&lt;c<b/></a>"#);
    }
}
