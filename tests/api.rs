//! The JSON API over HTTP: token auth and roles, every source kind driving what CWA watchers and
//! JSON readers see, timed transitions and TTLs with the injected clock, validation errors that
//! name the field, manual state and note through both doors, rights, and the level table.

mod common;

use common::*;
use presence_gateway::config::{ApiRole, ApiToken, Config};
use serde_json::{json, Value};

const SOURCE_TOKEN: &str = "source-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

async fn server() -> TestServer {
    let tokens = vec![
        ApiToken { name: "pbx".into(), token: SOURCE_TOKEN.into(), role: ApiRole::Source },
        ApiToken { name: "ops".into(), token: ADMIN_TOKEN.into(), role: ApiRole::Admin },
    ];
    let config = Config { api_tokens: tokens, session_timeout_seconds: 9000, idle_timeout_seconds: 9000, ..test_config() };
    TestServer::start_with(config, USERS).await
}

struct Api {
    http: reqwest::Client,
    base: String,
}

#[derive(Debug)]
struct JsonReply {
    status: u16,
    body: Value,
}

enum Auth<'a> {
    Bearer(&'a str),
    Ticket(&'a str),
    None,
}

impl Api {
    fn new(server: &TestServer) -> Api {
        Api { http: reqwest::Client::new(), base: server.base.clone() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> JsonReply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Ticket(ticket) => request.header("CWA-Ticket", ticket),
            Auth::None => request,
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        JsonReply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    async fn source(&self, user: &str, source: &str, body: Value) -> JsonReply {
        self.call(reqwest::Method::PUT, &format!("/api/v1/users/{user}/sources/{source}"), Auth::Bearer(SOURCE_TOKEN), Some(body))
            .await
    }
}

fn call_report(state: &str) -> Value {
    json!({"kind": "phone", "lines": [{"number": "tel:+4989101"}], "calls": [{"id": "c1", "state": state, "direction": "incoming", "partnerNumber": "tel:+4930555"}]})
}

async fn watcher_of_bob(server: &TestServer) -> Client {
    let mut carol = server.session("carol@example.com").await;
    carol.subscribe(&["sip:bob@example.com"]).await;
    carol.wait_for_user("sip:bob@example.com", |_| true).await;
    carol
}

#[tokio::test]
async fn tokens_and_roles_are_enforced() {
    let server = server().await;
    let api = Api::new(&server);
    let path = "/api/v1/users/sip:bob@example.com/sources/pbx";
    let none = api.call(reqwest::Method::PUT, path, Auth::None, Some(call_report("connected"))).await;
    assert_eq!((none.status, none.body["code"].as_str()), (401, Some("unauthenticated")));
    let wrong =
        api.call(reqwest::Method::PUT, path, Auth::Bearer("wrong-token-0123456789"), Some(call_report("connected"))).await;
    assert_eq!(wrong.status, 401);
    let bob = server.sign_in("bob@example.com").await;
    let user = api.call(reqwest::Method::PUT, path, Auth::Ticket(&bob.ticket), Some(call_report("connected"))).await;
    assert_eq!((user.status, user.body["code"].as_str()), (403, Some("forbidden")));
    let read =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Bearer(SOURCE_TOKEN), None).await;
    assert_eq!(read.status, 403);
    let ok = api.source("sip:bob@example.com", "pbx", call_report("connected")).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let admin =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Bearer(ADMIN_TOKEN), None).await;
    assert_eq!(admin.status, 200);
}

#[tokio::test]
async fn a_call_makes_the_watcher_see_on_the_phone_and_hanging_up_ends_it() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let mut carol = watcher_of_bob(&server).await;
    assert_eq!(api.source("sip:bob@example.com", "pbx", call_report("connected")).await.status, 200);
    let user = carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(seen(&user).token, "on-the-phone");
    assert_eq!(api.source("sip:bob@example.com", "pbx", call_report("disconnected")).await.status, 200);
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    // Ringing adds the flag only; a conference shows in-a-conference; DELETE withdraws.
    api.source("sip:bob@example.com", "softphone", json!({"kind": "softphone", "calls": [{"id": "s1", "state": "conferenced"}]}))
        .await;
    let user = carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(seen(&user).token, "in-a-conference");
    let gone = api
        .call(reqwest::Method::DELETE, "/api/v1/users/sip:bob@example.com/sources/softphone", Auth::Bearer(SOURCE_TOKEN), None)
        .await;
    assert_eq!(gone.status, 204);
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn bluetooth_and_audio_video_calls_count_too_and_dnd_wins_over_a_call() {
    let server = server().await;
    let api = Api::new(&server);
    let bob = server.session("bob@example.com").await;
    let mut carol = watcher_of_bob(&server).await;
    api.source("sip:bob@example.com", "headset", json!({"kind": "bluetooth", "calls": [{"id": "b1", "state": "connected"}]}))
        .await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).token == "on-the-phone").await;
    let dnd = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/sip:bob@example.com/absent-state",
            Auth::Ticket(&bob.ticket),
            Some(json!({"state": "do-not-disturb"})),
        )
        .await;
    assert_eq!(dnd.status, 200, "{:?}", dnd.body);
    assert_eq!(dnd.body["eAbsentState"], 3);
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 9500).await;
    api.source("sip:bob@example.com", "av", json!({"kind": "audio-video", "calls": [{"id": "v1", "state": "held"}]})).await;
    let presence =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Bearer(ADMIN_TOKEN), None).await;
    let calls = presence.body["seqCalls"].as_array().unwrap();
    let journal: Vec<i64> = calls.iter().map(|c| c["eJournalCallType"].as_i64().unwrap()).collect();
    assert_eq!(journal, [3, 5], "calls are tagged with their service");
    assert_eq!(presence.body["iPresenceState"].as_u64().unwrap() & 0xFF, 4, "still DND");
}

