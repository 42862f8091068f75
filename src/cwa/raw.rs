//! Raw categories on the wire (README, "Raw categories"): `publishRawCategories` read into the
//! model's [`RawCategory`], its XML content checked and written in one canonical form, and the
//! `rawCategory` element every raw category — published ones and the gateway's own telephony —
//! is rendered as. Content is read back through the XML parser and written through the one
//! writer, so stored content can never put anything but XML on the wire.

use super::writer::XmlWriter;
use super::xml::{self, Element, XmlLimits};
use super::NS_CWA;
use crate::error::GatewayError;
use crate::model::raw::{RawCategory, MAX_CONTENT_BYTES, MAX_PER_USER};
use crate::model::rights::AccessLevel;

const EXPIRE_TYPES: &[&str] = &["static", "user", "endpoint", "time"];

/// Reads the `rawCategory` children of a `publishRawCategories`.
pub fn parse_publish(method: &Element) -> Result<Vec<RawCategory>, GatewayError> {
    let categories: Vec<&Element> = method.children_named("rawCategory").collect();
    if categories.is_empty() {
        return Err(GatewayError::InvalidFormat("publishRawCategories needs at least one rawCategory".into()));
    }
    if categories.len() > MAX_PER_USER {
        return Err(GatewayError::LimitExceeded(format!("at most {MAX_PER_USER} raw categories per user")));
    }
    categories.into_iter().map(parse_category).collect()
}

fn parse_category(category: &Element) -> Result<RawCategory, GatewayError> {
    let invalid = |text: String| GatewayError::InvalidFormat(text);
    let name = category.attr("name").unwrap_or("");
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(invalid("rawCategory@name must be 1–64 letters, digits, '.', '_' or '-'".into()));
    }
    let namespace = category.attr("nameSpace").unwrap_or("").trim();
    if namespace.is_empty() || namespace.len() > 256 || namespace == NS_CWA {
        return Err(invalid("rawCategory@nameSpace must name the category's own namespace".into()));
    }
    let instance = match category.attr("instanceMask") {
        None => 0,
        Some(text) => text.trim().parse().map_err(|_| invalid("rawCategory@instanceMask must be a number".into()))?,
    };
    let container = category.attr("container").unwrap_or("");
    let level = container
        .trim()
        .parse()
        .ok()
        .and_then(AccessLevel::from_container_id)
        .filter(|l| *l != AccessLevel::Blocked)
        .ok_or_else(|| GatewayError::InvalidRequest("rawCategory@container must be 100, 200, 300 or 400".into()))?;
    let expire_type = category.attr("expireType").unwrap_or("user");
    if !EXPIRE_TYPES.contains(&expire_type) {
        return Err(invalid("rawCategory@expireType must be static, user, endpoint or time".into()));
    }
    let content = canonical_content(category)?;
    if content.len() > MAX_CONTENT_BYTES {
        return Err(GatewayError::LimitExceeded(format!("a raw category holds at most {MAX_CONTENT_BYTES} bytes")));
    }
    Ok(RawCategory {
        name: name.to_string(),
        namespace: namespace.to_string(),
        instance,
        level,
        expire_type: expire_type.to_string(),
        content,
    })
}

/// The content of a `rawCategory` as stored: its elements written on one line. Each element must
/// be in a namespace of its own (declared with `xmlns=`); an element holds text or elements, not
/// both; whitespace between elements is not kept. No elements = an empty string (withdrawn).
fn canonical_content(category: &Element) -> Result<String, GatewayError> {
    if !category.text.trim().is_empty() {
        return Err(GatewayError::InvalidFormat("rawCategory holds elements, not text".into()));
    }
    let mut w = XmlWriter::inline();
    for element in &category.children {
        if element.namespace.as_deref().is_none_or(|ns| ns == NS_CWA) {
            return Err(GatewayError::InvalidFormat(format!(
                "the content of rawCategory {} must be in its own namespace (xmlns=\"…\")",
                category.attr("name").unwrap_or("")
            )));
        }
        check_content(element)?;
        write_element(&mut w, element, Some(NS_CWA), true);
    }
    Ok(w.finish())
}

fn check_content(element: &Element) -> Result<(), GatewayError> {
    if !element.children.is_empty() && !element.text.trim().is_empty() {
        return Err(GatewayError::InvalidFormat(format!(
            "{} mixes text and elements, which raw categories do not keep",
            element.name
        )));
    }
    element.children.iter().try_for_each(check_content)
}

