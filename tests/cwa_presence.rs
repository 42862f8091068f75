//! The CWA presence flow over HTTP: sign-in, sessions, query, subscribe, publish, what each access
//! level sees, selfPresence, unknown users, and the documented userPresence sample.

mod common;

use common::*;
use presence_gateway::cwa::wire::WireUser;
use presence_gateway::cwa::writer::XmlWriter;
use presence_gateway::cwa::xml::{parse, Element, XmlLimits};
use presence_gateway::model::reports::{CalendarData, PhoneData, ReportData, SourceReport};
use presence_gateway::service::permits::{Action, Actor, Permit};

#[tokio::test]
async fn sign_in_returns_ticket_sign_in_data_and_uri() {
    let server = TestServer::start().await;
    let reply = send(reqwest::Client::new().post(format!("{}/forms/logon.html", server.base)).body(
        "<cwaRequests><logon><user>alice@example.com</user><password>pw</password><uri>sip:alice@example.com</uri></logon></cwaRequests>",
    ))
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.ticket.as_ref().is_some_and(|t| t.len() >= 22), "a long random ticket");
    let ok = reply.xml().child("requestSucceeded").cloned().unwrap();
    assert!(!ok.child_text("signInData").unwrap().is_empty());
    assert_eq!(ok.child_text("uri"), Some("sip:alice@example.com"));
}

#[tokio::test]
async fn initiate_session_answers_in_both_documented_shapes() {
    let server = TestServer::start().await;
    let mut alice = server.sign_in("alice@example.com").await;
    let reply = alice.initiate().await;
    let root = reply.xml();
    let accepted = root.child("requestAccepted").unwrap();
    assert_eq!(accepted.attr("sid").unwrap(), accepted.child_text("sid").unwrap());
    assert!(accepted.attr("pollWaitTime").is_some() && accepted.child_text("pollWaitTime").is_some());
    assert_eq!(accepted.child_text("uri"), Some("sip:alice@example.com"));
    let events = alice.poll().await;
    let own = events.iter().find(|e| e.name == "selfPresence").expect("selfPresence in the burst");
    assert_eq!(seen(&own.element).availability, 3500);
    assert_eq!(seen(&own.element).phones, ["work", "mobile", "home"], "the owner sees every phone");
}

#[tokio::test]
async fn watcher_sees_busy_and_the_note_after_the_other_publishes() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    let reply = alice.subscribe(&["sip:bob@example.com"]).await;
    assert!(reply.xml().child("requestAccepted").is_some(), "{}", reply.body);
    let first = alice.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&first).availability, 3500);

    let reply = bob.publish_state(6500).await;
    assert!(reply.xml().child("requestAccepted").is_some(), "{}", reply.body);
    let busy = alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(seen(&busy).token, "Busy");

    bob.publish_note("In the lab until 3").await;
    let noted = alice.wait_for_user("sip:bob@example.com", |u| !seen(u).note.is_empty()).await;
    assert_eq!(seen(&noted).note, "In the lab until 3");

    // Bob's own sessions get selfPresence with the change, and requestSucceeded for each rid.
    let events = bob.poll().await;
    assert!(events.iter().any(|e| e.name == "requestSucceeded"));
    let own = events.iter().rev().find(|e| e.name == "selfPresence").unwrap();
    assert_eq!(seen(&own.element).note, "In the lab until 3");
}

#[tokio::test]
async fn every_availability_range_publishes_the_matching_state() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |_| true).await;
    let cases = [
        (9500, 9500, "urgent-interruptions-only"),
        (12500, 12500, "BeRightBack"),
        (15500, 15500, "Away"),
        (18500, 0, "Offline"),
        (6000, 6500, "Busy"),
        (3500, 3500, "Available"),
    ];
    for (published, expected, token) in cases {
        let reply = bob.publish_state(published).await;
        assert!(reply.xml().child("requestAccepted").is_some(), "{}", reply.body);
        let user = alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == expected).await;
        assert_eq!(seen(&user).token, token, "published {published}");
    }
}

#[tokio::test]
async fn appear_offline_looks_offline_to_watchers_but_18500_to_oneself() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |_| true).await;
    bob.publish_state(18500).await;
    let watched = alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 0).await;
    assert_eq!(seen(&watched).token, "Offline");
    let own = bob.wait_for("selfPresence 18500", |e| e.name == "selfPresence" && seen(&e.element).availability == 18500).await;
    assert_eq!(seen(&own.element).token, "Offline");
}

