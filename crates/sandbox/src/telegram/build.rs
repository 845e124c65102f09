//! Builders for the updates tests push with
//! [`Sandbox::telegram_push_update`](crate::Sandbox::telegram_push_update): what Telegram would
//! send when a user writes to the bot or an operator writes in the support group. They return
//! `Update` JSON without `update_id`, `message_id` and `date`; the sandbox fills those in.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::GROUP_TITLE;

/// A Telegram user (Bot API `User`), the sender of pushed messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TgUser {
    /// The user's id; also the id of their private chat with the bot.
    pub id: i64,
    /// `true` for bots.
    pub is_bot: bool,
    /// First name.
    pub first_name: String,
    /// Last name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `@username` without the `@`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IETF language tag of the user's app, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

impl TgUser {
    /// A human user with only a first name.
    pub fn new(id: i64, first_name: impl Into<String>) -> TgUser {
        TgUser {
            id,
            is_bot: false,
            first_name: first_name.into(),
            last_name: None,
            username: None,
            language_code: None,
        }
    }

    /// Sets the last name.
    #[must_use]
    pub fn last_name(mut self, last_name: impl Into<String>) -> TgUser {
        self.last_name = Some(last_name.into());
        self
    }

    /// Sets the username (without `@`).
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> TgUser {
        self.username = Some(username.into());
        self
    }

    /// Sets the language code (e.g. `ru`).
    #[must_use]
    pub fn language_code(mut self, language_code: impl Into<String>) -> TgUser {
        self.language_code = Some(language_code.into());
        self
    }

    /// Marks the user as a bot.
    #[must_use]
    pub fn bot(mut self) -> TgUser {
        self.is_bot = true;
        self
    }

    /// The Bot API `User` object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The user's private chat with the bot (Bot API `Chat`, `type` `private`).
    pub fn private_chat(&self) -> Value {
        let mut chat = json!({"id": self.id, "first_name": self.first_name, "type": "private"});
        if let Some(last_name) = &self.last_name {
            chat["last_name"] = json!(last_name);
        }
        if let Some(username) = &self.username {
            chat["username"] = json!(username);
        }
        chat
    }
}

fn merge(mut message: Value, content: Value) -> Value {
    if let (Some(message), Value::Object(content)) = (message.as_object_mut(), content) {
        message.extend(content);
    }
    message
}

/// A message `user` sends to the bot in their private chat: `{"message":{from, chat, …content}}`.
/// `content` is merged into the message, e.g. `json!({"text":"hi"})` or [`photo`] with a
/// `caption` added.
pub fn private_message(user: &TgUser, content: Value) -> Value {
    let message = json!({"from": user.to_json(), "chat": user.private_chat()});
    json!({"message": merge(message, content)})
}

/// A message `from` writes in the group `group_id` (a forum supergroup): in the topic
/// `thread_id` with `is_topic_message: true` when `is_topic`, in General otherwise. When the
/// sandbox stores it, a topic message without `reply_to_message` gets the topic's
/// `forum_topic_created` message as `reply_to_message`, as Telegram sends it; a
/// `reply_to_message` of just `{"message_id": N}` is expanded to the stored message N.
pub fn group_message(
    group_id: i64,
    from: &TgUser,
    thread_id: Option<i64>,
    is_topic: bool,
    content: Value,
) -> Value {
    let mut message = json!({
        "from": from.to_json(),
        "chat": {"id": group_id, "title": GROUP_TITLE, "is_forum": true, "type": "supergroup"},
    });
    if let Some(thread_id) = thread_id {
        message["message_thread_id"] = json!(thread_id);
    }
    if is_topic {
        message["is_topic_message"] = json!(true);
    }
    json!({"message": merge(message, content)})
}

/// Message fields that make up its content (replaced as a whole by an edit).
pub(crate) const CONTENT_FIELDS: &[&str] = &[
    "text",
    "entities",
    "link_preview_options",
    "animation",
    "audio",
    "document",
    "photo",
    "sticker",
    "story",
    "video",
    "video_note",
    "voice",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "checklist",
    "contact",
    "dice",
    "game",
    "poll",
    "venue",
    "location",
];

