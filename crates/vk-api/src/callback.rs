//! VK Callback API / Bots Long Poll event shapes
//! (<https://dev.vk.com/ru/api/callback/getting-started>,
//! <https://dev.vk.com/ru/api/community-events/json-schema>).
//!
//! Both deliver the same event object: `{"type","event_id","v","object","group_id","secret"}`
//! (`secret` only in Callback API requests, when one is configured in the community).

use serde::Deserialize;

/// One event as VK posts it to the callback URL (or lists it in `updates`).
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackEvent {
    /// `confirmation`, `message_new`, `message_reply`, `message_edit`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The community the event belongs to.
    pub group_id: i64,
    /// Unique id of the event (a hex string); the same event retried by VK keeps its id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// API version the object is formatted for, e.g. `5.199`.
    #[serde(default)]
    pub v: Option<String>,
    /// The secret key set in the community's Callback API settings.
    #[serde(default)]
    pub secret: Option<String>,
    /// The event's payload; shape depends on `kind`.
    #[serde(default)]
    pub object: serde_json::Value,
}

/// `object` of `message_new` for API ≥ 5.103: `{"message":{…},"client_info":{…}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageNew {
    /// The new message.
    pub message: Message,
    /// What the writer's VK client can show (keyboards, carousels …), when VK sent it.
    #[serde(default)]
    pub client_info: Option<ClientInfo>,
}

/// What the user's client can show (<https://dev.vk.com/ru/api/bots/development/messages>).
#[derive(Debug, Clone, Deserialize)]
pub struct ClientInfo {
    /// Button action types the client supports (`text`, `open_link`, `callback` …).
    #[serde(default)]
    pub button_actions: Vec<String>,
    /// The client shows bot keyboards.
    #[serde(default)]
    pub keyboard: bool,
    /// The client shows inline keyboards (inside a message).
    #[serde(default)]
    pub inline_keyboard: bool,
    /// The client shows carousels.
    #[serde(default)]
    pub carousel: bool,
    /// The user's VK interface language id (0 = Russian).
    #[serde(default)]
    pub lang_id: i64,
}

/// A private message object (<https://dev.vk.com/ru/reference/objects/message>).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Message id in the community's dialogues (0 in some group chats: then use
    /// `conversation_message_id`).
    #[serde(default)]
    pub id: i64,
    /// Unix time, seconds.
    pub date: i64,
    /// Dialogue: user id, `2000000000 + chat_id` for chats, `-group_id` for communities.
    pub peer_id: i64,
    /// Author: user id (positive) or `-group_id`.
    pub from_id: i64,
    /// Message text; empty for attachment-only messages.
    #[serde(default)]
    pub text: String,
    /// Message id within its conversation (`peer_id`).
    #[serde(default)]
    pub conversation_message_id: Option<i64>,
    /// 1 for outgoing (sent by the community).
    #[serde(default)]
    pub out: Option<i64>,
    /// Attached media and links, in order.
    #[serde(default)]
    pub attachments: Vec<MessageAttachment>,
    /// The message this one replies to.
    #[serde(default)]
    pub reply_message: Option<Box<Message>>,
    /// Forwarded messages.
    #[serde(default)]
    pub fwd_messages: Vec<Message>,
    /// Bot keyboard payload (a JSON string).
    #[serde(default)]
    pub payload: Option<String>,
}

/// `{"type":"photo","photo":{…}}`: the object sits under the key named by `type`
/// (<https://dev.vk.com/ru/reference/objects/attachments-message>).
#[derive(Debug, Clone, Deserialize)]
pub struct MessageAttachment {
    /// Attachment type: `photo`, `video`, `audio`, `doc`, `link`, `sticker`, `audio_message`,
    /// `wall` …
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other key of the attachment; the object itself is under the key named by `kind`.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl MessageAttachment {
    /// The attachment's own object (`rest[kind]`).
    pub fn object(&self) -> Option<&serde_json::Value> {
        self.rest.get(&self.kind)
    }
}

/// Peer ids from this value up are group chats (`2000000000 + chat_id`).
pub const CHAT_PEER_OFFSET: i64 = 2_000_000_000;
