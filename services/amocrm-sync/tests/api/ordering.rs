//! Redeliveries and out-of-order deliveries leave one row with the newest state.

use domain::{Envelope, Event};

use crate::helpers::*;

#[tokio::test]
async fn the_same_webhook_twice_is_one_row_and_one_history_entry() {
    let app = spawn_app().await;
    let mut status = lead_entry("status", 0, 7001, "Дважды", 5, T0);
    status.set("old_status_id", "4");
    let body = body_of(&[&status]);
    assert_eq!(app.post_form(body.clone()).await.status(), 200);
    assert_eq!(app.post_form(body).await.status(), 200);
    let first = app.wait_lead(7001, |_| true).await;
    app.wait_consumed().await;
    // JetStream kept one message (same Nats-Msg-Id) …
    assert_eq!(app.events_stored().await, 1);
    // … and a redelivery long after the duplicate window (same envelope, new message id) is
    // written again without a second history entry.
    let env: Envelope<Event> = app.last_event("lead.status_changed").await.unwrap();
    let subject = app.state.bus.wire_subject(&env.subject());
    app.state
        .bus
        .publish_raw(&subject, "redelivery-after-window", None, env.to_bytes())
        .await
        .unwrap();
    app.wait_lead(7001, |r| r.synced_at > first.synced_at).await;
    app.wait_consumed().await;
    assert_eq!(app.count("SELECT count(*) FROM amocrm.leads").await, 1);
    assert_eq!(app.history(7001).await, vec![(5, Some(4))]);
    app.cleanup().await;
}

#[tokio::test]
async fn an_update_older_than_the_stored_row_is_ignored() {
    let app = spawn_app().await;
    let newer = lead_entry("update", 0, 7002, "Новое название", 3, T0 + 60);
    assert_eq!(app.post_form(body_of(&[&newer])).await.status(), 200);
    app.wait_lead(7002, |r| r.name.as_deref() == Some("Новое название"))
        .await;
    let older = lead_entry("update", 0, 7002, "Старое название", 2, T0);
    assert_eq!(app.post_form(body_of(&[&older])).await.status(), 200);
    app.wait_consumed().await;
    assert_eq!(app.events_stored().await, 2);
    let row = app.lead(7002).await.unwrap();
    assert_eq!(row.name.as_deref(), Some("Новое название"));
    assert_eq!(row.status_id, Some(3));
    assert_eq!(row.updated_at.unix_timestamp(), T0 + 60);
    assert_eq!(app.history(7002).await, vec![(3, None)]);
    // A later stage change is recorded.
    let mut later = lead_entry("status", 0, 7002, "Новое название", 6, T0 + 120);
    later.set("old_status_id", "3");
    app.post_form(body_of(&[&later])).await;
    app.wait_lead(7002, |r| r.status.as_deref() == Some("deal"))
        .await;
    assert_eq!(app.history(7002).await, vec![(3, None), (6, Some(3))]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_deletion_is_soft_and_an_older_add_does_not_revive_it() {
    let app = spawn_app().await;
    let add = lead_entry("add", 0, 7003, "Удаляемая", 1, T0);
    app.post_form(body_of(&[&add])).await;
    app.wait_lead(7003, |_| true).await;
    let delete = EntityForm::new("leads", "delete", 0, 7003);
    assert_eq!(app.post_form(body_of(&[&delete])).await.status(), 200);
    let row = app.wait_lead(7003, |r| r.deleted_at.is_some()).await;
    assert_eq!(
        row.name.as_deref(),
        Some("Удаляемая"),
        "soft delete keeps the data"
    );
    // amoCRM retries the old add (its last_modified predates the deletion).
    app.post_form(body_of(&[&lead_entry(
        "update",
        0,
        7003,
        "Призрак",
        2,
        T0 + 1,
    )]))
    .await;
    app.wait_consumed().await;
    let row = app.lead(7003).await.unwrap();
    assert!(row.deleted_at.is_some());
    assert_eq!(row.name.as_deref(), Some("Удаляемая"));
    app.cleanup().await;
}
