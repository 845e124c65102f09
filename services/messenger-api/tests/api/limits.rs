//! Issue 9, item 17: what one user may make others receive — members added to groups (per
//! request and per hour) and messages sent (REST and the hub's SendMessage sharing one limit).

use serde_json::{Value, json};

use crate::files::{form, ogg, upload};
use crate::helpers::*;

/// The `Retry-After` of a 429, in seconds.
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .expect("Retry-After on a 429")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

async fn create_group(app: &TestApp, owner: &User, members: &[&User]) -> reqwest::Response {
    let ids: Vec<_> = members.iter().map(|m| m.id).collect();
    app.post(
        "/api/chats",
        Some(&owner.token),
        &json!({ "type": "group", "title": "Группа", "memberIds": ids }),
    )
    .await
}

#[tokio::test]
async fn members_added_to_groups_are_limited_per_request_and_per_hour() {
    let app = spawn_app_with(Options {
        env: vec![
            ("MESSENGER_GROUP_MEMBERS_PER_REQUEST", "3".into()),
            ("MESSENGER_GROUP_MEMBERS_PER_HOUR", "5".into()),
        ],
        ..Default::default()
    })
    .await;
    let owner = app.user("Владелец").await;
    let other = app.user("Другой").await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(app.user(&format!("Участник {i}")).await);
    }
    let u: Vec<&User> = users.iter().collect();

    // four in one request: 400 naming the limit, and nothing is counted
    let v = expect_error(create_group(&app, &owner, &u).await, 400).await;
    assert_eq!(v["error"], "at most 3 members may be added in one request");
    assert_eq!(v["details"]["memberIds"], "4 given, at most 3");
    // the owner and repeated ids are not counted as added
    let res = app
        .post(
            "/api/chats",
            Some(&owner.token),
            &json!({ "type": "group", "title": "Группа",
                     "memberIds": [owner.id, u[0].id, u[0].id, u[1].id, u[2].id] }),
        )
        .await;
    assert_eq!(res.status(), 201, "three members fit one request");

    // 3 of the 5 an hour are spent: three more are refused, with when to come back
    let res = create_group(&app, &owner, &u[..3]).await;
    assert_eq!(res.status(), 429);
    let wait = retry_after(&res);
    // one member refills every 12 minutes
    assert!((1..=720).contains(&wait), "Retry-After {wait}");
    let v = json(res).await;
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("member limit reached: at most 5 added to groups per hour"),
        "{error}"
    );
    assert!(error.contains(&format!("try again in {wait} s")), "{error}");
    // the two left still fit; then nothing does
    assert_eq!(create_group(&app, &owner, &u[2..]).await.status(), 201);
    assert_eq!(create_group(&app, &owner, &u[..1]).await.status(), 429);
    // a group with no one else, and private chats, add no group members
    assert_eq!(create_group(&app, &owner, &[]).await.status(), 201);
    app.private_chat(&owner, u[3]).await;
    // every user has their own allowance
    assert_eq!(create_group(&app, &other, &u[..3]).await.status(), 201);
    app.cleanup().await;
}

#[tokio::test]
async fn sends_are_limited_per_user_over_rest_and_the_hub_together() {
    let app = spawn_app_with(Options {
        env: vec![
            ("MESSENGER_SEND_RATE_PER_MINUTE", "1".into()),
            ("MESSENGER_SEND_BURST", "2".into()),
        ],
        ..Default::default()
    })
    .await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;

    // one over REST, one over the hub: the burst of two is used up
    app.send(&a, chat, "первое").await;
    let done = ca.invoke("SendMessage", json!([chat, "второе"])).await;
    assert!(done.get("error").is_none(), "{done}");

    let res = app
        .post(
            "/api/messages",
            Some(&a.token),
            &json!({ "chatId": chat, "text": "третье" }),
        )
        .await;
    assert_eq!(res.status(), 429);
    let wait = retry_after(&res);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let v = json(res).await;
    let error = v["error"].as_str().unwrap();
    assert!(
        error.starts_with("message limit reached: at most 2 in a row, then 1 per minute"),
        "{error}"
    );

    // the hub's SendMessage obeys the same limit and names it in the completion
    let done = ca.invoke("SendMessage", json!([chat, "четвёртое"])).await;
    let error = done["error"].as_str().expect("error completion");
    assert!(
        error.starts_with("message limit reached: at most 2 in a row, then 1 per minute"),
        "{error}"
    );
    assert!(done.get("result").is_none(), "{done}");

    // a voice message is a message too
    let res = upload(&app, &a.token, form(chat, ogg(1000), "audio/ogg")).await;
    assert_eq!(res.status(), 429);
    retry_after(&res);

    // the partner has their own allowance; nothing refused was stored
    app.send(&b, chat, "мне можно").await;
    let page: Value = json(
        app.get(&format!("/api/messages/{chat}"), Some(&b.token))
            .await,
    )
    .await;
    let texts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, vec!["мне можно", "второе", "первое"]);
    ca.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_hub_alone_is_limited_too() {
    let app = spawn_app_with(Options {
        env: vec![
            ("MESSENGER_SEND_RATE_PER_MINUTE", "1".into()),
            ("MESSENGER_SEND_BURST", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Query).await;
    let done = ca.invoke("SendMessage", json!([chat, "раз"])).await;
    assert!(done.get("error").is_none(), "{done}");
    let done = ca.invoke("SendMessage", json!([chat, "два"])).await;
    let error = done["error"].as_str().expect("error completion");
    assert!(
        error.starts_with("message limit reached: at most 1 in a row, then 1 per minute"),
        "{error}"
    );
    assert!(error.contains("try again in"), "{error}");
    // the connection stays usable: other methods are not limited
    let done = ca.invoke("Typing", json!([chat])).await;
    assert!(done.get("error").is_none(), "{done}");
    expect_error(
        app.post(
            "/api/messages",
            Some(&a.token),
            &json!({ "chatId": chat, "text": "три" }),
        )
        .await,
        429,
    )
    .await;
    ca.close().await;
    app.cleanup().await;
}
