//! Both webhook formats, every event type, into NATS and Postgres; what is refused, kept or
//! capped.

use serde_json::{Value, json};

use crate::helpers::*;

fn legacy() -> Options {
    Options {
        legacy_json: true,
        ..Options::default()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn form_lead_is_stored_with_status_utm_and_deal_figures() {
    let app = spawn_app().await;
    let mut lead = lead_entry("add", 0, 4821, "Квартира на Невском 🏠 «под ключ»", 3, T0);
    lead.field(123_458, "utm_source", "yandex")
        .field(123_459, "utm_medium", "cpc")
        .field(123_460, "utm_campaign", "весна-2026 🌸")
        .field(123_461, "utm_content", "banner_blue")
        .field(123_462, "utm_term", "купить квартиру")
        .field(123_463, "Стоимость объекта", "12 500 000")
        .field(123_464, "Комиссия", "375000,50")
        .field(66_339, "Источник", "Сайт");
    let res = app.post_form(body_of(&[&lead])).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Processed 1 events");
    assert_eq!(body["events_processed"], 1);
    assert_eq!(body["errors"], Value::Null);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    let row = app.wait_lead(4821, |_| true).await;
    assert_eq!(
        row.name.as_deref(),
        Some("Квартира на Невском 🏠 «под ключ»")
    );
    assert_eq!(row.status_id, Some(3));
    assert_eq!(row.status.as_deref(), Some("presentation"));
    assert_eq!(row.price, Some(150_000));
    assert_eq!(row.responsible_user_id, Some(504_141));
    assert_eq!(row.utm_source.as_deref(), Some("yandex"));
    assert_eq!(row.utm_medium.as_deref(), Some("cpc"));
    assert_eq!(row.utm_campaign.as_deref(), Some("весна-2026 🌸"));
    assert_eq!(row.utm_content.as_deref(), Some("banner_blue"));
    assert_eq!(row.utm_term.as_deref(), Some("купить квартиру"));
    assert_eq!(row.object_price.as_deref(), Some("12500000.00"));
    assert_eq!(row.commission.as_deref(), Some("375000.50"));
    assert_eq!(row.custom_fields.as_array().unwrap().len(), 8);
    assert_eq!(row.custom_fields[7]["values"][0]["value"], "Сайт");
    assert_eq!(row.updated_at.unix_timestamp(), T0);
    assert_eq!(app.history(4821).await, vec![(3, None)]);

    // The same fact went to NATS, normalized.
    let env = app
        .last_event("lead.created")
        .await
        .expect("event published");
    assert_eq!(env.source, domain::Source::Amocrm);
    assert_eq!(
        env.idempotency_key.as_str(),
        format!("amocrm:{SUBDOMAIN}:lead:4821:add:{T0}")
    );
    let domain::Event::LeadCreated(l) = env.payload else {
        panic!("expected lead.created");
    };
    assert_eq!(l.status.as_deref(), Some("presentation"));
    assert_eq!(l.utm.campaign.as_deref(), Some("весна-2026 🌸"));
    app.cleanup().await;
}

fn contact_entry(action: &str, n: usize, id: i64, name: &str, at: i64) -> EntityForm {
    let mut c = EntityForm::new("contacts", action, n, id);
    c.set("name", name)
        .set("responsible_user_id", "504141")
        .set("date_create", &(at - 60).to_string())
        .set("last_modified", &at.to_string())
        .set("account_id", &ACCOUNT_ID.to_string())
        .set("type", "contact");
    c
}

#[tokio::test]
async fn every_form_event_type_becomes_its_event() {
    let app = spawn_app().await;
    let add = lead_entry("add", 0, 101, "Новая сделка", 1, T0);
    let update = lead_entry("update", 0, 102, "Изменённая сделка ✏️", 2, T0);
    let mut status = lead_entry("status", 0, 103, "Сделка на этапе", 142, T0);
    status
        .set("old_status_id", "6")
        .set("old_pipeline_id", "7331");
    let mut responsible = lead_entry("responsible", 0, 104, "Новый ответственный", 4, T0);
    responsible.set("old_responsible_user_id", "504140");
    let mut delete = EntityForm::new("leads", "delete", 0, 105);
    delete.set("status_id", "5").set("pipeline_id", "7331");
    let mut c_add = contact_entry("add", 0, 201, "Анна Смирнова 👩‍💼", T0);
    c_add.coded_field(123_456, "PHONE", "+7 (921) 000-11-22", 114_611);
    let c_update = contact_entry("update", 0, 202, "Пётр", T0);
    let c_delete = EntityForm::new("contacts", "delete", 0, 203);
    let res = app
        .post_form(body_of(&[
            &add,
            &update,
            &status,
            &responsible,
            &delete,
            &c_add,
            &c_update,
            &c_delete,
        ]))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["events_processed"], 8);

    for (event_type, id) in [
        ("lead.created", 101),
        ("lead.status_changed", 103),
        ("lead.deleted", 105),
        ("contact.created", 201),
        ("contact.updated", 202),
        ("contact.deleted", 203),
    ] {
        let env = app
            .last_event(event_type)
            .await
            .unwrap_or_else(|| panic!("no {event_type} event"));
        assert!(env.idempotency_key.as_str().contains(&format!(":{id}:")));
    }
    // update and responsible are both lead.updated
    assert!(app.last_event("lead.updated").await.is_some());

    app.wait_lead(101, |r| r.status.as_deref() == Some("new"))
        .await;
    app.wait_lead(102, |r| r.name.as_deref() == Some("Изменённая сделка ✏️"))
        .await;
    let won = app
        .wait_lead(103, |r| r.status.as_deref() == Some("won"))
        .await;
    assert_eq!(won.status_id, Some(142));
    assert_eq!(app.history(103).await, vec![(142, Some(6))]);
    app.wait_lead(104, |r| r.status.as_deref() == Some("object_selected"))
        .await;
    let deleted = app.wait_lead(105, |r| r.deleted_at.is_some()).await;
    assert!(deleted.name.is_none());
    let anna = app.wait_contact(201, |_| true).await;
    assert_eq!(anna.name.as_deref(), Some("Анна Смирнова 👩‍💼"));
    assert_eq!(anna.phones, vec!["+79210001122".to_owned()]);
    app.wait_contact(202, |c| c.name.as_deref() == Some("Пётр"))
        .await;
    app.wait_contact(203, |c| c.deleted_at.is_some()).await;
    app.cleanup().await;
}

#[tokio::test]
async fn every_json_event_type_becomes_its_event() {
    let app = spawn_app_with(legacy()).await;
    let lead = |id: i64, name: &str, status: i64| {
        json!({
            "id": id, "name": name, "status_id": status, "pipeline_id": 7331, "price": 990000,
            "responsible_user_id": 504141, "created_at": T0 - 3600, "updated_at": T0,
            "custom_fields_values": [
                {"field_id": 123458, "field_name": "utm_source", "values": [{"value": "vk"}]},
                {"field_id": 123463, "field_name": "Стоимость объекта", "values": [{"value": 8900000}]}
            ],
            "_embedded": {"contacts": [{"id": 301, "is_main": true}]}
        })
    };
    let body = json!({
        "leads": {
            "add": [lead(111, "JSON сделка 🚀", 1)],
            "update": [lead(112, "JSON изменение", 2)],
            "status": [{"id": 113, "status_id": 5, "old_status_id": 4, "pipeline_id": 7331, "updated_at": T0}],
            "responsible": [{"id": 114, "responsible_user_id": 77, "updated_at": T0}],
            "delete": [{"id": 115}]
        },
        "contacts": {
            "add": [{"id": 301, "name": "Ольга Иванова", "updated_at": T0,
                     "custom_fields_values": [
                        {"field_id": 123456, "field_code": "PHONE", "values": [{"value": "89161234567", "enum_code": "MOB"}]},
                        {"field_id": 123457, "field_code": "EMAIL", "values": [{"value": "Olga@Example.COM"}]}],
                     "_embedded": {"leads": [{"id": 111}]}}],
            "update": [{"id": 302, "name": "Олег", "updated_at": T0}],
            "delete": [{"id": 303}]
        }
    });
    let res = app.post_json(&body).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["message"], "Processed 8 events");
    assert_eq!(answer["events_processed"], 8);
    assert_eq!(answer["errors"], Value::Null);

    let r = app.wait_lead(111, |_| true).await;
    assert_eq!(r.name.as_deref(), Some("JSON сделка 🚀"));
    assert_eq!(r.utm_source.as_deref(), Some("vk"));
    assert_eq!(r.object_price.as_deref(), Some("8900000.00"));
    app.wait_lead(112, |r| r.status.as_deref() == Some("contacted"))
        .await;
    app.wait_lead(113, |r| r.status.as_deref() == Some("reserved"))
        .await;
    assert_eq!(app.history(113).await, vec![(5, Some(4))]);
    app.wait_lead(114, |r| r.responsible_user_id == Some(77))
        .await;
    app.wait_lead(115, |r| r.deleted_at.is_some()).await;
    let olga = app.wait_contact(301, |_| true).await;
    assert_eq!(olga.phones, vec!["+79161234567".to_owned()]);
    assert_eq!(olga.emails, vec!["olga@example.com".to_owned()]);
    app.wait_contact(302, |_| true).await;
    app.wait_contact(303, |c| c.deleted_at.is_some()).await;
    app.wait_consumed().await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM amocrm.lead_contacts WHERE lead_id = 111 AND contact_id = 301"
        )
        .await,
        1
    );
    for t in [
        "lead.created",
        "lead.updated",
        "lead.status_changed",
        "lead.deleted",
        "contact.created",
        "contact.updated",
        "contact.deleted",
    ] {
        assert!(app.last_event(t).await.is_some(), "no {t}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_lead_with_50_custom_fields_keeps_them_all() {
    let app = spawn_app().await;
    let mut lead = lead_entry("update", 0, 5050, "Пятьдесят полей", 2, T0);
    for i in 0..50 {
        lead.field(
            200_000 + i,
            &format!("Поле №{i}"),
            &format!("значение {i} ✅"),
        );
    }
    let res = app.post_form(body_of(&[&lead])).await;
    assert_eq!(res.status(), 200);
    let row = app.wait_lead(5050, |_| true).await;
    let fields = row.custom_fields.as_array().unwrap();
    assert_eq!(fields.len(), 50);
    assert_eq!(fields[49]["id"], 200_049);
    assert_eq!(fields[49]["name"], "Поле №49");
    assert_eq!(fields[49]["values"][0]["value"], "значение 49 ✅");
    app.cleanup().await;
}

#[tokio::test]
async fn a_json_body_with_bad_entries_is_400_and_its_good_entries_are_stored() {
    let app = spawn_app_with(legacy()).await;
    let res = app
        .post_json(&json!({
            "leads": {"add": [
                {"id": 601, "name": "Хорошая", "status_id": 1, "updated_at": T0},
                {"id": "шестьсот два", "name": "Плохая"},
                {"name": "Без id"}
            ]}
        }))
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "partial_success");
    assert_eq!(body["events_processed"], 1);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with("leads[add][1]: id:"),
        "{errors:?}"
    );
    assert_eq!(errors[1], "leads[add][2]: id is missing");
    app.wait_lead(601, |_| true).await;
    app.wait_consumed().await;
    assert_eq!(app.count("SELECT count(*) FROM amocrm.leads").await, 1);
    app.cleanup().await;
}

