//! Agent replies in Chatwoot → VK, through the webhook, the sender consumer and the sweep.

use sandbox::{Failure, Target};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn agent_reply_reaches_vk_once_and_private_notes_never() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Где мой заказ?").await;
    let reply_id = app
        .sandbox
        .chatwoot_agent_reply(conv, "Здравствуйте! Заказ в пути.", false)
        .await;
    let note_id = app
        .sandbox
        .chatwoot_agent_reply(conv, "внутренняя заметка: проверить склад", true)
        .await;
    // The note's webhook was answered (200, ignored) before we look at what VK got.
    app.sandbox
        .wait_until(WAIT, |s| {
            s.chatwoot_webhook_deliveries()
                .iter()
                .any(|d| d.message_id == Some(note_id) && d.status == Some(200))
        })
        .await
        .expect("the note's webhook was answered");
    app.sandbox
        .wait_until(WAIT, |s| !s.vk_sent_messages().is_empty())
        .await
        .expect("reply reaches VK");
    // Chatwoot's webhook for the same message delivered again (e.g. by a proxy): one effect.
    let again = app
        .sandbox
        .chatwoot_webhook_deliveries()
        .into_iter()
        .find(|d| d.message_id == Some(reply_id))
        .expect("the reply's webhook was delivered");
    let body: serde_json::Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    app.wait_db("the delivery record", || async {
        app.state
            .store
            .outbound_delivered(1, reply_id)
            .await
            .unwrap()
    })
    .await;
    // The repeated webhook carried the same Nats-Msg-Id: JetStream stored the command once.
    assert_eq!(app.commands_stored().await, 1);
    let sent = app.sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].peer_id, USER_ID);
    assert_eq!(sent[0].message, "Здравствуйте! Заказ в пути.");
    assert_eq!(
        sent[0].random_id,
        vk_connector::normalize::random_id(1, reply_id, 0) as i64
    );
    app.cleanup().await;
}

#[tokio::test]
async fn webhook_filters_everything_that_is_not_an_agent_reply() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Привет").await;
    let base = fixture("chatwoot_message_created_outgoing.json");
    let mut cases = vec![];
    for name in [
        "chatwoot_message_created_incoming.json",
        "chatwoot_message_created_private.json",
        "chatwoot_message_created_activity.json",
        "chatwoot_conversation_status_changed.json",
    ] {
        let mut v = fixture(name);
        if v.get("conversation").is_some() {
            v["conversation"]["id"] = json!(conv);
        }
        cases.push((name.to_owned(), v));
    }
    let mut contact_sender = base.clone();
    contact_sender["conversation"]["id"] = json!(conv);
    contact_sender["sender"] = json!({"id": 5, "name": "Иван Петров"});
    cases.push(("outgoing without agent sender".into(), contact_sender));
    let mut bot = base.clone();
    bot["conversation"]["id"] = json!(conv);
    bot["sender"] = json!({"id": 9, "name": "Bot", "type": "agent_bot"});
    cases.push(("agent bot not allowed".into(), bot));
    let mut unknown_conv = base.clone();
    unknown_conv["conversation"]["id"] = json!(999_999);
    cases.push(("unknown conversation".into(), unknown_conv));
    for (name, body) in &cases {
        let res = app.post_webhook(body).await;
        assert_eq!(res.status(), 200, "{name}");
        let answer: serde_json::Value = res.json().await.unwrap();
        assert!(answer["ignored"].is_string(), "{name}: {answer}");
    }
    assert_eq!(app.commands_stored().await, 0);
    // A body that does not fit is kept as a dead letter, answered 200 (tests/api/unreadable.rs);
    // unknown webhook id: 404.
    let res = app
        .http
        .post(format!("{}/chatwoot/webhook/{WEBHOOK_ID}", app.base))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert!(answer["dead_letter"].is_i64(), "{answer}");
    let res = app
        .http
        .post(format!("{}/chatwoot/webhook/other", app.base))
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.cleanup().await;
}

