//! The OpenAPI document against the running server: served without authentication, valid
//! OpenAPI 3.1, every documented operation served (and no other method on its paths), the report
//! kinds those of the model, and real requests and answers valid against the documented schemas —
//! including that the document refuses what the handlers refuse.

mod common;

use common::*;
use presence_gateway::config::{ApiRole, ApiToken, Config};
use presence_gateway::model::reports::KINDS;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const SOURCE_TOKEN: &str = "source-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789";
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn server() -> TestServer {
    let tokens = vec![
        ApiToken { name: "pbx".into(), token: SOURCE_TOKEN.into(), role: ApiRole::Source },
        ApiToken { name: "ops".into(), token: ADMIN_TOKEN.into(), role: ApiRole::Admin },
    ];
    let config = Config { api_tokens: tokens, session_timeout_seconds: 9000, idle_timeout_seconds: 9000, ..test_config() };
    TestServer::start_with(config, USERS).await
}

/// Fetches the document without credentials.
async fn document(server: &TestServer) -> Value {
    let reply = reqwest::get(format!("{}/api/v1/openapi.json", server.base)).await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(reply.headers()["content-type"], "application/json");
    reply.json().await.unwrap()
}

/// Example values for the path parameters.
fn fill(template: &str) -> String {
    template
        .replace("{uri}", "sip:bob@example.com")
        .replace("{owner}", "sip:bob@example.com")
        .replace("{watcher}", "sip:alice@example.com")
        .replace("{source}", "pbx")
        .replace("{sid}", "1")
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    out
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_served_without_authentication_and_is_valid_openapi_3() {
    let server = server().await;
    let doc = document(&server).await;
    let spec = oas3::from_json(doc.to_string()).expect("parses as OpenAPI 3.1");
    assert_eq!(spec.validate_version().unwrap().major, 3);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(schemes, BTreeSet::from(["bearer", "cwaTicket", "cwaTicketCookie"]));
    assert_eq!(
        doc["components"]["securitySchemes"]["cwaTicket"],
        json!({"type": "apiKey", "in": "header", "name": "CWA-Ticket", "description": doc["components"]["securitySchemes"]["cwaTicket"]["description"]})
    );

    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let what = format!("{method} {path}");
        assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()), "duplicate operationId at {what}");
        let in_template: BTreeSet<String> = path.split('{').skip(1).map(|p| p.split('}').next().unwrap().to_string()).collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{what}"))
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(in_template, declared, "path parameters of {what}");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "no success response at {what}");
        let security = op["security"].as_array().unwrap_or_else(|| panic!("no security at {what}"));
        for requirement in security {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains(name.as_str()), "{what} names an unknown scheme {name}");
            }
        }
        if security.iter().any(|r| !r.as_object().unwrap().is_empty()) {
            let unauthorized = &responses["401"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(unauthorized, "#/components/schemas/ApiError", "{what} documents its 401");
        }
    }
    assert!(ids.len() >= 17, "{ids:?}");
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_on_its_paths() {
    let server = server().await;
    let doc = document(&server).await;
    let http = reqwest::Client::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        let url = format!("{}{}", server.base, fill(path));
        for method in METHODS {
            let reply = http.request(method.to_uppercase().parse().unwrap(), &url).send().await.unwrap();
            let status = reply.status().as_u16();
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            let what = format!("{method} {path}");
            match item.get(method) {
                None => assert_eq!(status, 405, "{what} is not documented, so it must not be served"),
                Some(op) if op["security"] == json!([{}]) => assert_eq!(status, 200, "{what}"),
                // Served and guarded: the router's own 404/405 carry no JSON error.
                Some(_) => assert_eq!((status, body["code"].as_str()), (401, Some("unauthenticated")), "{what}"),
            }
        }
    }
}

fn kind_schemas(doc: &Value) -> Vec<(String, Value)> {
    let body = &doc["components"]["schemas"]["SourceReportBody"];
    let mapping = body["discriminator"]["mapping"].as_object().unwrap();
    assert_eq!(body["discriminator"]["propertyName"], "kind");
    let mut out = Vec::new();
    for item in body["oneOf"].as_array().unwrap() {
        let reference = item["$ref"].as_str().unwrap();
        let schema = doc.pointer(reference.strip_prefix('#').unwrap()).unwrap().clone();
        let kinds = schema["properties"]["kind"]["enum"].as_array().unwrap();
        assert_eq!(kinds.len(), 1, "{reference}");
        let kind = kinds[0].as_str().unwrap().to_string();
        assert_eq!(mapping[&kind], reference, "the discriminator maps {kind} to its schema");
        out.push((kind, schema));
    }
    assert_eq!(mapping.len(), out.len());
    out
}

