//! Duplicates the relay must not make: two conversations or two contacts for one new VK
//! dialogue when two relays (two replicas) handle it at once (issue 9, item 9), and a second
//! post of a message whose first post Chatwoot accepted before the processed mark failed
//! (item 10).

use domain::{Envelope, Event, IdempotencyKey, Source};
use sandbox::Sandbox;
use serde_json::json;
use service_kit::consumer::HandleError;
use vk_api::callback::MessageNew;
use vk_connector::consumers::relay;
use vk_connector::{AppState, normalize};

use crate::helpers::*;

/// A group chat's `peer_id` (2 000 000 000 + chat id); its messages come from the user.
const GROUP_CHAT_PEER: i64 = 2_000_000_001;

/// The envelope ingest makes of a `message_new` from `from_id` in dialogue `peer_id`.
fn envelope(from_id: i64, peer_id: i64, text: &str) -> Envelope<Event> {
    let mut event = message_new(from_id, text);
    event["object"]["message"]["peer_id"] = json!(peer_id);
    let object: MessageNew =
        serde_json::from_value(event["object"].clone()).expect("a message_new object");
    let msg = normalize::inbound(&object.message);
    let key = IdempotencyKey::vk_event(GROUP_ID, event["event_id"].as_str().expect("event_id"));
    Envelope::new(Source::Vk, msg.sent_at, key, Event::MessageReceived(msg))
}

/// A second replica on the same database, NATS prefix and sandbox: its own pool and HTTP
/// client. Built, not run: its handler is called directly.
async fn second_replica(app: &TestApp) -> vk_connector::App {
    let settings = settings_for(&app.sandbox, &app.env, &Options::default());
    vk_connector::build(settings)
        .await
        .expect("second replica builds")
}

fn requests_to_messages(s: &Sandbox, method: &str) -> usize {
    s.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with("/messages"))
        .count()
}

/// Makes every insert into `vk.inbound_processed` fail (a real database error, as when the
/// database goes away between the Chatwoot post and the processed mark), or stops doing so.
/// Each failure is counted in a sequence (not rolled back with the insert): [`mark_failures`].
async fn fail_processed_mark(app: &TestApp, fail: bool) {
    let sql = if fail {
        "CREATE SEQUENCE IF NOT EXISTS vk.test_mark_failures; \
         CREATE OR REPLACE FUNCTION vk.test_fail_processed_mark() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN \
           PERFORM nextval('vk.test_mark_failures'); \
           RAISE EXCEPTION 'simulated: processed mark lost'; \
         END $$; \
         CREATE TRIGGER test_fail_processed_mark BEFORE INSERT ON vk.inbound_processed \
         FOR EACH ROW EXECUTE FUNCTION vk.test_fail_processed_mark();"
    } else {
        "DROP TRIGGER test_fail_processed_mark ON vk.inbound_processed;"
    };
    sqlx::raw_sql(sql)
        .execute(app.state.store.pool())
        .await
        .expect("trigger DDL");
}

/// How often the processed mark failed so far.
async fn mark_failures(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM vk.test_mark_failures",
    )
    .fetch_one(app.state.store.pool())
    .await
    .expect("read the failure count")
}

async fn attempt_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM vk.relay_attempts")
        .fetch_one(app.state.store.pool())
        .await
        .expect("count attempts")
}

