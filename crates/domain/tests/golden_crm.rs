//! Golden JSON round trips of the CRM events (source `amocrm`): the wire format other services
//! read leads and contacts in.

use domain::{Envelope, Event, Source};

fn value(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("golden file is JSON")
}

fn round_trip(golden: &str) -> Envelope<Event> {
    let env = Envelope::<Event>::decode(golden.as_bytes()).expect("decodes");
    assert_eq!(
        serde_json::to_value(&env).expect("serializes"),
        value(golden),
        "re-encoding changes the meaning"
    );
    env
}

#[test]
fn lead_status_changed_round_trips() {
    let env = round_trip(include_str!("golden/amocrm_lead_status_changed.json"));
    assert_eq!(env.source, Source::Amocrm);
    assert_eq!(env.subject().as_str(), "events.amocrm.lead.status_changed");
    let Event::LeadStatusChanged(lead) = &env.payload else {
        panic!(
            "expected lead.status_changed, got {}",
            env.payload.type_name()
        );
    };
    assert_eq!(lead.name.as_deref(), Some("Квартира на Невском 🏠"));
    assert_eq!(
        (lead.previous_status_id, lead.status_id),
        (Some(5), Some(142))
    );
    assert_eq!(lead.status.as_deref(), Some("won"));
    assert_eq!(lead.utm.campaign.as_deref(), Some("spb-novostroyki"));
    assert!(lead.utm.term.is_none());
    assert_eq!(lead.object_price.as_deref(), Some("12500000.00"));
    let fields = lead.custom_fields.as_ref().expect("custom fields sent");
    assert_eq!(fields[1].values[0].enum_id, Some(139517));
    assert!(lead.contacts[0].is_main);
    assert_eq!(
        env.idempotency_key,
        domain::IdempotencyKey::amocrm_entity(
            "example",
            "lead",
            4821,
            "status",
            Some(lead.updated_at.unix_timestamp())
        )
    );
}

#[test]
fn contact_updated_round_trips() {
    let env = round_trip(include_str!("golden/amocrm_contact_updated.json"));
    assert_eq!(env.subject().as_str(), "events.amocrm.contact.updated");
    let Event::ContactUpdated(contact) = &env.payload else {
        panic!("expected contact.updated, got {}", env.payload.type_name());
    };
    assert_eq!(
        contact.phones.as_deref(),
        Some(&["+79031453455".to_owned()][..])
    );
    assert_eq!(
        contact.emails.as_deref(),
        Some(&["ivan.petrov@example.ru".to_owned()][..])
    );
    assert_eq!(contact.lead_ids, vec![4821]);
    assert!(contact.created_at.is_none());
    assert!(env.traceparent.is_some());
}

#[test]
fn lead_deleted_round_trips() {
    let env = round_trip(include_str!("golden/amocrm_lead_deleted.json"));
    assert_eq!(env.subject().as_str(), "events.amocrm.lead.deleted");
    let Event::LeadDeleted(d) = &env.payload else {
        panic!("expected lead.deleted, got {}", env.payload.type_name());
    };
    assert_eq!(d.id, 4821);
    assert_eq!(
        env.idempotency_key.as_str(),
        "amocrm:example:lead:4821:delete:-"
    );
}

#[test]
fn every_crm_event_type_is_known() {
    for t in [
        "lead.created",
        "lead.updated",
        "lead.status_changed",
        "lead.deleted",
        "contact.created",
        "contact.updated",
        "contact.deleted",
    ] {
        assert!(Event::TYPES.contains(&t), "{t} missing from Event::TYPES");
    }
}

#[test]
fn a_lead_without_optional_fields_is_minimal_on_the_wire() {
    let body = br#"{"id":"019a8c3e-7b1c-7d2e-9f00-0123456789c4","type":"lead.created",
        "data":{"id":1,"updated_at":"2026-11-22T12:00:00Z"},"source":"amocrm",
        "occurred_at":"2026-11-22T12:00:00Z","idempotency_key":"amocrm:example:lead:1:add:1795348800"}"#;
    let env = Envelope::<Event>::decode(body).expect("decodes");
    let Event::LeadCreated(lead) = &env.payload else {
        panic!("expected lead.created");
    };
    assert!(lead.custom_fields.is_none() && lead.contacts.is_empty() && lead.utm.is_empty());
    let json = serde_json::to_value(&env).expect("serializes");
    assert_eq!(
        json["data"],
        serde_json::json!({"id":1,"updated_at":"2026-11-22T12:00:00Z"})
    );
}
