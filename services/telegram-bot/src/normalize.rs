//! A Telegram [Update](https://core.telegram.org/bots/api#update) as the gateway's normalized
//! event, or the reason it is not relayed. Shared by the long-poll worker and the webhook
//! route, so both modes relay exactly the same updates.
//!
//! | update | becomes |
//! |---|---|
//! | `message` in a private chat, from a person | `events.telegram.message.received` |
//! | `edited_message` in a private chat | `events.telegram.message.edited` |
//! | `message` in `BOT_GROUP_ID` with `is_topic_message: true` | `events.telegram.topic_message.received` |
//! | `edited_message` there | `events.telegram.topic_message.edited` |
//! | `callback_query` from a private chat, with the helpdesk on | `events.telegram.message.button_pressed` |
//! | from a bot, another chat, the General topic, a service message, other update kinds | ignored |
//!
//! Attachments say where their content is without a URL that would carry the token: a file's
//! `url` is `tg-file:<file_id>` (the helpdesk fetches it with getFile when it must), a shared
//! contact's `tel:<phone_number>` as Telegram gives it (often without `+`).
//!
//! `message_thread_id` names a topic only when `is_topic_message` is true: a reply in the
//! General topic carries the id of the message it answers there too.

use domain::{
    Attachment, AttachmentKind, ButtonPress, ConversationKind, ConversationRef, Envelope, Event,
    IdempotencyKey, InboundMessage, Sender, Source,
};
use frankenstein::types::{Message, User};
use serde::Deserialize as _;
use serde_json::Value;
use time::OffsetDateTime;

use crate::telegram::spans_of;

/// What to do with one update.
#[derive(Debug)]
pub enum Classified {
    /// Publish this envelope (key `tg:<bot_id>:<update_id>`).
    Publish(Box<Envelope<Event>>),
    /// Nothing to relay; the reason is for the log and the metrics.
    Ignore(&'static str),
}

/// The update is not what the Bot API documents.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// The two ids an update is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// The bot's id (from its token): part of the idempotency key.
    pub bot_id: i64,
    /// `BOT_GROUP_ID`: the operators' forum supergroup.
    pub group_id: i64,
    /// `OKDESK_ENABLED`: button presses are the helpdesk's; without it they are ignored.
    pub helpdesk: bool,
}

/// The `update_id` of a raw update, when it has one.
pub fn update_id(raw: &Value) -> Option<i64> {
    raw.get("update_id").and_then(Value::as_i64)
}

/// Classifies one raw update.
///
/// Errors: [`Malformed`] when there is no numeric `update_id`, or a `message` /
/// `edited_message` that is not a Message object (what was wrong is in the text).
pub fn classify(scope: Scope, raw: &Value) -> Result<Classified, Malformed> {
    let update_id = update_id(raw)
        .ok_or_else(|| Malformed("not a Telegram update: no numeric update_id".into()))?;
    let (field, edited) = if raw.get("message").is_some() {
        ("message", false)
    } else if raw.get("edited_message").is_some() {
        ("edited_message", true)
    } else if scope.helpdesk && raw.get("callback_query").is_some() {
        return button_press(scope, update_id, &raw["callback_query"]);
    } else {
        return Ok(Classified::Ignore("update kind not relayed"));
    };
    let nested = nested_messages(&raw[field]);
    if nested > MAX_NESTED_MESSAGES {
        return Err(Malformed(format!(
            "`{field}` nests {nested} messages in each other (at most {MAX_NESTED_MESSAGES})"
        )));
    }
    let msg = Message::deserialize(&raw[field])
        .map_err(|e| Malformed(format!("`{field}` is not a Telegram Message: {e}")))?;
    let Some(from) = msg.from.as_deref() else {
        return Ok(Classified::Ignore("no sender (channel or anonymous admin)"));
    };
    if from.is_bot {
        return Ok(Classified::Ignore("written by a bot"));
    }
    let (at, event) = if msg.chat.id == scope.group_id {
        if msg.is_topic_message != Some(true) {
            return Ok(Classified::Ignore("General topic, not a customer's topic"));
        }
        let Some(thread) = msg.message_thread_id else {
            return Ok(Classified::Ignore(
                "topic message without message_thread_id",
            ));
        };
        let Some(m) = inbound(&msg, from, ConversationKind::Group, Some(thread)) else {
            return Ok(Classified::Ignore("service message"));
        };
        let at = m.sent_at;
        if edited {
            (at, Event::TopicMessageEdited(m))
        } else {
            (at, Event::TopicMessageReceived(m))
        }
    } else if msg.chat.id > 0 && msg.chat.id == i64::try_from(from.id).unwrap_or(-1) {
        let Some(m) = inbound(&msg, from, ConversationKind::Private, None) else {
            return Ok(Classified::Ignore("service message"));
        };
        let at = m.sent_at;
        if edited {
            (at, Event::MessageEdited(m))
        } else {
            (at, Event::MessageReceived(m))
        }
    } else {
        return Ok(Classified::Ignore("another chat"));
    };
    Ok(Classified::Publish(Box::new(Envelope::new(
        Source::Telegram,
        at,
        IdempotencyKey::telegram_update(scope.bot_id, update_id),
        event,
    ))))
}

