//! The SignalR hub, spoken from the spec by a small client: negotiate, handshake, pushes,
//! invocations with completions, presence, pings, the client timeout, slow clients.

use std::time::Duration;

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn negotiate_and_upgrade_want_a_token_and_a_valid_connection_id() {
    let app = spawn_app().await;
    let a = app.user("Анна").await;
    expect_error(
        app.post("/hubs/chat/negotiate?negotiateVersion=1", None, &json!({}))
            .await,
        401,
    )
    .await;
    let v1 = json(
        app.post(
            "/hubs/chat/negotiate?negotiateVersion=1",
            Some(&a.token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(v1["negotiateVersion"], 1);
    assert!(v1["connectionId"].is_string());
    assert!(v1["connectionToken"].is_string());
    assert_eq!(
        v1["availableTransports"],
        json!([{ "transport": "WebSockets", "transferFormats": ["Text"] }])
    );
    let v0 = json(
        app.post("/hubs/chat/negotiate", Some(&a.token), &json!({}))
            .await,
    )
    .await;
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none());

    let ws = |q: &str| {
        app.http
            .get(app.url(&format!("/hubs/chat{q}")))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    expect_error(ws("").send().await.unwrap(), 401).await;
    let res = ws("?id=forged.1.x")
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    expect_error(res, 404).await;
    // a token negotiated by someone else is refused too
    let b = app.user("Борис").await;
    let token = v1["connectionToken"].as_str().unwrap();
    let res = ws(&format!("?id={token}"))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    expect_error(res, 404).await;
    let res = ws(&format!("?id={token}"))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    app.cleanup().await;
}

#[tokio::test]
async fn a_message_sent_over_the_hub_reaches_the_other_member_and_completes() {
    let app = spawn_app().await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    let mut cb = HubClient::connect(&app.base, &b.token, TokenVia::Query).await;
    let done = ca
        .invoke("SendMessage", json!([chat, "Привет по хабу"]))
        .await;
    assert!(done.get("error").is_none(), "{done}");
    let sent = &done["result"];
    assert_eq!(sent["text"], "Привет по хабу");
    assert_eq!(sent["senderId"], a.id.to_string());
    let got = cb.next_invocation("ReceiveMessage").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], sent["id"]);
    assert_eq!(got[0]["chatId"], chat.to_string());
    assert_eq!(got[0]["senderName"], "Анна");
    // the sender's own connection gets it too (its other devices do)
    assert_eq!(
        ca.next_invocation("ReceiveMessage").await[0]["id"],
        sent["id"]
    );
    // and it is stored like a REST send
    let page = json(
        app.get(&format!("/api/messages/{chat}"), Some(&b.token))
            .await,
    )
    .await;
    assert_eq!(page["items"][0]["id"], sent["id"]);

    // REST send → pushed
    let m = app.send(&b, chat, "а это через REST").await;
    assert_eq!(ca.next_invocation("ReceiveMessage").await[0]["id"], m["id"]);
    app.cleanup().await;
}

#[tokio::test]
async fn typing_read_and_delete_are_pushed() {
    let app = spawn_app().await;
    let (a, b, c) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Вера").await,
    );
    let group = app.group(&a, "Команда", &[&b, &c]).await;
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    let mut cb = HubClient::connect(&app.base, &b.token, TokenVia::Header).await;

    // Typing: to the others, not back to the typist; a fire-and-forget send works as well
    ca.send_raw(&invocation("Typing", json!([group]))).await;
    let t = cb.next_invocation("Typing").await;
    assert_eq!(
        t[0],
        json!({ "chatId": group, "userId": a.id, "displayName": "Анна" })
    );
    let done = ca.invoke("Typing", json!([group])).await;
    assert!(
        done.get("error").is_none() && done.get("result").is_none(),
        "{done}"
    );
    cb.next_invocation("Typing").await;

    let m = app.send(&b, group, "прочитай").await;
    cb.next_invocation("ReceiveMessage").await;
    let done = ca.invoke("MarkRead", json!([group, m["id"]])).await;
    assert!(done.get("error").is_none(), "{done}");
    let read = cb.next_invocation("MessageRead").await;
    assert_eq!(read[0]["chatId"], group.to_string());
    assert_eq!(read[0]["userId"], a.id.to_string());
    assert_eq!(read[0]["messageId"], m["id"]);
    // a sees its own receipt (its other devices do), then b's REST receipt
    assert_eq!(
        ca.next_invocation("MessageRead").await[0]["userId"],
        a.id.to_string()
    );
    app.post(
        &format!("/api/chats/{group}/read"),
        Some(&b.token),
        &json!({}),
    )
    .await;
    assert_eq!(
        ca.next_invocation("MessageRead").await[0]["userId"],
        b.id.to_string()
    );

    assert_eq!(
        app.delete(&format!("/api/messages/{}", m["id"]), Some(&b.token))
            .await
            .status(),
        204
    );
    let del = ca.next_invocation("MessageDeleted").await;
    assert_eq!(del[0], json!({ "chatId": group, "messageId": m["id"] }));
    app.cleanup().await;
}

