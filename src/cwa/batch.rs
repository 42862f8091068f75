//! The command channel's `cwaRequests` body read in one pass: the XML reader's events go straight
//! into typed requests, with the answers, errors and limits of the tree-based reading
//! (`xml::parse`, then `requests::parse_batch`), which stays the reference this one is tested and
//! fuzzed against. The methods that carry many URIs (`queryPresence`, `subscribePresence`,
//! `unSubscribePresence`) are read without a tree when they are usable; any other method, and one
//! of those with anything to refuse, is read as a tree of its own element (a refused one from its
//! bytes again, so every method is read at most twice: still linear).

use super::requests::{method_of, read_uris, Parsed, Request, RequestBatch, UriList};
use super::xml::{self, Handler, TreeBuilder, XmlLimits};
use super::NS_CWA;
use crate::error::GatewayError;
use crate::model::text;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// Reads a `cwaRequests` body as `requests::parse_batch(&xml::parse(input, limits)?, max_uris)`
/// does, with the XML reader's errors as `InvalidFormat` (as the command channel reports them).
pub fn read_batch(input: &str, limits: XmlLimits, max_uris: usize) -> Result<RequestBatch, GatewayError> {
    let mut reader = BatchReader {
        input,
        limits,
        max_uris,
        depth: 0,
        root_is_batch: false,
        sid: None,
        namespace: None,
        requests: Vec::new(),
        unexpected: 0,
        method: Method::None,
    };
    xml::read(input, limits, &mut reader).map_err(|e| GatewayError::InvalidFormat(e.to_string()))?;
    reader.finish()
}

struct BatchReader<'i> {
    input: &'i str,
    limits: XmlLimits,
    max_uris: usize,
    /// Elements open now (the root is 1, a method 2).
    depth: usize,
    root_is_batch: bool,
    /// The root's first `sid` attribute.
    sid: Option<String>,
    /// The root's namespace.
    namespace: Option<Arc<str>>,
    requests: Vec<Parsed>,
    unexpected: usize,
    method: Method,
}

/// The method element being read.
enum Method {
    /// Between methods, or under a root that is not `cwaRequests`.
    None,
    Tree(TreeBuilder),
    Uris(UrisMethod),
}

/// A method of URIs read without a tree, `uris/uri` as `requests::parse_uris` reads them.
struct UrisMethod {
    kind: UrisKind,
    /// Where its start tag begins in the input.
    at: usize,
    /// Its first `rid` attribute.
    rid: Option<String>,
    /// Some attribute value or text in it breaks the input text rule.
    refused: bool,
    /// Its first `uris` child has started (and `uris_open` while it is open).
    uris_seen: bool,
    uris_open: bool,
    /// A `uri` child of that `uris` is open.
    uri_open: bool,
    /// The text of each `uri`, one after the other in `texts`.
    texts: String,
    spans: Vec<Range<usize>>,
}

#[derive(Clone, Copy)]
enum UrisKind {
    Query,
    Subscribe,
    Unsubscribe,
}

impl UrisKind {
    fn of(name: &str) -> Option<UrisKind> {
        match name {
            "queryPresence" => Some(UrisKind::Query),
            "subscribePresence" => Some(UrisKind::Subscribe),
            "unSubscribePresence" | "unsubscribePresence" => Some(UrisKind::Unsubscribe),
            _ => None,
        }
    }

    fn request(self, uris: UriList) -> Request {
        match self {
            UrisKind::Query => Request::QueryPresence(uris),
            UrisKind::Subscribe => Request::SubscribePresence(uris),
            UrisKind::Unsubscribe => Request::UnsubscribePresence(uris),
        }
    }
}

/// Room reserved for the `uri` texts of a method: at most what is left of the body (texts are
/// never longer than their markup), and at most this, so that one method reserves little however
/// long the body is; longer texts grow the buffer.
const MAX_RESERVED_TEXT: usize = 4096;
/// `<uri>x</uri>`: a method has no more `uri` texts than what is left of the body over this.
const SHORTEST_URI_ELEMENT: usize = 12;

