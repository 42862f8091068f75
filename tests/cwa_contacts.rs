//! Contact lists, groups, access levels (containers), subscribers, search and the configuration
//! event over HTTP — including rights changes taking effect at once and durability across a restart.

mod common;

use common::*;
use presence_gateway::cwa::xml::Element;

fn list_event(events: &[Event]) -> Option<&Event> {
    events.iter().find(|e| e.name == "contactGroup")
}

async fn rid_command(client: &mut Client, body: impl Fn(&str) -> String) -> Reply {
    let rid = client.next_rid();
    client.command(&body(&rid)).await
}

fn accepted(reply: &Reply) -> bool {
    reply.xml().child("requestAccepted").is_some()
}

fn container(event: &Event, id: &str) -> Option<Element> {
    event.element.children_named("container").find(|c| c.attr("id") == Some(id)).cloned()
}

#[tokio::test]
async fn the_burst_after_initiate_session_has_every_list_event() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let events = bob.poll().await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["contactGroup", "selfPresence", "selfRawCategories", "containers", "subscribers", "configuration"]);
    let list = &events[0].element;
    assert_eq!(list.attr("fullList"), Some("true"));
    let default_group = list.child("group").unwrap();
    assert_eq!((default_group.attr("id"), default_group.attr("name")), (Some("1"), Some("~")));
    let containers = &events[3];
    let ids: Vec<&str> = containers.element.children.iter().filter_map(|c| c.attr("id")).collect();
    assert_eq!(ids, ["32000", "100", "200", "300", "400"]);
    let team = container(containers, "300").unwrap();
    assert_eq!(team.child("member").unwrap().attr("value"), Some("sip:alice@example.com"), "grants from the users file");
    let config = &events[5].element;
    assert_eq!(config.child_text("enableAppearOffline"), Some("True"));
    assert_eq!(config.child_text("defaultSearchField"), Some("displayName"));
}