/// An `edited_message` update for a message already pushed: pass the update as the sandbox
/// stored it ([`PushedUpdate::update`](crate::PushedUpdate::update), which has the `message_id`
/// and `date`). `new_content` replaces the text/caption (`json!({"text":"fixed"})`); the rest of
/// the message stays, `edit_date` is now.
pub fn edited(update_of_message: Value, new_content: Value) -> Value {
    let mut message = match update_of_message {
        Value::Object(mut update) => update
            .remove("message")
            .or_else(|| update.remove("edited_message"))
            .unwrap_or(Value::Object(update)),
        other => other,
    };
    if let (Some(fields), Value::Object(content)) = (message.as_object_mut(), &new_content) {
        let replaces_text = content.contains_key("text");
        let replaces_caption = content.contains_key("caption");
        if replaces_text {
            fields.remove("entities");
        }
        if replaces_caption {
            fields.remove("caption_entities");
        }
        fields.remove("edit_date");
    }
    let mut message = merge(message, new_content);
    let date = message["date"].as_i64().unwrap_or(0);
    message["edit_date"] = json!(super::now().max(date));
    json!({"edited_message": message})
}

static FILE_SEQ: AtomicU64 = AtomicU64::new(1);

/// A `file_id`/`file_unique_id` pair shaped like Telegram's, distinct per call.
fn file_ids(file_id_prefix: &str) -> (String, String) {
    let n = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    (
        format!("{file_id_prefix}AxkBAAIBa2ZSandbox{n:06}AAHs1xsbAAEC"),
        format!("AQADsandbox{n:06}"),
    )
}

/// A photo (`{"photo":[PhotoSize…]}`, three sizes, smallest first, as Telegram sends them).
pub fn photo() -> Value {
    let sizes: Vec<Value> = [(90, 67, 1_208), (320, 240, 15_432), (1280, 960, 98_112)]
        .into_iter()
        .map(|(width, height, file_size)| {
            let (file_id, file_unique_id) = file_ids("AgACAgIAA");
            json!({"file_id": file_id, "file_unique_id": file_unique_id, "file_size": file_size,
                   "width": width, "height": height})
        })
        .collect();
    json!({ "photo": sizes })
}

/// A voice note (`{"voice":{…, "duration":3, "mime_type":"audio/ogg"}}`).
pub fn voice() -> Value {
    let (file_id, file_unique_id) = file_ids("AwACAgIAA");
    json!({"voice": {"duration": 3, "mime_type": "audio/ogg", "file_id": file_id,
                     "file_unique_id": file_unique_id, "file_size": 7_834}})
}

/// A document (`report.pdf`, `application/pdf`).
pub fn document() -> Value {
    let (file_id, file_unique_id) = file_ids("BQACAgIAA");
    json!({"document": {"file_name": "report.pdf", "mime_type": "application/pdf", "file_id": file_id,
                        "file_unique_id": file_unique_id, "file_size": 48_213}})
}

/// A document with its own name, MIME type and size (e.g. one over the bot's size limit).
pub fn document_named(file_name: &str, mime_type: &str, file_size: u64) -> Value {
    let (file_id, file_unique_id) = file_ids("BQACAgIAA");
    json!({"document": {"file_name": file_name, "mime_type": mime_type, "file_id": file_id,
                        "file_unique_id": file_unique_id, "file_size": file_size}})
}

/// A regular static sticker (512×512, emoji 👍, with its thumbnail).
pub fn sticker() -> Value {
    let (file_id, file_unique_id) = file_ids("CAACAgIAA");
    let (thumb_id, thumb_unique_id) = file_ids("AAMCAgAD");
    json!({"sticker": {"width": 512, "height": 512, "emoji": "👍", "set_name": "SandboxStickers",
                       "is_animated": false, "is_video": false, "type": "regular",
                       "thumbnail": {"file_id": thumb_id, "file_unique_id": thumb_unique_id,
                                     "file_size": 5_416, "width": 128, "height": 128},
                       "file_id": file_id, "file_unique_id": file_unique_id, "file_size": 24_570}})
}

/// A shared contact (`+79001234567`, Ivan Petrov).
pub fn contact() -> Value {
    json!({"contact": {"phone_number": "+79001234567", "first_name": "Ivan", "last_name": "Petrov"}})
}

/// A location (Moscow, Red Square).
pub fn location() -> Value {
    json!({"location": {"latitude": 55.753_93, "longitude": 37.620_795}})
}

/// Adds `fields` to a content object, e.g. `with(photo(), json!({"caption":"x"}))`.
pub fn with(content: Value, fields: Value) -> Value {
    let mut content = content;
    if let (Some(content), Value::Object(fields)) = (content.as_object_mut(), fields) {
        content.extend(fields);
    }
    content
}

/// `Map` of the content fields of `message` (for `copyMessage`).
pub(crate) fn content_of(message: &Value) -> Map<String, Value> {
    CONTENT_FIELDS
        .iter()
        .filter_map(|k| message.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}