/// Writes an element with its namespace declared where it differs from its parent's; a `top`
/// element starts its line and keeps everything in it on that line.
fn write_element(w: &mut XmlWriter, element: &Element, parent_ns: Option<&str>, top: bool) {
    let ns = element.namespace.as_deref();
    let mut attrs: Vec<(&str, Option<&str>)> = Vec::with_capacity(element.attrs.len() + 1);
    if ns != parent_ns {
        attrs.push(("xmlns", Some(ns.unwrap_or(""))));
    }
    attrs.extend(element.attrs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))));
    if element.children.is_empty() && element.text.is_empty() {
        w.empty(&element.name, &attrs);
        return;
    }
    if top {
        w.open_inline(element.name.clone(), &attrs);
    } else {
        w.open(element.name.clone(), &attrs);
    }
    if element.children.is_empty() {
        w.text(&element.text);
    }
    for child in &element.children {
        write_element(w, child, ns, false);
    }
    w.close(&element.name);
}

/// Stored content read back into elements (`None` if it is not XML any more).
fn content_elements(content: &str) -> Option<Vec<Element>> {
    let limits = XmlLimits { max_depth: 32, ..XmlLimits::default() };
    let wrapper = xml::parse(&format!("<content xmlns=\"{NS_CWA}\">{content}</content>"), limits).ok()?;
    Some(wrapper.children)
}

/// `<rawCategory name nameSpace instanceMask container version expireType>` with the content on
/// one line under it. Content that no longer parses is left out (never written raw).
pub fn render(w: &mut XmlWriter, category: &RawCategory) {
    let Some(elements) = content_elements(&category.content) else {
        tracing::warn!(name = %category.name, "a stored raw category is not XML; left out");
        return;
    };
    render_elements(w, category, &elements);
}

/// The `rawCategory` element around already-built content (the gateway's own categories).
pub fn render_elements(w: &mut XmlWriter, category: &RawCategory, content: &[Element]) {
    let (instance, container) = (category.instance.to_string(), category.level.container_id().to_string());
    let attrs = [
        ("name", Some(category.name.as_str())),
        ("nameSpace", Some(category.namespace.as_str())),
        ("instanceMask", Some(instance.as_str())),
        ("container", Some(container.as_str())),
        ("version", Some("1")),
        ("expireType", Some(category.expire_type.as_str())),
    ];
    w.open("rawCategory", &attrs);
    for element in content {
        write_element(w, element, Some(NS_CWA), true);
    }
    w.close("rawCategory");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(body: &str) -> Result<Vec<RawCategory>, GatewayError> {
        let doc = format!("<publishRawCategories xmlns=\"{NS_CWA}\" rid=\"1\">{body}</publishRawCategories>");
        parse_publish(&xml::parse(&doc, XmlLimits::default()).unwrap())
    }

    #[test]
    fn content_round_trips_exactly_through_the_escaping_rules() {
        let text = "a &amp; b &lt;c&gt; \"q\" 'a' ]]&gt; tab\tcr&#13;lf\n😀";
        let body = format!(
            r#"<rawCategory name="GPSPosition" nameSpace="urn:gps" container="200"><pos xmlns="urn:gps" lat="48.1&#9;&#10;&quot;"><note>{text}</note><empty/></pos></rawCategory>"#
        );
        let published = publish(&body).unwrap();
        let mut w = XmlWriter::new();
        render(&mut w, &published[0]);
        let doc = reparse(&w.finish());
        let pos = doc.children.iter().find(|e| e.name == "pos").unwrap();
        assert_eq!(pos.namespace.as_deref(), Some("urn:gps"));
        assert_eq!(pos.attr("lat"), Some("48.1\t\n\""));
        assert_eq!(pos.child("note").unwrap().text, "a & b <c> \"q\" 'a' ]]> tab\tcr\rlf\n😀");
        assert!(pos.child("empty").is_some());
        assert_eq!(published[0].level, AccessLevel::Company);
    }

    fn reparse(xml: &str) -> Element {
        xml::parse(xml, XmlLimits::default()).unwrap()
    }

    #[test]
    fn bad_publications_are_refused() {
        let cat = |attrs: &str, content: &str| publish(&format!("<rawCategory {attrs}>{content}</rawCategory>"));
        let good = r#"name="x" nameSpace="urn:x" container="200""#;
        assert!(cat(good, r#"<a xmlns="urn:x"/>"#).is_ok());
        assert!(matches!(cat(good, "<a/>"), Err(GatewayError::InvalidFormat(_))), "CWA namespace");
        assert!(matches!(cat(good, "text"), Err(GatewayError::InvalidFormat(_))));
        assert!(matches!(cat(good, r#"<a xmlns="urn:x">t<b/></a>"#), Err(GatewayError::InvalidFormat(_))));
        assert!(matches!(cat(r#"name="x" nameSpace="urn:x" container="32000""#, ""), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(cat(r#"name="x" nameSpace="urn:x""#, ""), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(cat(r#"name="a b" nameSpace="urn:x" container="100""#, ""), Err(GatewayError::InvalidFormat(_))));
        let big = format!(r#"<a xmlns="urn:x">{}</a>"#, "x".repeat(MAX_CONTENT_BYTES));
        assert!(matches!(cat(good, &big), Err(GatewayError::LimitExceeded(_))));
        assert!(cat(good, "").unwrap()[0].content.is_empty(), "no content withdraws");
    }
}