#[tokio::test]
async fn a_meeting_turns_the_user_busy_at_its_start_and_back_at_its_end() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let mut carol = watcher_of_bob(&server).await;
    let now = server.clock.now_for_tests();
    let start = now + chrono::Duration::minutes(2);
    let end = now + chrono::Duration::minutes(32);
    let report = json!({"kind": "calendar", "appointments": [{"id": "m1", "start": start, "end": end, "status": "busy", "subject": "Budget"}]});
    assert_eq!(api.source("sip:bob@example.com", "exchange", report).await.status, 200);
    let user = carol.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).availability, 3500, "not yet");
    server.clock.advance(chrono::Duration::minutes(2));
    let user = carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(seen(&user).token, "in-a-meeting");
    server.clock.advance(chrono::Duration::minutes(30));
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn out_of_office_shows_the_oof_note_to_public_watchers() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let now = server.clock.now_for_tests();
    let report = json!({"kind": "calendar", "oofMessage": "On leave until Monday", "appointments": [{"id": "v", "start": now - chrono::Duration::hours(1), "end": now + chrono::Duration::days(3), "status": "out-of-office"}]});
    api.source("sip:bob@example.com", "exchange", report).await;
    let mut pat = server.session("pat@other.org").await;
    pat.query(&["sip:bob@example.com"]).await;
    let user = pat.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).availability, 15500);
    let note = user.children_named("cwaCategory").find(|c| c.attr("name") == Some("note")).unwrap();
    let oof = note.child("note").unwrap().children_named("body").find(|b| b.attr("type") == Some("OOF")).unwrap();
    assert_eq!(oof.text, "On leave until Monday");
}

#[tokio::test]
async fn an_expired_report_is_withdrawn() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let mut carol = watcher_of_bob(&server).await;
    let mut report = call_report("connected");
    report["ttlSeconds"] = json!(60);
    let reply = api.source("sip:bob@example.com", "pbx", report).await;
    assert!(reply.body["expires"].is_string());
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    server.clock.advance(chrono::Duration::seconds(61));
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn computer_agent_and_capabilities_sources() {
    let server = server().await;
    let api = Api::new(&server);
    let mut carol = server.session("carol@example.com").await;
    carol.subscribe(&["sip:bob@example.com"]).await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 0).await;
    api.source("sip:bob@example.com", "desktop", json!({"kind": "computer", "state": "logged-in"})).await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    api.source("sip:bob@example.com", "desktop", json!({"kind": "computer", "state": "locked"})).await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 4500).await;
    api.source("sip:bob@example.com", "acd", json!({"kind": "agent", "state": "after-call-work"})).await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 7500).await;
    api.source("sip:bob@example.com", "caps", json!({"kind": "capabilities", "capabilities": ["audio", "video"]})).await;
    let presence =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Bearer(ADMIN_TOKEN), None).await;
    assert_eq!(presence.body["asnAgentState"]["dwState"], 4);
    assert_eq!(presence.body["asnContactCapabilitiesEx"]["eClientCapabilities"], json!([1, 2]));
}