#[tokio::test]
async fn invocation_errors_come_back_as_completions() {
    let app = spawn_app().await;
    let (a, b, s) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    let chat = app.private_chat(&a, &b).await;
    let mut cs = HubClient::connect(&app.base, &s.token, TokenVia::Header).await;
    let e = cs.invoke("SendMessage", json!([chat, "чужой"])).await;
    assert_eq!(e["error"], "chat not found");
    let e = cs.invoke("SendMessage", json!(["not-a-uuid", "x"])).await;
    assert!(e["error"].as_str().unwrap().contains("chatId"));
    let e = cs.invoke("SendMessage", json!([chat])).await;
    assert!(e["error"].is_string());
    let e = cs.invoke("NoSuchMethod", json!([])).await;
    assert_eq!(e["error"], "Method 'NoSuchMethod' does not exist.");
    let e = cs.invoke("MarkRead", json!([chat, 1])).await;
    assert_eq!(e["error"], "chat not found");
    // streaming is not offered
    cs.send_raw(
        "{\"type\":4,\"invocationId\":\"s1\",\"target\":\"SendMessage\",\"arguments\":[]}\u{1e}",
    )
    .await;
    let c = cs.next_of_type(3).await;
    assert_eq!(c["invocationId"], "s1");
    assert!(c["error"].is_string());
    // still connected after all that
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    let ok = ca.invoke("SendMessage", json!([chat, "ok"])).await;
    assert!(ok["result"].is_object());
    app.cleanup().await;
}

