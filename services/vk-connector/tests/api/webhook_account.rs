//! A Chatwoot payload that names no account is not relayed (issue 9, item 4).

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn an_agent_reply_without_account_is_not_relayed() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Здравствуйте").await;
    let mut reply = fixture("chatwoot_message_created_outgoing.json");
    reply["conversation"]["id"] = json!(conv);
    let mut no_account = reply.clone();
    no_account.as_object_mut().unwrap().remove("account");
    let res = app.post_webhook(&no_account).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["ignored"], "no account in the payload", "{answer}");
    let mut null_account = reply.clone();
    null_account["account"] = Value::Null;
    let answer: Value = app.post_webhook(&null_account).await.json().await.unwrap();
    assert_eq!(answer["ignored"], "no account in the payload", "{answer}");
    let mut other = reply.clone();
    other["account"]["id"] = json!(2);
    let answer: Value = app.post_webhook(&other).await.json().await.unwrap();
    assert_eq!(answer["ignored"], "another account", "{answer}");
    assert_eq!(app.commands_stored().await, 0);
    // The same reply naming the connector's account is relayed.
    let answer: Value = app.post_webhook(&reply).await.json().await.unwrap();
    assert_eq!(answer["queued"], true, "{answer}");
    assert_eq!(app.commands_stored().await, 1);
    app.cleanup().await;
}