/// The depths of a method's `uris` child and of a `uri` in it.
const URIS_DEPTH: usize = 3;
const URI_DEPTH: usize = 4;

impl UrisMethod {
    fn open(&mut self, name: &str, depth: usize) {
        if depth == URIS_DEPTH && name == "uris" && !self.uris_seen {
            (self.uris_seen, self.uris_open) = (true, true);
        } else if depth == URI_DEPTH && self.uris_open && name == "uri" {
            self.uri_open = true;
            self.spans.push(self.texts.len()..self.texts.len());
        }
    }

    fn attribute(&mut self, name: &str, value: Cow<'_, str>, depth: usize) {
        self.refused |= text::check(&value).is_err();
        if depth == 2 && name == "rid" && self.rid.is_none() {
            self.rid = Some(value.into_owned());
        }
    }

    fn text(&mut self, text: &str, depth: usize) {
        self.refused |= text::check(text).is_err();
        if depth == URI_DEPTH && self.uri_open {
            self.texts.push_str(text);
            if let Some(span) = self.spans.last_mut() {
                span.end = self.texts.len();
            }
        }
    }

    fn close(&mut self, depth: usize) {
        match depth {
            URI_DEPTH => self.uri_open = false,
            URIS_DEPTH => self.uris_open = false,
            _ => {}
        }
    }

    /// The request, when it is usable as read; `None` sends it through the tree.
    fn request(&self, max_uris: usize) -> Option<Parsed> {
        let rid = self.rid.as_ref().filter(|_| !self.refused && self.uris_seen)?;
        let uris = read_uris(self.spans.iter().map(|span| &self.texts[span.clone()]), max_uris).ok()?;
        Some(Parsed::Ok { rid: rid.clone(), request: self.kind.request(uris) })
    }
}

impl BatchReader<'_> {
    /// The bytes of the body from `at` on.
    fn left_after(&self, at: usize) -> usize {
        self.input.len().saturating_sub(at)
    }

    fn finish(self) -> Result<RequestBatch, GatewayError> {
        if !self.root_is_batch {
            return Err(GatewayError::InvalidFormat("the root element must be cwaRequests".into()));
        }
        let sid = match self.sid {
            None => None,
            Some(s) => Some(s.trim().parse::<u64>().map_err(|_| GatewayError::InvalidFormat("sid must be an integer".into()))?),
        };
        let unexpected = self.unexpected + usize::from(self.namespace.as_deref() != Some(NS_CWA));
        Ok(RequestBatch { sid, requests: self.requests, unexpected_elements: unexpected })
    }

    fn push_method(&mut self, method: &xml::Element) {
        let (parsed, unexpected) = method_of(method, self.max_uris);
        self.requests.push(parsed);
        self.unexpected += usize::from(unexpected);
    }

    /// A method read to its end (`after`: the offset just past it).
    fn end_method(&mut self, after: usize) {
        match std::mem::replace(&mut self.method, Method::None) {
            Method::None => {}
            Method::Tree(tree) => {
                if let Some(method) = tree.root {
                    self.push_method(&method);
                }
            }
            Method::Uris(uris) => match uris.request(self.max_uris) {
                Some(parsed) => self.requests.push(parsed),
                None => {
                    // The bytes were read without a fault once, within the limits: a tree of them is too.
                    let element = &self.input[uris.at..after];
                    match xml::parse_element(element, self.limits, self.namespace.clone()) {
                        Ok(method) => self.push_method(&method),
                        Err(_) => unreachable_parse(),
                    }
                }
            },
        }
    }
}

/// Reading an element's bytes again cannot fail where reading them the first time did not; were
/// it to, the method would be left out rather than the reader panic.
fn unreachable_parse() {
    debug_assert!(false, "a method's bytes read differently the second time");
}