#[tokio::test]
async fn groups_and_contacts_with_deltas_on_every_session() {
    let server = TestServer::start().await;
    let mut tab1 = server.session("alice@example.com").await;
    let mut tab2 = tab1.same_login();
    tab2.initiate().await;
    tab1.poll().await;
    tab2.poll().await;

    let reply = rid_command(&mut tab1, |rid| format!(r#"<addGroup rid="{rid}"><group name="Team"/></addGroup>"#)).await;
    assert!(accepted(&reply), "{}", reply.body);
    for tab in [&mut tab1, &mut tab2] {
        let events = tab.poll().await;
        let delta = list_event(&events).expect("both tabs get the delta");
        assert_eq!(delta.element.attr("fullList"), Some("false"));
        let group = delta.element.child("group").unwrap();
        assert_eq!((group.attr("id"), group.attr("name"), group.attr("action")), (Some("2"), Some("Team"), Some("added")));
        assert_eq!(delta.element.attr("deltaNum"), Some("1"));
    }

    let add = |rid: &str| {
        format!(
            r#"<addContact rid="{rid}"><contact uri="sip:bob@example.com" name="Bob" subscribed="true" tag="false" groups="2"/></addContact>"#
        )
    };
    assert!(accepted(&rid_command(&mut tab1, add).await));
    let events = tab2.poll().await;
    let delta = list_event(&events).unwrap();
    assert_eq!(delta.element.attr("deltaNum"), Some("2"));
    let contact = delta.element.child("contact").unwrap();
    assert_eq!(
        (contact.attr("action"), contact.attr("groups"), contact.attr("subscribed")),
        (Some("added"), Some("2"), Some("true"))
    );
    // A subscribed contact is watched at once by sessions that auto-subscribe.
    assert!(events.iter().any(|e| e.name == "userPresence"), "{events:?}");

    let update = |rid: &str| format!(r#"<updateGroup rid="{rid}"><group id="2" name="Core team"/></updateGroup>"#);
    assert!(accepted(&rid_command(&mut tab1, update).await));
    let delete = |rid: &str| format!(r#"<deleteGroup rid="{rid}"><group id="2"/></deleteGroup>"#);
    assert!(accepted(&rid_command(&mut tab1, delete).await));
    let events = tab2.poll().await;
    let deltas: Vec<&Event> = events.iter().filter(|e| e.name == "contactGroup").collect();
    assert_eq!(deltas.len(), 2);
    let moved = deltas[1].element.child("contact").unwrap();
    assert_eq!((moved.attr("action"), moved.attr("groups")), (Some("updated"), Some("1")), "contacts stay, in ~");

    let remove = |rid: &str| format!(r#"<deleteContact rid="{rid}"><uri>sip:bob@example.com</uri></deleteContact>"#);
    assert!(accepted(&rid_command(&mut tab1, remove).await));
    let events = tab2.poll().await;
    assert_eq!(list_event(&events).unwrap().element.child("contact").unwrap().attr("action"), Some("deleted"));
}

#[tokio::test]
async fn subscribed_contacts_are_watched_after_the_next_sign_in() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let add = |rid: &str| {
        format!(
            r#"<addContact rid="{rid}"><contact uri="sip:bob@example.com" name="Bob" subscribed="true" tag="false"/></addContact>"#
        )
    };
    assert!(accepted(&rid_command(&mut alice, add).await));
    let mut later = server.session("alice@example.com").await;
    let events = later.poll().await;
    let full = list_event(&events).unwrap();
    assert_eq!(full.element.child("contact").unwrap().attr("uri"), Some("sip:bob@example.com"));
    assert!(events.iter().any(|e| e.name == "userPresence"));
    let mut bob = server.session("bob@example.com").await;
    bob.publish_state(6500).await;
    later.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
}

#[tokio::test]
async fn blocking_takes_effect_in_the_same_poll_and_unblocking_restores_the_view() {
    let server = TestServer::start().await;
    // Carol watches Bob at Company (same domain, no entry).
    let mut carol = server.session("carol@example.com").await;
    let mut bob = server.session("bob@example.com").await;
    bob.publish_note("Working from the lab").await;
    carol.subscribe(&["sip:bob@example.com"]).await;
    let user = carol.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!((seen(&user).availability, seen(&user).note.as_str()), (3500, "Working from the lab"));

    let block = |rid: &str| {
        format!(
            r#"<updateContainer rid="{rid}"><container id="32000"><addMember type="uri" value="sip:carol@example.com"/></container></updateContainer>"#
        )
    };
    assert!(accepted(&rid_command(&mut bob, block).await));
    let events = carol.poll().await;
    let snapshot = events.iter().find(|e| e.name == "userPresence").expect("a new snapshot in the same poll");
    let s = seen(&snapshot.users()[0]);
    assert_eq!((s.availability, s.note.as_str(), s.phones.len()), (0, "", 0));
    let owner_events = bob.poll().await;
    let changed = owner_events.iter().rev().find(|e| e.name == "containers").expect("the owner sees the changed container");
    let blocked = container(changed, "32000").unwrap();
    assert!(blocked.children_named("member").any(|m| m.attr("value") == Some("sip:carol@example.com")));

    bob.publish_state(6500).await;
    bob.publish_note("Secret").await;
    let events = carol.poll().await;
    assert!(events.iter().all(|e| e.name != "userPresence"), "nothing beyond what Blocked allows: {events:?}");

    let personal = |rid: &str| {
        format!(
            r#"<updateContainer rid="{rid}"><container id="400"><addMember type="uri" value="sip:carol@example.com"/></container></updateContainer>"#
        )
    };
    assert!(accepted(&rid_command(&mut bob, personal).await));
    let user = carol.wait_for_user("sip:bob@example.com", |u| seen(u).availability == 6500).await;
    assert_eq!(seen(&user).phones, ["work", "mobile", "home"], "Personal sees every phone");
    let events = bob.poll().await;
    let changed = events.iter().find(|e| e.name == "containers").unwrap();
    assert!(container(changed, "32000").is_some() && container(changed, "400").is_some(), "moved: both containers in full");
}

#[tokio::test]
async fn every_member_type_is_accepted_and_matches() {
    let server = TestServer::start().await;
    let mut bob = server.session("bob@example.com").await;
    let mut pat = server.session("pat@other.org").await;
    for member in [
        r#"type="domain" value="other.org""#,
        r#"type="federated" value="""#,
        r#"type="everyone" value="""#,
        r#"type="sameEnterprise" value="""#,
        r#"type="publicCloud" value="""#,
    ] {
        let add = |rid: &str| {
            format!(r#"<updateContainer rid="{rid}"><container id="300"><addMember {member}/></container></updateContainer>"#)
        };
        assert!(accepted(&rid_command(&mut bob, add).await), "{member}");
    }
    pat.query(&["sip:bob@example.com"]).await;
    let user = pat.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).phones, ["work", "mobile"], "Team via domain/federated/everyone");
    for member in [r#"type="domain" value="other.org""#, r#"type="federated" value="""#, r#"type="everyone" value="""#] {
        let del = |rid: &str| {
            format!(r#"<updateContainer rid="{rid}"><container id="300"><deleteMember {member}/></container></updateContainer>"#)
        };
        assert!(accepted(&rid_command(&mut bob, del).await));
    }
    pat.query(&["sip:bob@example.com"]).await;
    let user = pat.wait_for_user("sip:bob@example.com", |_| true).await;
    assert_eq!(seen(&user).phones, ["work"], "back to Public");
}

#[tokio::test]
async fn subscribers_are_announced_and_acknowledged_on_every_session() {
    let server = TestServer::start().await;
    let mut bob1 = server.session("bob@example.com").await;
    let mut bob2 = bob1.same_login();
    bob2.initiate().await;
    bob1.poll().await;
    bob2.poll().await;
    let mut carol = server.session("carol@example.com").await;
    carol.subscribe(&["sip:bob@example.com"]).await;
    let event = bob1.wait_for("subscribers", |e| e.name == "subscribers").await;
    let sub = event.element.child("subscriber").unwrap();
    assert_eq!(
        (sub.attr("uri"), sub.attr("displayName"), sub.attr("sourceNetwork"), sub.attr("acknowledged")),
        (Some("sip:carol@example.com"), Some("Carol Chen"), Some("sameEnterprise"), Some("false"))
    );
    let ack = |rid: &str| format!(r#"<acknowledgeSubscriber rid="{rid}"><uri>carol@example.com</uri></acknowledgeSubscriber>"#);
    assert!(accepted(&rid_command(&mut bob1, ack).await));
    let event = bob2
        .wait_for("acknowledged", |e| {
            e.name == "subscribers" && e.element.child("subscriber").and_then(|s| s.attr("acknowledged")) == Some("true")
        })
        .await;
    assert_eq!(event.element.child("subscriber").unwrap().attr("uri"), Some("sip:carol@example.com"));
    let bad = |rid: &str| format!(r#"<acknowledgeSubscriber rid="{rid}"><uri>sip:pat@other.org</uri></acknowledgeSubscriber>"#);
    assert_eq!(error_code(&rid_command(&mut bob1, bad).await), 18001);
}

#[tokio::test]
async fn search_returns_directory_attributes_cut_by_level() {
    let config = presence_gateway::config::Config { search_max_results: 2, ..test_config() };
    let server = TestServer::start_with(config, USERS).await;
    let mut pat = server.session("pat@other.org").await;
    let search = |rid: &str| format!(r#"<search rid="{rid}"><displayName>bob</displayName></search>"#);
    let reply = rid_command(&mut pat, search).await;
    assert!(accepted(&reply));
    let result = pat.wait_for("searchResult", |e| e.name == "searchResult").await;
    assert_eq!((result.element.attr("returned"), result.element.attr("moreAvailable")), (Some("1"), Some("false")));
    let user = result.element.child("user").unwrap();
    assert_eq!(user.attr("uri"), Some("sip:bob@example.com"));
    assert_eq!(user.attr("title"), Some("Engineer"), "Public sees the title");
    assert!(user.attr("availability").is_none() && user.children.is_empty(), "no presence in search results");

    let by_mail = |rid: &str| {
        format!(
            r#"<search rid="{rid}"><emailAlias>alice@example.com</emailAlias><firstName>Bob</firstName><function>or</function></search>"#
        )
    };
    rid_command(&mut pat, by_mail).await;
    let result = pat.wait_for("searchResult", |e| e.name == "searchResult").await;
    assert_eq!(result.element.attr("returned"), Some("2"));
    let and = |rid: &str| {
        format!(
            r#"<search rid="{rid}"><emailAlias>alice@example.com</emailAlias><firstName>Bob</firstName><function>and</function></search>"#
        )
    };
    rid_command(&mut pat, and).await;
    let result = pat.wait_for("searchResult", |e| e.name == "searchResult").await;
    assert_eq!(result.element.attr("returned"), Some("0"));
    let all = |rid: &str| format!(r#"<search rid="{rid}"><emailAlias>a</emailAlias><displayName>e</displayName></search>"#);
    rid_command(&mut pat, all).await;
    let result = pat.wait_for("searchResult", |e| e.name == "searchResult").await;
    assert_eq!((result.element.attr("returned"), result.element.attr("moreAvailable")), (Some("2"), Some("true")), "capped");

    let mut mallory = server.session("mallory@example.com").await;
    rid_command(&mut mallory, search).await;
    let result = mallory.wait_for("searchResult", |e| e.name == "searchResult").await;
    let user = result.element.child("user").unwrap();
    assert!(user.attr("title").is_none() && user.attr("phone").is_none(), "Blocked: name and e-mail only");
}

#[tokio::test]
async fn bad_input_gets_the_documented_error_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    rid_command(&mut alice, |rid| format!(r#"<addGroup rid="{rid}"><group name="Team"/></addGroup>"#)).await;
    let long = "x".repeat(300);
    let cases: Vec<(String, u32)> = vec![
        (r#"<deleteGroup rid="R"><group id="9"/></deleteGroup>"#.into(), 18001),
        (r#"<updateGroup rid="R"><group id="1" name="Mine"/></updateGroup>"#.into(), 18102),
        (r#"<deleteGroup rid="R"><group id="1"/></deleteGroup>"#.into(), 18102),
        (r#"<addGroup rid="R"><group name="team"/></addGroup>"#.into(), 18001),
        (format!(r#"<addGroup rid="R"><group name="{long}"/></addGroup>"#), 18001),
        (r#"<addContact rid="R"><contact uri="bob@example.com" name="Bob" tag="false"/></addContact>"#.into(), 18001),
        (r#"<addContact rid="R"><contact uri="sip:bob@example.com" tag="false"/></addContact>"#.into(), 18001),
        (r#"<addContact rid="R"><contact uri="sip:bob@example.com" name="Bob" tag="false" groups="7"/></addContact>"#.into(), 18001),
        (format!(r#"<addContact rid="R"><contact uri="sip:bob@example.com" name="{long}" tag="false"/></addContact>"#), 18001),
        (r#"<updateContainer rid="R"><container id="150"><addMember type="uri" value="sip:bob@example.com"/></container></updateContainer>"#.into(), 18001),
        (r#"<updateContainer rid="R"><container id="400"><addMember type="uri" value="bob@example.com"/></container></updateContainer>"#.into(), 18001),
        (r#"<updateContact rid="R"><contact uri="sip:nobody@example.com" name="N" tag="false"/></updateContact>"#.into(), 18001),
        (r#"<deleteContact rid="R"><uri>sip:nobody@example.com</uri></deleteContact>"#.into(), 18001),
    ];
    alice.poll().await;
    for (body, code) in cases {
        let rid = alice.next_rid();
        let reply = alice.command(&body.replace("rid=\"R\"", &format!("rid=\"{rid}\""))).await;
        assert_eq!(error_code(&reply), code, "{body}");
    }
    let events = alice.poll_with(alice.ack, true).await;
    let root = events.xml();
    assert!(root.children.iter().all(|e| e.name != "contactGroup" && e.name != "containers"), "nothing changed: {}", events.body);
    let mut fresh = server.session("alice@example.com").await;
    let events = fresh.poll().await;
    let list = list_event(&events).unwrap();
    assert_eq!(list.element.attr("deltaNum"), Some("1"));
    assert_eq!(list.element.children.len(), 2, "~ and Team only");
}

#[tokio::test]
async fn lists_containers_and_acknowledgements_survive_a_restart() {
    let server = TestServer::start().await;
    let mut alice = server.session("alice@example.com").await;
    let mut carol = server.session("carol@example.com").await;
    rid_command(&mut alice, |rid| format!(r#"<addGroup rid="{rid}"><group name="Friends"/></addGroup>"#)).await;
    rid_command(&mut alice, |rid| format!(r#"<addContact rid="{rid}"><contact uri="sip:carol@example.com" name="Carol" subscribed="true" tag="true" groups="2"/></addContact>"#)).await;
    rid_command(&mut alice, |rid| format!(r#"<updateContainer rid="{rid}"><container id="100"><addMember type="domain" value="other.org"/></container></updateContainer>"#)).await;
    carol.subscribe(&["sip:alice@example.com"]).await;
    alice.wait_for("subscriber", |e| e.name == "subscribers" && e.element.child("subscriber").is_some()).await;
    rid_command(&mut alice, |rid| {
        format!(r#"<acknowledgeSubscriber rid="{rid}"><uri>sip:carol@example.com</uri></acknowledgeSubscriber>"#)
    })
    .await;
    alice
        .wait_for("ack", |e| {
            e.name == "subscribers" && e.element.child("subscriber").and_then(|s| s.attr("acknowledged")) == Some("true")
        })
        .await;

    let dir = server.stop().await;
    let server = TestServer::start_in(test_config(), USERS, dir).await;
    let mut alice = server.session("alice@example.com").await;
    let events = alice.poll().await;
    let list = list_event(&events).unwrap();
    let contact = list.element.child("contact").unwrap();
    assert_eq!(
        (contact.attr("uri"), contact.attr("groups"), contact.attr("tag")),
        (Some("sip:carol@example.com"), Some("2"), Some("true"))
    );
    assert!(list.element.children_named("group").any(|g| g.attr("name") == Some("Friends")));
    let containers = events.iter().find(|e| e.name == "containers").unwrap();
    assert_eq!(container(containers, "100").unwrap().child("member").unwrap().attr("value"), Some("other.org"));
    let subscribers = events.iter().find(|e| e.name == "subscribers").unwrap();
    assert_eq!(subscribers.element.child("subscriber").unwrap().attr("acknowledged"), Some("true"));
}

/// Alice keeps Zoe on her contact list (subscribed) and Carol subscribes to her before Zoe has an
/// account; once an admin creates Zoe, both are her subscribers — her first sign-in lists them.
#[tokio::test]
async fn who_listed_or_watched_a_user_before_the_account_existed_becomes_their_subscriber() {
    use presence_gateway::config::{ApiRole, ApiToken, Config};
    let tokens = vec![ApiToken { name: "ops".into(), token: "admin-token-0123456789".into(), role: ApiRole::Admin }];
    let server = TestServer::start_with(Config { api_tokens: tokens, ..test_config() }, USERS).await;
    let mut alice = server.session("alice@example.com").await;
    let add = |rid: &str| {
        format!(
            r#"<addContact rid="{rid}"><contact uri="sip:zoe@example.com" name="Zoe" subscribed="true" tag="false"/></addContact>"#
        )
    };
    assert!(accepted(&rid_command(&mut alice, add).await));
    let mut carol = server.session("carol@example.com").await;
    assert!(accepted(&carol.subscribe(&["sip:zoe@example.com"]).await));

    let zoe = serde_json::json!({"uri": "sip:zoe@example.com", "displayName": "Zoe", "password": "pw"});
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/users", server.base))
        .bearer_auth("admin-token-0123456789")
        .json(&zoe)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut zoe = server.session("zoe@example.com").await;
    let events = zoe.poll().await;
    let subscribers = events.iter().find(|e| e.name == "subscribers").expect("the subscribers event");
    let mut uris: Vec<&str> = subscribers.element.children_named("subscriber").filter_map(|s| s.attr("uri")).collect();
    uris.sort_unstable();
    assert_eq!(uris, ["sip:alice@example.com", "sip:carol@example.com"]);
}
