//! Poison input (issue 9, item 6): an authenticated body that does not fit is answered `ok` /
//! 200 and kept as a dead letter with the reason, replayable through `cmd.vk.inbound.reingest`;
//! a body that fails authentication is refused and kept nowhere.

use std::time::Duration;

use serde_json::{Value, json};
use service_kit::dead_letter::DeadLetter;
use vk_connector::consumers::reingest::REINGEST;

use crate::helpers::*;

/// `message_new` with the pre-5.103 object (the message itself, no `{message, client_info}`).
fn old_shape(text: &str) -> Value {
    let mut event = message_new(USER_ID, text);
    event["object"] = json!({"id": 77, "date": 1_763_812_800, "peer_id": USER_ID, "from_id": USER_ID, "text": text});
    event
}

fn reingest_subject(app: &TestApp) -> String {
    app.state
        .bus
        .wire_subject(&domain::Subject::command(REINGEST))
}

async fn pending(app: &TestApp) -> Vec<DeadLetter> {
    app.state.dead_letters.list(50, true).await.unwrap()
}

/// Waits for a pending dead letter other than `seen` and returns it.
async fn next_dead_letter(app: &TestApp, seen: &[i64]) -> DeadLetter {
    app.wait_db("a new dead letter", || async {
        pending(app).await.iter().any(|d| !seen.contains(&d.id))
    })
    .await;
    pending(app)
        .await
        .into_iter()
        .find(|d| !seen.contains(&d.id))
        .unwrap()
}

