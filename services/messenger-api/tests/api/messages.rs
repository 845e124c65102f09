//! Sending, pages with a cursor, idempotency keys, deleting, and the JetStream event.

use domain::{ConversationKind, Event, Source};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn messages_page_backwards_with_a_cursor() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let mut sent = Vec::new();
    for i in 1..=5 {
        sent.push(
            app.send(
                if i % 2 == 0 { &b } else { &a },
                chat,
                &format!("сообщение {i}"),
            )
            .await,
        );
    }
    let first = &sent[0];
    assert_eq!(first["type"], "text");
    assert_eq!(first["chatId"], chat.to_string());
    assert_eq!(first["senderId"], a.id.to_string());
    assert_eq!(first["senderName"], "Анна");
    assert!(first["createdAt"].is_string());

    let page = json(
        app.get(&format!("/api/messages/{chat}?limit=2"), Some(&b.token))
            .await,
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["text"], "сообщение 5", "newest first");
    assert_eq!(items[1]["text"], "сообщение 4");
    assert_eq!(page["nextBefore"], items[1]["id"]);
    let cursor = page["nextBefore"].as_i64().unwrap();
    let page = json(
        app.get(
            &format!("/api/messages/{chat}?limit=2&before={cursor}"),
            Some(&b.token),
        )
        .await,
    )
    .await;
    let texts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["сообщение 3", "сообщение 2"]);
    let cursor = page["nextBefore"].as_i64().unwrap();
    let page = json(
        app.get(
            &format!("/api/messages/{chat}?before={cursor}"),
            Some(&b.token),
        )
        .await,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["nextBefore"].is_null(), "the beginning of the chat");
    // default limit
    let page = json(
        app.get(&format!("/api/messages/{chat}"), Some(&a.token))
            .await,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert!(page["nextBefore"].is_null());
    app.cleanup().await;
}

