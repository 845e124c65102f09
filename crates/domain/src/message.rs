//! Normalized messages: what a customer wrote (inbound) and what an agent answers (outbound),
//! independent of the messenger or helpdesk they came from.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who wrote an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The user's id in the source system (VK `from_id`, Telegram user id …), as a string.
    pub id: String,
    /// Display name when the source gave one (VK `users.get` first + last name …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Handle without `@`, when the source has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's interface language as an IETF tag (`ru`, `en-US`: Telegram
    /// `language_code`), when the source tells it; service texts are chosen by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Private dialogue with one user, or a group chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// A one-to-one dialogue with a user (`private`).
    Private,
    /// A group chat (`group`; VK `peer_id` ≥ 2000000000).
    Group,
}

/// The conversation in the source system a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRef {
    /// Source-side id of the conversation (VK `peer_id`, Telegram chat id …), as a string.
    pub id: String,
    /// Private dialogue or group chat.
    pub kind: ConversationKind,
    /// The thread inside a group chat the message belongs to (Telegram forum topic
    /// `message_thread_id`, only when `is_topic_message` is true), as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// What an attachment is, coarse enough to be rendered anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A picture (VK `photo`).
    Image,
    /// A video (VK `video`).
    Video,
    /// An audio file or track (VK `audio`).
    Audio,
    /// A voice message (VK `audio_message`, Telegram `voice`).
    Voice,
    /// A document or any other file (VK `doc`).
    File,
    /// A sticker (VK `sticker`).
    Sticker,
    /// A geographic location.
    Location,
    /// A link to a web page or post (VK `link`, `wall`).
    Link,
    /// Anything else; `name` says what it was upstream.
    Other,
}

/// A file or link attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// What the attachment is.
    pub kind: AttachmentKind,
    /// Where the content can be fetched (absolute URL), when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIME type, e.g. `image/jpeg`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// File name or title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A still image of the content (absolute URL), when `url` is not itself a file that can be
    /// carried: the preview frame of a VK `video`, whose `url` is its page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<String>,
}

/// A formatted stretch of a message's text: Telegram's
/// [MessageEntity](https://core.telegram.org/bots/api#messageentity), kept as its type name
/// so that a message can be re-sent with its formatting.
///
/// `offset` and `length` count **UTF-16 code units** (Telegram's and JavaScript's convention:
/// a character outside the Basic Multilingual Plane, such as most emoji, counts 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSpan {
    /// Telegram entity type: `bold`, `italic`, `code`, `pre`, `text_link`, `custom_emoji` …
    pub kind: String,
    /// Start, in UTF-16 code units from the start of the text.
    pub offset: u32,
    /// Length, in UTF-16 code units.
    pub length: u32,
    /// `text_link`: the URL opened on click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `pre`: the programming language of the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// `custom_emoji`: the custom emoji's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_emoji_id: Option<String>,
}

/// A message a customer sent us through a messenger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Source-side message id (VK message `id`, or `conversation_message_id` when `id` is 0).
    pub message_id: String,
    /// Who wrote it.
    pub sender: Sender,
    /// The conversation it was written in.
    pub conversation: ConversationRef,
    /// Text as written; `None` for attachment-only messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Files and links attached, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Formatting of `text` (bold, links, code …), when the source has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formatting: Vec<TextSpan>,
    /// Source-side id of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// When the customer sent it.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// A person pressed an inline button under one of the bot's messages (Telegram
/// [CallbackQuery](https://core.telegram.org/bots/api#callbackquery)). It travels in the same
/// lane as the person's messages (`conversation:<conversation.id>`), so a press is handled after
/// the messages sent before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonPress {
    /// Who pressed it.
    pub sender: Sender,
    /// The chat of the message the button is under.
    pub conversation: ConversationRef,
    /// The button's `callback_data` (1–64 bytes, chosen by the bot that sent it).
    pub data: String,
    /// The query id the bot answers (`answerCallbackQuery`) so the client stops its spinner.
    pub callback_id: String,
    /// Source-side id of the message the button is under, when the source still has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Where an outbound message was written, so that the sender can derive stable ids
/// (VK `random_id`) and record what it delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOrigin {
    /// `chatwoot` today.
    pub system: String,
    /// Account (Chatwoot account id) the message lives in.
    pub account_id: i64,
    /// Conversation id in that system.
    pub conversation_id: i64,
    /// Message id in that system.
    pub message_id: i64,
}

/// A message an agent wrote that must reach a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Target conversation in the messenger (VK `peer_id` …).
    pub conversation: ConversationRef,
    /// Text to send; `None` for attachment-only messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Files and links to send along.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Where the agent wrote it.
    pub origin: MessageOrigin,
    /// Display name of the agent who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `true` when earlier messages of the same conversation may not have reached the
    /// producer (its webhook had failed, or it had just started, and it had not caught up with
    /// the origin since): the sender first delivers those earlier messages it finds
    /// undelivered at the origin, so the conversation stays in order. Absent = `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_gap: bool,
}