/// Stands in for a release that reads the kept shape: rewrites what the dead letter carries.
async fn rewrite_data(app: &TestApp, id: i64, path: &[&str], value: Value) {
    let path = format!("{{data,{}}}", path.join(","));
    sqlx::query(
        "UPDATE vk.dead_letters SET payload = jsonb_set(payload, $1::text[], $2) WHERE id = $3",
    )
    .bind(path)
    .bind(value)
    .bind(id)
    .execute(app.state.store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unreadable_vk_event_is_answered_ok_kept_without_secret_and_replayable() {
    let app = spawn_app().await;
    let event = old_shape("Старый формат");
    let res = app.post_callback(&event).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok", "VK must not re-send it");
    // VK re-sends it anyway (our `ok` was lost): still one dead letter.
    assert_eq!(app.post_callback(&event).await.text().await.unwrap(), "ok");
    assert_eq!(app.events_stored().await, 0);
    let kept = pending(&app).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let first = &kept[0];
    assert_eq!(first.subject, reingest_subject(&app));
    assert!(
        first.reason.contains("message_new object"),
        "{}",
        first.reason
    );
    assert_eq!(first.payload["type"], "vk.event");
    assert_eq!(first.payload["data"]["object"], event["object"]);
    assert_eq!(first.payload["data"]["event_id"], event["event_id"]);
    assert!(
        !first.payload.to_string().contains(VK_SECRET),
        "the VK secret is not stored: {}",
        first.payload
    );

    // Replayed while this build still cannot read it: kept again, with the reason.
    app.state
        .dead_letters
        .replay(&app.state.bus, first.id)
        .await
        .unwrap();
    let again = next_dead_letter(&app, &[first.id]).await;
    assert_eq!(again.subject, reingest_subject(&app));
    assert!(
        again.reason.contains("message_new object"),
        "{}",
        again.reason
    );
    assert_eq!(app.events_stored().await, 0);

    // Once it can be read, the replay takes the callback's own path to Chatwoot.
    let message = json!({
        "date": 1_763_812_800, "from_id": USER_ID, "id": 77, "out": 0, "peer_id": USER_ID,
        "text": "Старый формат", "attachments": [], "fwd_messages": []
    });
    rewrite_data(&app, again.id, &["object"], json!({ "message": message })).await;
    app.state
        .dead_letters
        .replay(&app.state.bus, again.id)
        .await
        .unwrap();
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .expect("the replayed event reaches Chatwoot");
    assert_eq!(app.all_chatwoot_messages()[0]["content"], "Старый формат");
    assert!(pending(&app).await.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn unauthenticated_bodies_are_refused_and_not_kept() {
    let app = spawn_app_with(Options {
        webhook_secret: Some("cw-webhook-secret"),
        ..Default::default()
    })
    .await;
    // VK: wrong or missing secret, another community, not JSON.
    let mut wrong = old_shape("x");
    wrong["secret"] = json!("guess");
    assert_eq!(app.post_callback(&wrong).await.status(), 401);
    let mut missing = old_shape("x");
    missing.as_object_mut().unwrap().remove("secret");
    assert_eq!(app.post_callback(&missing).await.status(), 401);
    let mut other = old_shape("x");
    other["group_id"] = json!(1);
    assert_eq!(app.post_callback(&other).await.status(), 403);
    let res = app
        .post_callback_raw(CALLBACK_ID, "{\"type\":".into())
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .post_callback_raw("not-the-callback-id", old_shape("x").to_string())
        .await;
    assert_eq!(res.status(), 404);
    // Chatwoot with a signing secret: unsigned or wrongly signed is 401, whatever the body.
    let url = format!("{}/chatwoot/webhook/{WEBHOOK_ID}", app.base);
    let res = app.http.post(&url).body("not json").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let res = app
        .http
        .post(&url)
        .header(
            "x-chatwoot-signature",
            chatwoot_api::webhook::sign(b"another-secret", now, b"not json"),
        )
        .header("x-chatwoot-timestamp", now.to_string())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(pending(&app).await.is_empty(), "nothing kept");
    // Correctly signed, the same body is Chatwoot's: kept.
    let res = app
        .http
        .post(&url)
        .header(
            "x-chatwoot-signature",
            chatwoot_api::webhook::sign(b"cw-webhook-secret", now, b"not json"),
        )
        .header("x-chatwoot-timestamp", now.to_string())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let kept = pending(&app).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].payload["data"], "not json");
    assert!(
        kept[0].reason.contains("not a Chatwoot webhook"),
        "{}",
        kept[0].reason
    );
    assert_eq!(app.events_stored().await + app.commands_stored().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unreadable_chatwoot_reply_is_kept_and_replayable() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Когда доставка?").await;
    let mut body = fixture("chatwoot_message_created_outgoing.json");
    body["conversation"]["id"] = json!(conv);
    body["content"] = json!("Завтра до обеда");
    // A field of another type than documented (a newer Chatwoot, say).
    body["attachments"] = json!({"file_type": "image"});
    let res = app.post_webhook(&body).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let id = answer["dead_letter"].as_i64().expect("dead letter id");
    assert_eq!(app.commands_stored().await, 0);
    let kept = pending(&app).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id, id);
    assert_eq!(kept[0].subject, reingest_subject(&app));
    assert_eq!(kept[0].payload["type"], "chatwoot.webhook");
    assert_eq!(kept[0].payload["data"], body);
    assert!(
        kept[0]
            .reason
            .contains("message_created payload is malformed"),
        "{}",
        kept[0].reason
    );

    // Replayed unread: kept again by the replay consumer.
    app.state
        .dead_letters
        .replay(&app.state.bus, id)
        .await
        .unwrap();
    let again = next_dead_letter(&app, &[id]).await;
    assert!(
        again
            .reason
            .contains("message_created payload is malformed"),
        "{}",
        again.reason
    );
    assert!(app.sandbox.vk_sent_messages().is_empty());

    // Readable, the replay goes the webhook's way to VK.
    rewrite_data(&app, again.id, &["attachments"], json!([])).await;
    app.state
        .dead_letters
        .replay(&app.state.bus, again.id)
        .await
        .unwrap();
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 1)
        .await
        .expect("the replayed reply reaches VK");
    assert_eq!(app.sandbox.vk_sent_messages()[0].message, "Завтра до обеда");
    app.cleanup().await;
}

#[tokio::test]
async fn an_unreadable_long_poll_update_is_kept_and_the_worker_goes_on() {
    let app = spawn_app_with(Options {
        long_poll: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let group = app.state.settings.vk.group_id;
    app.sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
        .await
        .expect("the worker polls");
    let mut bad = old_shape("Старый формат");
    bad.as_object_mut().unwrap().remove("secret");
    let mut good = message_new(USER_ID, "Новый формат");
    good.as_object_mut().unwrap().remove("secret");
    app.sandbox.vk_push_long_poll_event(bad.clone());
    app.sandbox
        .vk_push_long_poll_event(json!({"not": "an event"}));
    app.sandbox.vk_push_long_poll_event(good);
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .expect("the readable event is relayed");
    assert_eq!(app.all_chatwoot_messages()[0]["content"], "Новый формат");
    app.wait_db("the position past all three", || async {
        app.state
            .store
            .long_poll_ts(group)
            .await
            .unwrap()
            .as_deref()
            == Some("3")
    })
    .await;
    let kept = pending(&app).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().all(|d| d.subject == reingest_subject(&app)));
    assert!(
        kept.iter()
            .any(|d| d.payload["data"]["object"] == bad["object"])
    );
    assert!(
        kept.iter()
            .any(|d| d.payload["data"] == json!({"not": "an event"}))
    );
    app.cleanup().await;
}