#[tokio::test]
async fn bad_pages_and_sends_are_400_and_strangers_404() {
    let app = spawn_app().await;
    let (a, b, s) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    let chat = app.private_chat(&a, &b).await;
    let t = Some(a.token.as_str());
    for q in ["limit=0", "limit=101", "limit=x", "before=0", "before=-3"] {
        expect_error(app.get(&format!("/api/messages/{chat}?{q}"), t).await, 400).await;
    }
    let v = expect_error(
        app.post(
            "/api/messages",
            t,
            &json!({ "chatId": chat, "text": "   " }),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(v["details"]["text"], "required");
    let long = "я".repeat(4001);
    expect_error(
        app.post("/api/messages", t, &json!({ "chatId": chat, "text": long }))
            .await,
        400,
    )
    .await;
    expect_error(
        app.post("/api/messages", t, &json!({ "text": "no chat" }))
            .await,
        400,
    )
    .await;
    let res = app
        .http
        .post(app.url("/api/messages"))
        .bearer_auth(&a.token)
        .body("text=plain")
        .send()
        .await
        .unwrap();
    expect_error(res, 415).await;
    // a stranger: 404 for reading and writing
    let st = Some(s.token.as_str());
    expect_error(app.get(&format!("/api/messages/{chat}"), st).await, 404).await;
    expect_error(
        app.post(
            "/api/messages",
            st,
            &json!({ "chatId": chat, "text": "hi" }),
        )
        .await,
        404,
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_retried_send_stores_one_message_and_one_event() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let body = json!({ "chatId": chat, "text": "один раз", "clientMessageId": "c-1" });
    let r1 = app.post("/api/messages", Some(&a.token), &body).await;
    assert_eq!(r1.status(), 201);
    let m1 = json(r1).await;
    assert_eq!(m1["clientMessageId"], "c-1");
    let r2 = app.post("/api/messages", Some(&a.token), &body).await;
    assert_eq!(r2.status(), 200, "a retry answers with the stored message");
    assert_eq!(json(r2).await["id"], m1["id"]);
    // the Idempotency-Key header works the same
    let send_with_header = || {
        app.http
            .post(app.url("/api/messages"))
            .bearer_auth(&a.token)
            .header("Idempotency-Key", "h-7")
            .json(&json!({ "chatId": chat, "text": "по заголовку" }))
            .send()
    };
    assert_eq!(send_with_header().await.unwrap().status(), 201);
    assert_eq!(send_with_header().await.unwrap().status(), 200);
    // the same key for another text is a conflict
    let v = expect_error(
        app.post(
            "/api/messages",
            Some(&a.token),
            &json!({ "chatId": chat, "text": "другое", "clientMessageId": "c-1" }),
        )
        .await,
        409,
    )
    .await;
    assert!(v["error"].as_str().unwrap().contains("clientMessageId"));
    // keys are per sender: b may use "c-1" too
    let res = app
        .post(
            "/api/messages",
            Some(&b.token),
            &json!({ "chatId": chat, "text": "x", "clientMessageId": "c-1" }),
        )
        .await;
    assert_eq!(res.status(), 201);

    let page = json(
        app.get(&format!("/api/messages/{chat}"), Some(&a.token))
            .await,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let events = app.posted_events().await;
    assert_eq!(events.len(), 3, "one event per stored message");
    app.cleanup().await;
}

#[tokio::test]
async fn posted_messages_are_published_to_jetstream() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let group = app.group(&a, "Команда", &[&b]).await;
    let m = app.send(&b, group, "в поток").await;
    let events = app.posted_events().await;
    let env = events.last().expect("an event");
    assert_eq!(env.source, Source::Messenger);
    assert_eq!(env.subject().as_str(), "events.messenger.message.posted");
    assert_eq!(
        env.idempotency_key.as_str(),
        format!("messenger:message:{}", m["id"])
    );
    let Event::MessagePosted(msg) = &env.payload else {
        panic!("expected message.posted");
    };
    assert_eq!(msg.message_id, m["id"].to_string());
    assert_eq!(msg.sender.id, b.id.to_string());
    assert_eq!(msg.sender.display_name.as_deref(), Some("Борис"));
    assert_eq!(msg.conversation.id, group.to_string());
    assert_eq!(msg.conversation.kind, ConversationKind::Group);
    assert_eq!(msg.text.as_deref(), Some("в поток"));
    app.cleanup().await;
}

#[tokio::test]
async fn an_event_that_jetstream_missed_is_published_from_the_outbox() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let m = app.send(&a, chat, "потом").await;
    let id = m["id"].as_i64().unwrap();
    // as if the publish had timed out: drop the stored event, queue it in the outbox
    app.state.bus.delete_streams().await.unwrap();
    app.state.bus.ensure_streams().await.unwrap();
    app.state
        .store
        .add_to_outbox(id, "timed out")
        .await
        .unwrap();
    let published = messenger_api::messaging::flush_outbox(&app.state)
        .await
        .unwrap();
    assert_eq!(published, 1);
    let events = app.posted_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].idempotency_key.as_str(),
        format!("messenger:message:{id}")
    );
    assert!(
        app.state
            .store
            .outbox(10, std::time::Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_does_not_lose_the_event() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let all = std::time::Duration::ZERO;
    // a normal send: published, and its outbox entry gone once JetStream acknowledged
    let sent = app.send(&a, chat, "сразу").await;
    assert!(app.state.store.outbox(10, all).await.unwrap().is_empty());
    // the message is committed, then the process dies before publishing: the outbox entry
    // came with the message, in the same transaction
    let outcome = app
        .state
        .store
        .insert_message(&messenger_api::store::NewMessage {
            chat_id: chat,
            sender_id: a.id,
            sender_name: "Анна",
            kind: "text",
            text: Some("перед сбоем"),
            file_id: None,
            duration_ms: None,
            client_message_id: None,
        })
        .await
        .unwrap();
    let messenger_api::store::InsertOutcome::Created(row) = outcome else {
        panic!("created");
    };
    assert_eq!(app.state.store.outbox(10, all).await.unwrap(), vec![row.id]);
    // a young entry is its poster's to publish; the periodic sweep leaves it alone for now
    assert!(
        app.state
            .store
            .outbox(10, std::time::Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    let published = messenger_api::messaging::flush_outbox(&app.state)
        .await
        .unwrap();
    assert_eq!(published, 1);
    let keys: Vec<String> = app
        .posted_events()
        .await
        .iter()
        .map(|e| e.idempotency_key.as_str().to_owned())
        .collect();
    assert_eq!(
        keys,
        vec![
            format!("messenger:message:{}", sent["id"]),
            format!("messenger:message:{}", row.id)
        ]
    );
    assert!(app.state.store.outbox(10, all).await.unwrap().is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn messages_are_deleted_by_their_author_or_an_admin() {
    let app = spawn_app().await;
    let (a, b, s) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    let admin = app.admin().await;
    let chat = app.private_chat(&a, &b).await;
    let m1 = app.send(&a, chat, "удалю сама").await;
    let m2 = app.send(&a, chat, "удалит админ").await;
    let p1 = format!("/api/messages/{}", m1["id"]);
    let p2 = format!("/api/messages/{}", m2["id"]);
    let v = expect_error(app.delete(&p1, Some(&b.token)).await, 403).await;
    assert!(v["error"].as_str().unwrap().contains("author"));
    expect_error(app.delete(&p1, Some(&s.token)).await, 404).await;
    assert_eq!(app.delete(&p1, Some(&a.token)).await.status(), 204);
    expect_error(app.delete(&p1, Some(&a.token)).await, 404).await;
    assert_eq!(app.delete(&p2, Some(&admin.token)).await.status(), 204);
    expect_error(
        app.delete("/api/messages/999999", Some(&a.token)).await,
        404,
    )
    .await;
    expect_error(app.delete("/api/messages/abc", Some(&a.token)).await, 400).await;
    let page: Value = json(
        app.get(&format!("/api/messages/{chat}"), Some(&b.token))
            .await,
    )
    .await;
    assert!(page["items"].as_array().unwrap().is_empty());
    app.cleanup().await;
}

/// Issue 9, item 2: the right to delete others' messages comes from the role in the database,
/// not from the access token's `role` claim.
#[tokio::test]
async fn a_demoted_or_deleted_admin_cannot_delete_others_messages() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let (boss, demoted, gone) = (app.admin().await, app.admin().await, app.admin().await);
    let chat = app.private_chat(&a, &b).await;
    // the demoted admin is a member of this one: inside a chat a non-author gets 403
    let group = app.group(&a, "Команда", &[&demoted]).await;
    let m1 = app.send(&a, chat, "не для бывшего админа").await;
    let m2 = app.send(&a, chat, "не для удалённого админа").await;
    let m3 = app.send(&a, chat, "удалит настоящий админ").await;
    let g1 = app.send(&a, group, "в группе").await;
    let path = |m: &Value| format!("/api/messages/{}", m["id"]);
    let mut cb = HubClient::connect(&app.base, &b.token, TokenVia::Header).await;

    // Their access tokens still say Admin; the database no longer does.
    app.state
        .store
        .set_role(demoted.id, "User")
        .await
        .expect("demoted");
    assert_eq!(
        app.delete(&format!("/api/admin/users/{}", gone.id), Some(&boss.token))
            .await
            .status(),
        204
    );
    expect_error(app.delete(&path(&m1), Some(&demoted.token)).await, 404).await;
    let v = expect_error(app.delete(&path(&g1), Some(&demoted.token)).await, 403).await;
    assert!(v["error"].as_str().unwrap().contains("author"), "{v}");
    expect_error(app.delete(&path(&m2), Some(&gone.token)).await, 404).await;

    // a current admin still may; and the hub saw no deletion before that one
    assert_eq!(
        app.delete(&path(&m3), Some(&boss.token)).await.status(),
        204
    );
    let del = cb.next_invocation("MessageDeleted").await;
    assert_eq!(del[0], json!({ "chatId": chat, "messageId": m3["id"] }));
    let page: Value = json(
        app.get(&format!("/api/messages/{chat}"), Some(&b.token))
            .await,
    )
    .await;
    let ids: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, vec![&m2["id"], &m1["id"]]);
    let page: Value = json(
        app.get(&format!("/api/messages/{group}"), Some(&a.token))
            .await,
    )
    .await;
    assert_eq!(page["items"][0]["id"], g1["id"]);
    cb.close().await;
    app.cleanup().await;
}