#[tokio::test]
async fn validation_errors_name_the_field_and_change_nothing() {
    let server = server().await;
    let api = Api::new(&server);
    let cases = [
        (json!({"kind": "fax"}), "kind"),
        (json!({"kind": "phone", "calls": [{"id": "c1", "state": "exploded"}]}), "calls[0].state"),
        (
            json!({"kind": "calendar", "appointments": [{"id": "a", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T09:00:00Z", "status": "busy"}]}),
            "appointments[0].end",
        ),
        (
            json!({"kind": "calendar", "appointments": [{"id": "a", "start": "yesterday", "end": "2026-01-01T09:00:00Z", "status": "busy"}]}),
            "appointments[0].start",
        ),
        (json!({"kind": "computer"}), "state"),
        (json!({"kind": "phone", "ttlSeconds": 0}), "ttlSeconds"),
        (json!({"kind": "phone", "calls": [{"id": "", "state": "connected"}]}), "calls[0].id"),
    ];
    for (body, field) in cases {
        let reply = api.source("sip:bob@example.com", "pbx", body.clone()).await;
        assert_eq!(
            (reply.status, reply.body["code"].as_str(), reply.body["field"].as_str()),
            (422, Some("validation_failed"), Some(field)),
            "{body}"
        );
    }
    let not_json = api
        .http
        .put(format!("{}/api/v1/users/sip:bob@example.com/sources/pbx", api.base))
        .bearer_auth(SOURCE_TOKEN)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
    assert_eq!(api.source("sip:nobody@example.com", "pbx", call_report("connected")).await.status, 404);
    assert_eq!(api.source("bob@example.com", "pbx", call_report("connected")).await.status, 422);
    assert_eq!(api.source("sip:bob@example.com", "bad name!", call_report("connected")).await.status, 422);
    let presence =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Bearer(ADMIN_TOKEN), None).await;
    assert!(presence.body.get("seqCalls").is_none(), "nothing was stored: {}", presence.body);
}

#[tokio::test]
async fn manual_state_and_note_converge_through_both_doors() {
    let server = server().await;
    let api = Api::new(&server);
    let mut bob = server.session("bob@example.com").await;
    let mut carol = watcher_of_bob(&server).await;
    let body = json!({"state": "busy", "text": "Coffee break", "reachability": "home-office"});
    let reply = api
        .call(reqwest::Method::PUT, "/api/v1/users/sip:bob@example.com/absent-state", Auth::Bearer(ADMIN_TOKEN), Some(body))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let user = carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    let custom = user.children_named("cwaCategory").find(|c| c.attr("name") == Some("state")).unwrap();
    let text = custom.child("state").unwrap().child("activity").unwrap().child_text("custom").map(str::to_string);
    assert_eq!(text.as_deref(), Some("Coffee break"));
    bob.publish_state(3500).await;
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    let presence =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Ticket(&bob.ticket), None).await;
    assert_eq!(presence.body["asnAbsentState"]["state"], "available");
    let note = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/sip:bob@example.com/note",
            Auth::Ticket(&bob.ticket),
            Some(json!({"text": "Back at 3"})),
        )
        .await;
    assert_eq!(note.status, 200);
    carol.wait_for_user("sip:bob@example.com", |u| seen(u).note == "Back at 3").await;
    // Alice (Team on Bob) may set his absent state; Carol (Company) may not; nobody else his note.
    let alice = server.sign_in("alice@example.com").await;
    let team = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/sip:bob@example.com/absent-state",
            Auth::Ticket(&alice.ticket),
            Some(json!({"state": "away"})),
        )
        .await;
    assert_eq!(team.status, 200);
    let company = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/sip:bob@example.com/absent-state",
            Auth::Ticket(&carol.ticket),
            Some(json!({"state": "away"})),
        )
        .await;
    assert_eq!((company.status, company.body["code"].as_str()), (403, Some("permission_denied")));
    let other_note = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/sip:bob@example.com/note",
            Auth::Ticket(&alice.ticket),
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(other_note.status, 403);
}