#[tokio::test]
async fn the_documented_report_kinds_are_the_model_kinds() {
    let server = server().await;
    let doc = document(&server).await;
    let kinds: Vec<String> = kind_schemas(&doc).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, KINDS);
    let source = &doc["paths"]["/api/v1/users/{uri}/sources/{source}"]["put"]["requestBody"]["content"]["application/json"];
    assert_eq!(source["schema"]["$ref"], "#/components/schemas/SourceReportBody");
}

/// Validates instances against one schema of the document (the whole document is the root, so
/// its `#/components/...` references resolve).
struct Contract {
    doc: Value,
}

impl Contract {
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = self.doc.clone();
        for (key, value) in schema.as_object().unwrap() {
            root[key] = value.clone();
        }
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
    }

    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        self.validator(schema).iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    fn request_schema(&self, method: &str, template: &str) -> Value {
        self.operation(method, template)["requestBody"]["content"]["application/json"]["schema"].clone()
    }

    /// The answer's status is documented for the operation and its JSON body fits the schema.
    fn check_answer(&self, method: &str, template: &str, status: u16, body: &Value) {
        let what = format!("{method} {template} → {status}");
        let response = &self.operation(method, template)["responses"][status.to_string()];
        assert!(response.is_object(), "{what} is not documented: {body}");
        match response["content"]["application/json"].get("schema") {
            Some(schema) => {
                let errors = self.errors(schema, body);
                assert!(errors.is_empty(), "{what}: {body} does not fit the document: {errors:?}");
            }
            None => assert!(body.is_null(), "{what} sends an undocumented body {body}"),
        }
    }
}

enum Auth<'a> {
    Bearer(&'a str),
    Ticket(&'a str),
}

struct Api<'a> {
    http: reqwest::Client,
    base: String,
    contract: &'a Contract,
}

impl Api<'_> {
    /// Sends a JSON request and checks both it and the answer against the document: a body the
    /// server takes (2xx) must fit the documented request schema.
    async fn call(&self, method: &str, template: &str, auth: Auth<'_>, body: Option<Value>) -> (u16, Value) {
        self.call_at(method, template, &fill(template), auth, body).await
    }

    async fn call_at(&self, method: &str, template: &str, path: &str, auth: Auth<'_>, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.to_uppercase().parse::<Method>().unwrap(), format!("{}{path}", self.base));
        request = match auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Ticket(ticket) => request.header("CWA-Ticket", ticket),
        };
        if let Some(body) = &body {
            request = request.json(body);
        }
        let reply = request.send().await.unwrap();
        let status = reply.status().as_u16();
        let text = reply.text().await.unwrap();
        let answer: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        self.contract.check_answer(method, template, status, &answer);
        if let (Some(body), true) = (&body, (200..300).contains(&status)) {
            let errors = self.contract.errors(&self.contract.request_schema(method, template), body);
            assert!(errors.is_empty(), "{method} {path} took {body}, which the document refuses: {errors:?}");
        }
        (status, answer)
    }
}

fn rich_reports(now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let call = json!({"id": "c1", "state": "connected", "direction": "outgoing", "external": true, "partnerNumber": "tel:+4930", "line": "tel:+4989101", "service": "phone"});
    vec![
        json!({"kind": "phone", "ttlSeconds": 600, "lines": [{"number": "tel:+4989101", "state": "in-service", "dnd": true}], "calls": [call], "forwards": [{"line": "tel:+4989101", "mode": "no-answer", "destination": "tel:+49170", "noAnswerSeconds": 20}]}),
        json!({"kind": "softphone", "calls": [{"id": "s1", "state": "held"}]}),
        json!({"kind": "audio-video", "calls": [{"id": "v1", "state": "conferenced", "direction": "incoming"}]}),
        json!({"kind": "bluetooth", "calls": [{"id": "b1", "state": "offering", "partnerNumber": null}]}),
        json!({"kind": "calendar", "oofMessage": "Away", "appointments": [
            {"id": "a", "start": now - chrono::Duration::minutes(5), "end": now + chrono::Duration::minutes(30), "status": "busy", "subject": "Budget", "location": "Room 1", "private": false},
            {"id": "b", "start": now + chrono::Duration::hours(2), "end": now + chrono::Duration::hours(3), "status": "tentative"}]}),
        json!({"kind": "computer", "state": "idle"}),
        json!({"kind": "agent", "state": "after-call-work"}),
        json!({"kind": "capabilities", "capabilities": ["audio", "video", "conferencing"]}),
    ]
}