#[tokio::test]
async fn presence_is_announced_to_chat_partners() {
    let app = spawn_app().await;
    let (a, b, s) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    app.private_chat(&a, &b).await;
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    let mut cs = HubClient::connect(&app.base, &s.token, TokenVia::Header).await;
    let cb = HubClient::connect(&app.base, &b.token, TokenVia::Header).await;
    assert_eq!(ca.next_invocation("UserConnected").await, vec![json!(b.id)]);
    // The stranger shares no chat with b. Frames queued for a connection go out before it
    // answers its next invocation, so after this completion an announcement would be here.
    let done = cs.invoke("NoSuchMethod", json!([])).await;
    assert!(done["error"].is_string());
    assert!(
        !cs.has_invocation("UserConnected"),
        "strangers see no presence"
    );
    // a second connection of the same user is not a new arrival; closing one of two is not a
    // departure
    let cb2 = HubClient::connect(&app.base, &b.token, TokenVia::Query).await;
    cb2.close().await;
    cb.close().await;
    assert_eq!(
        ca.next_invocation("UserDisconnected").await,
        vec![json!(b.id)]
    );
    assert!(
        !ca.has_invocation("UserConnected"),
        "only one arrival for two connections"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn handshake_keep_alive_and_client_timeout() {
    let app = spawn_app_with(Options {
        env: vec![("HUB_CLIENT_TIMEOUT_SECS", "2".into())],
        // HUB_KEEPALIVE_SECS is whole seconds; the test wants pings well within the timeout.
        tweak: Some(Box::new(|s| s.hub.keepalive = Duration::from_millis(300))),
        ..Default::default()
    })
    .await;
    let a = app.user("Анна").await;
    let mut c = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    // the server pings when it has nothing else to say
    assert_eq!(c.next_of_type(6).await, json!({ "type": 6 }));
    // a client that says nothing for the timeout is dropped, with a Close message
    let close = c.wait_closed().await.expect("a Close message");
    assert_eq!(
        close["error"],
        "Server timeout elapsed without receiving a message from the client."
    );
    assert!(c.closed);

    // a client that pings stays
    let mut alive = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    for _ in 0..4 {
        alive.send_raw("{\"type\":6}\u{1e}").await;
        alive.next_of_type(6).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let ok = alive.invoke("NoSuchMethod", json!([])).await;
    assert!(
        ok["error"].is_string(),
        "still connected after more than the timeout"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_unsupported_protocol_fails_the_handshake() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app().await;
    let a = app.user("Анна").await;
    let url = format!(
        "ws://127.0.0.1:{}/hubs/chat?access_token={}",
        app.port, a.token
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}".into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("a handshake response");
    };
    let v: Value = serde_json::from_str(t.as_str().trim_end_matches('\u{1e}')).unwrap();
    assert!(v["error"].as_str().unwrap().contains("messagepack"));
    // then the server closes
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            _ => {}
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_slow_client_is_disconnected_and_the_others_keep_up() {
    let app = spawn_app_with(Options {
        env: vec![("HUB_QUEUE_CAPACITY", "8".into())],
        ..Default::default()
    })
    .await;
    let (a, b) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&a, &b).await;
    // b has a registered connection whose queue nobody drains
    let hub = &app.state.hub;
    let (_conn, rx, _) = hub.register(b.id);
    hub.join_chats(b.id, &[chat]);
    // a is a real, reading client
    // (it reads each message before the next is sent, so its own queue of 8 never fills,
    // however slowly its writer task is scheduled on a loaded machine)
    let mut ca = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    for i in 0..12 {
        app.send(&a, chat, &format!("flood {i}")).await;
        let got = ca.next_invocation("ReceiveMessage").await;
        assert_eq!(got[0]["text"], format!("flood {i}"));
    }
    tokio::time::timeout(WAIT, rx.kicked.cancelled())
        .await
        .expect("the stuck connection was told to go");

    // a real socket that is kicked gets a Close message inviting it to reconnect
    let mut cb = HubClient::connect(&app.base, &b.token, TokenVia::Header).await;
    // the kick reaches connections through their token; delete b's account to kick for real
    let admin = app.admin().await;
    assert_eq!(
        app.delete(&format!("/api/admin/users/{}", b.id), Some(&admin.token))
            .await
            .status(),
        204
    );
    let close = cb.wait_closed().await.expect("a Close message");
    assert!(close["error"].as_str().unwrap().contains("account"));
    app.cleanup().await;
}

#[tokio::test]
async fn shutdown_closes_connections_with_reconnect_allowed() {
    let app = spawn_app().await;
    let a = app.user("Анна").await;
    let mut c = HubClient::connect(&app.base, &a.token, TokenVia::Header).await;
    app.shutdown.cancel();
    let close = c.wait_closed().await.expect("a Close message");
    assert_eq!(close["allowReconnect"], true);
    app.cleanup().await;
}

/// A real socket that completes the SignalR handshake and then never reads again: a tiny
/// receive buffer, the read half never polled. Kept alive by the caller.
async fn stalled_client(
    app: &TestApp,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(format!("127.0.0.1:{}", app.port).parse().unwrap())
        .await
        .unwrap();
    let mut req = format!("ws://127.0.0.1:{}/hubs/chat", app.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    ws.send(Message::Text(
        "{\"protocol\":\"json\",\"version\":1}\u{1e}".into(),
    ))
    .await
    .unwrap();
    let first = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(first, Some(Ok(Message::Text(ref t))) if t.as_str() == "{}\u{1e}"),
        "handshake response: {first:?}"
    );
    ws
}

/// Queues `count` frames of 64 KiB for the members of `chat` (far more than any TCP window).
async fn flood(app: &TestApp, chat: uuid::Uuid, count: usize) {
    let big = "x".repeat(64 * 1024);
    for _ in 0..count {
        let frame =
            messenger_api::hub::protocol::invocation("ReceiveMessage", &[json!(big.clone())]);
        app.state.hub.to_chat(chat, frame, None).await;
    }
    // a round trip through the server: its connection tasks run and write until TCP backs up
    assert_eq!(app.get("/health", None).await.status(), 200);
}

async fn wait_disconnected(app: &TestApp, user: uuid::Uuid) {
    let hub = app.state.hub.clone();
    testkit::wait_for("the stalled connection to be dropped", || {
        let hub = hub.clone();
        async move { !hub.is_connected(user) }
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_by_the_send_timeout() {
    // A queue long enough never to overflow: only the bounded write can catch the client.
    let app = spawn_app_with(Options {
        env: vec![
            ("HUB_QUEUE_CAPACITY", "100000".into()),
            ("HUB_SEND_TIMEOUT_SECS", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let (a, b, c) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Вера").await,
    );
    let stuck_chat = app.private_chat(&a, &b).await;
    let other_chat = app.private_chat(&a, &c).await;
    let _stalled = stalled_client(&app, &b.token).await;
    let mut cc = HubClient::connect(&app.base, &c.token, TokenVia::Header).await;
    assert!(app.state.hub.is_connected(b.id));
    flood(&app, stuck_chat, 64).await;
    wait_disconnected(&app, b.id).await;
    assert_eq!(app.state.hub.connection_count(), 1, "only c is left");
    // the others keep receiving
    for i in 0..5 {
        app.send(&a, other_chat, &format!("still here {i}")).await;
        let got = cc.next_invocation("ReceiveMessage").await;
        assert_eq!(got[0]["text"], format!("still here {i}"));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_kick_reaches_a_connection_blocked_in_a_write() {
    // Neither the write timeout nor the client timeout comes to the rescue within the test:
    // only the kick (here: the account is deleted) can end the blocked write.
    let app = spawn_app_with(Options {
        env: vec![
            ("HUB_QUEUE_CAPACITY", "100000".into()),
            ("HUB_SEND_TIMEOUT_SECS", "600".into()),
            ("HUB_CLIENT_TIMEOUT_SECS", "600".into()),
        ],
        ..Default::default()
    })
    .await;
    let (a, b, c) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Вера").await,
    );
    let stuck_chat = app.private_chat(&a, &b).await;
    let other_chat = app.private_chat(&a, &c).await;
    let _stalled = stalled_client(&app, &b.token).await;
    let mut cc = HubClient::connect(&app.base, &c.token, TokenVia::Header).await;
    flood(&app, stuck_chat, 64).await;
    assert!(app.state.hub.is_connected(b.id));
    let admin = app.admin().await;
    assert_eq!(
        app.delete(&format!("/api/admin/users/{}", b.id), Some(&admin.token))
            .await
            .status(),
        204
    );
    wait_disconnected(&app, b.id).await;
    app.send(&a, other_chat, "after the kick").await;
    let got = cc.next_invocation("ReceiveMessage").await;
    assert_eq!(got[0]["text"], "after the kick");
    app.cleanup().await;
}