#[tokio::test]
async fn rights_follow_dynamic_rights_semantics() {
    let server = server().await;
    let api = Api::new(&server);
    let bob = server.sign_in("bob@example.com").await;
    let alice = server.sign_in("alice@example.com").await;
    let path = "/api/v1/users/sip:bob@example.com/rights/sip:carol@example.com";
    let set = api.call(reqwest::Method::PUT, path, Auth::Ticket(&bob.ticket), Some(json!({"iDynamicRights": 524288}))).await;
    assert_eq!(set.status, 200);
    assert_eq!(
        set.body,
        json!({"u8sOwnerContactID": "sip:bob@example.com", "u8sRemoteContactID": "sip:carol@example.com", "iDynamicRights": 524288, "level": "personal"})
    );
    let denied = api.call(reqwest::Method::PUT, path, Auth::Ticket(&alice.ticket), Some(json!({"level": "blocked"}))).await;
    assert_eq!((denied.status, denied.body["code"].as_str()), (403, Some("permission_denied")));
    let unknown = api.call(reqwest::Method::PUT, path, Auth::Ticket(&bob.ticket), Some(json!({"iDynamicRights": 3}))).await;
    assert_eq!((unknown.status, unknown.body["code"].as_str()), (422, Some("unknown_rights")));
    let carol = server.sign_in("carol@example.com").await;
    let seen_by_carol =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Ticket(&carol.ticket), None).await;
    assert!(seen_by_carol.body.get("asnCurrentUserDynamicRights").is_none(), "a watcher is never told its level");
    assert!(seen_by_carol.body["asnRemoteContact"]["u8sPhoneHome"].is_string());
    let removed = api.call(reqwest::Method::DELETE, path, Auth::Bearer(ADMIN_TOKEN), None).await;
    assert_eq!(removed.body["iResult"], 0);
    let seen_by_carol =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Ticket(&carol.ticket), None).await;
    assert!(seen_by_carol.body["asnRemoteContact"].get("u8sPhoneHome").is_none(), "back to the default (company)");
    assert!(seen_by_carol.body["asnRemoteContact"]["u8sPhoneBusiness"].is_string(), "back to the default (company)");
}

#[tokio::test]
async fn the_level_table_holds_in_json_as_in_cwa() {
    let server = server().await;
    let api = Api::new(&server);
    let bob = server.session("bob@example.com").await;
    api.source("sip:bob@example.com", "pbx", call_report("connected")).await;
    api.call(
        reqwest::Method::PUT,
        "/api/v1/users/sip:bob@example.com/note",
        Auth::Ticket(&bob.ticket),
        Some(json!({"text": "Private-ish"})),
    )
    .await;
    let read = |who: &'static str| {
        let server = &server;
        let api = &api;
        async move {
            let client = server.sign_in(who).await;
            api.call(reqwest::Method::GET, "/api/v1/users/sip:bob@example.com/presence", Auth::Ticket(&client.ticket), None)
                .await
                .body
        }
    };
    let team = read("alice@example.com").await;
    assert!(team["asnRemoteContact"]["u8sPhoneMobile"].is_string());
    assert!(team["asnRemoteContact"]["u8sPhoneHome"].is_null());
    assert_eq!(team["seqCalls"][0]["u8sCurrentNumberSC"], "tel:+4930555", "Team sees call partners");
    let company = read("carol@example.com").await;
    assert!(company["asnRemoteContact"]["u8sPhoneMobile"].is_null());
    assert!(company["seqCalls"][0]["u8sCurrentNumberSC"].is_null(), "Company sees the call, not the partner");
    assert_eq!(company["asnCustomNote"]["u8sNote"], "Private-ish");
    let public = read("pat@other.org").await;
    assert!(public["seqCalls"].is_null() && public["asnCustomNote"].is_null() && public["seqPhoneLines"].is_null());
    assert_eq!(public["iPresenceState"].as_u64().unwrap(), 2, "Busy without the call flag");
    let blocked = read("mallory@example.com").await;
    assert_eq!(blocked["iPresenceState"], 0x0800_0001, "Blocked: exactly a user who is offline");
    assert!(blocked["asnRemoteContact"]["u8sJobTitle"].is_null());
    assert_eq!(blocked["asnRemoteContact"]["u8sDisplayName"], "Bob Builder");
}