#[tokio::test]
async fn real_requests_and_answers_fit_the_document() {
    let server = server().await;
    let contract = Contract { doc: document(&server).await };
    let api = Api { http: reqwest::Client::new(), base: server.base.clone(), contract: &contract };
    let now = server.clock.now_for_tests();
    let sources = "/api/v1/users/{uri}/sources/{source}";
    for (i, report) in rich_reports(now).into_iter().enumerate() {
        let path = format!("/api/v1/users/sip:bob@example.com/sources/s{i}");
        assert_eq!(api.call_at("put", sources, &path, Auth::Bearer(SOURCE_TOKEN), Some(report)).await.0, 200);
        let (status, stored) = api.call_at("get", sources, &path, Auth::Bearer(SOURCE_TOKEN), None).await;
        assert_eq!(status, 200, "every kind reads back: {stored}");
    }
    let missing = "/api/v1/users/sip:bob@example.com/sources/never";
    assert_eq!(api.call_at("get", sources, missing, Auth::Bearer(SOURCE_TOKEN), None).await.0, 404);
    let absent = json!({"state": "busy", "text": "Coffee", "reachability": "home-office", "from": now - chrono::Duration::minutes(1), "to": now + chrono::Duration::hours(1)});
    assert_eq!(api.call("put", "/api/v1/users/{uri}/absent-state", Auth::Bearer(ADMIN_TOKEN), Some(absent)).await.0, 200);
    let note = json!({"text": "Back at 3", "expires": now + chrono::Duration::hours(5)});
    assert_eq!(api.call("put", "/api/v1/users/{uri}/note", Auth::Bearer(ADMIN_TOKEN), Some(note)).await.0, 200);
    let rights = "/api/v1/users/{owner}/rights/{watcher}";
    assert_eq!(api.call("put", rights, Auth::Bearer(ADMIN_TOKEN), Some(json!({"level": "team"}))).await.0, 200);
    let pat = "/api/v1/users/sip:bob@example.com/rights/sip:pat@other.org";
    assert_eq!(api.call_at("put", rights, pat, Auth::Bearer(ADMIN_TOKEN), Some(json!({"iDynamicRights": 65536}))).await.0, 200);

    // Presence as every kind of reader sees it.
    let presence = "/api/v1/users/{uri}/presence";
    let (_, full) = api.call("get", presence, Auth::Bearer(ADMIN_TOKEN), None).await;
    for key in ["activity", "asnAbsentState", "asnAgentState", "asnContactCapabilitiesEx", "asnCustomNote", "asnNextAppointment"]
    {
        assert!(full.get(key).is_some(), "the admin's view has {key}: {full}");
    }
    for key in ["seqActualAppointments", "seqCalls", "seqLineForwards", "seqPhoneLines"] {
        assert!(full.get(key).is_some(), "the admin's view has {key}: {full}");
    }
    for user in ["alice@example.com", "carol@example.com", "pat@other.org", "mallory@example.com", "bob@example.com"] {
        let client = server.sign_in(user).await;
        assert_eq!(api.call("get", presence, Auth::Ticket(&client.ticket), None).await.0, 200, "{user}");
    }
    let batch = "/api/v1/presence/batch";
    let ids = json!({"ids": ["sip:bob@example.com", "sip:alice@example.com", "sip:nobody@example.com"]});
    let (status, read) = api.call("post", batch, Auth::Bearer(ADMIN_TOKEN), Some(ids.clone())).await;
    assert_eq!((status, read["value"].as_array().map(Vec::len)), (200, Some(3)));
    for user in ["pat@other.org", "mallory@example.com"] {
        let client = server.sign_in(user).await;
        assert_eq!(api.call("post", batch, Auth::Ticket(&client.ticket), Some(ids.clone())).await.0, 200, "{user}");
    }
    assert_eq!(api.call("post", batch, Auth::Bearer(SOURCE_TOKEN), Some(ids)).await.0, 403);
    assert_eq!(api.call("post", batch, Auth::Bearer(ADMIN_TOKEN), Some(json!({"ids": []}))).await.0, 422);
    assert_eq!(api.call("delete", rights, Auth::Bearer(ADMIN_TOKEN), None).await.0, 200);

    // Users.
    let user = json!({"uri": "sip:zoe@example.com", "displayName": "Zoe", "password": "secret", "email": "zoe@example.com", "title": "CTO", "company": "Example", "department": "Board", "office": "1.01", "phones": {"work": "tel:+1", "mobile": "tel:+2", "home": "tel:+3", "other": "tel:+4"}, "groups": ["board"]});
    assert_eq!(api.call("post", "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), Some(user.clone())).await.0, 201);
    assert_eq!(api.call("post", "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), Some(user.clone())).await.0, 409);
    let zoe = "/api/v1/users/sip:zoe@example.com";
    assert_eq!(api.call_at("put", "/api/v1/users/{uri}", zoe, Auth::Bearer(ADMIN_TOKEN), Some(user)).await.0, 200);
    assert_eq!(api.call("get", "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), None).await.0, 200);
    assert_eq!(api.call_at("get", "/api/v1/users/{uri}", zoe, Auth::Bearer(ADMIN_TOKEN), None).await.0, 200);
    assert_eq!(api.call_at("delete", "/api/v1/users/{uri}", zoe, Auth::Bearer(ADMIN_TOKEN), None).await.0, 204);

    // Errors have the documented status and shape.
    assert_eq!(api.call("get", "/api/v1/users", Auth::Bearer("wrong"), None).await.0, 401);
    assert_eq!(api.call("get", "/api/v1/users", Auth::Bearer(SOURCE_TOKEN), None).await.0, 403);
    assert_eq!(api.call("get", presence, Auth::Bearer(SOURCE_TOKEN), None).await.0, 403);
    assert_eq!(
        api.call_at("get", presence, "/api/v1/users/sip:nobody@example.com/presence", Auth::Bearer(ADMIN_TOKEN), None).await.0,
        404
    );
    assert_eq!(api.call_at("get", presence, "/api/v1/users/nobody/presence", Auth::Bearer(ADMIN_TOKEN), None).await.0, 422);
    let bad = json!({"kind": "phone", "calls": [{"id": "c1", "state": "exploded"}]});
    assert_eq!(api.call("put", sources, Auth::Bearer(SOURCE_TOKEN), Some(bad)).await.0, 422);
    assert_eq!(api.call("delete", sources, Auth::Bearer(SOURCE_TOKEN), None).await.0, 204);
    assert_eq!(api.call("delete", "/api/v1/users/{uri}/note", Auth::Bearer(ADMIN_TOKEN), None).await.0, 204);
    assert_eq!(api.call("delete", "/api/v1/users/{uri}/absent-state", Auth::Bearer(ADMIN_TOKEN), None).await.0, 204);
}

#[tokio::test]
async fn images_answer_as_documented() {
    let server = server().await;
    let contract = Contract { doc: document(&server).await };
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/users/sip:bob@example.com/image", server.base);
    let template = "/api/v1/users/{uri}/image";
    let op = contract.operation("put", template);
    let accepted: BTreeSet<&str> = op["requestBody"]["content"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(accepted, BTreeSet::from(["image/jpeg", "image/png"]));
    let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 1].to_vec();
    let put = http.put(&url).bearer_auth(ADMIN_TOKEN).header("Content-Type", "image/png").body(png.clone()).send().await.unwrap();
    let status = put.status().as_u16();
    contract.check_answer("put", template, status, &put.json().await.unwrap());
    let text = http.put(&url).bearer_auth(ADMIN_TOKEN).header("Content-Type", "text/plain").body("x").send().await.unwrap();
    let status = text.status().as_u16();
    contract.check_answer("put", template, status, &text.json().await.unwrap());
    assert_eq!(status, 415);

    let sizes = &contract.operation("get", template)["parameters"];
    let size = sizes.as_array().unwrap().iter().find(|p| p["name"] == "size").unwrap();
    assert_eq!((size["in"].as_str(), size["schema"]["enum"].clone()), (Some("query"), json!(["normal", "large"])));
    let got = http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    let response = &contract.operation("get", template)["responses"]["200"];
    assert!(response["content"].get(got.headers()["content-type"].to_str().unwrap()).is_some());
    for header in response["headers"].as_object().unwrap().keys() {
        assert!(got.headers().contains_key(header.as_str()), "documented header {header} is sent");
    }
    let etag = got.headers()["etag"].clone();
    let cached = http.get(&url).bearer_auth(ADMIN_TOKEN).header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(cached.status().as_u16(), 304);
    assert!(contract.operation("get", template)["responses"]["304"].is_object());
    for (size, status) in [("large", 404), ("huge", 422), ("large&size=normal", 422)] {
        let reply = http.get(format!("{url}?size={size}")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(reply.status().as_u16(), status);
        contract.check_answer("get", template, status, &reply.json().await.unwrap());
    }
    let deleted = http.delete(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    contract.check_answer("delete", template, deleted.status().as_u16(), &Value::Null);
}

/// A minimal body of one kind, built from the schema's required properties.
fn minimal(contract: &Contract, schema: &Value) -> Value {
    let schema = match schema["$ref"].as_str() {
        Some(r) => contract.doc.pointer(r.strip_prefix('#').unwrap()).unwrap(),
        None => schema,
    };
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let required = schema["required"].as_array().into_iter().flatten();
            let fields =
                required.map(|k| k.as_str().unwrap()).map(|k| (k.to_string(), minimal(contract, &schema["properties"][k])));
            Value::Object(fields.collect())
        }
        Some("array") => json!([]),
        Some("string") => json!("x"),
        other => panic!("no example for {other:?}"),
    }
}

#[tokio::test]
async fn the_document_takes_what_the_handlers_take_and_refuses_what_they_refuse() {
    let server = server().await;
    let contract = Contract { doc: document(&server).await };
    let api = Api { http: reqwest::Client::new(), base: server.base.clone(), contract: &contract };
    let sources = "/api/v1/users/{uri}/sources/{source}";
    let body_schema = contract.request_schema("put", sources);
    let mut cases = Vec::new();
    for (kind, schema) in kind_schemas(&contract.doc) {
        let body = minimal(&contract, &schema);
        let max = schema["properties"]["ttlSeconds"]["maximum"].as_u64().unwrap();
        cases.push((body.clone(), true));
        let mut at_max = body.clone();
        at_max["ttlSeconds"] = json!(max);
        cases.push((at_max, true));
        for (field, value) in [("ttlSeconds", json!(max + 1)), ("ttlSeconds", json!(0)), ("undocumented", json!(1))] {
            let mut wrong = body.clone();
            wrong[field] = value;
            cases.push((wrong, false));
        }
        assert_eq!(body["kind"], kind);
    }
    cases.push((json!({"kind": "phone", "calls": [{"id": " ", "state": "connected"}]}), false));
    cases.push((json!({"kind": "phone", "lines": [{"number": ""}]}), false));
    let long_wait = json!([{"mode": "no-answer", "destination": "x", "noAnswerSeconds": 3_000_000_000u32}]);
    cases.push((json!({"kind": "phone", "forwards": long_wait}), true));
    cases.push((json!({"kind": "fax"}), false));
    cases.push((json!({"ttlSeconds": 60}), false));
    cases.push((json!({"kind": "computer", "state": "asleep"}), false));
    for (body, valid) in cases {
        let errors = contract.errors(&body_schema, &body);
        assert_eq!(errors.is_empty(), valid, "the document on {body}: {errors:?}");
        let (status, answer) = api.call("put", sources, Auth::Bearer(SOURCE_TOKEN), Some(body.clone())).await;
        assert_eq!(status == 200, valid, "the handler on {body}: {answer}");
    }

    let absent = contract.request_schema("put", "/api/v1/users/{uri}/absent-state");
    let long = "x".repeat(257);
    for (body, valid) in [
        (json!({"state": "away"}), true),
        (json!({"state": "away", "text": null}), true),
        (json!({"state": "asleep"}), false),
        (json!({"state": "away", "text": long}), false),
        (json!({"state": "away", "mood": "fine"}), false),
    ] {
        assert_eq!(contract.errors(&absent, &body).is_empty(), valid, "the document on {body}");
        let (status, answer) =
            api.call("put", "/api/v1/users/{uri}/absent-state", Auth::Bearer(ADMIN_TOKEN), Some(body.clone())).await;
        assert_eq!(status == 200, valid, "the handler on {body}: {answer}");
    }
    let users = contract.request_schema("post", "/api/v1/users");
    for (body, valid) in [
        (json!({"uri": "SIP:Zoe@Example.com", "displayName": "Zoe"}), true),
        (json!({"uri": "sip:yan@example.com", "displayName": " "}), false),
        (json!({"uri": "sip:yan@example.com", "displayName": "Yan", "password": ""}), false),
        (json!({"uri": "yan@example.com", "displayName": "Yan"}), false),
    ] {
        assert_eq!(contract.errors(&users, &body).is_empty(), valid, "the document on {body}");
        let (status, answer) = api.call("post", "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), Some(body.clone())).await;
        assert_eq!(status == 201, valid, "the handler on {body}: {answer}");
    }

    // Path URIs: the documented pattern takes exactly what the handlers take.
    let presence = "/api/v1/users/{uri}/presence";
    let params = contract.operation("get", presence)["parameters"].as_array().unwrap();
    let uri_schema = params.iter().find(|p| p["name"] == "uri").unwrap()["schema"].clone();
    for uri in [
        "sip:bob@example.com",
        "SIP:Bob@Example.COM",
        "sip:nobody@example.com",
        "bob@example.com",
        "sip:bob",
        "sip:@example.com",
        "sip:a@b@c",
        "sip:<b>@example.com",
        "sip:b%09b@example.com",
    ] {
        let decoded = uri.replace("%09", "\t");
        let documented = contract.errors(&uri_schema, &json!(decoded)).is_empty();
        let path = format!("/api/v1/users/{uri}/presence");
        let (status, _) = api.call_at("get", presence, &path, Auth::Bearer(ADMIN_TOKEN), None).await;
        assert_eq!(status != 422, documented, "{uri}: {status}");
    }

    let batch = contract.request_schema("post", "/api/v1/presence/batch");
    let users_up_to = |n: usize| -> Vec<String> { (0..n).map(|i| format!("sip:u{i}@example.com")).collect() };
    for (body, valid) in [
        (json!({"ids": ["sip:bob@example.com"]}), true),
        (json!({"ids": [" SIP:Bob@Example.com ", "sip:bob@example.com"]}), true),
        (json!({"ids": users_up_to(650)}), true),
        (json!({"ids": users_up_to(651)}), false),
        (json!({"ids": vec!["sip:bob@example.com"; 651]}), false),
        (json!({"ids": []}), false),
        (json!({"ids": ["bob@example.com"]}), false),
        (json!({"ids": ["sip:bob@example.com"], "top": 5}), false),
        (json!({}), false),
    ] {
        assert_eq!(contract.errors(&batch, &body).is_empty(), valid, "the document on a batch of {}", body["ids"]);
        let (status, _) = api.call("post", "/api/v1/presence/batch", Auth::Bearer(ADMIN_TOKEN), Some(body.clone())).await;
        assert_eq!(status == 200, valid, "the handler on a batch of {}", body["ids"]);
    }

    let rights = contract.request_schema("put", "/api/v1/users/{owner}/rights/{watcher}");
    for (body, valid) in [
        (json!({"level": "company"}), true),
        (json!({"iDynamicRights": 262144}), true),
        (json!({"level": "team", "iDynamicRights": null}), true),
        (json!({"iDynamicRights": 3}), false),
        (json!({}), false),
        (json!({"level": "team", "iDynamicRights": 262144}), false),
    ] {
        assert_eq!(contract.errors(&rights, &body).is_empty(), valid, "the document on {body}");
        let (status, _) =
            api.call("put", "/api/v1/users/{owner}/rights/{watcher}", Auth::Bearer(ADMIN_TOKEN), Some(body.clone())).await;
        assert_eq!(status == 200, valid, "the handler on {body}");
    }
}
