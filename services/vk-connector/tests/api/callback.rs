//! POST /vk/callback/{id}: what VK gets back, and what reaches JetStream.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn confirmation_answers_the_bare_string() {
    let app = spawn_app().await;
    let res = app
        .post_callback(&json!({"type": "confirmation", "group_id": GROUP_ID, "secret": VK_SECRET}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let bytes = res.bytes().await.unwrap();
    assert_eq!(
        &bytes[..],
        CONFIRMATION.as_bytes(),
        "no JSON, no BOM, no newline"
    );
    // VK's own sample sends no secret with confirmation: still confirmed.
    let res = app
        .post_callback(&json!({"type": "confirmation", "group_id": GROUP_ID}))
        .await;
    assert_eq!(res.text().await.unwrap(), CONFIRMATION);
    app.cleanup().await;
}

#[tokio::test]
async fn message_new_is_published_once_then_answered_ok() {
    let app = spawn_app().await;
    let event = message_new(USER_ID, "Добрый день! Подскажите статус заказа");
    let res = app.post_callback(&event).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"ok");
    // VK retries the same event (same event_id): stored once thanks to Nats-Msg-Id.
    let res = app.post_callback(&event).await;
    assert_eq!(res.text().await.unwrap(), "ok");
    assert_eq!(app.events_stored().await, 1);
    // The stored envelope is the normalized message, keyed by group and event id.
    let stream = jetstream_of(&app)
        .get_stream(app.state.bus.events_stream())
        .await
        .unwrap();
    let raw = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        raw.subject.as_str(),
        app.state.bus.wire_subject(&domain::Subject::event(
            domain::Source::Vk,
            "message.received"
        ))
    );
    let env = domain::Envelope::<domain::Event>::decode(&raw.payload).unwrap();
    assert_eq!(
        env.idempotency_key.as_str(),
        format!("vk:{GROUP_ID}:{}", event["event_id"].as_str().unwrap())
    );
    let domain::Event::MessageReceived(msg) = env.payload else {
        panic!("expected message.received, got {}", env.payload.type_name());
    };
    assert_eq!(
        msg.text.as_deref(),
        Some("Добрый день! Подскажите статус заказа")
    );
    assert_eq!(msg.conversation.id, USER_ID.to_string());
    app.cleanup().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_nothing_is_published() {
    let app = spawn_app().await;
    // Unknown callback id.
    let res = app
        .post_callback_raw("not-ours", message_new(USER_ID, "x").to_string())
        .await;
    assert_eq!(res.status(), 404);
    // Wrong secret.
    let mut wrong = message_new(USER_ID, "x");
    wrong["secret"] = json!("guess");
    assert_eq!(app.post_callback(&wrong).await.status(), 401);
    // Missing secret on a message.
    let mut missing = message_new(USER_ID, "x");
    missing.as_object_mut().unwrap().remove("secret");
    assert_eq!(app.post_callback(&missing).await.status(), 401);
    // Another community.
    let mut other = message_new(USER_ID, "x");
    other["group_id"] = json!(1);
    assert_eq!(app.post_callback(&other).await.status(), 403);
    // Malformed JSON says what is wrong.
    let res = app
        .post_callback_raw(CALLBACK_ID, "{\"type\":".into())
        .await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a VK callback"),
        "{body}"
    );
    // A message_new whose object has another shape is VK's and authenticated: answered `ok`
    // and kept as a dead letter, not refused (tests/api/unreadable.rs).
    let mut old = message_new(USER_ID, "x");
    old["object"] = json!({"id": 1, "date": 1, "peer_id": 1, "from_id": 1, "text": "x"});
    assert_eq!(app.post_callback(&old).await.text().await.unwrap(), "ok");
    assert_eq!(app.events_stored().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn other_event_types_are_acknowledged_but_not_relayed() {
    let app = spawn_app().await;
    for name in [
        "vk_message_reply.json",
        "vk_message_edit.json",
        "vk_message_typing_state.json",
    ] {
        let mut event = fixture(name);
        event["group_id"] = json!(GROUP_ID);
        event["secret"] = json!(VK_SECRET);
        let res = app.post_callback(&event).await;
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(res.text().await.unwrap(), "ok", "{name}");
    }
    assert_eq!(app.events_stored().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn nats_not_storing_means_503_so_vk_retries() {
    let app = spawn_app().await;
    app.state.bus.delete_streams().await.unwrap();
    let event = message_new(USER_ID, "Алло?");
    let res = app.post_callback(&event).await;
    assert_eq!(res.status(), 503);
    // Once JetStream is back, VK's retry of the same event goes through.
    app.state.bus.ensure_streams().await.unwrap();
    let res = app.post_callback(&event).await;
    assert_eq!(res.text().await.unwrap(), "ok");
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .expect("relayed after recovery");
    app.cleanup().await;
}