#[tokio::test]
async fn cwa_watchers_get_lines_calls_and_forwards_as_a_raw_category_cut_by_level() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let mut report = call_report("connected");
    report["forwards"] = json!([{"mode": "no-answer", "destination": "tel:+49170101", "noAnswerSeconds": 20}]);
    api.source("sip:bob@example.com", "pbx", report).await;
    let telephony_seen_by = |who: &'static str| {
        let server = &server;
        async move {
            let mut client = server.session(who).await;
            client.query(&["sip:bob@example.com"]).await;
            let events = client.events_until("answer", |e| e.name == "requestSucceeded").await;
            let raw = events.iter().filter(|e| e.name == "userRawCategories").flat_map(|e| e.users());
            raw.flat_map(|u| u.children_named("rawCategory").cloned().collect::<Vec<_>>())
                .find(|c| c.attr("name") == Some("telephony"))
                .and_then(|c| c.child("telephony").cloned())
        }
    };
    let team = telephony_seen_by("alice@example.com").await.expect("Team sees telephony");
    assert_eq!(team.namespace.as_deref(), Some("urn:presence-gateway:telephony:1"));
    let call = team.child("call").unwrap();
    assert_eq!((call.attr("state"), call.attr("partner")), (Some("connected"), Some("tel:+4930555")));
    assert_eq!(team.child("forward").unwrap().attr("noAnswerSeconds"), Some("20"));
    assert_eq!(team.child("line").unwrap().attr("number"), Some("tel:+4989101"));
    let company = telephony_seen_by("carol@example.com").await.expect("Company sees telephony");
    assert!(company.child("call").unwrap().attr("partner").is_none(), "no partner below Team");
    assert!(telephony_seen_by("pat@other.org").await.is_none(), "Public sees no telephony");
    assert!(telephony_seen_by("mallory@example.com").await.is_none());
}

