//! A small, bounded XML reader for request bodies: quick-xml events checked and handed to a
//! [`Handler`] — the tree of [`parse`], or the typed requests of `super::batch` read in one pass —
//! with a depth limit, an element-count limit, an attribute-count limit per element, no DTDs and
//! no entities beyond the five predefined ones and character references (so no entity expansion
//! attacks). Every step is linear in the input: duplicate attributes are found with a set, and an
//! element shares its namespace with its parent instead of copying it.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

/// One element: its local name, namespace (`xmlns` in scope), attributes, children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub namespace: Option<Arc<str>>,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// An attribute by local name (prefixes such as `xsi:` are ignored).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Trimmed text of a child element, if present.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the body is not well-formed XML")]
    Malformed,
    #[error("DTDs and entity declarations are not accepted")]
    Dtd,
    #[error("the document nests deeper than {0} elements")]
    TooDeep(usize),
    #[error("the document has more than {0} elements")]
    TooManyElements(usize),
    #[error("the body has no root element")]
    Empty,
    #[error("an element has more than {0} attributes")]
    TooManyAttributes(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct XmlLimits {
    pub max_depth: usize,
    pub max_elements: usize,
    /// Attributes per element (CWA elements have a handful).
    pub max_attributes: usize,
}

/// The attribute limit per element unless configured otherwise.
pub const MAX_ATTRIBUTES: usize = 32;

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits { max_depth: 16, max_elements: 10_000, max_attributes: MAX_ATTRIBUTES }
    }
}

/// What a read does with the document: called in document order for each element (its start,
/// then its namespace declaration and attributes, its text and children, its end). `at` is the
/// byte offset of the element's start tag in the input, `after` the offset just past its end.
pub(crate) trait Handler {
    fn open(&mut self, name: &str, at: usize);
    /// The element's `xmlns` (default namespace) declaration.
    fn namespace(&mut self, namespace: Cow<'_, str>);
    /// An attribute other than a namespace declaration, by local name (prefixes such as `xsi:`
    /// are dropped), its value unescaped.
    fn attribute(&mut self, name: &str, value: Cow<'_, str>);
    /// Text (or CDATA, or a resolved reference) directly inside the innermost open element.
    fn text(&mut self, text: &str);
    fn close(&mut self, after: usize);
}

/// Reads one document into `handler`, checking everything [`parse`] refuses, in the same order: a
/// plain document by one scan of its bytes (`super::plain_xml`), any other by
/// [`read_general`], with the same calls and the same result.
pub(crate) fn read(input: &str, limits: XmlLimits, handler: &mut impl Handler) -> Result<(), XmlError> {
    if super::plain_xml::read(input, limits, handler) {
        return Ok(());
    }
    read_general(input, limits, handler)
}

/// [`read`] through quick-xml's events, for every document: the reference the plain reading
/// agrees with.
pub(crate) fn read_general(input: &str, limits: XmlLimits, handler: &mut impl Handler) -> Result<(), XmlError> {
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut elements, mut root_done) = (0usize, 0usize, false);
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|_| XmlError::Malformed)?;
        match event {
            Event::Start(_) | Event::Empty(_) if root_done => return Err(XmlError::Malformed),
            Event::Start(start) => {
                elements = check_counts(elements, depth + 1, limits)?;
                open_element(&start, at, limits.max_attributes, handler)?;
                depth += 1;
            }
            Event::Empty(start) => {
                elements = check_counts(elements, depth + 1, limits)?;
                open_element(&start, at, limits.max_attributes, handler)?;
                handler.close(reader.buffer_position() as usize);
                root_done = depth == 0;
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).ok_or(XmlError::Malformed)?;
                handler.close(reader.buffer_position() as usize);
                root_done = depth == 0;
            }
            Event::Text(text) => {
                let decoded = text.decode().map_err(|_| XmlError::Malformed)?;
                pass_text(depth, &decoded, handler)?;
            }
            Event::CData(data) => {
                let decoded = data.decode().map_err(|_| XmlError::Malformed)?;
                pass_text(depth, &decoded, handler)?;
            }
            Event::GeneralRef(reference) => {
                let name = reference.decode().map_err(|_| XmlError::Malformed)?;
                let reference = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&reference).map_err(|_| XmlError::Malformed)?;
                pass_text(depth, &resolved, handler)?;
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if depth != 0 {
        return Err(XmlError::Malformed);
    }
    if root_done {
        Ok(())
    } else {
        Err(XmlError::Empty)
    }
}