#[tokio::test]
async fn each_level_sees_only_its_part() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    bob.publish_note("Secret plans").await;
    let expectations = [
        // (watcher, availability seen, note seen, phones seen)
        ("alice@example.com", 3500, "Secret plans", vec!["work", "mobile"]), // Team (grant)
        ("carol@example.com", 3500, "Secret plans", vec!["work"]),           // Company (same domain)
        ("pat@other.org", 3500, "", vec!["work"]),                           // Public (other domain)
        ("mallory@example.com", 0, "", vec![]),                              // Blocked (grant)
    ];
    for (watcher, availability, note, phones) in expectations {
        let mut client = server.session(watcher).await;
        client.query(&["sip:bob@example.com"]).await;
        let user = client.wait_for_user("sip:bob@example.com", |_| true).await;
        let s = seen(&user);
        assert_eq!(
            (s.availability, s.note.as_str(), s.phones.iter().map(String::as_str).collect::<Vec<_>>()),
            (availability, note, phones),
            "{watcher}"
        );
        if watcher.starts_with("mallory") {
            assert_eq!(s.token, "Offline");
            assert_eq!(s.title, None, "blocked watchers get name and e-mail only");
        }
    }
}

#[tokio::test]
async fn public_watchers_see_availability_without_activity_detail() {
    let server = TestServer::start().await;
    let mut pat = server.session("pat@other.org").await;
    pat.subscribe(&["sip:bob@example.com"]).await;
    pat.wait_for_user("sip:bob@example.com", |_| true).await;
    let phone = ReportData::Phone(PhoneData { calls: vec![phone_call()], ..Default::default() });
    server.gateway.report_source(&source_permit(&server), "pbx", SourceReport { data: phone, expires: None }).await.unwrap();
    let user = pat.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(seen(&user).token, "Busy", "no on-the-phone for Public");

    let mut carol = server.session("carol@example.com").await;
    carol.query(&["sip:bob@example.com"]).await;
    let user = carol.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).token, "on-the-phone", "Company sees the activity");
}

/// Leave to report sources about Bob, as an integration's token has.
fn source_permit(server: &TestServer) -> Permit {
    server.gateway.permit(&Actor::Source, Action::Sources, "sip:bob@example.com").unwrap()
}

fn phone_call() -> presence_gateway::model::sources::Call {
    use presence_gateway::model::sources::*;
    Call {
        id: "1".into(),
        service: CallService::Phone,
        state: CallState::Connected,
        direction: CallDirection::Incoming,
        external: false,
        partner_number: None,
        line: None,
    }
}

#[tokio::test]
async fn a_watcher_whose_view_did_not_change_gets_nothing() {
    let server = TestServer::start().await;
    let mut pat = server.session("pat@other.org").await;
    let mut bob = server.session("bob@example.com").await;
    pat.subscribe(&["sip:bob@example.com"]).await;
    pat.wait_for_user("sip:bob@example.com", |_| true).await;
    bob.publish_note("Public cannot see this").await;
    bob.publish_state(6500).await;
    let events = pat.poll().await;
    let snapshots: Vec<_> = events.iter().filter(|e| e.name == "userPresence").collect();
    assert_eq!(snapshots.len(), 1, "only the state change reaches a Public watcher: {events:?}");
    assert_eq!(seen(&snapshots[0].users()[0]).availability, 6500);
}

#[tokio::test]
async fn unknown_users_are_reported_offline_not_as_an_error() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let reply = alice.query(&["sip:nobody@example.com", "sip:bob@example.com"]).await;
    assert!(reply.xml().child("requestAccepted").is_some());
    let event = alice.wait_for("query result", |e| e.name == "userPresence").await;
    let users = event.users();
    assert_eq!(users.len(), 2, "one user element per queried URI");
    let nobody = seen(&users[0]);
    assert_eq!((nobody.availability, nobody.token.as_str()), (0, "Offline"));
}

#[tokio::test]
async fn unsubscribe_stops_the_updates() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |_| true).await;
    alice.uris_method("unSubscribePresence", &["sip:bob@example.com"]).await;
    let state = alice.wait_for("terminated", |e| e.name == "presenceSubscriptionState").await;
    assert_eq!(state.element.child("user").unwrap().attr("state"), Some("terminated"));
    bob.publish_state(6500).await;
    let events = alice.poll().await;
    assert!(events.iter().all(|e| e.name != "userPresence"), "{events:?}");
}