#[tokio::test]
async fn attachment_only_reply_and_long_reply_are_sent_as_vk_allows() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Пришлите счёт").await;
    let mut attach = fixture("chatwoot_message_created_attachment_only.json");
    attach["conversation"]["id"] = json!(conv);
    attach["account"]["id"] = json!(1);
    // The file is gone from Chatwoot's storage (404): sent as a link at once.
    let gone = format!(
        "{}/chatwoot/rails/active_storage/blobs/redirect/gone/накладная.jpg",
        app.sandbox.url()
    );
    attach["attachments"][0]["data_url"] = json!(gone);
    assert_eq!(app.post_webhook(&attach).await.status(), 200);
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 1)
        .await
        .expect("attachment link sent");
    assert!(
        app.sandbox.vk_sent_messages()[0]
            .message
            .starts_with("📎 image")
    );
    let long = "Очень подробный ответ. ".repeat(300); // ~6900 characters
    app.sandbox.chatwoot_agent_reply(conv, &long, false).await;
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 3)
        .await
        .expect("long reply split in two");
    let sent = app.sandbox.vk_sent_messages();
    assert!(sent[1..].iter().all(|m| m.message.chars().count() <= 4096));
    assert_ne!(sent[1].random_id, sent[2].random_id);
    app.cleanup().await;
}

#[tokio::test]
async fn vk_rate_limit_is_retried_and_permission_errors_dead_letter() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Ответьте").await;
    // Code 6 "too many requests" twice, then success: delivered once.
    app.sandbox.fail_next(Target::Vk, 2, Failure::VkError(6));
    app.sandbox
        .chatwoot_agent_reply(conv, "Отвечаем", false)
        .await;
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 1)
        .await
        .expect("delivered after code 6");
    // Code 901: the user does not allow messages from the community: final, dead letter.
    app.sandbox.block_vk_peer(USER_ID);
    let blocked_id = app
        .sandbox
        .chatwoot_agent_reply(conv, "Вы нас заблокировали?", false)
        .await;
    let dead = app.state.dead_letters.clone();
    app.wait_db("a dead letter", || async {
        !dead.list(10, true).await.unwrap().is_empty()
    })
    .await;
    let letters = dead.list(10, true).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("901"), "{}", letters[0].reason);
    assert_eq!(letters[0].msg_id, format!("chatwoot:1:{blocked_id}"));
    assert_eq!(app.sandbox.vk_sent_messages().len(), 1);
    // The sweep does not queue a dead-lettered message again.
    let report = vk_connector::workers::reconcile::sweep(&app.state)
        .await
        .unwrap();
    assert_eq!(report.queued, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn sweep_delivers_replies_whose_webhook_was_lost() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Жду ответа").await;
    // vk-connector is "down" for Chatwoot: the webhook goes nowhere and is never retried.
    app.sandbox.set_chatwoot_webhook(None, None);
    let lost = app
        .sandbox
        .chatwoot_agent_reply(conv, "Ответ, пока вы спали", false)
        .await;
    app.sandbox
        .chatwoot_agent_reply(conv, "заметка", true)
        .await;
    let report = vk_connector::workers::reconcile::sweep(&app.state)
        .await
        .unwrap();
    assert_eq!(report.conversations, 1);
    assert_eq!(report.queued, 1, "{report:?}");
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 1)
        .await
        .expect("swept reply delivered");
    assert_eq!(
        app.sandbox.vk_sent_messages()[0].message,
        "Ответ, пока вы спали"
    );
    app.wait_db("the delivery record", || async {
        app.state.store.outbound_delivered(1, lost).await.unwrap()
    })
    .await;
    // A second sweep finds nothing left to do.
    let report = vk_connector::workers::reconcile::sweep(&app.state)
        .await
        .unwrap();
    assert_eq!(report.queued, 0);
    assert_eq!(app.sandbox.vk_sent_messages().len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_reply_after_a_failed_webhook_waits_for_the_missed_one() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Жду ответа").await;
    // The first reply's webhook fails for real: vk-connector cannot read the conversation's
    // mapping (its table is away for a moment) and answers 500; Chatwoot never sends it again.
    let db = sqlx::PgPool::connect(&app.env.database_url).await.unwrap();
    sqlx::query("ALTER TABLE vk.conversations RENAME TO conversations_away")
        .execute(&db)
        .await
        .unwrap();
    let missed = app
        .sandbox
        .chatwoot_agent_reply(conv, "первый ответ", false)
        .await;
    app.sandbox
        .wait_until(WAIT, |s| {
            s.chatwoot_webhook_deliveries()
                .iter()
                .any(|d| d.message_id == Some(missed) && d.status == Some(500))
        })
        .await
        .expect("the first webhook was answered 500");
    sqlx::query("ALTER TABLE vk.conversations_away RENAME TO conversations")
        .execute(&db)
        .await
        .unwrap();
    assert!(
        app.state.gap.is_suspected(),
        "the failed webhook marks a gap"
    );
    // The next reply's webhook comes at once, before the sweep the failure woke (2 s later).
    let next = app
        .sandbox
        .chatwoot_agent_reply(conv, "второй ответ", false)
        .await;
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() >= 2)
        .await
        .expect("both replies reach VK");
    let sent: Vec<String> = app
        .sandbox
        .vk_sent_messages()
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(
        sent,
        ["первый ответ", "второй ответ"],
        "in the order written"
    );
    for id in [missed, next] {
        app.wait_db("the delivery record", || async {
            app.state.store.outbound_delivered(1, id).await.unwrap()
        })
        .await;
    }
    // The woken sweep closes the gap and queues nothing: the missed reply was delivered.
    app.wait_db("the sweep to close the gap", || async {
        !app.state.gap.is_suspected()
    })
    .await;
    let report = vk_connector::workers::reconcile::sweep(&app.state)
        .await
        .unwrap();
    assert_eq!(report.queued, 0, "{report:?}");
    assert_eq!(app.sandbox.vk_sent_messages().len(), 2, "each reply once");
    app.cleanup().await;
}