#[tokio::test]
async fn two_replicas_make_one_conversation_and_one_contact_for_a_new_dialogue() {
    let app = spawn_app().await;
    let other = second_replica(&app).await;
    let (a, b): (AppState, AppState) = (app.state.clone(), other.state().clone());
    // A race is not certain to happen in one round: several new users, each writing six
    // messages at once, three handled by each replica.
    for user in 2001..=2004_i64 {
        let envs: Vec<_> = (0..6)
            .map(|i| envelope(user, user, &format!("Первое сообщение, часть {i}")))
            .collect();
        let results = tokio::join!(
            relay::handle(a.clone(), envs[0].clone()),
            relay::handle(b.clone(), envs[1].clone()),
            relay::handle(a.clone(), envs[2].clone()),
            relay::handle(b.clone(), envs[3].clone()),
            relay::handle(a.clone(), envs[4].clone()),
            relay::handle(b.clone(), envs[5].clone()),
        );
        let results = [
            results.0, results.1, results.2, results.3, results.4, results.5,
        ];
        for (i, r) in results.into_iter().enumerate() {
            assert!(r.is_ok(), "user {user}, handler {i}: {r:?}");
        }
        let identifier = format!("vk:{user}");
        let contacts: Vec<_> = app
            .sandbox
            .chatwoot_contacts()
            .into_iter()
            .filter(|c| c["identifier"] == identifier.as_str())
            .collect();
        assert_eq!(
            contacts.len(),
            1,
            "one contact of user {user}: {contacts:#?}"
        );
        let conversations: Vec<_> = app
            .sandbox
            .chatwoot_conversations()
            .into_iter()
            .filter(|c| c["meta"]["sender"]["id"] == contacts[0]["id"])
            .collect();
        assert_eq!(
            conversations.len(),
            1,
            "one conversation of user {user}: {conversations:#?}"
        );
        let conv = conversations[0]["id"].as_i64().unwrap();
        assert_eq!(app.sandbox.chatwoot_messages(conv).len(), 6);
        assert_eq!(
            app.state.store.conversation_for_peer(user).await.unwrap(),
            Some(conv),
            "the mapping names the one conversation"
        );
    }
    drop(other);
    app.cleanup().await;
}

