//! Webhook mode: registration, the secret, the hand-off to JetStream, and the token kept out of
//! every log line.

use serde_json::json;

use crate::helpers::*;

fn update(update_id: i64, user: i64, message_id: i64, text: &str) -> String {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id, "date": 1_764_000_000,
            "chat": {"id": user, "type": "private", "first_name": "Ivan"},
            "from": {"id": user, "is_bot": false, "first_name": "Ivan", "language_code": "ru"},
            "text": text
        }
    })
    .to_string()
}

#[tokio::test]
async fn webhook_mode_registers_the_webhook_and_relays_what_telegram_posts() {
    let app = spawn_app_with(Options {
        webhook: true,
        ..Options::default()
    })
    .await;
    app.sandbox
        .wait_until(WAIT, |s| s.telegram_webhook().is_some())
        .await
        .expect("setWebhook called at start");
    let (url, secret) = app.sandbox.telegram_webhook().unwrap();
    assert_eq!(url, format!("{}/telegram/webhook", app.base));
    assert_eq!(secret.as_deref(), Some(WEBHOOK_SECRET));
    // The sandbox delivers a pushed update to the webhook, with the secret, like Telegram.
    app.customer_sends(&ivan(), text("через webhook"));
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 2).await;
    assert_eq!(msgs[1]["text"], "через webhook");
    // Posted directly: 200 with an empty body after the JetStream ack.
    let before = app.events_stored().await;
    let res = app
        .post_webhook(
            Some(WEBHOOK_SECRET),
            update(900_001, 5_000_009, 1, "direct"),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().is_empty());
    assert_eq!(
        app.events_stored().await,
        before + 1,
        "stored before the answer"
    );
    // The same update again: 200, stored once.
    let res = app
        .post_webhook(
            Some(WEBHOOK_SECRET),
            update(900_001, 5_000_009, 1, "direct"),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.events_stored().await,
        before + 1,
        "a duplicate is not stored twice"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_401_and_nothing_is_published() {
    let app = spawn_app_with(Options {
        webhook: true,
        ..Options::default()
    })
    .await;
    let before = app.events_stored().await;
    for secret in [None, Some("wrong-secret"), Some("")] {
        let res = app.post_webhook(secret, update(1, 5_000_009, 1, "x")).await;
        assert_eq!(res.status(), 401, "{secret:?}");
    }
    // A body that is not JSON, with the right secret: 400 saying what was wrong.
    let res = app
        .post_webhook(Some(WEBHOOK_SECRET), "not json".into())
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not JSON"));
    let res = app
        .post_webhook(
            Some(WEBHOOK_SECRET),
            json!({"update_id": 5, "message": {"text": "no chat"}}).to_string(),
        )
        .await;
    // JSON that is not an update, with the right secret: kept as a dead letter, answered 200
    // (a 400 would make Telegram retry it for a day and then drop it).
    assert_eq!(res.status(), 200);
    let kept = app.state.dead_letters.list(10, true).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].reason.contains("not a Telegram Message"),
        "{}",
        kept[0].reason
    );
    assert_eq!(app.events_stored().await, before);
}

#[tokio::test]
async fn in_polling_mode_there_is_no_webhook_route() {
    let app = spawn_app().await;
    let res = app
        .post_webhook(Some(WEBHOOK_SECRET), update(1, 5_000_009, 1, "x"))
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn the_token_reaches_no_log_line() {
    let logs = capture_logs();
    let app = spawn_app_with(Options {
        webhook: true,
        ..Options::default()
    })
    .await;
    // Work that logs: registration, a relay, a failing call (429 and 5xx), a bad request.
    app.customer_sends(&ivan(), text("hello"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    app.sandbox
        .fail_next(sandbox::Target::Telegram, 2, sandbox::Failure::Status(502));
    app.operator_sends(thread, text("reply"));
    app.wait_customer_len(ivan().id, 1).await;
    let _ = app.post_webhook(Some(WEBHOOK_SECRET), "{}".into()).await;
    let token = app.sandbox.options().telegram_bot_token.clone();
    let secret = token.split_once(':').unwrap().1.to_owned();
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.len() > 1000,
        "logs were captured: {} bytes",
        text.len()
    );
    assert!(
        text.contains("502") || text.contains("Bad Gateway"),
        "the failure was logged"
    );
    let leaks: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&secret))
        .map(|l| l.replace(&secret, "<TOKEN>"))
        .take(3)
        .collect();
    assert!(
        leaks.is_empty(),
        "the bot token leaked into the logs: {leaks:#?}"
    );
    assert!(
        !text.contains(WEBHOOK_SECRET),
        "the webhook secret leaked into the logs"
    );
}
