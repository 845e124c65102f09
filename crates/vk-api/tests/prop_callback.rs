//! Property tests of the VK Callback API / Bots Long Poll event types
//! (<https://dev.vk.com/ru/api/callback/getting-started>,
//! <https://dev.vk.com/ru/api/community-events/json-schema>): whatever the bytes, reading them
//! as a [`CallbackEvent`] and its `message_new` object as a [`MessageNew`] never panics, and a
//! body that lacks what the types require is an error that says what is wrong.
//! See `docs/fuzzing.md` for longer runs.

mod prop_support;

use prop_support::{config, json, mutated_body};
use proptest::prelude::*;
use serde_json::Value;
use vk_api::callback::{CallbackEvent, MessageNew};

/// Field names of the event, the message and its attachments, so generated objects hit them.
const KEYS: &[&str] = &[
    "type",
    "group_id",
    "event_id",
    "v",
    "secret",
    "object",
    "message",
    "client_info",
    "date",
    "peer_id",
    "from_id",
    "id",
    "text",
    "out",
    "conversation_message_id",
    "attachments",
    "reply_message",
    "fwd_messages",
    "payload",
    "photo",
    "doc",
    "sizes",
    "button_actions",
    "keyboard",
    "lang_id",
];

/// A real `message_new` with a photo, a document and a voice message, as the connector's tests
/// receive it.
fn sample() -> Value {
    serde_json::from_str(include_str!(
        "../../../services/vk-connector/tests/fixtures/vk_message_new_attachments.json"
    ))
    .expect("fixture is JSON")
}

/// Reads `bytes` the way both transports do: the event, then its `message_new` object.
fn read(bytes: &[u8]) -> Result<Option<MessageNew>, String> {
    let event: CallbackEvent = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if event.kind != "message_new" {
        return Ok(None);
    }
    let object: MessageNew = serde_json::from_value(event.object).map_err(|e| e.to_string())?;
    for a in &object.message.attachments {
        let _ = a.object();
    }
    Ok(Some(object))
}

#[test]
fn the_sample_is_read() {
    let bytes = serde_json::to_vec(&sample()).expect("serializes");
    let object = read(&bytes).expect("reads").expect("a message_new");
    assert_eq!(object.message.attachments.len(), 3);
    assert!(object.message.attachments[0].object().is_some());
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_callback_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Not JSON, or JSON without the fields: an error with serde's message.
        if let Err(e) = read(&bytes) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_callback_arbitrary_json_does_not_panic(v in json(KEYS, 5)) {
        let bytes = serde_json::to_vec(&v).expect("serializes");
        let got = read(&bytes);
        // An object needs a string `type` and an integer `group_id`. (serde also reads a struct
        // from an array of its fields in order; the connector refuses arrays before that.)
        let shaped = !v.is_object()
            || v.get("type").is_some_and(Value::is_string)
            && v.get("group_id").is_some_and(|g| g.is_i64() || g.is_u64());
        if !shaped {
            prop_assert!(got.is_err(), "{v} was read");
        }
    }

    #[test]
    fn prop_callback_mutated_sample_does_not_panic((v, bytes) in mutated_body(sample(), KEYS)) {
        match read(&bytes) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.is_empty(), "{v}"),
        }
        // Without a peer the message cannot be read.
        if v.pointer("/object/message").is_some_and(|m| m.get("peer_id").is_none())
            && v.get("type") == Some(&Value::from("message_new"))
        {
            prop_assert!(read(&bytes).is_err());
        }
    }

    #[test]
    fn prop_callback_deep_reply_chains_are_read_or_refused(depth in 0usize..140) {
        // `reply_message` is itself a message: VK sends one level, a hostile body any number.
        let leaf = r#"{"date":1,"peer_id":2,"from_id":3}"#;
        let mut msg = String::new();
        for _ in 0..depth {
            msg.push_str(r#"{"date":1,"peer_id":2,"from_id":3,"reply_message":"#);
        }
        msg.push_str(leaf);
        msg.push_str(&"}".repeat(depth));
        let body = format!(
            r#"{{"type":"message_new","group_id":1,"object":{{"message":{msg}}}}}"#
        );
        let got = read(body.as_bytes());
        // serde_json stops at 128 levels of nesting (3 are the envelope's) with an error, never
        // a stack overflow.
        if depth + 3 >= 128 {
            prop_assert!(got.is_err());
        } else {
            prop_assert!(got.is_ok(), "{got:?}");
        }
    }
}
