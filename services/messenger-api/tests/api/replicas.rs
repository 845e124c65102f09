//! Two replicas on two ports sharing Postgres and NATS behave as one hub.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn messages_and_presence_cross_between_replicas() {
    let one = spawn_app().await;
    let two = spawn_app_with(one.replica_options()).await;
    let (a, b) = (one.user("Анна").await, one.user("Борис").await);
    // connected before their chat exists: the membership reaches replica two over NATS
    let mut ca = HubClient::connect(&one.base, &a.token, TokenVia::Header).await;
    let mut cb = HubClient::connect(&two.base, &b.token, TokenVia::Query).await;
    let chat = one.private_chat(&a, &b).await;

    // hub invocation on one → push on two
    let done = ca
        .invoke("SendMessage", json!([chat, "с первой реплики"]))
        .await;
    let got = cb.next_invocation("ReceiveMessage").await;
    assert_eq!(got[0]["id"], done["result"]["id"]);
    assert_eq!(got[0]["text"], "с первой реплики");

    // (a's own connection gets its message too)
    assert_eq!(
        ca.next_invocation("ReceiveMessage").await[0]["id"],
        done["result"]["id"]
    );
    // REST on two → push on one
    let m = two.send(&b, chat, "со второй реплики").await;
    let got = ca.next_invocation("ReceiveMessage").await;
    assert_eq!(got[0]["id"], m["id"]);

    // typing and read receipts cross too
    cb.invoke("Typing", json!([chat])).await;
    assert_eq!(
        ca.next_invocation("Typing").await[0]["userId"],
        b.id.to_string()
    );
    cb.invoke("MarkRead", json!([chat, m["id"]])).await;
    let read = ca.next_invocation("MessageRead").await;
    assert_eq!(read[0]["messageId"], m["id"]);
    assert_eq!(read[0]["userId"], b.id.to_string());

    // presence crosses: b leaves two → a on one hears it; b comes back on two → a hears it
    cb.close().await;
    assert_eq!(
        ca.next_invocation("UserDisconnected").await,
        vec![json!(b.id)]
    );
    let _cb2 = HubClient::connect(&two.base, &b.token, TokenVia::Header).await;
    assert_eq!(ca.next_invocation("UserConnected").await, vec![json!(b.id)]);

    // a token negotiated on one replica is accepted by the other (no sticky sessions)
    let neg = json(
        one.post(
            "/hubs/chat/negotiate?negotiateVersion=1",
            Some(&a.token),
            &json!({}),
        )
        .await,
    )
    .await;
    let url = format!(
        "ws://127.0.0.1:{}/hubs/chat?id={}&access_token={}",
        two.port,
        neg["connectionToken"].as_str().unwrap(),
        a.token
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_ok());

    two.stop().await;
    one.cleanup().await;
}