#[tokio::test]
async fn signed_webhooks_are_verified_when_a_secret_is_set() {
    let app = spawn_app_with(Options {
        webhook_secret: Some("cw-webhook-secret"),
        ..Default::default()
    })
    .await;
    let conv = app.customer_writes("Подписано?").await;
    // The sandbox signs its webhooks like Chatwoot ≥ 4.11: accepted.
    app.sandbox.chatwoot_agent_reply(conv, "Да", false).await;
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 1)
        .await
        .expect("signed webhook accepted");
    let mut body = fixture("chatwoot_message_created_outgoing.json");
    body["conversation"]["id"] = json!(conv);
    body["id"] = json!(777_001);
    let raw = body.to_string();
    let post = |sig: Option<String>, ts: Option<String>| {
        let mut req = app
            .http
            .post(format!("{}/chatwoot/webhook/{WEBHOOK_ID}", app.base))
            .header("content-type", "application/json")
            .body(raw.clone());
        if let Some(s) = sig {
            req = req.header("X-Chatwoot-Signature", s);
        }
        if let Some(t) = ts {
            req = req.header("X-Chatwoot-Timestamp", t);
        }
        req.send()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(post(None, None).await.unwrap().status(), 401, "unsigned");
    let bad = chatwoot_api::webhook::sign(b"wrong", now, raw.as_bytes());
    assert_eq!(
        post(Some(bad), Some(now.to_string()))
            .await
            .unwrap()
            .status(),
        401
    );
    let stale = chatwoot_api::webhook::sign(b"cw-webhook-secret", now - 3600, raw.as_bytes());
    assert_eq!(
        post(Some(stale), Some((now - 3600).to_string()))
            .await
            .unwrap()
            .status(),
        401
    );
    let good = chatwoot_api::webhook::sign(b"cw-webhook-secret", now, raw.as_bytes());
    assert_eq!(
        post(Some(good), Some(now.to_string()))
            .await
            .unwrap()
            .status(),
        200
    );
    app.cleanup().await;
}