#[tokio::test]
async fn admins_manage_users_and_deleting_one_takes_them_offline_everywhere() {
    let server = server().await;
    let api = Api::new(&server);
    let new = json!({"uri": "sip:zoe@example.com", "displayName": "Zoe Zed", "password": "zoe-pass", "title": "Tester", "phones": {"work": "tel:+1"}});
    let created = api.call(reqwest::Method::POST, "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), Some(new.clone())).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert!(created.body.get("password").is_none(), "passwords never come back");
    assert_eq!(api.call(reqwest::Method::POST, "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), Some(new)).await.status, 409);
    assert_eq!(api.call(reqwest::Method::POST, "/api/v1/users", Auth::Bearer(SOURCE_TOKEN), Some(json!({}))).await.status, 403);
    let bad = api
        .call(reqwest::Method::POST, "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), Some(json!({"uri": "zoe", "displayName": "Z"})))
        .await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (422, Some("uri")));
    let list = api.call(reqwest::Method::GET, "/api/v1/users", Auth::Bearer(ADMIN_TOKEN), None).await;
    assert!(list.body.as_array().unwrap().iter().any(|u| u["uri"] == "sip:zoe@example.com"));

    let mut zoe = Client::sign_in(&server.base, "zoe@example.com", "zoe-pass").await.expect("the new user signs in");
    zoe.initiate().await;
    let mut carol = server.session("carol@example.com").await;
    carol.subscribe(&["sip:zoe@example.com"]).await;
    carol.wait_for_user("sip:zoe@example.com", |u| seen(u).availability == 3500).await;

    let update = json!({"uri": "sip:zoe@example.com", "displayName": "Zoe Zed", "title": "Lead Tester"});
    let updated =
        api.call(reqwest::Method::PUT, "/api/v1/users/sip:zoe@example.com", Auth::Bearer(ADMIN_TOKEN), Some(update)).await;
    assert_eq!(updated.status, 200);
    let user = carol.wait_for_user("sip:zoe@example.com", |u| seen(u).title.as_deref() == Some("Lead Tester")).await;
    assert_eq!(seen(&user).availability, 3500);

    let deleted = api.call(reqwest::Method::DELETE, "/api/v1/users/sip:zoe@example.com", Auth::Bearer(ADMIN_TOKEN), None).await;
    assert_eq!(deleted.status, 204);
    let last = carol.wait_for_user("sip:zoe@example.com", |u| seen(u).availability == 0).await;
    assert_eq!(seen(&last).title, None, "a final offline snapshot without data");
    assert_eq!(zoe.poll_with(0, true).await.status, 401, "the ticket is gone");
    assert!(Client::sign_in(&server.base, "zoe@example.com", "zoe-pass").await.is_err());
    assert_eq!(
        api.call(reqwest::Method::DELETE, "/api/v1/users/sip:zoe@example.com", Auth::Bearer(ADMIN_TOKEN), None).await.status,
        404
    );
}

fn png(extra: u8) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend([0, 0, 0, 13, extra]);
    bytes
}

#[tokio::test]
async fn images_have_an_etag_answer_304_and_their_change_is_a_presence_change() {
    let server = server().await;
    let api = Api::new(&server);
    let bob = server.session("bob@example.com").await;
    let mut carol = watcher_of_bob(&server).await;
    let url = format!("{}/api/v1/users/sip:bob@example.com/image", server.base);
    let none = api.http.get(&url).header("CWA-Ticket", &carol.ticket).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 404);

    let put = api
        .http
        .put(&url)
        .header("CWA-Ticket", &bob.ticket)
        .header("Content-Type", "image/png")
        .body(png(1))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let hash = put.json::<Value>().await.unwrap()["u8sImageHash"].as_str().unwrap().to_string();
    let user = carol
        .wait_for_user("sip:bob@example.com", |u| {
            let card = u.children_named("cwaCategory").find(|c| c.attr("name") == Some("contactCard"));
            card.and_then(|c| c.child("contactCard")).and_then(|c| c.child("photo")).is_some()
        })
        .await;
    let card = user.children_named("cwaCategory").find(|c| c.attr("name") == Some("contactCard")).unwrap();
    assert_eq!(card.child("contactCard").unwrap().child("photo").unwrap().attr("hash"), Some(hash.as_str()));

    let got = api.http.get(&url).header("CWA-Ticket", &carol.ticket).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let etag = got.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{hash}\""));
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), png(1));
    let cached = api.http.get(&url).header("CWA-Ticket", &carol.ticket).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(cached.status().as_u16(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());
    let large = api.http.get(format!("{url}?size=large")).header("CWA-Ticket", &carol.ticket).send().await.unwrap();
    assert_eq!(large.status().as_u16(), 404, "no large image yet");

    let lie = api
        .http
        .put(&url)
        .header("CWA-Ticket", &bob.ticket)
        .header("Content-Type", "image/jpeg")
        .body(png(2))
        .send()
        .await
        .unwrap();
    assert_eq!(lie.status().as_u16(), 415);
    let text = api
        .http
        .put(&url)
        .header("CWA-Ticket", &bob.ticket)
        .header("Content-Type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 415);
    let huge = api
        .http
        .put(&url)
        .header("CWA-Ticket", &bob.ticket)
        .header("Content-Type", "image/png")
        .body([png(3), vec![0; 600 * 1024]].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status().as_u16(), 413);
    let foreign = api
        .http
        .put(&url)
        .header("CWA-Ticket", &carol.ticket)
        .header("Content-Type", "image/png")
        .body(png(4))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    let blocked = server.sign_in("mallory@example.com").await;
    let hidden = api.http.get(&url).header("CWA-Ticket", &blocked.ticket).send().await.unwrap();
    assert_eq!(hidden.status().as_u16(), 404, "blocked watchers get no picture");
    let still = api.http.get(&url).header("CWA-Ticket", &carol.ticket).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(still.status().as_u16(), 304, "failed uploads changed nothing");
}

async fn events_after(api: &Api, ticket: &str, after: u64) -> JsonReply {
    api.call(reqwest::Method::GET, &format!("/api/v1/events?after={after}"), Auth::Ticket(ticket), None).await
}

/// Polls the JSON stream until an event matches (each poll is held by the server; bounded).
async fn wait_json(api: &Api, ticket: &str, after: &mut u64, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..20 {
        let reply = events_after(api, ticket, *after).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        *after = reply.body["ackId"].as_u64().unwrap();
        if let Some(event) = reply.body["events"].as_array().unwrap().iter().find(|e| pred(e)) {
            return event.clone();
        }
    }
    panic!("no matching JSON event");
}

#[tokio::test]
async fn json_subscribers_get_snapshots_then_deltas_of_the_sections_they_asked_for() {
    let server = server().await;
    let api = Api::new(&server);
    let mut bob = server.session("bob@example.com").await;
    let alice = server.sign_in("alice@example.com").await;
    let carol = server.sign_in("carol@example.com").await;

    let subscribe = |ticket: String, body: Value| {
        let api = &api;
        async move { api.call(reqwest::Method::POST, "/api/v1/subscriptions", Auth::Ticket(&ticket), Some(body)).await }
    };
    let all = subscribe(alice.ticket.clone(), json!({"seqContactIDs": ["sip:bob@example.com"]})).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(all.body["seqPresence"][0]["iPresenceState"], 1);
    assert_eq!(all.body["seqPresence"][0]["asnRemoteContact"]["u8sPhoneMobile"], "tel:+49170101", "Team snapshot");
    let only_calls = subscribe(
        carol.ticket.clone(),
        json!({"seqContactIDs": ["sip:bob@example.com"], "iEventFlagsToSubscribe": 256, "iContactDetailsReturnFilter": 32}),
    )
    .await;
    let snapshot = only_calls.body["seqPresence"][0].as_object().unwrap().clone();
    assert!(snapshot.keys().all(|k| k == "u8sContactId" || k == "asnCustomNote"), "details filter: {snapshot:?}");

    bob.publish_note("Deep work").await;
    let mut alice_after = 0;
    let event = wait_json(&api, &alice.ticket, &mut alice_after, |e| {
        e["asnUpdatePresenceV2"]["iChangedFlags"].as_u64().unwrap_or(0) & 32 != 0
    })
    .await;
    let update = &event["asnUpdatePresenceV2"];
    assert_eq!(update["asnPresence"]["asnCustomNote"]["u8sNote"], "Deep work");
    assert!(update["asnPresence"].get("seqCalls").is_none(), "only changed sections");
    assert!(event["eid"].as_u64().unwrap() >= 1);

    // Carol asked for calls only: the note is not sent, the call is — without the presence section.
    api.source("sip:bob@example.com", "pbx", call_report("connected")).await;
    let mut carol_after = 0;
    let event = wait_json(&api, &carol.ticket, &mut carol_after, |e| e.get("asnUpdatePresenceV2").is_some()).await;
    assert_eq!(event["asnUpdatePresenceV2"]["iChangedFlags"], 256);
    let presence = event["asnUpdatePresenceV2"]["asnPresence"].as_object().unwrap();
    assert!(
        presence.contains_key("seqCalls") && !presence.contains_key("iPresenceState") && !presence.contains_key("asnCustomNote")
    );
    assert!(presence["seqCalls"][0].get("u8sCurrentNumberSC").is_none(), "Company: no partner number");

    // A lost response is sent again with the same eids.
    let first = events_after(&api, &alice.ticket, 0).await;
    let again = events_after(&api, &alice.ticket, 0).await;
    assert_eq!(first.body, again.body);

    // Deleting Bob sends asnRemovePresence.
    api.call(reqwest::Method::DELETE, "/api/v1/users/sip:bob@example.com", Auth::Bearer(ADMIN_TOKEN), None).await;
    wait_json(&api, &alice.ticket, &mut alice_after, |e| e["asnRemovePresence"]["u8sContactId"] == "sip:bob@example.com").await;
}

#[tokio::test]
async fn json_subscription_errors() {
    let server = server().await;
    let api = Api::new(&server);
    let alice = server.sign_in("alice@example.com").await;
    let none = events_after(&api, &alice.ticket, 0).await;
    assert_eq!((none.status, none.body["code"].as_str()), (404, Some("no_subscription")));
    let admin = api
        .call(
            reqwest::Method::POST,
            "/api/v1/subscriptions",
            Auth::Bearer(ADMIN_TOKEN),
            Some(json!({"seqContactIDs": ["sip:bob@example.com"]})),
        )
        .await;
    assert_eq!(admin.status, 403);
    let bad = api
        .call(
            reqwest::Method::POST,
            "/api/v1/subscriptions",
            Auth::Ticket(&alice.ticket),
            Some(json!({"seqContactIDs": ["bob"]})),
        )
        .await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (422, Some("seqContactIDs[0]")));
    let flags = api
        .call(
            reqwest::Method::POST,
            "/api/v1/subscriptions",
            Auth::Ticket(&alice.ticket),
            Some(json!({"seqContactIDs": ["sip:bob@example.com"], "iEventFlagsToSubscribe": 1 << 20})),
        )
        .await;
    assert_eq!(flags.status, 422);
    let empty = api
        .call(reqwest::Method::POST, "/api/v1/subscriptions", Auth::Ticket(&alice.ticket), Some(json!({"seqContactIDs": []})))
        .await;
    assert_eq!(empty.status, 422);
}