/// A [CallbackQuery](https://core.telegram.org/bots/api#callbackquery) as a button press, when
/// it comes from a button under a message in a private chat with a person.
fn button_press(scope: Scope, update_id: i64, raw: &Value) -> Result<Classified, Malformed> {
    let bad = |what: &str| Malformed(format!("`callback_query` is not a CallbackQuery: {what}"));
    let id = raw["id"].as_str().ok_or_else(|| bad("no id"))?;
    let from = User::deserialize(&raw["from"]).map_err(|e| bad(&format!("from: {e}")))?;
    if from.is_bot {
        return Ok(Classified::Ignore("written by a bot"));
    }
    let Some(data) = raw["data"].as_str() else {
        return Ok(Classified::Ignore("a button without callback_data"));
    };
    // `message` is absent for buttons of inline-mode messages; a MaybeInaccessibleMessage
    // (date 0) still has its chat and id.
    let message = &raw["message"];
    let (Some(chat_id), Some(message_id)) = (
        message["chat"]["id"].as_i64(),
        message["message_id"].as_i64(),
    ) else {
        return Ok(Classified::Ignore("a button not under a chat message"));
    };
    if chat_id <= 0 || chat_id != i64::try_from(from.id).unwrap_or(-1) {
        return Ok(Classified::Ignore("a button in another chat"));
    }
    let press = ButtonPress {
        sender: sender(&from),
        conversation: ConversationRef {
            id: chat_id.to_string(),
            kind: ConversationKind::Private,
            thread_id: None,
        },
        data: data.to_owned(),
        callback_id: id.to_owned(),
        message_id: Some(message_id.to_string()),
    };
    Ok(Classified::Publish(Box::new(Envelope::new(
        Source::Telegram,
        OffsetDateTime::now_utc(),
        IdempotencyKey::telegram_update(scope.bot_id, update_id),
        Event::ButtonPressed(press),
    ))))
}

/// How many Messages an update's message may carry inside each other. The Bot API nests one
/// level ("the Message object in this field will not contain further reply_to_message fields",
/// the same for `pinned_message`); a reply to a pinned-message notice is two. Each level is a
/// whole Message to deserialize, tens of KiB of stack in a debug build: a body 28 levels deep
/// overflowed a 2 MiB thread stack, which aborts the process.
const MAX_NESTED_MESSAGES: usize = 4;

/// The depth of the Messages inside `m` (`reply_to_message`, `pinned_message`,
/// `giveaway_completed.giveaway_message`, the fields typed Message in
/// <https://core.telegram.org/bots/api#message>); 0 when there are none. Bounded by
/// serde_json's 128 levels, with a small frame per level.
fn nested_messages(m: &Value) -> usize {
    [
        m.get("reply_to_message"),
        m.get("pinned_message"),
        m.get("giveaway_completed")
            .and_then(|g| g.get("giveaway_message")),
    ]
    .into_iter()
    .flatten()
    .map(|inner| 1 + nested_messages(inner))
    .max()
    .unwrap_or(0)
}

fn sender(from: &User) -> Sender {
    let display_name = match &from.last_name {
        Some(last) if !last.is_empty() => format!("{} {last}", from.first_name),
        _ => from.first_name.clone(),
    };
    Sender {
        id: from.id.to_string(),
        display_name: Some(display_name),
        username: from.username.clone(),
        language: from.language_code.clone(),
    }
}