impl Handler for BatchReader<'_> {
    fn open(&mut self, name: &str, at: usize) {
        self.depth += 1;
        match self.depth {
            1 => self.root_is_batch = name == "cwaRequests",
            2 if self.root_is_batch => {
                self.method = match UrisKind::of(name) {
                    Some(kind) => Method::Uris(UrisMethod {
                        kind,
                        at,
                        rid: None,
                        refused: false,
                        uris_seen: false,
                        uris_open: false,
                        uri_open: false,
                        texts: String::with_capacity(self.left_after(at).min(MAX_RESERVED_TEXT)),
                        spans: Vec::with_capacity((self.left_after(at) / SHORTEST_URI_ELEMENT).min(self.max_uris)),
                    }),
                    None => Method::Tree(TreeBuilder::new(self.namespace.clone())),
                };
                if let Method::Tree(tree) = &mut self.method {
                    tree.open(name, at);
                }
            }
            depth => match &mut self.method {
                Method::None => {}
                Method::Tree(tree) => tree.open(name, at),
                Method::Uris(uris) => uris.open(name, depth),
            },
        }
    }

    fn namespace(&mut self, namespace: Cow<'_, str>) {
        match &mut self.method {
            Method::None if self.depth == 1 => self.namespace = Some(namespace.into()),
            Method::Tree(tree) => tree.namespace(namespace),
            Method::None | Method::Uris(_) => {}
        }
    }

    fn attribute(&mut self, name: &str, value: Cow<'_, str>) {
        match &mut self.method {
            Method::None if self.depth == 1 && name == "sid" && self.sid.is_none() => self.sid = Some(value.into_owned()),
            Method::None => {}
            Method::Tree(tree) => tree.attribute(name, value),
            Method::Uris(uris) => uris.attribute(name, value, self.depth),
        }
    }

    fn text(&mut self, text: &str) {
        match &mut self.method {
            Method::None => {}
            Method::Tree(tree) => tree.text(text),
            Method::Uris(uris) => uris.text(text, self.depth),
        }
    }

    fn close(&mut self, after: usize) {
        match &mut self.method {
            Method::None => {}
            Method::Tree(tree) => tree.close(after),
            Method::Uris(uris) => uris.close(self.depth),
        }
        if self.depth == 2 {
            self.end_method(after);
        }
        self.depth -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cwa::requests::parse_batch;
    use proptest::prelude::*;

    /// The tree-based reading this one must agree with.
    fn reference(input: &str, limits: XmlLimits, max_uris: usize) -> Result<RequestBatch, GatewayError> {
        let root = xml::parse_general(input, limits).map_err(|e| GatewayError::InvalidFormat(e.to_string()))?;
        parse_batch(&root, max_uris)
    }

    fn agree(input: &str, limits: XmlLimits, max_uris: usize) {
        assert_eq!(read_batch(input, limits, max_uris), reference(input, limits, max_uris), "{input}");
    }

    fn doc(methods: &str) -> String {
        format!(r#"<?xml version="1.0"?><cwaRequests sid="3" xmlns="{NS_CWA}">{methods}</cwaRequests>"#)
    }

    #[test]
    fn reads_a_query_without_a_tree_as_the_tree_does() {
        let uris = "<uri>sip:A@x.org</uri><uri> sip:b@x.org </uri><uri>sip:a@x.org</uri>";
        let input = doc(&format!(r#"<queryPresence rid="4"><uris>{uris}</uris></queryPresence>"#));
        let batch = read_batch(&input, XmlLimits::default(), 650).unwrap();
        let expected = Request::QueryPresence(["sip:a@x.org", "sip:b@x.org"].into_iter().collect());
        assert_eq!(batch.requests, [Parsed::Ok { rid: "4".into(), request: expected }]);
        assert_eq!((batch.sid, batch.unexpected_elements), (Some(3), 0));
        agree(&input, XmlLimits::default(), 650);
    }

    #[test]
    fn methods_of_uris_with_anything_to_refuse_answer_as_the_tree_does() {
        let cases = [
            r#"<queryPresence><uris><uri>sip:a@x</uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1"/>"#,
            r#"<queryPresence rid="1"><uris/></queryPresence>"#,
            r#"<queryPresence rid="1"><uri>sip:a@x</uri></queryPresence>"#,
            r#"<queryPresence rid="1"><uris><uri>nonsense</uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1"><uris><uri>sip:a@x</uri><uri>sip:b@x</uri><uri>sip:c@x</uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1&#1;"><uris><uri>sip:a@x</uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1"><uris><uri>sip:a@x</uri></uris>tail&#7;</queryPresence>"#,
            r#"<queryPresence rid="1" note="&#xFFFF;"><uris><uri>sip:a@x</uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1"><uris><uri>sip:a@x<b>&#2;</b></uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1"><other x="&#3;"/><uris><uri>sip:a@x</uri></uris></queryPresence>"#,
            r#"<queryPresence a:rid="1" b:rid="2"><uris><uri>sip:a@<![CDATA[x]]></uri><uri>sip:b&amp;c@x</uri></uris></queryPresence>"#,
            r#"<queryPresence rid="1"><uris><uri>sip:a@x<b>sip:c@x</b></uri><other>sip:d@x</other></uris><uris><uri>sip:e@x</uri></uris></queryPresence>"#,
            r#"<subscribePresence rid="2"><uris><uri>sip:a@x</uri></uris></subscribePresence>"#,
            r#"<unSubscribePresence rid="3"><uris><uri>sip:a@x</uri></uris></unSubscribePresence>"#,
            r#"<unsubscribePresence rid="3" xmlns="urn:other"><uris><uri>sip:a@x</uri></uris></unsubscribePresence>"#,
            r#"<terminateSession rid="5"/><bogus rid="6"/><conference rid="7"/><logon rid="8"/>"#,
            r#"<publishSelfPresence rid="9"><cwaCategory name="note"><note><body type="personal">Hi&#1;</body></note></cwaCategory></publishSelfPresence>"#,
            r#"<publishRawCategories rid="10"><rawCategory name="a" nameSpace="urn:a" container="400"><x xmlns="urn:a">1</x></rawCategory></publishRawCategories>"#,
        ];
        for methods in cases {
            agree(&doc(methods), XmlLimits::default(), 2);
        }
        agree(&doc(&cases.concat()), XmlLimits::default(), 2);
    }

    #[test]
    fn envelopes_and_xml_faults_are_refused_as_the_tree_refuses_them() {
        let query = r#"<queryPresence rid="1"><uris><uri>sip:a@x</uri></uris></queryPresence>"#;
        let cases = [
            String::new(),
            "   ".into(),
            "text".into(),
            format!("<other>{query}</other>"),
            format!(r#"<cwaRequests sid="x">{query}</cwaRequests>"#),
            format!(r#"<cwaRequests sid=" 12 ">{query}</cwaRequests>"#),
            format!(r#"<cwaRequests a:sid="1" sid="2">{query}</cwaRequests>"#),
            format!("<cwaRequests>{query}</cwaRequests>"),
            format!("<cwaRequests>{query}</cwaRequests><more/>"),
            format!("<cwaRequests>{query}</cwaRequests>tail"),
            format!("<cwaRequests>{query}"),
            format!("<cwaRequests>{query}</cwaRequest>"),
            format!(r#"<!DOCTYPE x><cwaRequests>{query}</cwaRequests>"#),
            r#"<cwaRequests><queryPresence rid="1" rid="2"><uris/></queryPresence></cwaRequests>"#.into(),
            r#"<cwaRequests><queryPresence rid="1"><uris><uri>&bogus;</uri></uris></queryPresence></cwaRequests>"#.into(),
            format!("<cwaRequests>{}</cwaRequests>", "<a>".repeat(20) + &"</a>".repeat(20)),
            "<cwaRequests/>".into(),
            format!("<cwaRequests xmlns=\"{NS_CWA}\"/>"),
        ];
        for input in &cases {
            agree(input, XmlLimits::default(), 650);
        }
        let attrs: String = (0..40).map(|i| format!(" a{i}=\"\"")).collect();
        agree(&doc(&format!(r#"<queryPresence rid="1"{attrs}/>"#)), XmlLimits::default(), 650);
        let dup: String = (0..12).map(|i| format!(" a{i}=\"\"")).collect::<String>() + " a3=\"\"";
        agree(&doc(&format!(r#"<queryPresence rid="1"{dup}/>"#)), XmlLimits::default(), 650);
        let small = XmlLimits { max_depth: 4, max_elements: 6, ..XmlLimits::default() };
        agree(&doc(&format!("{query}{query}")), small, 650);
        agree(&doc(r#"<queryPresence rid="1"><uris><uri><b/></uri></uris></queryPresence>"#), small, 650);
    }

    /// Pieces of documents: mostly what a method of URIs holds, and what may be wrong with it.
    const URI_PIECES: &[&str] = &[
        "<uri>sip:a@x.org</uri>",
        "<uri> SIP:A@X.org </uri>",
        "<uri>sip:b@x.org</uri>",
        "<uri>b@x.org</uri>",
        "<uri>sip:a@<![CDATA[x.org]]></uri>",
        "<uri>sip:c&amp;d@x</uri>",
        "<uri>sip:e&#1;@x</uri>",
        "<uri>sip:f@x<b>sip:g@x</b></uri>",
        "<uri/>",
        "<uri a=\"&#xFFFE;\">sip:h@x</uri>",
        "<other>sip:i@x</other>",
        "text",
        "&#7;",
        " ",
        "<uri>sip:j@x</b>",
    ];
    const METHOD_PIECES: &[&str] = &["<uris/>", "<other/>", "<other>&#8;</other>", " ", "x", "<uri>sip:k@x</uri>"];
    const NAMES: &[&str] =
        &["queryPresence", "subscribePresence", "unSubscribePresence", "unsubscribePresence", "terminateSession", "bogus"];
    const ATTRS: &[&str] = &[
        "",
        " rid=\"1\"",
        " rid=\"r&amp;2\"",
        " p:rid=\"3\" q:rid=\"4\"",
        " rid=\"&#1;\"",
        " xmlns=\"urn:x\" rid=\"5\"",
        " rid='6' rid='7'",
    ];
    const TAILS: &[&str] = &["", "", "", " ", "<x/>", "tail", "<!-- c -->"];

    fn method() -> impl Strategy<Value = String> {
        let uris =
            prop::collection::vec(prop::sample::select(URI_PIECES), 0..6).prop_map(|p| format!("<uris>{}</uris>", p.concat()));
        let child = prop_oneof![3 => uris, 1 => prop::sample::select(METHOD_PIECES).prop_map(str::to_string)];
        (prop::sample::select(NAMES), prop::sample::select(ATTRS), prop::collection::vec(child, 0..3))
            .prop_map(|(name, attrs, children)| format!("<{name}{attrs}>{}</{name}>", children.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn the_one_pass_reading_agrees_with_the_tree(
            root_attrs in prop::sample::select(&[" sid=\"3\"", "", " sid=\"x\"", " xmlns=\"http://schemas.microsoft.com/2006/09/rtc/cwa\" sid=\"4\""][..]),
            methods in prop::collection::vec(method(), 0..4),
            tail in prop::sample::select(TAILS),
            max_uris in 1usize..5,
            max_elements in 4usize..40,
        ) {
            let input = format!("<cwaRequests{root_attrs}>{}</cwaRequests>{tail}", methods.concat());
            let limits = XmlLimits { max_depth: 5, max_elements, ..XmlLimits::default() };
            prop_assert_eq!(read_batch(&input, limits, max_uris), reference(&input, limits, max_uris), "{}", input);
        }
    }
}
