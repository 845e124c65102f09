//! Conversations the old gateway created: an agent's reply in one reaches VK, the mapping is
//! kept (the customer's next message lands in the same conversation), and
//! `import-conversations` maps every open one of the inbox at once.

use serde_json::json;
use vk_connector::legacy;

use crate::helpers::*;

const OLD_USER: i64 = 5005;

#[tokio::test]
async fn a_reply_in_a_conversation_of_the_old_gateway_reaches_vk_and_stays_mapped() {
    let app = spawn_app().await;
    app.sandbox.add_vk_user(OLD_USER, "Анна", "Смирнова");
    // superhub-host/chatwoot-vk: the VK user id as the contact's identifier, a UUID source_id.
    let contact = app
        .sandbox
        .chatwoot_seed_contact("Анна Смирнова", Some("5005"), None, json!({}));
    let conv = app.sandbox.chatwoot_seed_conversation(
        contact,
        "0d3f1a52-8c4e-4b7a-9e61-2f5c8d9a7b34",
        json!({}),
        json!({}),
    );
    let reply = app
        .sandbox
        .chatwoot_agent_reply(conv, "Ответ из старого диалога", false)
        .await;
    app.sandbox
        .wait_until(WAIT, |s| !s.vk_sent_messages().is_empty())
        .await
        .expect("the reply reaches VK");
    let sent = app.sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].peer_id, OLD_USER);
    assert_eq!(sent[0].message, "Ответ из старого диалога");
    app.wait_db("the delivery record", || async {
        app.state.store.outbound_delivered(1, reply).await.unwrap()
    })
    .await;
    assert_eq!(
        app.state.store.peer_for_conversation(conv).await.unwrap(),
        Some(OLD_USER),
        "the mapping is stored"
    );
    // The customer answers in VK: into the same conversation, no new one.
    let conversations = app.sandbox.chatwoot_conversations().len();
    let before = app.sandbox.chatwoot_messages(conv).len();
    let body = message_new(OLD_USER, "Спасибо!");
    assert_eq!(app.post_callback(&body).await.status(), 200);
    app.sandbox
        .wait_until(WAIT, |s| s.chatwoot_messages(conv).len() > before)
        .await
        .expect("the customer's message lands in the old conversation");
    assert_eq!(app.sandbox.chatwoot_conversations().len(), conversations);
    app.cleanup().await;
}

#[tokio::test]
async fn other_conventions_are_recognised_and_strangers_are_not() {
    let app = spawn_app().await;
    // Axel123456489/chatwoot-messenger-gateway: vk_peer_id in the contact's custom attributes.
    let axel = app.sandbox.chatwoot_seed_contact(
        "Пётр",
        Some("vk:6006"),
        None,
        json!({"vk_peer_id": 6006, "vk_user_id": 6006}),
    );
    let axel_conv = app
        .sandbox
        .chatwoot_seed_conversation(axel, "a1b2c3", json!({}), json!({}));
    // denis567denis/vk-chatwoot: the plain id as the contact inbox's source_id.
    let denis = app
        .sandbox
        .chatwoot_seed_contact("Ольга", None, None, json!({}));
    let denis_conv = app
        .sandbox
        .chatwoot_seed_conversation(denis, "7007", json!({}), json!({}));
    // Someone the old gateway did not make: nothing names a VK user.
    let stranger =
        app.sandbox
            .chatwoot_seed_contact("Гость", None, Some("guest@example.com"), json!({}));
    let stranger_conv = app.sandbox.chatwoot_seed_conversation(
        stranger,
        "5a0c7c8e-1f0e-4d8e-9c1a-6b2d3e4f5a6b",
        json!({}),
        json!({}),
    );
    for conv in [axel_conv, denis_conv, stranger_conv] {
        app.sandbox
            .chatwoot_agent_reply(conv, &format!("ответ в {conv}"), false)
            .await;
    }
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() >= 2)
        .await
        .expect("two replies reach VK");
    // The stranger's reply was answered (ignored) by the webhook.
    app.sandbox
        .wait_until(WAIT, |s| {
            s.chatwoot_webhook_deliveries().len() >= 3
                && s.chatwoot_webhook_deliveries()
                    .iter()
                    .all(|d| d.status == Some(200))
        })
        .await
        .expect("all webhooks answered");
    let mut peers: Vec<i64> = app
        .sandbox
        .vk_sent_messages()
        .iter()
        .map(|m| m.peer_id)
        .collect();
    peers.sort();
    assert_eq!(peers, [6006, 7007]);
    assert_eq!(
        app.state
            .store
            .peer_for_conversation(stranger_conv)
            .await
            .unwrap(),
        None
    );
    app.cleanup().await;
}

#[tokio::test]
async fn import_conversations_maps_every_open_conversation_of_the_inbox_once() {
    let app = spawn_app().await;
    // Stop the webhook from mapping anything: import does it.
    app.sandbox.set_chatwoot_webhook(None, None);
    let mut expected = Vec::new();
    for (i, source_id) in ["8001", "vk_8002_1712345678", "vk:8003"].iter().enumerate() {
        let contact =
            app.sandbox
                .chatwoot_seed_contact(&format!("Клиент {i}"), None, None, json!({}));
        let conv = app
            .sandbox
            .chatwoot_seed_conversation(contact, source_id, json!({}), json!({}));
        expected.push((conv, 8001 + i as i64));
    }
    // sergeevgit1/chatwoot-messenger-gateway: the ids in the conversation's custom attributes.
    let group_chat = app
        .sandbox
        .chatwoot_seed_contact("Беседа", None, None, json!({}));
    let conv = app.sandbox.chatwoot_seed_conversation(
        group_chat,
        "b0d9",
        json!({}),
        json!({"channel": "vk", "vk_peer_id": 2000000011_i64, "vk_user_id": 8004}),
    );
    expected.push((conv, 2_000_000_011));
    let stranger = app
        .sandbox
        .chatwoot_seed_contact("Гость", None, None, json!({}));
    let stranger_conv = app.sandbox.chatwoot_seed_conversation(
        stranger,
        "5a0c7c8e-1f0e-4d8e-9c1a-6b2d3e4f5a6b",
        json!({}),
        json!({}),
    );

    let mut lines = Vec::new();
    let dry = legacy::import(
        &app.state.store,
        &app.state.chatwoot,
        app.state.inbox_id().expect("inbox"),
        true,
        |l| lines.push(l.to_owned()),
    )
    .await
    .expect("dry import");
    assert_eq!(dry.mapped, 4);
    assert_eq!(
        app.state
            .store
            .peer_for_conversation(expected[0].0)
            .await
            .unwrap(),
        None,
        "a dry run stores nothing"
    );
    let report = legacy::import(
        &app.state.store,
        &app.state.chatwoot,
        app.state.inbox_id().expect("inbox"),
        false,
        |_| {},
    )
    .await
    .expect("import");
    assert_eq!(report.mapped, 4, "{report:?}");
    assert_eq!(report.unrecognised, vec![stranger_conv]);
    for (conv, peer) in &expected {
        assert_eq!(
            app.state.store.peer_for_conversation(*conv).await.unwrap(),
            Some(*peer),
            "conversation {conv}"
        );
    }
    // Run again: everything is mapped already.
    let again = legacy::import(
        &app.state.store,
        &app.state.chatwoot,
        app.state.inbox_id().expect("inbox"),
        false,
        |_| {},
    )
    .await
    .expect("import again");
    assert_eq!((again.mapped, again.already), (0, 4), "{again:?}");
    assert!(!lines.is_empty(), "progress is printed");
    app.cleanup().await;
}