/// The normalized message; `None` for a service message (topic created, member joined …).
fn inbound(
    msg: &Message,
    from: &User,
    kind: ConversationKind,
    thread: Option<i32>,
) -> Option<InboundMessage> {
    let attachments = attachments(msg);
    let text = msg.text.clone().or_else(|| msg.caption.clone());
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    let formatting = if msg.text.is_some() {
        spans_of(msg.entities.as_ref())
    } else {
        spans_of(msg.caption_entities.as_ref())
    };
    // In a topic, a message that answers nothing in particular "replies" to the topic's
    // creation message (id = thread id): that is not a reply.
    let reply_to = msg
        .reply_to_message
        .as_deref()
        .map(|r| r.message_id)
        .filter(|id| Some(*id) != thread);
    let when = msg.edit_date.unwrap_or(msg.date);
    Some(InboundMessage {
        message_id: msg.message_id.to_string(),
        sender: sender(from),
        conversation: ConversationRef {
            id: msg.chat.id.to_string(),
            kind,
            thread_id: thread.map(|t| t.to_string()),
        },
        text,
        attachments,
        formatting,
        reply_to: reply_to.map(|id| id.to_string()),
        sent_at: i64::try_from(when)
            .ok()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or_else(OffsetDateTime::now_utc),
    })
}

/// The prefix of an attachment `url` that names a Telegram file: `tg-file:<file_id>`.
pub const FILE_URL_PREFIX: &str = "tg-file:";

/// The prefix of a shared contact's `url`: `tel:<phone_number>`.
pub const TEL_URL_PREFIX: &str = "tel:";

