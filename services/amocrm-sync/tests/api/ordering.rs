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
    // The older stage is history all the same.
    assert_eq!(app.history(7002).await, vec![(2, None), (3, None)]);
    // A later stage change is recorded.
    let mut later = lead_entry("status", 0, 7002, "Новое название", 6, T0 + 120);
    later.set("old_status_id", "3");
    app.post_form(body_of(&[&later])).await;
    app.wait_lead(7002, |r| r.status.as_deref() == Some("deal"))
        .await;
    assert_eq!(
        app.history(7002).await,
        vec![(2, None), (3, None), (6, Some(3))]
    );
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

fn contact_entry(action: &str, n: usize, id: i64, name: &str, at: i64) -> EntityForm {
    let mut c = EntityForm::new("contacts", action, n, id);
    c.set("name", name)
        .set("date_create", &(at - 60).to_string())
        .set("last_modified", &at.to_string())
        .set("account_id", &ACCOUNT_ID.to_string())
        .set("type", "contact");
    c
}

/// Many consumers pulling at once, so the entries of one body race each other.
fn racing() -> Options {
    Options {
        concurrency: 16,
        fetch_leads: false,
        ..Options::default()
    }
}

const RACERS: i64 = 80;

#[tokio::test]
async fn an_add_and_an_update_in_one_body_leave_every_contact_at_the_newer_version() {
    let app = spawn_app_with(racing()).await;
    for round in 0..3 {
        let base = 20_000 + round * 1_000;
        let mut entries = Vec::new();
        for i in 0..RACERS {
            let id = base + i;
            let n = usize::try_from(i).unwrap();
            let mut add = contact_entry("add", n, id, &format!("old {id}"), T0 - 1000);
            add.coded_field(901, "PHONE", "+7 900 000-00-01", 1);
            let mut update = contact_entry("update", n, id, &format!("new {id}"), T0);
            update.coded_field(901, "PHONE", "+7 900 000-00-02", 1);
            entries.push(add);
            entries.push(update);
        }
        let refs: Vec<&EntityForm> = entries.iter().collect();
        assert_eq!(app.post_form(body_of(&refs)).await.status(), 200);
        app.wait_consumed().await;
        for i in 0..RACERS {
            let id = base + i;
            let row = app.contact(id).await.expect("contact stored");
            assert_eq!(
                row.name.as_deref(),
                Some(format!("new {id}").as_str()),
                "contact {id} keeps the older version"
            );
            assert_eq!(row.phones, vec!["+79000000002".to_owned()], "contact {id}");
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_add_and_a_delete_in_one_body_leave_every_lead_and_contact_deleted() {
    let app = spawn_app_with(racing()).await;
    for round in 0..3 {
        let base = 30_000 + round * 1_000;
        let mut entries = Vec::new();
        for i in 0..RACERS {
            let n = usize::try_from(i).unwrap();
            let lead = base + i;
            let contact = base + 500 + i;
            entries.push(lead_entry("add", n, lead, "Сделка", 1, T0));
            entries.push(EntityForm::new("leads", "delete", n, lead));
            entries.push(contact_entry("add", n, contact, "Контакт", T0));
            entries.push(EntityForm::new("contacts", "delete", n, contact));
        }
        let refs: Vec<&EntityForm> = entries.iter().collect();
        assert_eq!(app.post_form(body_of(&refs)).await.status(), 200);
        app.wait_consumed().await;
        let (lo, hi) = (base, base + 999);
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM amocrm.leads WHERE id BETWEEN {lo} AND {hi} AND deleted_at IS NOT NULL"
            ))
            .await,
            RACERS,
            "every lead of round {round} is deleted"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM amocrm.contacts WHERE id BETWEEN {lo} AND {hi} AND deleted_at IS NOT NULL"
            ))
            .await,
            RACERS,
            "every contact of round {round} is deleted"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_stage_delivered_out_of_order_is_still_in_the_history() {
    let app = spawn_app().await;
    let mut newer = lead_entry("status", 0, 7004, "Сделка", 6, T0 + 60);
    newer.set("old_status_id", "5");
    assert_eq!(app.post_form(body_of(&[&newer])).await.status(), 200);
    app.wait_consumed().await;
    // The change into stage 5 arrives after the change out of it.
    let mut older = lead_entry("status", 0, 7004, "Сделка", 5, T0);
    older.set("old_status_id", "4");
    assert_eq!(app.post_form(body_of(&[&older])).await.status(), 200);
    app.wait_consumed().await;
    let row = app.lead(7004).await.unwrap();
    assert_eq!(row.status_id, Some(6), "the row keeps the newest stage");
    assert_eq!(row.updated_at.unix_timestamp(), T0 + 60);
    assert_eq!(app.history(7004).await, vec![(5, Some(4)), (6, Some(5))]);
    // A redelivery of the older one and a later change that keeps the stage add nothing.
    let env: Envelope<Event> = app.last_event("lead.status_changed").await.unwrap();
    let subject = app.state.bus.wire_subject(&env.subject());
    app.state
        .bus
        .publish_raw(&subject, "older-again", None, env.to_bytes())
        .await
        .unwrap();
    let same_stage = lead_entry("update", 0, 7004, "Сделка (переименована)", 6, T0 + 120);
    assert_eq!(app.post_form(body_of(&[&same_stage])).await.status(), 200);
    app.wait_lead(7004, |r| r.updated_at.unix_timestamp() == T0 + 120)
        .await;
    app.wait_consumed().await;
    assert_eq!(app.history(7004).await, vec![(5, Some(4)), (6, Some(5))]);
    app.cleanup().await;
}

/// An update entry without `last_modified` (amoCRM's `updated_at`).
fn timeless_update(id: i64, name: &str) -> EntityForm {
    let mut e = EntityForm::new("leads", "update", 0, id);
    e.set("name", name)
        .set("status_id", "3")
        .set("pipeline_id", "7331")
        .set("account_id", &ACCOUNT_ID.to_string());
    e
}

#[tokio::test]
async fn different_updates_without_updated_at_are_not_deduplicated_but_redeliveries_are() {
    let app = spawn_app_with(Options {
        fetch_leads: false,
        ..Options::default()
    })
    .await;
    let first = body_of(&[&timeless_update(7005, "Первое")]);
    assert_eq!(app.post_form(first.clone()).await.status(), 200);
    app.wait_lead(7005, |r| r.name.as_deref() == Some("Первое"))
        .await;
    assert_eq!(
        app.post_form(body_of(&[&timeless_update(7005, "Второе")]))
            .await
            .status(),
        200
    );
    app.wait_lead(7005, |r| r.name.as_deref() == Some("Второе"))
        .await;
    assert_eq!(app.events_stored().await, 2);
    // The first body again, within the duplicate window: the same key, stored once.
    assert_eq!(app.post_form(first).await.status(), 200);
    app.wait_consumed().await;
    assert_eq!(app.events_stored().await, 2);
    app.cleanup().await;
}

fn contact_at(id: i64, name: &str, at: i64) -> domain::Contact {
    domain::Contact {
        id,
        account_id: Some(ACCOUNT_ID),
        name: Some(name.to_owned()),
        first_name: None,
        last_name: None,
        responsible_user_id: None,
        phones: Some(vec![format!("+7900{at}")]),
        emails: None,
        custom_fields: Some(Vec::new()),
        lead_ids: vec![id + 1],
        created_at: None,
        updated_at: time::OffsetDateTime::from_unix_timestamp(at).unwrap(),
    }
}

/// The store itself, with the writes of every id started at the same moment (the first
/// insert of an id racing another), so the race does not depend on how pullers pick messages.
#[tokio::test]
async fn concurrent_first_writes_of_one_id_keep_the_newest_state_in_the_store() {
    let app = spawn_app_with(Options {
        fetch_leads: false,
        ..Options::default()
    })
    .await;
    let store = &app.state.store;
    let ids: Vec<i64> = (40_000..40_200).collect();
    futures::future::join_all(ids.iter().map(|&id| async move {
        let older = contact_at(id, "old", 1000);
        let newer = contact_at(id, "new", 2000);
        let (a, b) = tokio::join!(store.apply_contact(&newer), store.apply_contact(&older));
        a.unwrap();
        b.unwrap();
    }))
    .await;
    let stale = app
        .count(
            "SELECT count(*) FROM amocrm.contacts WHERE id BETWEEN 40000 AND 40199 \
             AND (name <> 'new' OR phones <> '{+79002000}' OR updated_at <> to_timestamp(2000))",
        )
        .await;
    assert_eq!(stale, 0, "contacts left at the older version");
    app.cleanup().await;
}

/// Like the one above for a deletion racing the first insert of a lead or contact.
#[tokio::test]
async fn a_deletion_racing_the_first_insert_is_never_lost_in_the_store() {
    let app = spawn_app_with(Options {
        fetch_leads: false,
        ..Options::default()
    })
    .await;
    let store = &app.state.store;
    let deletes: Vec<i64> = (41_000..41_200).collect();
    futures::future::join_all(deletes.iter().map(|&id| async move {
        let add = contact_at(id, "added", 1000);
        let del = domain::Deletion {
            id,
            account_id: Some(ACCOUNT_ID),
            deleted_at: time::OffsetDateTime::from_unix_timestamp(2000).unwrap(),
        };
        let (a, b) = tokio::join!(store.delete_contact(&del), store.apply_contact(&add));
        a.unwrap();
        b.unwrap();
        let lead = domain::Lead {
            id,
            updated_at: add.updated_at,
            ..lead_template()
        };
        let (a, b) = tokio::join!(store.delete_lead(&del), store.apply_lead(&lead));
        a.unwrap();
        b.unwrap();
    }))
    .await;
    for table in ["leads", "contacts"] {
        let undeleted = app
            .count(&format!(
                "SELECT count(*) FROM amocrm.{table} WHERE id BETWEEN 41000 AND 41199 \
                 AND deleted_at IS NULL"
            ))
            .await;
        assert_eq!(undeleted, 0, "{table} whose deletion was lost");
    }
    app.cleanup().await;
}

fn lead_template() -> domain::Lead {
    domain::Lead {
        id: 0,
        account_id: Some(ACCOUNT_ID),
        name: Some("Сделка".into()),
        price: None,
        status_id: Some(1),
        pipeline_id: Some(7331),
        status: None,
        previous_status_id: None,
        responsible_user_id: None,
        utm: domain::Utm::default(),
        object_price: None,
        commission: None,
        custom_fields: None,
        contacts: Vec::new(),
        tags: Vec::new(),
        created_at: None,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}
