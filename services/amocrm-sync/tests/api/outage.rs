//! Postgres goes away in the middle of a burst: every webhook is still answered (JetStream has
//! them), nothing is dead-lettered, and everything is stored once Postgres is back.

use serde_json::Value;

use crate::helpers::*;

/// Makes the app's database refuse connections and drops the ones it has: what the consumer
/// sees when Postgres is stopped. Every connection but the consumer's lease (the session that
/// holds its advisory lock) is cut here; [`cut_the_lease`] cuts that one after the consumer
/// has met the outage with messages in hand, so the test does not depend on which of the two
/// it notices first.
async fn take_down(db: &str) {
    let admin = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE a.datname = $1 \
         AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')",
    )
    .bind(db)
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

/// Cuts the rest: the consumer's lease connection too, as a stopped Postgres would.
async fn cut_the_lease(db: &str) {
    let admin = admin().await;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(db)
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

async fn bring_back(db: &str) {
    let admin = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS true"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

async fn amo_health(app: &TestApp) -> (u16, Value) {
    let res = app
        .http
        .get(format!("{}/api/webhooks/amo/health", app.base))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn postgres_down_during_a_burst_loses_nothing() {
    let app = spawn_app().await;
    app.post_form(body_of(&[&lead_entry("add", 0, 1, "До сбоя", 1, T0)]))
        .await;
    app.wait_lead(1, |_| true).await;
    let retried_before = app.consumer_count("unavailable").await;

    take_down(&app.db_name).await;
    // 30 webhooks of 3 leads each while the database is away: all accepted.
    for w in 0..30_i64 {
        let entries: Vec<EntityForm> = (0..3)
            .map(|n| {
                let id = 1000 + w * 3 + n;
                lead_entry("add", n as usize, id, &format!("Сделка №{id} ⚡"), 2, T0)
            })
            .collect();
        let refs: Vec<&EntityForm> = entries.iter().collect();
        let res = app.post_form(body_of(&refs)).await;
        assert_eq!(
            res.status(),
            200,
            "webhook {w} refused while Postgres is down"
        );
    }
    assert_eq!(app.events_stored().await, 91);
    let (code, body) = amo_health(&app).await;
    assert_eq!(code, 503);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"], "disconnected");
    // The consumer has met the outage (retried deliveries) before the database returns. The
    // retries are in place now (the message stays in hand, its ack deadline extended), so they
    // show in the consumer's counter rather than as JetStream redeliveries.
    wait_for("the consumer to retry during the outage", || async {
        app.consumer_count("unavailable").await > retried_before
    })
    .await;
    // Then it loses its lease as well: it stands by until Postgres is back, takes the consumer
    // again and rewinds it to the ack floor.
    cut_the_lease(&app.db_name).await;

    bring_back(&app.db_name).await;
    wait_for("all 91 leads stored after Postgres is back", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM amocrm.leads")
            .fetch_one(app.pool())
            .await
            .is_ok_and(|n| n == 91)
    })
    .await;
    app.wait_consumed().await;
    assert_eq!(
        app.count("SELECT count(*) FROM amocrm.dead_letters").await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM amocrm.lead_status_history")
            .await,
        91
    );
    let (code, body) = amo_health(&app).await;
    assert_eq!((code, body["database"].as_str()), (200, Some("connected")));
    app.cleanup().await;
}