/// The media of a message, described (the relay copies the message itself with copyMessage).
/// A file's `url` is `tg-file:<file_id>`, never a download URL (that would carry the token).
fn attachments(msg: &Message) -> Vec<Attachment> {
    let a =
        |kind, file_id: &str, mime: Option<&String>, name: Option<&String>, size: Option<u64>| {
            Attachment {
                kind,
                url: (!file_id.is_empty()).then(|| format!("{FILE_URL_PREFIX}{file_id}")),
                mime: mime.cloned(),
                name: name.cloned(),
                size,
                preview_url: None,
            }
        };
    let mut out = Vec::new();
    if let Some(p) = msg.photo.as_ref().and_then(|p| p.last()) {
        let jpeg = "image/jpeg".to_owned();
        out.push(a(
            AttachmentKind::Image,
            &p.file_id,
            Some(&jpeg),
            None,
            p.file_size,
        ));
    }
    if let Some(v) = &msg.voice {
        out.push(a(
            AttachmentKind::Voice,
            &v.file_id,
            v.mime_type.as_ref(),
            None,
            v.file_size,
        ));
    }
    if let Some(v) = &msg.video {
        out.push(a(
            AttachmentKind::Video,
            &v.file_id,
            v.mime_type.as_ref(),
            v.file_name.as_ref(),
            v.file_size,
        ));
    }
    if let Some(v) = &msg.video_note {
        out.push(a(
            AttachmentKind::Video,
            &v.file_id,
            None,
            None,
            v.file_size,
        ));
    }
    if let Some(v) = &msg.animation {
        out.push(a(
            AttachmentKind::Video,
            &v.file_id,
            v.mime_type.as_ref(),
            v.file_name.as_ref(),
            v.file_size,
        ));
    }
    if let Some(v) = &msg.audio {
        out.push(a(
            AttachmentKind::Audio,
            &v.file_id,
            v.mime_type.as_ref(),
            v.title.as_ref(),
            v.file_size,
        ));
    }
    if let Some(d) = &msg.document {
        out.push(a(
            AttachmentKind::File,
            &d.file_id,
            d.mime_type.as_ref(),
            d.file_name.as_ref(),
            d.file_size,
        ));
    }
    if let Some(s) = &msg.sticker {
        out.push(a(
            AttachmentKind::Sticker,
            &s.file_id,
            None,
            s.emoji.as_ref(),
            s.file_size,
        ));
    }
    if msg.location.is_some() || msg.venue.is_some() {
        out.push(a(AttachmentKind::Location, "", None, None, None));
    }
    if let Some(c) = &msg.contact {
        let name = format!("contact {} {}", c.first_name, c.phone_number);
        let mut contact = a(AttachmentKind::Other, "", None, Some(&name), None);
        contact.url = Some(format!("{TEL_URL_PREFIX}{}", c.phone_number));
        out.push(contact);
    }
    for (present, what) in [
        (msg.poll.is_some(), "poll"),
        (msg.dice.is_some(), "dice"),
        (msg.story.is_some(), "story"),
        (msg.game.is_some(), "game"),
        (msg.checklist.is_some(), "checklist"),
        (msg.paid_media.is_some(), "paid media"),
    ] {
        if present {
            out.push(a(
                AttachmentKind::Other,
                "",
                None,
                Some(&what.to_owned()),
                None,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCOPE: Scope = Scope {
        bot_id: 7_000_000_001,
        group_id: -1_001_000_000_001,
        helpdesk: false,
    };

    fn private(content: Value) -> Value {
        let mut m = json!({
            "message_id": 5, "date": 1_764_000_000,
            "chat": {"id": 42, "type": "private", "first_name": "Ivan"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ivan", "last_name": "Petrov",
                     "username": "ivanp", "language_code": "ru"}
        });
        m.as_object_mut()
            .unwrap()
            .extend(content.as_object().unwrap().clone());
        json!({"update_id": 900, "message": m})
    }

    fn group(thread: Option<i64>, is_topic: bool, content: Value) -> Value {
        let mut m = json!({
            "message_id": 77, "date": 1_764_000_000,
            "chat": {"id": SCOPE.group_id, "type": "supergroup", "title": "Support", "is_forum": true},
            "from": {"id": 6, "is_bot": false, "first_name": "Olga"}
        });
        let o = m.as_object_mut().unwrap();
        if let Some(t) = thread {
            o.insert("message_thread_id".into(), json!(t));
        }
        if is_topic {
            o.insert("is_topic_message".into(), json!(true));
        }
        o.extend(content.as_object().unwrap().clone());
        json!({"update_id": 901, "message": m})
    }

    fn published(raw: &Value) -> Envelope<Event> {
        match classify(SCOPE, raw).expect("well formed") {
            Classified::Publish(e) => *e,
            Classified::Ignore(r) => panic!("ignored: {r}"),
        }
    }

    fn ignored(raw: &Value) -> &'static str {
        match classify(SCOPE, raw).expect("well formed") {
            Classified::Ignore(r) => r,
            Classified::Publish(e) => panic!("published {e:?}"),
        }
    }

    #[test]
    fn a_private_text_is_a_received_message_keyed_by_bot_and_update() {
        let env = published(&private(
            json!({"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 2}]}),
        ));
        assert_eq!(env.idempotency_key.as_str(), "tg:7000000001:900");
        assert_eq!(env.subject().as_str(), "events.telegram.message.received");
        let Event::MessageReceived(m) = env.payload else {
            panic!()
        };
        assert_eq!(m.conversation.id, "42");
        assert_eq!(m.sender.display_name.as_deref(), Some("Ivan Petrov"));
        assert_eq!(m.sender.language.as_deref(), Some("ru"));
        assert_eq!(m.formatting[0].kind, "bold");
        assert_eq!(m.text.as_deref(), Some("hi"));
    }

    #[test]
    fn media_are_described_and_their_caption_is_the_text() {
        let env = published(&private(json!({
            "photo": [{"file_id": "a", "file_unique_id": "b", "width": 90, "height": 90, "file_size": 1000}],
            "caption": "look"
        })));
        let Event::MessageReceived(m) = env.payload else {
            panic!()
        };
        assert_eq!(m.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(m.attachments[0].url.as_deref(), Some("tg-file:a"));
        assert_eq!(m.text.as_deref(), Some("look"));
        let env = published(&private(
            json!({"contact": {"phone_number": "+79990000000", "first_name": "Anna"}}),
        ));
        let Event::MessageReceived(m) = env.payload else {
            panic!()
        };
        assert_eq!(m.attachments[0].kind, AttachmentKind::Other);
        assert_eq!(m.attachments[0].url.as_deref(), Some("tel:+79990000000"));
    }

    #[test]
    fn a_button_press_in_a_private_chat_is_an_event_only_with_the_helpdesk_on() {
        let press = json!({"update_id": 903, "callback_query": {
            "id": "4382045912", "chat_instance": "-1",  "data": "issue:12",
            "from": {"id": 42, "is_bot": false, "first_name": "Ivan", "language_code": "en"},
            "message": {"message_id": 9, "date": 1_764_000_000, "text": "Your issues",
                        "chat": {"id": 42, "type": "private", "first_name": "Ivan"}}
        }});
        assert_eq!(ignored(&press), "update kind not relayed");
        let on = Scope {
            helpdesk: true,
            ..SCOPE
        };
        let Classified::Publish(env) = classify(on, &press).expect("well formed") else {
            panic!("ignored")
        };
        assert_eq!(
            env.subject().as_str(),
            "events.telegram.message.button_pressed"
        );
        assert_eq!(env.idempotency_key.as_str(), "tg:7000000001:903");
        assert_eq!(
            env.payload.ordering_key().as_deref(),
            Some("conversation:42")
        );
        let Event::ButtonPressed(b) = env.payload else {
            panic!()
        };
        assert_eq!(
            (
                b.data.as_str(),
                b.callback_id.as_str(),
                b.message_id.as_deref()
            ),
            ("issue:12", "4382045912", Some("9"))
        );
        assert_eq!(b.sender.language.as_deref(), Some("en"));
        // A press in a group (or of another user's message) is not the helpdesk's.
        let mut other = press.clone();
        other["callback_query"]["message"]["chat"]["id"] = json!(-1_005);
        assert!(matches!(
            classify(on, &other),
            Ok(Classified::Ignore("a button in another chat"))
        ));
    }

    #[test]
    fn topic_messages_only_when_is_topic_message() {
        let env = published(&group(Some(12), true, json!({"text": "answer"})));
        assert_eq!(
            env.subject().as_str(),
            "events.telegram.topic_message.received"
        );
        let Event::TopicMessageReceived(m) = &env.payload else {
            panic!()
        };
        assert_eq!(m.conversation.thread_id.as_deref(), Some("12"));
        assert_eq!(
            env.payload.ordering_key().as_deref(),
            Some("conversation:-1001000000001:12")
        );
        // A reply in the General topic carries a message_thread_id but is not a topic message.
        assert_eq!(
            ignored(&group(Some(3), false, json!({"text": "x"}))),
            "General topic, not a customer's topic"
        );
        assert_eq!(
            ignored(&group(None, false, json!({"text": "x"}))),
            "General topic, not a customer's topic"
        );
        // The topic's service message.
        assert_eq!(
            ignored(&group(
                Some(12),
                true,
                json!({"forum_topic_created": {"name": "n", "icon_color": 1}})
            )),
            "service message"
        );
    }

    #[test]
    fn bots_other_chats_and_other_kinds_are_ignored() {
        let mut raw = private(json!({"text": "hi"}));
        raw["message"]["from"]["is_bot"] = json!(true);
        assert_eq!(ignored(&raw), "written by a bot");
        let mut raw = group(Some(1), true, json!({"text": "hi"}));
        raw["message"]["chat"]["id"] = json!(-100_777);
        assert_eq!(ignored(&raw), "another chat");
        assert_eq!(
            ignored(&json!({"update_id": 1, "callback_query": {"id": "1"}})),
            "update kind not relayed"
        );
    }

    #[test]
    fn edits_are_their_own_events() {
        let mut raw = private(json!({"text": "fixed", "edit_date": 1_764_000_100}));
        let m = raw["message"].take();
        raw = json!({"update_id": 902, "edited_message": m});
        let env = published(&raw);
        assert_eq!(env.subject().as_str(), "events.telegram.message.edited");
    }

    #[test]
    fn malformed_updates_say_what_is_wrong() {
        let e = classify(SCOPE, &json!({"message": {}})).unwrap_err();
        assert!(e.0.contains("update_id"), "{e}");
        let e = classify(
            SCOPE,
            &json!({"update_id": 1, "message": {"text": "no chat"}}),
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("`message` is not a Telegram Message"),
            "{e}"
        );
    }
}