/// A watcher's groups decide their level wherever the global or an owner's entries name a group:
/// when an admin changes them, the watcher's sessions get fresh snapshots at the new level at
/// once, as for any other change of rights.
#[tokio::test]
async fn a_watcher_moved_into_or_out_of_a_group_sees_at_the_new_level_at_once() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let entry = json!({"level": "personal"});
    let global = api.call(reqwest::Method::PUT, "/api/v1/group-rights/board", Auth::Bearer(ADMIN_TOKEN), Some(entry)).await;
    assert_eq!(global.status, 200, "{:?}", global.body);
    let mut carol = server.session("carol@example.com").await;
    carol.subscribe(&["sip:bob@example.com"]).await;
    let before = seen(&carol.wait_for_user("sip:bob@example.com", |_| true).await).phones;
    assert!(before.len() < 3, "{before:?}");

    let regroup = |groups: &[&str]| {
        let user = json!({"uri": "sip:carol@example.com", "displayName": "Carol Chen", "groups": groups});
        api.call(reqwest::Method::PUT, "/api/v1/users/sip:carol@example.com", Auth::Bearer(ADMIN_TOKEN), Some(user))
    };
    assert_eq!(regroup(&["board"]).await.status, 200);
    let limit = std::time::Duration::from_secs(5);
    let raised = tokio::time::timeout(limit, carol.wait_for_user("sip:bob@example.com", |u| seen(u).phones.len() == 3)).await;
    assert!(raised.is_ok(), "joining the board raised Carol to Personal on Bob at once");
    assert_eq!(regroup(&[]).await.status, 200);
    let lowered = tokio::time::timeout(limit, carol.wait_for_user("sip:bob@example.com", |u| seen(u).phones == before)).await;
    assert!(lowered.is_ok(), "leaving it took her back at once");
}

