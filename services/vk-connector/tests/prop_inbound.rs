//! Property tests of the connector's two inbound parse paths, the pure steps only (no
//! database, no NATS):
//!
//! - the VK callback (`http::callback::handle`, also the Long Poll worker's and the dead-letter
//!   replay's): body → JSON → `group_id` → [`CallbackEvent`] → [`ingest::envelope`] (which
//!   normalizes the message and its attachments), <https://dev.vk.com/ru/api/callback/getting-started>;
//! - the Chatwoot webhook (`http::chatwoot::process` before the mapping lookup):
//!   body → [`WebhookEvent`] → [`MessagePayload`] → [`skip_reason`] → the legacy gateway's
//!   clues → [`outbound_of`] → [`command_of`],
//!   <https://www.chatwoot.com/hc/user-guide/articles/1677693021-how-to-use-webhooks>.
//!
//! Whatever the bytes, nothing panics; what the route would refuse or keep as a dead letter is
//! an error with a message. See `docs/fuzzing.md` for longer runs.

#[path = "../../../crates/vk-api/tests/prop_support/mod.rs"]
mod prop_support;

use chatwoot_api::webhook::{MessagePayload, WebhookEvent};
use domain::{Command, Envelope, Event};
use prop_support::{config, json, mutated_body};
use proptest::prelude::*;
use serde_json::Value;
use vk_api::callback::CallbackEvent;
use vk_connector::http::chatwoot::{command_of, outbound_of, skip_reason};
use vk_connector::{ingest, legacy};

/// The community of the VK fixtures.
const GROUP_ID: i64 = 218_765_432;

/// Names the VK parse path looks at.
const VK_KEYS: &[&str] = &[
    "type",
    "group_id",
    "event_id",
    "secret",
    "object",
    "message",
    "date",
    "peer_id",
    "from_id",
    "id",
    "text",
    "out",
    "conversation_message_id",
    "attachments",
    "reply_message",
    "photo",
    "orig_photo",
    "sizes",
    "width",
    "height",
    "url",
    "doc",
    "size",
    "title",
    "video",
    "image",
    "first_frame",
    "owner_id",
    "sticker",
    "images",
    "wall",
    "from_id",
    "audio_message",
    "link_mp3",
];

/// Names the Chatwoot parse path looks at.
const CW_KEYS: &[&str] = &[
    "event",
    "id",
    "content",
    "message_type",
    "private",
    "sender",
    "type",
    "name",
    "account",
    "inbox",
    "conversation",
    "messages",
    "contact_inbox",
    "source_id",
    "meta",
    "identifier",
    "email",
    "custom_attributes",
    "additional_attributes",
    "vk_peer_id",
    "vk_user_id",
    "attachments",
    "file_type",
    "data_url",
    "extension",
    "file_size",
];

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The callback route's reading of a body, step by step, without the secret check and the I/O.
fn read_callback(body: &[u8]) -> Result<Option<Envelope<Event>>, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let _kind = raw.get("type").and_then(Value::as_str).unwrap_or_default();
    let _event_id = raw.get("event_id").and_then(Value::as_str);
    let group_id = raw
        .get("group_id")
        .and_then(Value::as_i64)
        .ok_or("no numeric group_id")?;
    if group_id != GROUP_ID {
        return Err(format!(
            "group_id {group_id} is not the configured community"
        ));
    }
    let event: CallbackEvent = serde_json::from_value(raw).map_err(|e| e.to_string())?;
    let env = ingest::envelope(GROUP_ID, &event).map_err(|e| e.to_string())?;
    if let Some(env) = &env {
        // What would be published.
        let _ = env.subject();
        serde_json::to_vec(env).map_err(|e| e.to_string())?;
    }
    Ok(env)
}

/// `process`'s reading of a webhook up to the mapping lookup; the VK peer comes from the legacy
/// conventions when they name one.
fn read_chatwoot(body: &[u8]) -> Result<Option<Envelope<Command>>, String> {
    let event: WebhookEvent = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if event.event != "message_created" {
        return Ok(None);
    }
    let conversation_json = event
        .rest
        .get("conversation")
        .cloned()
        .unwrap_or(Value::Null);
    let msg: MessagePayload =
        serde_json::from_value(Value::Object(event.rest)).map_err(|e| e.to_string())?;
    if skip_reason(&msg, &[7]).is_some() {
        return Ok(None);
    }
    let Some(account) = &msg.account else {
        return Ok(None);
    };
    let Some(conversation) = msg.conversation.as_ref() else {
        return Err("message_created without conversation".into());
    };
    let _ = legacy::contact_id_of(&conversation_json);
    let peer_id =
        legacy::recognise(&legacy::clues_of(&conversation_json)).map_or(745_120_398, |r| r.peer_id);
    let command = command_of(outbound_of(account.id, conversation.id, peer_id, &msg));
    let _ = command.subject();
    serde_json::to_vec(&command).map_err(|e| e.to_string())?;
    Ok(Some(command))
}

fn vk_samples() -> impl Strategy<Value = (Value, Vec<u8>)> {
    prop_oneof![
        mutated_body(fixture("vk_message_new_attachments.json"), VK_KEYS),
        mutated_body(fixture("vk_message_new.json"), VK_KEYS),
    ]
}

fn chatwoot_samples() -> impl Strategy<Value = (Value, Vec<u8>)> {
    prop_oneof![
        mutated_body(fixture("chatwoot_message_created_outgoing.json"), CW_KEYS),
        mutated_body(
            fixture("chatwoot_message_created_attachment_only.json"),
            CW_KEYS
        ),
        mutated_body(fixture("chatwoot_message_created_private.json"), CW_KEYS),
    ]
}

