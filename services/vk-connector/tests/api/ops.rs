//! /health, /ready, /metrics, `check` and dead-letter replay.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = spawn_app().await;
    let health: Value = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true);
    assert_eq!(health["service"], "vk-connector");
    assert!(health["timestamp"].as_str().unwrap().ends_with('Z'));
    let res = app
        .http
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    app.customer_writes("метрики").await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("vk_events_total"), "{metrics}");
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    // Postgres gone: /ready is 503 and names it.
    app.state.store.pool().close().await;
    let res = app
        .http
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["postgres"]));
    app.cleanup().await;
}

#[tokio::test]
async fn check_names_the_failing_token() {
    let app = spawn_app().await;
    let settings = (*app.state.settings).clone();
    let http =
        service_kit::http_client::build("vk-connector-test", settings.runtime.upstream_timeout())
            .unwrap();
    let check = |s| {
        let http = http.clone();
        async move { vk_connector::cli::check_upstreams(&s, &http).await }
    };
    let report = check(settings.clone()).await;
    assert!(report.ok(), "{report:?}");
    let mut bad = settings.clone();
    bad.vk.access_token = service_kit::Secret::new("revoked");
    let report = check(bad).await;
    let vk_err = report.vk.unwrap_err();
    assert!(vk_err.contains("error 5"), "{vk_err}");
    assert!(report.chatwoot.is_ok());
    let mut bad = settings;
    bad.chatwoot.api_token = service_kit::Secret::new("revoked");
    let report = check(bad).await;
    assert!(report.vk.is_ok());
    assert!(report.chatwoot.unwrap_err().contains("401"));
    app.cleanup().await;
}

#[tokio::test]
async fn dead_letter_replay_delivers_after_the_cause_is_fixed() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Напишите мне").await;
    app.sandbox.block_vk_peer(USER_ID);
    app.sandbox.chatwoot_agent_reply(conv, "Пишем", false).await;
    let dead = app.state.dead_letters.clone();
    app.wait_db("a dead letter", || async {
        !dead.list(10, true).await.unwrap().is_empty()
    })
    .await;
    assert!(app.sandbox.vk_sent_messages().is_empty());
    // The user allowed messages again (sandbox: a fresh VK fake state for that peer).
    app.sandbox.unblock_vk_peer(USER_ID);
    let id = dead.list(10, true).await.unwrap()[0].id;
    dead.replay(&app.state.bus, id).await.unwrap();
    app.sandbox
        .wait_until(WAIT, |s| s.vk_sent_messages().len() == 1)
        .await
        .expect("replayed message delivered");
    assert!(
        dead.list(10, true).await.unwrap().is_empty(),
        "marked replayed"
    );
    app.cleanup().await;
}
