//! Property tests of the Chatwoot account webhook types and its signature check
//! (<https://www.chatwoot.com/hc/user-guide/articles/1677693021-how-to-use-webhooks>,
//! `lib/webhooks/trigger.rb` in chatwoot/chatwoot): whatever the bytes and the headers,
//! reading a [`WebhookEvent`] / [`MessagePayload`] and [`verify_signature`] never panic; bad
//! input is an error that says what is wrong. See `docs/fuzzing.md` for longer runs.

#[path = "../../vk-api/tests/prop_support/mod.rs"]
mod prop_support;

use chatwoot_api::MessageType;
use chatwoot_api::webhook::{MessagePayload, SignatureError, WebhookEvent, sign, verify_signature};
use prop_support::{config, json, mutated_body, text};
use proptest::prelude::*;
use serde_json::Value;

/// Field names of `Message#webhook_data` and `Conversation#webhook_data`.
const KEYS: &[&str] = &[
    "event",
    "id",
    "content",
    "message_type",
    "private",
    "content_type",
    "source_id",
    "sender",
    "type",
    "name",
    "conversation",
    "account",
    "inbox",
    "attachments",
    "file_type",
    "data_url",
    "thumb_url",
    "extension",
    "file_size",
    "message_id",
    "messages",
    "inbox_id",
    "status",
    "contact_inbox",
    "meta",
    "custom_attributes",
    "additional_attributes",
];

/// A real agent reply with an attachment, as the connector's tests receive it.
fn sample() -> Value {
    serde_json::from_str(include_str!(
        "../../../services/vk-connector/tests/fixtures/chatwoot_message_created_attachment_only.json"
    ))
    .expect("fixture is JSON")
}

/// Reads a webhook body as the connector does: the event, then a `message_created` payload.
fn read(body: &[u8]) -> Result<Option<MessagePayload>, String> {
    let event: WebhookEvent = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if event.event != "message_created" {
        return Ok(None);
    }
    let msg: MessagePayload =
        serde_json::from_value(Value::Object(event.rest)).map_err(|e| e.to_string())?;
    let _ = msg.message_type();
    Ok(Some(msg))
}

#[test]
fn the_sample_is_read() {
    let msg = read(&serde_json::to_vec(&sample()).expect("serializes"))
        .expect("reads")
        .expect("a message_created");
    assert_eq!(msg.message_type(), Some(MessageType::Outgoing));
    assert_eq!(msg.attachments.len(), 1);
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_chatwoot_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = read(&bytes) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_chatwoot_arbitrary_json_does_not_panic(v in json(KEYS, 5)) {
        let got = read(&serde_json::to_vec(&v).expect("serializes"));
        if v.is_object() && !v.get("event").is_some_and(Value::is_string) {
            prop_assert!(got.is_err(), "no string `event`, yet read: {v}");
        }
        let _ = MessageType::from_json(&v);
    }

    #[test]
    fn prop_chatwoot_mutated_sample_does_not_panic((v, bytes) in mutated_body(sample(), KEYS)) {
        if let Err(e) = read(&bytes) {
            prop_assert!(!e.is_empty(), "{v}");
        }
    }

    #[test]
    fn prop_chatwoot_signature_headers_do_not_panic(
        secret in prop::collection::vec(any::<u8>(), 0..80),
        signature in prop::option::of(prop_oneof![text(), "sha256=[0-9a-fA-F]{0,70}", "[0-9a-f]{64}"]),
        timestamp in prop::option::of(prop_oneof![text(), any::<i64>().prop_map(|t| t.to_string()), "[ +-]?[0-9]{1,25} ?"]),
        body in prop::collection::vec(any::<u8>(), 0..128),
        now in any::<i64>(),
        tolerance in prop_oneof![Just(300_i64), any::<i64>()],
    ) {
        let got = verify_signature(&secret, signature.as_deref(), timestamp.as_deref(), &body, now, tolerance);
        if signature.is_none() || timestamp.is_none() {
            prop_assert_eq!(got, Err(SignatureError::Missing));
        } else if let Err(e) = got {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn prop_chatwoot_signature_round_trips_and_detects_changes(
        secret in prop::collection::vec(any::<u8>(), 0..80),
        body in prop::collection::vec(any::<u8>(), 0..256),
        ts in any::<i64>(),
        skew in -300_i64..=300,
        flip in any::<prop::sample::Index>(),
    ) {
        let sig = sign(&secret, ts, &body);
        let now = ts.saturating_add(skew);
        let got = verify_signature(&secret, Some(&sig), Some(&ts.to_string()), &body, now, 300);
        prop_assert_eq!(got, Ok(()));
        if !body.is_empty() {
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 0x01;
            let got = verify_signature(&secret, Some(&sig), Some(&ts.to_string()), &changed, now, 300);
            prop_assert_eq!(got, Err(SignatureError::Mismatch));
        }
    }
}
