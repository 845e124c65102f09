//! Serde round trips against golden JSON: the wire format is a contract between services.

use domain::{
    AttachmentKind, Command, ConversationKind, DecodeError, Envelope, Event, Source, Subject,
};

fn value(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("golden file is JSON")
}

#[test]
fn message_received_round_trips_byte_for_byte_in_meaning() {
    let golden = include_str!("golden/vk_message_received.json");
    let env = Envelope::<Event>::decode(golden.as_bytes()).expect("decodes");
    let Event::MessageReceived(msg) = &env.payload else {
        panic!("expected message.received, got {}", env.payload.type_name());
    };
    assert_eq!(env.source, Source::Vk);
    assert_eq!(env.idempotency_key.as_str(), "vk:227000001:c9f1e0a8d3b2");
    assert_eq!(msg.sender.display_name.as_deref(), Some("Иван Петров"));
    assert_eq!(msg.conversation.kind, ConversationKind::Private);
    assert_eq!(msg.attachments[1].kind, AttachmentKind::File);
    assert_eq!(msg.attachments[1].size, Some(20480));
    assert_eq!(
        env.subject(),
        Subject::event(Source::Vk, "message.received")
    );
    assert_eq!(
        serde_json::to_value(&env).expect("serializes"),
        value(golden)
    );
}

#[test]
fn vk_message_send_round_trips() {
    let golden = include_str!("golden/vk_message_send.json");
    let env = Envelope::<Command>::decode(golden.as_bytes()).expect("decodes");
    assert_eq!(env.subject().as_str(), "cmd.vk.message.send");
    let Command::VkMessageSend(out) = &env.payload else {
        panic!("not a VK send: {:?}", env.payload)
    };
    assert_eq!(out.origin.message_id, 42);
    assert!(env.traceparent.is_none());
    assert_eq!(
        serde_json::to_value(&env).expect("serializes"),
        value(golden)
    );
}

#[test]
fn unknown_type_is_reported_not_crashed_on() {
    let body = br#"{"id":"019a8c3e-7b1c-7d2e-9f00-0123456789ab","type":"message.teleported",
        "source":"vk","occurred_at":"2026-11-22T12:00:00Z","idempotency_key":"k","data":{}}"#;
    match Envelope::<Event>::decode(body) {
        Err(DecodeError::UnknownType(t)) => assert_eq!(t, "message.teleported"),
        other => panic!("expected UnknownType, got {other:?}"),
    }
}

#[test]
fn newer_fields_are_ignored() {
    let mut v = value(include_str!("golden/vk_message_received.json"));
    v["schema_version"] = 2.into();
    v["data"]["sender"]["locale"] = "ru".into();
    let bytes = serde_json::to_vec(&v).expect("json");
    assert!(Envelope::<Event>::decode(&bytes).is_ok());
}

#[test]
fn broken_data_of_a_known_type_is_malformed() {
    let body = br#"{"id":"019a8c3e-7b1c-7d2e-9f00-0123456789ab","type":"message.received",
        "source":"vk","occurred_at":"2026-11-22T12:00:00Z","idempotency_key":"k","data":{"text":1}}"#;
    assert!(matches!(
        Envelope::<Event>::decode(body),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn messenger_message_posted_round_trips() {
    let golden = include_str!("golden/messenger_message_posted.json");
    let env = Envelope::<Event>::decode(golden.as_bytes()).expect("decodes");
    assert_eq!(env.source, Source::Messenger);
    assert_eq!(env.subject().as_str(), "events.messenger.message.posted");
    assert_eq!(env.payload.type_name(), "message.posted");
    let Event::MessagePosted(msg) = &env.payload else {
        panic!("expected message.posted, got {}", env.payload.type_name());
    };
    assert_eq!(msg.conversation.kind, ConversationKind::Group);
    assert_eq!(msg.sender.display_name.as_deref(), Some("Анна Смирнова"));
    assert_eq!(msg.attachments[0].kind, AttachmentKind::Audio);
    assert_eq!(msg.attachments[0].mime.as_deref(), Some("audio/ogg"));
    assert!(msg.reply_to.is_none());
    assert_eq!(
        env.idempotency_key,
        domain::IdempotencyKey::messenger_message(4521)
    );
    assert_eq!(
        serde_json::to_value(&env).expect("serializes"),
        value(golden)
    );
}