/// Parses one document into its root element.
pub fn parse(input: &str, limits: XmlLimits) -> Result<Element, XmlError> {
    let mut tree = TreeBuilder::new(None);
    read(input, limits, &mut tree)?;
    tree.root.ok_or(XmlError::Empty)
}

/// [`parse`] by the general reader alone (quick-xml's events), never the plain reading: the
/// reference that tests and fuzzing hold [`parse`] to.
pub fn parse_general(input: &str, limits: XmlLimits) -> Result<Element, XmlError> {
    let mut tree = TreeBuilder::new(None);
    read_general(input, limits, &mut tree)?;
    tree.root.ok_or(XmlError::Empty)
}

/// Parses a fragment of a document that is known to be one well-formed element (such as a span
/// that [`read`] has already accepted) into that element, its namespace `inherited` unless it
/// declares its own.
pub(crate) fn parse_element(input: &str, limits: XmlLimits, inherited: Option<Arc<str>>) -> Result<Element, XmlError> {
    let mut tree = TreeBuilder::new(inherited);
    read(input, limits, &mut tree)?;
    tree.root.ok_or(XmlError::Empty)
}

/// The [`Handler`] that folds a document (or one element of it) into an [`Element`] tree.
pub(crate) struct TreeBuilder {
    stack: Vec<Element>,
    /// The namespace of the element read, before it declares its own.
    inherited: Option<Arc<str>>,
    /// The element once it is read to its end.
    pub root: Option<Element>,
}

impl TreeBuilder {
    pub fn new(inherited: Option<Arc<str>>) -> TreeBuilder {
        TreeBuilder { stack: Vec::new(), inherited, root: None }
    }
}

impl Handler for TreeBuilder {
    fn open(&mut self, name: &str, _: usize) {
        let namespace = self.stack.last().map_or_else(|| self.inherited.clone(), |p| p.namespace.clone());
        self.stack.push(Element { name: name.to_string(), namespace, ..Element::default() });
    }

    fn namespace(&mut self, namespace: Cow<'_, str>) {
        if let Some(element) = self.stack.last_mut() {
            element.namespace = Some(namespace.into());
        }
    }

