//! The health and test answers of the existing deployment, /health, /ready, /metrics, and dead
//! letters with replay.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let res = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn health_test_ready_and_metrics() {
    let app = spawn_app().await;
    let (code, body) = get(&app, "/api/webhooks/amo/health").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["database"], "connected");
    assert_eq!(v["webhook_endpoint"], "active");
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));

    let (code, body) = get(&app, "/api/webhooks/amo/test").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    assert_eq!(v["message"], "Webhook endpoint is working");
    assert_eq!(v["endpoint"], "/api/webhooks/amo");
    let events: Vec<&str> = v["supported_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        &events[..5],
        &[
            "leads.add",
            "leads.update",
            "leads.delete",
            "contacts.add",
            "contacts.update"
        ]
    );
    assert!(events.contains(&"leads.status") && events.contains(&"contacts.delete"));

    let (code, body) = get(&app, "/health").await;
    assert_eq!(code, 200);
    assert!(body.contains("\"service\":\"amocrm-sync\""), "{body}");
    assert_eq!(get(&app, "/ready").await.0, 200);

    app.post_form(body_of(&[&lead_entry("add", 0, 1, "Метрики", 1, T0)]))
        .await;
    app.post_form_to("wrong", String::new()).await;
    app.wait_lead(1, |_| true).await;
    app.wait_consumed().await;
    let (_, metrics) = get(&app, "/metrics").await;
    for name in [
        "amocrm_webhooks_total{format=\"form\",outcome=\"accepted\"}",
        "amocrm_webhooks_total{format=\"form\",outcome=\"bad_token\"}",
        "amocrm_events_total{type=\"lead.created\",format=\"form\"}",
        "amocrm_webhook_seconds_bucket",
        "amocrm_event_processing_seconds_bucket",
        "amocrm_stored_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }

    // Postgres gone: both health answers say so.
    app.pool().close().await;
    let (code, body) = get(&app, "/api/webhooks/amo/health").await;
    assert_eq!(code, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["database"], "disconnected");
    assert_eq!(get(&app, "/ready").await.0, 503);
    app.cleanup().await;
}

#[tokio::test]
async fn a_write_that_keeps_failing_is_dead_lettered_and_replayed_after_the_fix() {
    let app = spawn_app_with(Options {
        retry_delays: vec![Duration::ZERO, Duration::from_millis(50)],
        ..Options::default()
    })
    .await;
    // A constraint the data breaks (not an outage): retried, then dead-lettered.
    sqlx::raw_sql(
        "CREATE FUNCTION amocrm.reject_999() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'lead 999 rejected (test)'; END $$; \
         CREATE TRIGGER reject_999 BEFORE INSERT ON amocrm.leads \
         FOR EACH ROW WHEN (NEW.id = 999) EXECUTE FUNCTION amocrm.reject_999();",
    )
    .execute(app.pool())
    .await
    .unwrap();
    app.post_form(body_of(&[&lead_entry("add", 0, 999, "Отклонённая", 1, T0)]))
        .await;
    wait_for("the event in the dead-letter table", || async {
        app.state
            .dead_letters
            .list(10, true)
            .await
            .is_ok_and(|l| l.len() == 1)
    })
    .await;
    let dl = app
        .state
        .dead_letters
        .list(10, true)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(dl.attempts, 3);
    assert!(dl.reason.contains("lead 999 rejected"), "{}", dl.reason);
    assert!(dl.subject.ends_with("events.amocrm.lead.created"));
    assert!(app.lead(999).await.is_none());

    sqlx::raw_sql("DROP TRIGGER reject_999 ON amocrm.leads")
        .execute(app.pool())
        .await
        .unwrap();
    // The operator's view: `amocrm-sync dlq list`, then `dlq replay <id>`.
    let cli = |args: &[&str]| {
        let rt = &app.state.settings.runtime;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_amocrm-sync"))
            .args(args)
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", &app.db_url)
            .env("NATS_URL", &rt.nats_url)
            .env("NATS_SUBJECT_PREFIX", &rt.nats_subject_prefix)
            .env("LOG_LEVEL", "error")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["dlq", "list"]);
    assert!(listed.contains("lead 999 rejected"), "{listed}");
    let replayed = cli(&["dlq", "replay", &dl.id.to_string()]);
    assert!(
        replayed.contains(&format!("dead letter {} replayed", dl.id)),
        "{replayed}"
    );
    app.wait_lead(999, |r| r.name.as_deref() == Some("Отклонённая"))
        .await;
    assert!(
        app.state
            .dead_letters
            .list(10, true)
            .await
            .unwrap()
            .is_empty()
    );
    app.cleanup().await;
}
