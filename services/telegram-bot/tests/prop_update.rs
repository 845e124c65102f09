//! Property tests of the Telegram [Update](https://core.telegram.org/bots/api#update) parse
//! path shared by the webhook route and the long-poll worker: body → JSON →
//! [`normalize::classify`] → the envelope that would be published. Whatever the bytes, nothing
//! panics (or overflows the stack); what is not an update is a [`normalize::Malformed`] with a
//! message. See `docs/fuzzing.md` for longer runs.

#[path = "../../../crates/vk-api/tests/prop_support/mod.rs"]
mod prop_support;

use prop_support::{config, json, mutated_body};
use proptest::prelude::*;
use serde_json::{Value, json};
use telegram_bot::normalize::{self, Classified, Scope};

const SCOPE: Scope = Scope {
    bot_id: 7_000_000_001,
    group_id: -1_001_000_000_001,
    helpdesk: true,
};

/// Names of the Update, Message, User, Chat, entity and media fields the parser reads.
const KEYS: &[&str] = &[
    "update_id",
    "message",
    "edited_message",
    "callback_query",
    "message_id",
    "date",
    "edit_date",
    "chat",
    "id",
    "type",
    "from",
    "is_bot",
    "first_name",
    "last_name",
    "username",
    "text",
    "caption",
    "entities",
    "offset",
    "length",
    "url",
    "reply_to_message",
    "message_thread_id",
    "is_topic_message",
    "photo",
    "file_id",
    "file_unique_id",
    "file_size",
    "width",
    "height",
    "document",
    "mime_type",
    "file_name",
    "contact",
    "phone_number",
    "location",
    "latitude",
    "longitude",
    "data",
];

/// A private message with formatting, a photo and a reply, as the Bot API documents it.
fn private_message() -> Value {
    json!({"update_id": 900, "message": {
        "message_id": 5, "date": 1_764_000_000,
        "chat": {"id": 42, "type": "private", "first_name": "Ivan"},
        "from": {"id": 42, "is_bot": false, "first_name": "Ivan", "last_name": "Petrov",
                 "username": "ivanp", "language_code": "ru"},
        "caption": "Счёт во вложении", "caption_entities": [{"type": "bold", "offset": 0, "length": 4}],
        "photo": [
            {"file_id": "AgAC-small", "file_unique_id": "AQAD1", "file_size": 1200, "width": 90, "height": 67},
            {"file_id": "AgAC-large", "file_unique_id": "AQAD2", "file_size": 88000, "width": 1280, "height": 960}
        ],
        "reply_to_message": {"message_id": 4, "date": 1_763_999_000,
            "chat": {"id": 42, "type": "private", "first_name": "Ivan"}, "text": "Пришлите счёт"}
    }})
}

/// An operator's answer in a customer's forum topic, with a document.
fn topic_message() -> Value {
    json!({"update_id": 901, "edited_message": {
        "message_id": 77, "date": 1_764_000_000, "edit_date": 1_764_000_060,
        "message_thread_id": 12, "is_topic_message": true,
        "chat": {"id": SCOPE.group_id, "type": "supergroup", "title": "Support", "is_forum": true},
        "from": {"id": 6, "is_bot": false, "first_name": "Olga"},
        "text": "Готово: https://example.com/a",
        "entities": [{"type": "url", "offset": 8, "length": 21}],
        "document": {"file_id": "BQAC-doc", "file_unique_id": "AgAD3", "file_name": "act.pdf",
                     "mime_type": "application/pdf", "file_size": 48213}
    }})
}

/// A helpdesk button press under a message in the private chat.
fn button_press() -> Value {
    json!({"update_id": 903, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "chat_instance": "-8123",
        "from": {"id": 42, "is_bot": false, "first_name": "Ivan"},
        "message": {"message_id": 10, "date": 1_764_000_000,
                    "chat": {"id": 42, "type": "private", "first_name": "Ivan"}, "text": "Меню"},
        "data": "issue:15"
    }})
}

/// The webhook's reading of a body, without the secret check and the I/O.
fn read(body: &[u8]) -> Result<Option<String>, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let _ = normalize::update_id(&raw);
    match normalize::classify(SCOPE, &raw).map_err(|e| e.to_string())? {
        Classified::Ignore(reason) => {
            assert!(!reason.is_empty());
            Ok(None)
        }
        Classified::Publish(env) => {
            serde_json::to_vec(&*env).map_err(|e| e.to_string())?;
            Ok(Some(env.subject().to_string()))
        }
    }
}

fn samples() -> impl Strategy<Value = (Value, Vec<u8>)> {
    prop_oneof![
        mutated_body(private_message(), KEYS),
        mutated_body(topic_message(), KEYS),
        mutated_body(button_press(), KEYS),
    ]
}

/// `n` messages, each the `reply_to_message` of the one before, in a private-chat update.
fn reply_chain(n: usize) -> String {
    let head = r#"{"message_id":1,"date":1,"chat":{"id":42,"type":"private"},"from":{"id":42,"is_bot":false,"first_name":"I"},"text":"t","reply_to_message":"#;
    let leaf = r#"{"message_id":1,"date":1,"chat":{"id":42,"type":"private"}}"#;
    format!(
        r#"{{"update_id":1,"message":{}{leaf}{}}}"#,
        head.repeat(n),
        "}".repeat(n)
    )
}

/// Found by `prop_telegram_update_deep_reply_chains_do_not_overflow`: 28 nested
/// `reply_to_message` levels overflowed the 2 MiB stack of the thread deserializing the Message
/// (a SIGABRT of the whole service, webhook or long poll alike). Now refused as malformed before
/// deserializing; the nesting Telegram really sends still passes.
#[test]
fn regression_a_deep_reply_chain_is_malformed_not_a_stack_overflow() {
    let got = read(reply_chain(28).as_bytes());
    assert_eq!(
        got,
        Err("`message` nests 28 messages in each other (at most 4)".to_owned())
    );
    assert!(matches!(read(reply_chain(2).as_bytes()), Ok(Some(_))));
}

#[test]
fn the_samples_are_published() {
    for v in [private_message(), topic_message(), button_press()] {
        let got = read(&serde_json::to_vec(&v).expect("serializes"));
        assert!(matches!(got, Ok(Some(_))), "{v}: {got:?}");
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_telegram_update_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = read(&bytes) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_telegram_update_arbitrary_json_does_not_panic(
        update_id in any::<i64>(),
        field in prop::sample::select(vec!["message", "edited_message", "callback_query", "poll"]),
        body in json(KEYS, 5),
    ) {
        let got = read(&serde_json::to_vec(&json!({"update_id": update_id, field: body})).expect("serializes"));
        if let Err(e) = got {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_telegram_update_mutated_samples_do_not_panic((v, bytes) in samples()) {
        let got = read(&bytes);
        if let Err(e) = &got {
            prop_assert!(!e.is_empty(), "{v}");
        }
        if v.get("update_id").is_none_or(|id| !id.is_i64()) {
            prop_assert!(got.is_err(), "an update without a numeric update_id was taken: {v}");
        }
    }

    #[test]
    fn prop_telegram_update_deep_reply_chains_do_not_overflow(depth in 0usize..130) {
        // Telegram nests one `reply_to_message` level; a hostile or broken body any number,
        // up to serde_json's limit of 128 levels of JSON. Each level is a whole Message to
        // deserialize: the stack must hold them all.
        let got = read(reply_chain(depth).as_bytes());
        if depth > 4 {
            prop_assert!(got.is_err(), "{got:?}");
        }
    }
}