#[tokio::test]
async fn terminate_session_takes_the_user_offline_for_watchers() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    alice.subscribe(&["sip:bob@example.com"]).await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
    let rid = bob.next_rid();
    let reply = bob.command(&format!(r#"<terminateSession rid="{rid}"/>"#)).await;
    assert!(reply.xml().child("requestAccepted").is_some());
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 0).await;
    assert_eq!(bob.poll_with(0, false).await.status, 404);
    // The ticket stays valid: a new session can start without signing in again.
    bob.initiate().await;
    alice.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 3500).await;
}

#[tokio::test]
async fn one_ticket_may_own_several_sessions() {
    let server = TestServer::start().await;
    let mut tab1 = server.session("bob@example.com").await;
    let mut tab2 = tab1.same_login();
    tab2.initiate().await;
    assert_ne!(tab1.sid, tab2.sid);
    tab1.publish_note("two tabs").await;
    let own = tab2.wait_for("self", |e| e.name == "selfPresence" && seen(&e.element).note == "two tabs").await;
    assert_eq!(seen(&own.element).note, "two tabs");
}

fn strip(e: &Element) -> Element {
    Element {
        name: e.name.clone(),
        namespace: e.namespace.clone(),
        attrs: e.attrs.clone(),
        text: e.text.trim().to_string(),
        children: e.children.iter().map(strip).collect(),
    }
}

#[test]
fn the_documented_user_presence_sample_round_trips() {
    let fixture = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user-presence-jay.xml")).unwrap();
    let original = parse(&fixture, XmlLimits::default()).unwrap();
    let user = WireUser::parse(original.child("user").unwrap()).expect("parses into wire types");
    assert_eq!(user.state.availability, 0);
    assert_eq!(user.state.token.as_deref(), Some("Offline"));
    assert_eq!(user.contact_card.as_ref().unwrap().display_name.as_deref(), Some("Jay Adams"));
    let mut w = XmlWriter::new();
    w.open("userPresence", &[("eid", Some("10"))]);
    user.render(&mut w);
    w.close("userPresence");
    let rendered = parse(&w.finish(), XmlLimits::default()).unwrap();
    assert_eq!(strip(&rendered), strip(&original));
}

#[tokio::test]
async fn calendar_data_is_cut_by_level_and_private_subjects_never_leave() {
    use presence_gateway::model::sources::{Appointment, AppointmentStatus};
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let now = server.clock.now_for_tests();
    let meeting = |id: &str, private: bool, start: i64| Appointment {
        id: id.into(),
        start: now + chrono::Duration::minutes(start),
        end: now + chrono::Duration::minutes(start + 30),
        status: AppointmentStatus::Busy,
        subject: Some(format!("Subject {id}")),
        location: Some("Room 1".into()),
        private,
    };
    let appointments = vec![meeting("now", false, -5), meeting("later", true, 60)];
    let calendar = ReportData::Calendar(CalendarData { appointments, oof_message: None });
    server
        .gateway
        .report_source(&source_permit(&server), "calendar", SourceReport { data: calendar, expires: None })
        .await
        .unwrap();
    let calendar_of = |user: &presence_gateway::cwa::xml::Element| {
        user.children_named("cwaCategory")
            .find(|c| c.attr("name") == Some("calendarData"))
            .and_then(|c| c.child("calendarData").cloned())
    };
    // Carol (Company): free/busy and times, no subject.
    let mut carol = server.session("carol@example.com").await;
    carol.query(&["sip:bob@example.com"]).await;
    let user = carol.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!((seen(&user).availability, seen(&user).token.as_str()), (6500, "in-a-meeting"));
    let cal = calendar_of(&user).expect("Company sees calendar data");
    assert_eq!(cal.child("current").unwrap().attr("status"), Some("busy"));
    assert!(cal.child("current").unwrap().child("subject").is_none());
    assert!(cal.child("next").is_some());
    // Pat (Public): no calendar at all.
    let mut pat = server.session("pat@other.org").await;
    pat.query(&["sip:bob@example.com"]).await;
    assert!(calendar_of(&pat.wait_for_user("sip:bob@example.com", |_| true).await).is_none());
    // Bob himself sees both subjects, even the private one.
    let own = bob.wait_for("self", |e| e.name == "selfPresence" && seen(&e.element).availability == 6500).await;
    let cal = calendar_of(&own.element).unwrap();
    assert_eq!(cal.child("next").unwrap().child_text("subject"), Some("Subject later"));
}
