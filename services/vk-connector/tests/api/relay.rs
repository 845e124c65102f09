//! VK message → Chatwoot conversation, through the durable relay consumer.

use sandbox::{Failure, Target};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn customer_message_lands_in_a_named_contacts_conversation() {
    let app = spawn_app().await;
    let conv = app
        .customer_writes("Добрый день! Подскажите статус заказа 🙂")
        .await;
    let contacts = app.sandbox.chatwoot_contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["name"], "Иван Петров", "named from users.get");
    assert_eq!(contacts[0]["identifier"], format!("vk:{USER_ID}"));
    let messages = app.sandbox.chatwoot_messages(conv);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["content"],
        "Добрый день! Подскажите статус заказа 🙂"
    );
    assert_eq!(messages[0]["message_type"], 0, "posted as incoming");
    // A second message reuses the conversation and the cached name (one users.get).
    let conv2 = app.customer_writes("И ещё вопрос").await;
    assert_eq!(conv, conv2);
    assert_eq!(app.sandbox.chatwoot_conversations().len(), 1);
    let users_get = app
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("users.get"))
        .count();
    assert_eq!(users_get, 1);
    // The connector's own incoming messages come back as webhooks and are not sent to VK.
    app.sandbox
        .wait_until(WAIT, |s| s.chatwoot_webhook_deliveries().len() >= 2)
        .await
        .unwrap();
    assert!(app.sandbox.vk_sent_messages().is_empty());
    app.cleanup().await;
}

/// VK's own file servers unreachable (here: no such host): the message waits through the
/// retries, then arrives with its files as links, not dead-lettered.
#[tokio::test]
async fn attachments_whose_file_server_stays_unreachable_arrive_as_links() {
    let app = spawn_app().await;
    let mut event = fixture("vk_message_new_attachments.json");
    event["group_id"] = json!(GROUP_ID);
    event["secret"] = json!(VK_SECRET);
    event["object"]["message"]["from_id"] = json!(USER_ID);
    event["object"]["message"]["peer_id"] = json!(USER_ID);
    // Hosts that never resolve (RFC 6761 `.invalid`), online or not.
    let event: serde_json::Value = serde_json::from_str(
        &event
            .to_string()
            .replace(".userapi.com/", ".userapi.invalid/")
            .replace("https://vk.com/doc", "https://vk.invalid/doc"),
    )
    .unwrap();
    assert_eq!(app.post_callback(&event).await.status(), 200);
    // Three handlings (the consumer's backoff: 1 s, then 5 s) before the links go.
    app.sandbox
        .wait_until(WAIT * 2, |s| all_messages(s).len() == 1)
        .await
        .unwrap();
    assert!(
        app.sandbox
            .chatwoot_attachment_bytes(app.all_chatwoot_messages()[0]["id"].as_i64().unwrap())
            .is_empty()
    );
    let content = app.all_chatwoot_messages()[0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        content.contains("📎 image: https://sun9-47.userapi.invalid/"),
        "{content}"
    );
    assert!(
        content.contains("📎 file «Счёт №1024.pdf»: https://vk.invalid/doc"),
        "{content}"
    );
    assert!(
        content.contains("📎 voice: https://psv4.userapi.invalid/"),
        "{content}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn chatwoot_outage_is_retried_not_dropped() {
    let app = spawn_app().await;
    app.sandbox
        .fail_next(Target::Chatwoot, 2, Failure::Status(503));
    app.customer_writes("Сервис лежит?").await;
    assert_eq!(app.all_chatwoot_messages().len(), 1);
    // 429 with Retry-After is honoured too.
    app.sandbox.fail_next(
        Target::Chatwoot,
        1,
        Failure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    app.customer_writes("А теперь?").await;
    assert_eq!(app.all_chatwoot_messages().len(), 2);
    app.cleanup().await;
}

#[tokio::test]
async fn redelivery_after_success_posts_nothing_twice() {
    let app = spawn_app().await;
    let event = message_new(USER_ID, "Один раз");
    app.post_callback(&event).await;
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .unwrap();
    // Replay the same stored envelope under a new Nats-Msg-Id (as `dlq replay` would).
    let stream = jetstream_of(&app)
        .get_stream(app.state.bus.events_stream())
        .await
        .unwrap();
    let raw = stream.get_raw_message(1).await.unwrap();
    app.state
        .bus
        .publish_raw(raw.subject.as_str(), "again-1", None, raw.payload.to_vec())
        .await
        .unwrap();
    let key = format!("vk:{GROUP_ID}:{}", event["event_id"].as_str().unwrap());
    app.wait_db("the redelivery to be consumed", || async {
        app.stream_messages(&app.state.bus.events_stream()).await == 2
    })
    .await;
    // Consumer caught up: the ack floor reaches sequence 2 only after handling it.
    app.wait_db("the consumer to ack both", || async {
        let mut c: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(vk_connector::consumers::relay::DURABLE)
            .await
            .unwrap();
        c.info()
            .await
            .map(|i| i.ack_floor.stream_sequence >= 2)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(app.all_chatwoot_messages().len(), 1);
    assert!(app.state.store.inbound_done(&key).await.unwrap());
    app.cleanup().await;
}

#[tokio::test]
async fn chatwoot_timeout_is_retried() {
    let app = spawn_app().await;
    // Chatwoot hangs on the first call: the client gives up after its timeout, the consumer
    // retries, and the message arrives once.
    app.sandbox.fail_next(Target::Chatwoot, 1, Failure::Timeout);
    app.customer_writes("Медленный Chatwoot").await;
    assert_eq!(app.all_chatwoot_messages().len(), 1);
    app.cleanup().await;
}