/// `sizes[]` of a photo, `image[]` / `first_frame[]` of a video
/// (<https://dev.vk.com/ru/reference/objects/photo-sizes>): any numbers, as a hostile body has.
fn sizes() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (prop_support::number(), prop_support::number(), prop_support::text()),
        0..4,
    )
    .prop_map(|s| {
        Value::Array(
            s.into_iter()
                .map(|(w, h, url)| serde_json::json!({"width": w, "height": h, "url": url, "type": "x"}))
                .collect(),
        )
    })
}

/// One attachment of a documented type (<https://dev.vk.com/ru/reference/objects/attachments-message>)
/// whose object has the fields the normalizer reads, with any values.
fn attachment() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(vec![
        "photo",
        "doc",
        "audio_message",
        "video",
        "audio",
        "sticker",
        "link",
        "wall",
        "poll",
    ]);
    let field = prop_oneof![
        prop_support::number(),
        prop_support::text().prop_map(Value::String),
        sizes(),
        json(VK_KEYS, 2),
    ];
    let fields = prop::collection::vec((prop::sample::select(VK_KEYS), field), 0..8);
    (kind, sizes(), sizes(), fields).prop_map(|(kind, a, b, fields)| {
        let mut o: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        // The size lists the normalizer picks the largest of.
        o.insert("sizes".into(), a.clone());
        o.insert("image".into(), a);
        o.insert("first_frame".into(), b.clone());
        o.insert("images".into(), b);
        serde_json::json!({"type": kind, kind: o})
    })
}

#[test]
fn the_samples_are_read() {
    let bytes = |v: Value| serde_json::to_vec(&v).expect("serializes");
    let vk = read_callback(&bytes(fixture("vk_message_new_attachments.json")));
    assert!(matches!(vk, Ok(Some(_))), "{vk:?}");
    let cw = read_chatwoot(&bytes(fixture("chatwoot_message_created_outgoing.json")));
    assert!(matches!(cw, Ok(Some(_))), "{cw:?}");
}

/// Found by `prop_vk_callback_attachments_do_not_panic`: the area of a preview size was
/// `width * height` in i64, which overflowed (a panic in the callback route and the Long Poll
/// worker) for a huge side; the largest sane size must still win.
#[test]
fn regression_video_preview_with_a_huge_side_does_not_overflow() {
    let body = serde_json::json!({"type": "message_new", "group_id": GROUP_ID, "event_id": "e3",
    "object": {"message": {"date": 1, "from_id": 5, "peer_id": 5, "id": 1, "attachments": [
        {"type": "video", "video": {"owner_id": 5, "id": 9, "image": [
            {"width": -2, "height": 4_611_686_018_427_387_905_i64, "url": "https://x/huge"},
            {"width": 320, "height": 240, "url": "https://x/sane"}
        ]}},
        {"type": "photo", "photo": {"sizes": [
            {"width": i64::MAX, "height": i64::MAX, "url": "https://x/max"}
        ]}}
    ]}}});
    let env = read_callback(&serde_json::to_vec(&body).expect("serializes"))
        .expect("read")
        .expect("published");
    let Event::MessageReceived(m) = &env.payload else {
        panic!("not a message: {:?}", env.payload);
    };
    assert_eq!(
        m.attachments[0].preview_url.as_deref(),
        Some("https://x/sane")
    );
    assert_eq!(m.attachments[1].url.as_deref(), Some("https://x/max"));
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_vk_callback_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = read_callback(&bytes) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_vk_callback_arbitrary_json_does_not_panic(object in json(VK_KEYS, 5), kind in prop::sample::select(vec!["message_new", "message_reply", "confirmation", ""])) {
        // A well-addressed event with an arbitrary object: the part the structs must survive.
        let body = serde_json::json!({"type": kind, "group_id": GROUP_ID, "event_id": "e1", "object": object});
        let got = read_callback(&serde_json::to_vec(&body).expect("serializes"));
        if kind != "message_new" {
            prop_assert!(matches!(got, Ok(None)), "{got:?}");
        }
    }

    #[test]
    fn prop_vk_callback_attachments_do_not_panic(attachments in prop::collection::vec(attachment(), 1..4)) {
        let body = serde_json::json!({"type": "message_new", "group_id": GROUP_ID, "event_id": "e2",
            "object": {"message": {"date": 1_736_931_902, "from_id": 745_120_398, "peer_id": 745_120_398,
                "id": 1, "text": "", "attachments": attachments}}});
        let got = read_callback(&serde_json::to_vec(&body).expect("serializes"));
        prop_assert!(matches!(got, Ok(Some(_))), "{got:?}");
    }

    #[test]
    fn prop_vk_callback_mutated_samples_do_not_panic((v, bytes) in vk_samples()) {
        if let Err(e) = read_callback(&bytes) {
            prop_assert!(!e.is_empty(), "{v}");
        }
    }

    #[test]
    fn prop_chatwoot_webhook_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = read_chatwoot(&bytes) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_chatwoot_webhook_arbitrary_json_does_not_panic(rest in json(CW_KEYS, 5)) {
        let mut body = serde_json::json!({"event": "message_created"});
        if let (Value::Object(b), Value::Object(r)) = (&mut body, rest) {
            b.extend(r.into_iter().filter(|(k, _)| k != "event"));
        }
        if let Err(e) = read_chatwoot(&serde_json::to_vec(&body).expect("serializes")) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn prop_chatwoot_webhook_mutated_samples_do_not_panic((v, bytes) in chatwoot_samples()) {
        if let Err(e) = read_chatwoot(&bytes) {
            prop_assert!(!e.is_empty(), "{v}");
        }
    }
}