#[tokio::test]
async fn a_users_private_and_group_chats_share_the_contact_not_the_conversation() {
    let app = spawn_app().await;
    let other = second_replica(&app).await;
    let store = &app.state.store;
    // One after the other: the group chat must not take the private chat's open conversation
    // (which the contact's conversation list offers).
    let r = relay::handle(
        app.state.clone(),
        envelope(USER_ID, USER_ID, "Пишу в личку"),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    let r = relay::handle(
        other.state().clone(),
        envelope(USER_ID, GROUP_CHAT_PEER, "Пишу в беседе"),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    // At once, for a new user: both relays try to create the contact, and the one Chatwoot
    // refuses (422, identifier taken) uses the other's.
    let user = USER_ID + 1;
    let (r1, r2) = tokio::join!(
        relay::handle(app.state.clone(), envelope(user, user, "Пишу в личку")),
        relay::handle(
            other.state().clone(),
            envelope(user, GROUP_CHAT_PEER + 1, "Пишу в беседе")
        ),
    );
    assert!(r1.is_ok(), "{r1:?}");
    assert!(r2.is_ok(), "{r2:?}");
    assert_eq!(
        app.sandbox.chatwoot_contacts().len(),
        2,
        "one contact per user"
    );
    assert_eq!(app.sandbox.chatwoot_conversations().len(), 4);
    for (private, group) in [(USER_ID, GROUP_CHAT_PEER), (user, GROUP_CHAT_PEER + 1)] {
        let c1 = store.conversation_for_peer(private).await.unwrap().unwrap();
        let c2 = store.conversation_for_peer(group).await.unwrap().unwrap();
        assert_ne!(c1, c2, "each dialogue has its own conversation");
        assert_eq!(
            app.sandbox.chatwoot_messages(c1)[0]["content"],
            "Пишу в личку"
        );
        assert_eq!(
            app.sandbox.chatwoot_messages(c2)[0]["content"],
            "Пишу в беседе"
        );
    }
    drop(other);
    app.cleanup().await;
}

#[tokio::test]
async fn a_contact_chatwoot_already_has_is_looked_up_not_dead_lettered() {
    let app = spawn_app().await;
    let inbox_id = app.sandbox.options().chatwoot_inbox_id;
    let cw = &app.state.chatwoot;
    // Fifteen contacts (one search page) whose identifiers contain `vk:1001`, then the
    // user's own contact, made before our mapping existed (say, a database restored from an
    // older backup): the first page of `search?q=vk:1001` does not hold it, and creating it
    // again is refused with 422.
    let decoys = (0..10)
        .map(|d| format!("vk:{USER_ID}{d}"))
        .chain((0..5).map(|d| format!("vk:{USER_ID}0{d}")));
    for identifier in decoys {
        cw.create_contact(inbox_id, "Однофамилец", &identifier, json!({}))
            .await
            .expect("decoy contact");
    }
    let own = cw
        .create_contact(inbox_id, "Иван Петров", &format!("vk:{USER_ID}"), json!({}))
        .await
        .expect("the user's contact");
    let r = relay::handle(app.state.clone(), envelope(USER_ID, USER_ID, "Снова я")).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        app.sandbox.chatwoot_contacts().len(),
        16,
        "no contact added"
    );
    let conv = app.conversation_id();
    let conversation = app
        .sandbox
        .chatwoot_conversations()
        .into_iter()
        .find(|c| c["id"] == conv)
        .unwrap();
    assert_eq!(conversation["meta"]["sender"]["id"], own.id);
    app.cleanup().await;
}

#[tokio::test]
async fn a_post_whose_processed_mark_failed_is_found_not_posted_again() {
    let app = spawn_app().await;
    let env = envelope(USER_ID, USER_ID, "Ровно один раз");
    let key = env.idempotency_key.as_str().to_owned();
    fail_processed_mark(&app, true).await;
    // Chatwoot accepts the message, then the processed mark fails: the crash window.
    let first = relay::handle(app.state.clone(), env.clone()).await;
    assert!(matches!(first, Err(HandleError::Retry { .. })), "{first:?}");
    assert_eq!(mark_failures(&app).await, 1);
    let conv = app.conversation_id();
    let messages = app.sandbox.chatwoot_messages(conv);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["source_id"], key,
        "the message carries the VK identity"
    );
    assert!(!app.state.store.inbound_done(&key).await.unwrap());
    assert_eq!(attempt_rows(&app).await, 1, "the attempt was recorded");

    fail_processed_mark(&app, false).await;
    let posts = requests_to_messages(&app.sandbox, "POST");
    let lookups = requests_to_messages(&app.sandbox, "GET");
    relay::handle(app.state.clone(), env.clone())
        .await
        .expect("the second handling succeeds");
    assert_eq!(
        app.sandbox.chatwoot_messages(conv).len(),
        1,
        "not posted again"
    );
    assert_eq!(requests_to_messages(&app.sandbox, "POST"), posts);
    assert!(
        requests_to_messages(&app.sandbox, "GET") > lookups,
        "looked up first"
    );
    assert!(app.state.store.inbound_done(&key).await.unwrap());
    assert_eq!(attempt_rows(&app).await, 0, "the attempt record is gone");

    // From now on it is a plain repeat: skipped without asking Chatwoot.
    let requests = app.sandbox.requests().len();
    relay::handle(app.state.clone(), env).await.expect("repeat");
    assert_eq!(app.sandbox.requests().len(), requests);
    app.cleanup().await;
}

#[tokio::test]
async fn the_consumer_retrying_after_a_lost_processed_mark_posts_once() {
    let app = spawn_app().await;
    fail_processed_mark(&app, true).await;
    let event = message_new(USER_ID, "Повтор после сбоя");
    let key = format!("vk:{GROUP_ID}:{}", event["event_id"].as_str().unwrap());
    assert_eq!(app.post_callback(&event).await.status(), 200);
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .expect("the first attempt reaches Chatwoot");
    app.wait_db("the processed mark to fail", || async {
        mark_failures(&app).await >= 1
    })
    .await;
    // The consumer retries in place; the mark works again from its next attempt on (or a
    // later one, if this machine is slow).
    fail_processed_mark(&app, false).await;
    app.wait_db("the processed mark", || async {
        app.state.store.inbound_done(&key).await.unwrap_or(false)
    })
    .await;
    assert_eq!(app.all_chatwoot_messages().len(), 1, "posted once");
    assert!(requests_to_messages(&app.sandbox, "GET") >= 1, "looked up");
    app.cleanup().await;
}
