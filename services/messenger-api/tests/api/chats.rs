//! Private and group chats, the chat list with last message and unread count, deleting, read
//! receipts. Non-members get 404, never 403.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_private_chat_is_created_once_per_pair() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let res = app
        .post(
            "/api/chats",
            Some(&a.token),
            &json!({ "type": "private", "userId": b.id }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let chat = json(res).await;
    assert_eq!(chat["type"], "private");
    assert_eq!(
        chat["title"], "Борис",
        "a private chat is titled with the other member"
    );
    assert_eq!(chat["members"].as_array().unwrap().len(), 2);
    assert_eq!(chat["unreadCount"], 0);
    assert!(chat["lastMessage"].is_null());
    // again, from the other side and without "type": the same chat, 200
    let res = app
        .post("/api/chats", Some(&b.token), &json!({ "userId": a.id }))
        .await;
    assert_eq!(res.status(), 200);
    let again = json(res).await;
    assert_eq!(again["id"], chat["id"]);
    assert_eq!(again["title"], "Анна");
    app.cleanup().await;
}

#[tokio::test]
async fn chat_creation_is_validated() {
    let app = spawn_app().await;
    let a = app.user("Анна").await;
    let t = Some(a.token.as_str());
    let v = expect_error(
        app.post(
            "/api/chats",
            t,
            &json!({ "type": "private", "userId": a.id }),
        )
        .await,
        400,
    )
    .await;
    assert!(v["details"]["userId"].is_string());
    expect_error(
        app.post("/api/chats", t, &json!({ "type": "private" }))
            .await,
        400,
    )
    .await;
    expect_error(
        app.post("/api/chats", t, &json!({ "type": "group" })).await,
        400,
    )
    .await;
    expect_error(
        app.post("/api/chats", t, &json!({ "type": "group", "title": "   " }))
            .await,
        400,
    )
    .await;
    expect_error(
        app.post("/api/chats", t, &json!({ "type": "channel", "title": "x" }))
            .await,
        400,
    )
    .await;
    let ghost = Uuid::new_v4();
    let v = expect_error(
        app.post(
            "/api/chats",
            t,
            &json!({ "type": "group", "title": "Команда", "memberIds": [ghost] }),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(v["details"]["memberIds"][0], ghost.to_string());
    expect_error(
        app.post(
            "/api/chats",
            t,
            &json!({ "type": "private", "userId": ghost }),
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post("/api/chats", t, &json!({ "userId": "not-a-uuid" }))
            .await,
        400,
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_chat_list_has_last_message_and_unread_count() {
    let app = spawn_app().await;
    let (a, b, c) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Вера").await,
    );
    let group = app.group(&a, "Команда", &[&b, &c]).await;
    let private = app.private_chat(&a, &b).await;
    app.send(&b, group, "первое").await;
    let last = app.send(&c, group, "второе").await;
    app.send(&a, group, "моё — не непрочитанное").await;
    app.send(&b, private, "лично").await;

    let list = json(app.get("/api/chats", Some(&a.token)).await).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    // most recently active first
    assert_eq!(list[0]["id"], private.to_string());
    assert_eq!(list[0]["unreadCount"], 1);
    assert_eq!(list[0]["lastMessage"]["text"], "лично");
    let g = &list[1];
    assert_eq!(g["type"], "group");
    assert_eq!(g["title"], "Команда");
    assert_eq!(g["ownerId"], a.id.to_string());
    assert_eq!(g["unreadCount"], 2);
    assert_eq!(g["lastMessage"]["text"], "моё — не непрочитанное");
    assert_eq!(g["members"].as_array().unwrap().len(), 3);

    // read receipt up to "второе", then everything
    let res = app
        .post(
            &format!("/api/chats/{group}/read"),
            Some(&a.token),
            &json!({ "messageId": last["id"] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let receipt = json(res).await;
    assert_eq!(receipt["messageId"], last["id"]);
    assert_eq!(receipt["userId"], a.id.to_string());
    let one = json(
        app.get(&format!("/api/chats/{group}"), Some(&a.token))
            .await,
    )
    .await;
    assert_eq!(one["unreadCount"], 0);
    let me = one["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == a.id.to_string())
        .unwrap()
        .clone();
    assert_eq!(me["lastReadMessageId"], last["id"]);
    // an older receipt never moves it back
    let res = app
        .post(
            &format!("/api/chats/{group}/read"),
            Some(&a.token),
            &json!({ "messageId": 1 }),
        )
        .await;
    assert_eq!(json(res).await["messageId"], last["id"]);
    // no body: up to the newest
    let res = app
        .http
        .post(app.url(&format!("/api/chats/{private}/read")))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list = json(app.get("/api/chats", Some(&a.token)).await).await;
    assert_eq!(list[0]["unreadCount"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn read_receipts_are_validated() {
    let app = spawn_app().await;
    let (a, b, c) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Вера").await,
    );
    let chat = app.private_chat(&a, &b).await;
    let other = app.private_chat(&a, &c).await;
    let foreign = app.send(&a, other, "в другом чате").await;
    let path = format!("/api/chats/{chat}/read");
    expect_error(
        app.post(&path, Some(&a.token), &json!({ "messageId": -1 }))
            .await,
        400,
    )
    .await;
    expect_error(
        app.post(&path, Some(&a.token), &json!({ "messageId": "x" }))
            .await,
        400,
    )
    .await;
    expect_error(
        app.post(
            &path,
            Some(&a.token),
            &json!({ "messageId": foreign["id"] }),
        )
        .await,
        404,
    )
    .await;
    expect_error(app.post(&path, Some(&c.token), &json!({})).await, 404).await;
    app.cleanup().await;
}

#[tokio::test]
async fn non_members_get_404_not_403() {
    let app = spawn_app().await;
    let (a, b, stranger) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    let chat = app.private_chat(&a, &b).await;
    let path = format!("/api/chats/{chat}");
    assert_eq!(app.get(&path, Some(&a.token)).await.status(), 200);
    let v = expect_error(app.get(&path, Some(&stranger.token)).await, 404).await;
    assert_eq!(v["error"], "chat not found");
    expect_error(
        app.get(&format!("/api/chats/{}", Uuid::new_v4()), Some(&a.token))
            .await,
        404,
    )
    .await;
    expect_error(app.delete(&path, Some(&stranger.token)).await, 404).await;
    expect_error(app.get("/api/chats/not-a-uuid", Some(&a.token)).await, 400).await;
    app.cleanup().await;
}

#[tokio::test]
async fn deleting_chats() {
    let app = spawn_app().await;
    let (a, b, c) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Вера").await,
    );
    let private = app.private_chat(&a, &b).await;
    app.send(&a, private, "до удаления").await;
    // any member of a private chat
    assert_eq!(
        app.delete(&format!("/api/chats/{private}"), Some(&b.token))
            .await
            .status(),
        204
    );
    expect_error(
        app.get(&format!("/api/chats/{private}"), Some(&a.token))
            .await,
        404,
    )
    .await;
    expect_error(
        app.get(&format!("/api/messages/{private}"), Some(&a.token))
            .await,
        404,
    )
    .await;
    // a new private chat of the pair can be made again
    let again = app.private_chat(&a, &b).await;
    assert_ne!(again, private);

    // a group only by its owner
    let group = app.group(&a, "Команда", &[&b, &c]).await;
    let v = expect_error(
        app.delete(&format!("/api/chats/{group}"), Some(&b.token))
            .await,
        403,
    )
    .await;
    assert!(v["error"].as_str().unwrap().contains("owner"));
    assert_eq!(
        app.delete(&format!("/api/chats/{group}"), Some(&a.token))
            .await
            .status(),
        204
    );
    let list: Value = json(app.get("/api/chats", Some(&c.token)).await).await;
    assert!(list.as_array().unwrap().is_empty());
    expect_error(
        app.delete(&format!("/api/chats/{group}"), Some(&a.token))
            .await,
        404,
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn opening_an_existing_private_chat_returns_its_real_summary() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    app.send(&a, chat, "первое").await;
    app.send(&a, chat, "второе").await;
    // b opens the chat with a again: the existing one, with what b has not read yet
    let res = app
        .post(
            "/api/chats",
            Some(&b.token),
            &json!({ "type": "private", "userId": a.id }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let v = json(res).await;
    assert_eq!(v["id"], chat.to_string());
    assert_eq!(v["unreadCount"], 2);
    assert_eq!(v["lastMessage"]["text"], "второе");
    // and it agrees with GET /api/chats/{id}
    let one = json(app.get(&format!("/api/chats/{chat}"), Some(&b.token)).await).await;
    assert_eq!(one["unreadCount"], v["unreadCount"]);
    assert_eq!(one["lastMessage"], v["lastMessage"]);
    app.cleanup().await;
}