    fn attribute(&mut self, name: &str, value: Cow<'_, str>) {
        if let Some(element) = self.stack.last_mut() {
            element.attrs.push((name.to_string(), value.into_owned()));
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(element) = self.stack.last_mut() {
            element.text.push_str(text);
        }
    }

    fn close(&mut self, _: usize) {
        let Some(element) = self.stack.pop() else { return };
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
    }
}

fn check_counts(elements: usize, depth: usize, limits: XmlLimits) -> Result<usize, XmlError> {
    if depth > limits.max_depth {
        return Err(XmlError::TooDeep(limits.max_depth));
    }
    if elements + 1 > limits.max_elements {
        return Err(XmlError::TooManyElements(limits.max_elements));
    }
    Ok(elements + 1)
}

/// Text inside an element goes to the handler; outside the root only whitespace is allowed.
fn pass_text(depth: usize, text: &str, handler: &mut impl Handler) -> Result<(), XmlError> {
    match depth {
        0 if text.trim().is_empty() => Ok(()),
        0 => Err(XmlError::Malformed),
        _ => {
            handler.text(text);
            Ok(())
        }
    }
}

/// Up to this many attributes, duplicates are found by comparing with each earlier one; beyond,
/// with a set (the comparisons stay bounded, the set costs an allocation).
const LINEAR_DUPLICATE_CHECK: usize = 8;

/// The attribute names of one start tag so far: compared one by one up to
/// [`LINEAR_DUPLICATE_CHECK`], in a set beyond.
struct SeenKeys<'a> {
    first: [&'a [u8]; LINEAR_DUPLICATE_CHECK],
    count: usize,
    set: HashSet<&'a [u8]>,
}

impl<'a> SeenKeys<'a> {
    /// `false` when `key` was seen before.
    fn insert(&mut self, key: &'a [u8]) -> bool {
        let new = if self.count < LINEAR_DUPLICATE_CHECK {
            let new = !self.first[..self.count].contains(&key);
            if new {
                self.first[self.count] = key;
            }
            new
        } else {
            if self.set.is_empty() {
                self.set.extend(self.first);
            }
            self.set.insert(key)
        };
        self.count += usize::from(new);
        new
    }
}

fn open_element(start: &BytesStart<'_>, at: usize, max_attributes: usize, handler: &mut impl Handler) -> Result<(), XmlError> {
    let name = std::str::from_utf8(start.local_name().into_inner()).map_err(|_| XmlError::Malformed)?;
    handler.open(name, at);
    // quick-xml's own duplicate check compares each attribute with every earlier one (quadratic):
    // it is off, and `SeenKeys` does the same job in linear time, after the count limit.
    let mut seen = SeenKeys { first: [&[]; LINEAR_DUPLICATE_CHECK], count: 0, set: HashSet::new() };
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|_| XmlError::Malformed)?;
        if seen.count == max_attributes {
            return Err(XmlError::TooManyAttributes(max_attributes));
        }
        let key_bytes = attr.key.into_inner();
        if !seen.insert(key_bytes) {
            return Err(XmlError::Malformed);
        }
        let key = std::str::from_utf8(key_bytes).map_err(|_| XmlError::Malformed)?;
        let value = attr.unescape_value().map_err(|_| XmlError::Malformed)?;
        if key == "xmlns" {
            handler.namespace(value);
            continue;
        }
        if key.starts_with("xmlns:") {
            continue;
        }
        let local = key.rsplit_once(':').map(|(_, l)| l).unwrap_or(key);
        handler.attribute(local, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_tree() {
        let doc = r#"<?xml version="1.0"?><cwaRequests sid="3" xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa">
            <queryPresence rid="4"><uris><uri>sip:a@example.com</uri><uri>sip:b&amp;c@x</uri></uris></queryPresence>
        </cwaRequests>"#;
        let root = parse(doc, XmlLimits::default()).unwrap();
        assert_eq!(root.name, "cwaRequests");
        assert_eq!(root.attr("sid"), Some("3"));
        let q = root.child("queryPresence").unwrap();
        assert_eq!(q.namespace.as_deref(), Some("http://schemas.microsoft.com/2006/09/rtc/cwa"));
        let uris: Vec<_> = q.child("uris").unwrap().children_named("uri").map(|u| u.text.as_str()).collect();
        assert_eq!(uris, ["sip:a@example.com", "sip:b&c@x"]);
    }

    #[test]
    fn prefixed_attributes_are_read_by_local_name() {
        let root = parse(
            r#"<state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="machineState"/>"#,
            XmlLimits::default(),
        )
        .unwrap();
        assert_eq!(root.attr("type"), Some("machineState"));
    }

    #[test]
    fn rejects_dtds_entities_and_garbage() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#;
        assert_eq!(parse(bomb, XmlLimits::default()), Err(XmlError::Dtd));
        assert_eq!(parse("<x>&custom;</x>", XmlLimits::default()), Err(XmlError::Malformed));
        assert_eq!(parse("<x><y></x>", XmlLimits::default()), Err(XmlError::Malformed));
        assert_eq!(parse("", XmlLimits::default()), Err(XmlError::Empty));
        assert_eq!(parse("<a/><b/>", XmlLimits::default()), Err(XmlError::Malformed));
        assert_eq!(parse("text", XmlLimits::default()), Err(XmlError::Malformed));
    }

    #[test]
    fn enforces_depth_and_size() {
        let deep = "<a>".repeat(20) + &"</a>".repeat(20);
        assert_eq!(parse(&deep, XmlLimits::default()), Err(XmlError::TooDeep(16)));
        let wide = format!("<a>{}</a>", "<b/>".repeat(50));
        assert_eq!(
            parse(&wide, XmlLimits { max_depth: 4, max_elements: 10, ..XmlLimits::default() }),
            Err(XmlError::TooManyElements(10))
        );
    }

    #[test]
    fn bounds_attributes_and_refuses_duplicates() {
        let attrs = |n: usize| (0..n).map(|i| format!(" a{i}=\"\"")).collect::<String>();
        assert!(parse(&format!("<x{}/>", attrs(MAX_ATTRIBUTES)), XmlLimits::default()).is_ok());
        let many = format!("<cwaRequests{}/>", attrs(26_000));
        assert_eq!(parse(&many, XmlLimits::default()), Err(XmlError::TooManyAttributes(MAX_ATTRIBUTES)));
        assert_eq!(parse(r#"<x a="1" b="2" a="3"/>"#, XmlLimits::default()), Err(XmlError::Malformed));
        assert_eq!(parse(r#"<x><y a="1" a="1"></y></x>"#, XmlLimits::default()), Err(XmlError::Malformed));
    }

    #[test]
    fn children_share_the_namespace_of_their_parent() {
        let root = parse(r#"<a xmlns="urn:x"><b/><c xmlns="urn:y"><d/></c></a>"#, XmlLimits::default()).unwrap();
        assert!(Arc::ptr_eq(root.namespace.as_ref().unwrap(), root.children[0].namespace.as_ref().unwrap()));
        assert_eq!(root.children[1].children[0].namespace.as_deref(), Some("urn:y"));
    }
}
