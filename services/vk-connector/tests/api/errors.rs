//! 5xx answers carry a fixed text and the request id, never internal detail (sqlx, NATS).

use serde_json::{Value, json};

use crate::helpers::*;

/// The body of a 5xx, checked to be exactly `{"error": <fixed>, "request_id": <the header>}`.
async fn fixed_body(res: reqwest::Response, status: u16, text: &str) -> String {
    assert_eq!(res.status(), status);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!request_id.is_empty());
    let body = res.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(
        v,
        json!({"error": text, "request_id": request_id}),
        "{body}"
    );
    body
}

#[tokio::test]
async fn a_database_error_answers_500_without_internal_text() {
    let app = spawn_app().await;
    // Break the table the webhook reads, through a pool of the test's own.
    let pool = sqlx::PgPool::connect(&app.env.database_url).await.unwrap();
    sqlx::query("ALTER TABLE vk.conversations RENAME TO conversations_moved")
        .execute(&pool)
        .await
        .unwrap();
    let mut webhook = fixture("chatwoot_message_created_outgoing.json");
    webhook["conversation"]["id"] = json!(4242);
    let res = app.post_webhook(&webhook).await;
    let body = fixed_body(res, 500, "internal error").await;
    for internal in ["relation", "vk.", "sqlx", "database", "conversations"] {
        assert!(!body.contains(internal), "`{internal}` leaked: {body}");
    }
    // The table back, the same webhook is answered (a conversation that is not ours).
    sqlx::query("ALTER TABLE vk.conversations_moved RENAME TO conversations")
        .execute(&pool)
        .await
        .unwrap();
    let res = app.post_webhook(&webhook).await;
    assert_eq!(res.status(), 200);
    pool.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn nats_down_answers_503_without_internal_text() {
    let app = spawn_app().await;
    app.state.bus.delete_streams().await.unwrap();
    let res = app.post_callback(&message_new(USER_ID, "Алло?")).await;
    let body = fixed_body(res, 503, service_kit::http_error::UNAVAILABLE_TEXT).await;
    for internal in ["stream", "nats", "jetstream", "publish"] {
        assert!(
            !body.to_lowercase().contains(internal),
            "`{internal}` leaked: {body}"
        );
    }
    app.cleanup().await;
}