/// amoCRM re-sends whatever is not answered 2xx and disables the hook after more than 100 failed
/// answers in 2 hours, so a delivery it cannot improve is answered 200 and kept for an
/// operator, once however often it comes.
#[tokio::test]
async fn an_unreadable_form_body_is_answered_200_and_kept_once_as_a_dead_letter() {
    let app = spawn_app().await;
    let garbage = "leads%5Badd%5D%5B0%5D%5Bid=1".to_owned();
    for _ in 0..2 {
        let res = app.post_form(garbage.clone()).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["events_processed"], 0);
        assert!(
            body["errors"][0].as_str().unwrap().contains("form"),
            "{body}"
        );
    }
    let kept = app.kept_bodies().await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (reason, payload) = &kept[0];
    assert!(reason.contains("not a PHP-style form"), "{reason}");
    assert_eq!(payload["body"], garbage.as_str(), "the body as it came");
    assert_eq!(payload["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(app.events_stored().await, 0);
    // Listed for the operator like any dead letter.
    let listed = app.state.dead_letters.list(10, true).await.unwrap();
    assert_eq!(listed.len(), 1);
    // A wrong token is still 404 and keeps nothing.
    assert_eq!(
        app.post_form_to("amo-hook-guess-0000", garbage)
            .await
            .status(),
        404
    );
    assert_eq!(app.kept_bodies().await.len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_form_delivery_with_an_unreadable_entry_is_200_and_the_rest_is_stored() {
    let app = spawn_app().await;
    let good = lead_entry("add", 0, 611, "Хорошая", 1, T0);
    let mut bad = EntityForm::new("leads", "add", 1, 0);
    bad.pairs.clear();
    bad.set("id", "шестьсот двенадцать").set("name", "Плохая");
    let body = body_of(&[&good, &bad]);
    for _ in 0..2 {
        let res = app.post_form(body.clone()).await;
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["status"], "partial_success");
        assert_eq!(answer["events_processed"], 1);
        assert!(
            answer["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("leads[add][1]: id:"),
            "{answer}"
        );
    }
    app.wait_lead(611, |_| true).await;
    let kept = app.kept_bodies().await;
    assert_eq!(kept.len(), 1, "kept once: {kept:?}");
    assert!(kept[0].0.starts_with("leads[add][1]: id:"), "{}", kept[0].0);
    assert_eq!(kept[0].1["body"], body.as_str());
    app.cleanup().await;
}

#[tokio::test]
async fn a_malformed_json_body_on_the_json_route_is_400_and_nothing_is_kept() {
    let app = spawn_app_with(legacy()).await;
    let res = app
        .http
        .post(format!("{}/api/webhooks/amo", app.base))
        .header("X-Client-UUID", CLIENT_UUID)
        .header("X-Account-ID", ACCOUNT_ID.to_string())
        .header(
            "X-Signature",
            amocrm_sync::http::webhook::sign(
                sandbox::amocrm::CLIENT_SECRET,
                CLIENT_UUID,
                &ACCOUNT_ID.to_string(),
            ),
        )
        .header("content-type", "application/json")
        .body("{\"leads\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Too large: the body limit answers before anything is read.
    let huge = format!("leads[add][0][name]={}", "я".repeat(700_000));
    assert_eq!(app.post_form(huge).await.status(), 413);
    assert_eq!(app.events_stored().await, 0);
    assert!(app.kept_bodies().await.is_empty());
    app.cleanup().await;
}

/// A forged date would pin the row: the store keeps the newest `updated_at`.
#[tokio::test]
async fn an_update_dated_more_than_an_hour_ahead_is_400_in_both_formats() {
    let app = spawn_app_with(legacy()).await;
    let ahead = now() + 2 * 3600;
    let good = lead_entry("update", 0, 621, "Настоящая", 2, T0);
    let forged = lead_entry("update", 1, 622, "Из будущего", 3, ahead);
    let res = app.post_form(body_of(&[&good, &forged])).await;
    assert_eq!(res.status(), 400);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["status"], "partial_success");
    assert_eq!(answer["events_processed"], 1);
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    let e = errors[0].as_str().unwrap();
    assert!(e.starts_with("leads[update][1]: updated_at"), "{e}");
    assert!(e.contains("in the future"), "{e}");

    let res = app
        .post_json(&json!({"contacts": {"update": [
            {"id": 623, "name": "Настоящий", "updated_at": T0},
            {"id": 624, "name": "Из будущего", "updated_at": ahead}
        ]}}))
        .await;
    assert_eq!(res.status(), 400);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["events_processed"], 1);
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("contacts[update][1]: updated_at"),
        "{answer}"
    );
    // Within the hour is fine (clocks differ a little).
    let soon = lead_entry("update", 0, 625, "Чуть впереди", 2, now() + 600);
    assert_eq!(app.post_form(body_of(&[&soon])).await.status(), 200);

    app.wait_lead(621, |_| true).await;
    app.wait_contact(623, |_| true).await;
    app.wait_lead(625, |_| true).await;
    app.wait_consumed().await;
    assert!(app.lead(622).await.is_none());
    assert!(app.contact(624).await.is_none());
    // Refused, not kept: the sender was told.
    assert!(app.kept_bodies().await.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn more_entries_than_the_limit_is_413_and_nothing_is_published() {
    let app = spawn_app_with(Options {
        legacy_json: true,
        max_entries: Some(3),
        ..Options::default()
    })
    .await;
    let four: Vec<EntityForm> = (0..4)
        .map(|n| lead_entry("add", n, 631 + n as i64, "Массовая", 1, T0))
        .collect();
    let res = app
        .post_form(body_of(&four.iter().collect::<Vec<_>>()))
        .await;
    assert_eq!(res.status(), 413);
    let answer: Value = res.json().await.unwrap();
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("4 entries"), "{message}");
    assert!(message.contains("at most 3"), "{message}");
    assert!(
        message.contains("AMOCRM_MAX_ENTRIES_PER_WEBHOOK"),
        "{message}"
    );
    let leads: Vec<Value> = (0..4)
        .map(|i| json!({"id": 641 + i, "updated_at": T0}))
        .collect();
    let res = app.post_json(&json!({"leads": {"add": leads}})).await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        app.events_stored().await,
        0,
        "nothing of either was published"
    );
    assert!(app.kept_bodies().await.is_empty());
    // At the limit: accepted.
    let res = app
        .post_form(body_of(&four[..3].iter().collect::<Vec<_>>()))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.events_stored().await, 3);
    app.cleanup().await;
}

/// Published a bounded number at a time, and still answered only after every one is stored.
#[tokio::test]
async fn a_webhook_of_200_entries_is_answered_after_all_of_them_are_stored() {
    let app = spawn_app().await;
    let entries: Vec<EntityForm> = (0..200)
        .map(|n| lead_entry("update", n, 10_000 + n as i64, "Пакет", 2, T0))
        .collect();
    let res = app
        .post_form(body_of(&entries.iter().collect::<Vec<_>>()))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["events_processed"], 200);
    assert_eq!(app.events_stored().await, 200);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unmapped_stage_is_stored_with_its_raw_id() {
    let app = spawn_app().await;
    let lead = lead_entry("status", 0, 4242, "Этап без имени", 31_245_077, T0);
    assert_eq!(app.post_form(body_of(&[&lead])).await.status(), 200);
    let row = app.wait_lead(4242, |_| true).await;
    assert_eq!(row.status_id, Some(31_245_077));
    assert_eq!(row.status, None);
    assert_eq!(app.history(4242).await, vec![(31_245_077, None)]);
    app.cleanup().await;
}