#[tokio::test]
async fn group_and_global_rights_entries_are_admin_only_and_take_effect_at_once() {
    let server = server().await;
    let api = Api::new(&server);
    let _bob = server.session("bob@example.com").await;
    let mut alice = server.session("alice@example.com").await; // Alice is in group r-and-d
    alice.subscribe(&["sip:bob@example.com"]).await;
    let user = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).phones, ["work", "mobile"], "Team via Bob's own entry");

    let bob_ticket = server.sign_in("bob@example.com").await.ticket;
    let denied = api
        .call(reqwest::Method::PUT, "/api/v1/group-rights/r-and-d", Auth::Ticket(&bob_ticket), Some(json!({"level": "personal"})))
        .await;
    assert_eq!(denied.status, 403);
    let global = api
        .call(reqwest::Method::PUT, "/api/v1/group-rights/r-and-d", Auth::Bearer(ADMIN_TOKEN), Some(json!({"level": "personal"})))
        .await;
    assert_eq!(global.status, 200, "{:?}", global.body);
    assert_eq!(global.body["owner"], "*");
    let user = alice.wait_for_user("sip:bob@example.com", |u| seen(u).phones.len() == 3).await;
    assert_eq!(seen(&user).phones, ["work", "mobile", "home"], "the global entry raised Alice to Personal at once");
    let bad = api
        .call(reqwest::Method::PUT, "/api/v1/group-rights/r-and-d", Auth::Bearer(ADMIN_TOKEN), Some(json!({"level": "boss"})))
        .await;
    assert_eq!(bad.body["code"], "unknown_rights");
    assert_eq!(
        api.call(reqwest::Method::DELETE, "/api/v1/group-rights/r-and-d", Auth::Bearer(ADMIN_TOKEN), None).await.status,
        204
    );
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).phones.len() == 2).await;

    // An owner's group entry.
    let owner = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/sip:carol@example.com/group-rights/r-and-d",
            Auth::Bearer(ADMIN_TOKEN),
            Some(json!({"iDynamicRights": 0})),
        )
        .await;
    assert_eq!((owner.status, owner.body["level"].as_str()), (200, Some("blocked")));
    let seen_by_alice =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:carol@example.com/presence", Auth::Ticket(&alice.ticket), None).await;
    assert_eq!(seen_by_alice.body["iPresenceState"], 0x0800_0001, "blocked: offline, nothing else");
    let removed = api
        .call(
            reqwest::Method::DELETE,
            "/api/v1/users/sip:carol@example.com/group-rights/r-and-d",
            Auth::Bearer(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(removed.status, 204);
    let seen_by_alice =
        api.call(reqwest::Method::GET, "/api/v1/users/sip:carol@example.com/presence", Auth::Ticket(&alice.ticket), None).await;
    assert!(seen_by_alice.body.get("asnCurrentUserDynamicRights").is_none(), "a watcher is never told its level");
}
