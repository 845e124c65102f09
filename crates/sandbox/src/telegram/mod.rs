//! The Telegram Bot API fake, `{url}/telegram/bot{token}/{method}` standing in for
//! `https://api.telegram.org/bot{token}/{method}` (<https://core.telegram.org/bots/api>). Error
//! texts and edge cases follow the Bot API server itself, <https://github.com/tdlib/telegram-bot-api>
//! (`telegram-bot-api/Client.cpp`), and TDLib where it answers.
//!
//! **Requests.** `GET` or `POST`; parameters from the query string, an
//! `application/x-www-form-urlencoded` body or an `application/json` body (what frankenstein
//! sends), later ones winning. Objects and arrays (`entities`, `reply_parameters`,
//! `allowed_updates`, `reply_markup`) are JSON values in a JSON body or JSON-serialized strings
//! otherwise. Method names are case-insensitive, as on the real server.
//!
//! **Answers** are Telegram's envelope, with the HTTP status equal to `error_code`:
//! `{"ok":true,"result":…}` (plus `description` where Telegram adds one, e.g. `setWebhook`), or
//! `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`, with
//! `"parameters":{"retry_after":N}` on 429. A token other than
//! [`SandboxOptions::telegram_bot_token`](crate::SandboxOptions::telegram_bot_token) is 401
//! `Unauthorized`; an unknown method 404 `Not Found`.
//!
//! **The world.** One bot (id = the token's part before `:`, `Support Bot`,
//! `@support_test_bot`), one forum supergroup
//! ([`SandboxOptions::telegram_group_id`](crate::SandboxOptions::telegram_group_id), titled
//! [`GROUP_TITLE`]) where the bot is an administrator with `can_manage_topics` (see
//! [`Sandbox::telegram_set_bot_rights`]), and the users the fake has seen in pushed updates: a
//! user who wrote to the bot privately can be written to; one only seen in the group answers 403
//! `bot can't initiate conversation with a user`; an unknown chat is 400 `chat not found`.
//! Message ids are per chat and increase from 1; in the group id 1 is the General topic (the
//! Bot API rejects `message_thread_id=1` with `message thread not found`), so the group's first
//! message is 2.
//!
//! **Methods.** `getMe`; `getUpdates`, `setWebhook`, `deleteWebhook`, `getWebhookInfo` (see
//! [`Sandbox::telegram_push_update`] for the queue); `sendMessage`, `copyMessage`,
//! `editMessageText`, `editMessageCaption`; `createForumTopic`, `editForumTopic`,
//! `closeForumTopic`, `reopenForumTopic`, `deleteForumTopic`; `getChat`, `getChatMember`;
//! `answerCallbackQuery` (see `buttons.rs` for keyboards and presses); `getFile` and the file
//! download route `{url}/telegram/file/bot{token}/{file_path}` (see `files.rs`). Others answer
//! 404. `parse_mode` `HTML`, `MarkdownV2` and `Markdown` are parsed into entities (with
//! TDLib's error texts), leading and trailing whitespace is trimmed, and `url`, `mention`,
//! `hashtag` and `bot_command` entities are found on their own; lengths count UTF-16 code units
//! (text at most [`MESSAGE_MAX_UTF16`], captions [`CAPTION_MAX_UTF16`]).
//!
//! **Forum topics.** Creating a topic posts its `forum_topic_created` service message;
//! `message_thread_id` is that message's id. Every message in a topic carries
//! `message_thread_id`, `is_topic_message: true` and, unless it replies to something else,
//! `reply_to_message` = the `forum_topic_created` message — a real Bot API quirk that trips bots
//! which treat `reply_to_message` as "the user replied". Editing, closing and reopening post
//! `forum_topic_edited` / `forum_topic_closed` / `forum_topic_reopened`. Deleting a topic deletes
//! its messages. A closed topic takes messages only from an administrator with
//! `can_manage_topics` (else `TOPIC_CLOSED`).
//!
//! **Updates.** One queue in `update_id` order. `getUpdates` follows the server: updates below
//! `offset` are confirmed and forgotten; a negative offset keeps only the last `-offset`; an
//! offset beyond the newest update + 1 serves from the oldest (nothing confirmed); `limit`
//! 1–100 (default 100); `timeout` is capped at 50 s and a held poll answers as soon as an update
//! arrives. A second poll that has to wait ends the held one with 409 `Conflict: terminated by
//! other getUpdates request; make sure that only one bot instance is running`, `setWebhook` ends
//! it with 409 `Conflict: terminated by setWebhook request`. `allowed_updates` is remembered (also
//! from `setWebhook`) and, as on the server, filters updates when they are created (an empty list
//! means the default: everything except `chat_member`, `message_reaction`,
//! `message_reaction_count`). While a webhook is set, `getUpdates` is 409 and every queued
//! update is POSTed to it, one at a time in order, with `X-Telegram-Bot-Api-Secret-Token` when a
//! `secret_token` was set; a non-2xx answer or no answer keeps it queued and it is retried after
//! 50 ms, doubling to 1 s ([`Sandbox::telegram_webhook_deliveries`]). Blocking the bot, kicking
//! it and changing its rights queue the `my_chat_member` updates Telegram sends for them
//! ([`Sandbox::telegram_block_user`], [`Sandbox::telegram_kick_bot`],
//! [`Sandbox::telegram_set_bot_rights`]).
//!
//! **Sandbox choices** where Telegram differs for practical reasons: webhook URLs may be `http`
//! on any port (Telegram wants HTTPS on 443, 80, 88 or 8443); the server's throttling of repeated
//! `getUpdates` (3 s minimum wait for the same offset) and of `setWebhook` (one per second) is
//! left out; a reply to the webhook request that carries a method is not executed; updates do
//! not expire after 24 hours.

mod build;
mod buttons;
mod files;
mod format;
mod methods;
mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub use build::{
    TgUser, contact, document, document_named, edited, group_message, location, photo,
    private_message, sticker, voice, with,
};
pub use buttons::{CALLBACK_DATA_MAX_BYTES, TelegramCallbackAnswer, button_texts};
pub use files::GET_FILE_MAX_BYTES;

use crate::{Sandbox, SandboxOptions, Shared};

/// The token the fake accepts unless configured otherwise (`<bot_id>:<secret>`).
pub const DEFAULT_BOT_TOKEN: &str = "7000000001:AAF-sandbox-test-token";
/// The support group's chat id unless configured otherwise (a forum supergroup).
pub const DEFAULT_GROUP_ID: i64 = -1_001_000_000_001;
/// The support group's title.
pub const GROUP_TITLE: &str = "Support";
/// The bot's `first_name`.
pub const BOT_FIRST_NAME: &str = "Support Bot";
/// The bot's `username`.
pub const BOT_USERNAME: &str = "support_test_bot";
/// The user who owns the group and appears as `from` of `my_chat_member` updates in it.
pub const GROUP_OWNER_ID: i64 = 100_000_001;
/// Longest message text, in UTF-16 code units (`Bad Request: message is too long` above it).
pub const MESSAGE_MAX_UTF16: usize = 4096;
/// Longest caption, in UTF-16 code units (`Bad Request: message caption is too long` above it).
pub const CAPTION_MAX_UTF16: usize = 1024;
/// The longest `getUpdates` `timeout` honoured (the server's `LONG_POLL_MAX_TIMEOUT`).
pub const LONG_POLL_MAX_TIMEOUT_SECS: i64 = 50;
/// Topic icon colours Telegram allows; topics created without one get them in turn.
pub const TOPIC_ICON_COLORS: [i64; 6] = [
    7_322_096, 16_766_590, 13_338_331, 9_367_192, 16_749_490, 16_478_047,
];

const OTHER_GET_UPDATES: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const BY_SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";
const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// Update kinds that are not delivered unless `allowed_updates` names them.
const NOT_BY_DEFAULT: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];

/// Unix time now, in seconds.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What [`Sandbox::telegram_push_update`] queued.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushedUpdate {
    /// The update's `update_id` (assigned, or the one it came with).
    pub update_id: i64,
    /// `chat.id` of the `message`/`edited_message` it carries, if any.
    pub chat_id: Option<i64>,
    /// `message_id` of that message (assigned when it had none).
    pub message_id: Option<i64>,
    /// The update exactly as queued (with `update_id`, `message_id`, `date`, detected entities):
    /// push it again to simulate a redelivery, or pass it to [`edited`].
    pub update: Value,
}

/// A forum topic of the group, as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramTopic {
    /// The topic's id: the id of its `forum_topic_created` message.
    pub message_thread_id: i64,
    /// Current name.
    pub name: String,
    /// Current custom emoji icon, if any.
    pub icon_custom_emoji_id: Option<String>,
    /// Closed with `closeForumTopic`.
    pub closed: bool,
    /// Deleted (by the bot or with [`Sandbox::telegram_delete_topic`]); its messages are gone.
    pub deleted: bool,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramWebhookDelivery {
    /// The update that was posted.
    pub update_id: i64,
    /// The receiver's HTTP status; `None` when there was no answer (connection refused, timeout).
    pub status: Option<u16>,
}

/// A queued update.
#[derive(Debug, Clone)]
struct Queued {
    /// Unique per queued entry (several may share an `update_id`).
    seq: u64,
    update_id: i64,
    update: Value,
}

#[derive(Debug, Clone)]
struct Webhook {
    url: String,
    secret_token: Option<String>,
    max_connections: i64,
}

/// A stored message.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) message: Value,
    /// Sent (or copied) by the bot.
    pub(crate) by_bot: bool,
    /// A service message (`forum_topic_created`, …).
    pub(crate) service: bool,
}

#[derive(Debug)]
pub(crate) struct ChatLog {
    pub(crate) next_id: i64,
    pub(crate) messages: BTreeMap<i64, Stored>,
}

#[derive(Debug, Clone)]
pub(crate) struct KnownUser {
    pub(crate) user: Value,
    /// Wrote to the bot privately, so the bot may write to them.
    pub(crate) started: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) icon_custom_emoji_id: Option<String>,
    pub(crate) closed: bool,
    pub(crate) deleted: bool,
    /// Created by the bot: it may edit, close and delete it without `can_manage_topics`.
    pub(crate) by_bot: bool,
}

/// What the Telegram fake remembers.
#[derive(Debug)]
pub(crate) struct TelegramState {
    pub(crate) bot_id: i64,
    pub(crate) group_id: i64,
    queue: VecDeque<Queued>,
    next_update_id: i64,
    next_seq: u64,
    /// `None`: the default set.
    allowed_updates: Option<Vec<String>>,
    get_updates_calls: usize,
    polls_waiting: usize,
    active_poll: Option<u64>,
    next_poll_ticket: u64,
    /// Held polls that must end with this 409 description.
    aborted_polls: HashMap<u64, &'static str>,
    webhook: Option<Webhook>,
    last_webhook_error: Option<(i64, String)>,
    pub(crate) deliveries: Vec<TelegramWebhookDelivery>,
    pub(crate) chats: BTreeMap<i64, ChatLog>,
    pub(crate) users: BTreeMap<i64, KnownUser>,
    pub(crate) blocked: HashSet<i64>,
    pub(crate) kicked: bool,
    pub(crate) admin: bool,
    pub(crate) can_manage_topics: bool,
    pub(crate) topics: BTreeMap<i64, Topic>,
    pub(crate) topics_created: usize,
    /// Callback query ids pushed, and whether they were answered.
    pub(crate) callback_queries: HashMap<String, bool>,
    pub(crate) callback_answers: Vec<TelegramCallbackAnswer>,
    pub(crate) next_callback: u64,
    /// The reply keyboard shown in each chat.
    pub(crate) keyboards: BTreeMap<i64, Value>,
    /// Files of pushed messages by `file_id`.
    pub(crate) files: BTreeMap<String, files::KnownFile>,
    pub(crate) next_file_path: u64,
}

impl Default for TelegramState {
    fn default() -> TelegramState {
        TelegramState::new(&SandboxOptions::default())
    }
}

impl TelegramState {
    pub(crate) fn new(opts: &SandboxOptions) -> TelegramState {
        TelegramState {
            bot_id: bot_id_of(&opts.telegram_bot_token),
            group_id: opts.telegram_group_id,
            queue: VecDeque::new(),
            next_update_id: 1,
            next_seq: 0,
            allowed_updates: None,
            get_updates_calls: 0,
            polls_waiting: 0,
            active_poll: None,
            next_poll_ticket: 0,
            aborted_polls: HashMap::new(),
            webhook: None,
            last_webhook_error: None,
            deliveries: Vec::new(),
            chats: BTreeMap::new(),
            users: BTreeMap::new(),
            blocked: HashSet::new(),
            kicked: false,
            admin: true,
            can_manage_topics: true,
            topics: BTreeMap::new(),
            topics_created: 0,
            callback_queries: HashMap::new(),
            callback_answers: Vec::new(),
            next_callback: 0,
            keyboards: BTreeMap::new(),
            files: BTreeMap::new(),
            next_file_path: 0,
        }
    }

    /// The bot as `from` of its messages.
    pub(crate) fn bot_user(&self) -> Value {
        json!({"id": self.bot_id, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
    }

    /// The group as `chat` of its messages.
    pub(crate) fn group_chat(&self) -> Value {
        json!({"id": self.group_id, "title": GROUP_TITLE, "is_forum": true, "type": "supergroup"})
    }

    /// The private chat with a known user.
    pub(crate) fn private_chat(&self, user_id: i64) -> Value {
        let user = self.users.get(&user_id).map(|u| &u.user);
        let mut chat = json!({"id": user_id, "type": "private"});
        for key in ["first_name", "last_name", "username"] {
            if let Some(v) = user.and_then(|u| u.get(key)) {
                chat[key] = v.clone();
            }
        }
        if chat.get("first_name").is_none() {
            chat["first_name"] = json!("");
        }
        chat
    }

    pub(crate) fn chat_log(&mut self, chat_id: i64) -> &mut ChatLog {
        let first = if chat_id == self.group_id { 2 } else { 1 };
        self.chats.entry(chat_id).or_insert_with(|| ChatLog {
            next_id: first,
            messages: BTreeMap::new(),
        })
    }

    pub(crate) fn stored(&self, chat_id: i64, message_id: i64) -> Option<&Stored> {
        self.chats.get(&chat_id)?.messages.get(&message_id)
    }

    fn learn_user(&mut self, user: &Value, started: bool) {
        let Some(id) = user.get("id").and_then(Value::as_i64) else {
            return;
        };
        if id == self.bot_id {
            return;
        }
        let entry = self.users.entry(id).or_insert_with(|| KnownUser {
            user: user.clone(),
            started: false,
        });
        entry.user = user.clone();
        entry.started |= started;
    }

    fn kind_allowed(&self, kind: &str) -> bool {
        match &self.allowed_updates {
            None => !NOT_BY_DEFAULT.contains(&kind),
            Some(kinds) => kinds.iter().any(|k| k == kind),
        }
    }

    /// `allowed_updates` of `getUpdates`/`setWebhook`: absent or unreadable keeps the current
    /// setting, `[]` restores the default.
    fn set_allowed_updates(&mut self, value: Option<Value>) {
        let Some(Value::Array(items)) = value else {
            return;
        };
        let kinds: Vec<String> = items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        self.allowed_updates = if kinds.is_empty() { None } else { Some(kinds) };
    }

    /// Queues `update` (already carrying `update_id`) unless its kind is filtered out.
    fn enqueue(&mut self, update_id: i64, kind: &str, update: Value) {
        if !self.kind_allowed(kind) {
            tracing::info!(
                update_id,
                kind,
                "telegram update not allowed by allowed_updates, dropped"
            );
            return;
        }
        self.next_seq += 1;
        let at = self.queue.partition_point(|q| q.update_id <= update_id);
        self.queue.insert(
            at,
            Queued {
                seq: self.next_seq,
                update_id,
                update,
            },
        );
    }

    /// Assigns the next `update_id` and queues an update of `kind` with `object`.
    fn push_event(&mut self, kind: &str, object: Value) {
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        let update = json!({"update_id": update_id, kind: object});
        self.enqueue(update_id, kind, update);
    }

    /// `getUpdates`' offset semantics (see the module docs), then the first `limit` updates.
    fn take_updates(&mut self, offset: i64, limit: usize) -> Vec<Value> {
        if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.queue.len() > keep {
                self.queue.pop_front();
            }
        } else if offset > 0 && offset <= self.next_update_id {
            while self.queue.front().is_some_and(|q| q.update_id < offset) {
                self.queue.pop_front();
            }
        }
        self.queue
            .iter()
            .take(limit)
            .map(|q| q.update.clone())
            .collect()
    }

    fn abort_active_poll(&mut self, reason: &'static str) {
        if let Some(ticket) = self.active_poll.take() {
            self.aborted_polls.insert(ticket, reason);
        }
    }

    /// Stores a pushed `message`/`edited_message` (normalised in place). Returns chat and
    /// message id.
    fn store_incoming(&mut self, kind: &str, message: &mut Value) -> (i64, i64) {
        let chat_id = message["chat"]["id"].as_i64().unwrap_or_default(); // checked by `validate`
        let is_group = chat_id == self.group_id;
        if is_group {
            message["chat"] = self.group_chat();
        }
        let is_private = message["chat"]["type"] == "private";
        if let Some(from) = message.get("from").cloned() {
            self.learn_user(&from, is_private && kind == "message");
        }
        let previous = message["message_id"]
            .as_i64()
            .and_then(|id| self.stored(chat_id, id))
            .map(|s| s.message.clone());
        let message_id = match message["message_id"].as_i64() {
            Some(id) => id,
            // `validate` let only a `message` through without one.
            None => self.chat_log(chat_id).next_id,
        };
        message["message_id"] = json!(message_id);
        if message.get("date").is_none() {
            let date = previous
                .as_ref()
                .and_then(|p| p["date"].as_i64())
                .unwrap_or_else(now);
            message["date"] = json!(date);
        }
        if kind == "edited_message" && message.get("edit_date").is_none() {
            message["edit_date"] = json!(now());
        }
        for (text_key, entities_key) in [("text", "entities"), ("caption", "caption_entities")] {
            if message.get(entities_key).is_none()
                && let Some(text) = message.get(text_key).and_then(Value::as_str)
            {
                let entities = format::detected_entities(text);
                if !entities.is_empty() {
                    message[entities_key] = json!(entities);
                }
            }
        }
        // reply_to_message: the stored message it names, or the topic root in a topic.
        let reply_id = message["reply_to_message"]["message_id"].as_i64();
        let thread = message["message_thread_id"].as_i64();
        let reply = match reply_id {
            Some(id) => self.stored(chat_id, id).map(|s| strip_reply(&s.message)),
            None if is_group && message["is_topic_message"] == true => thread
                .and_then(|t| self.stored(chat_id, t))
                .map(|s| strip_reply(&s.message)),
            None => None,
        };
        if let Some(reply) = reply {
            message["reply_to_message"] = reply;
        }
        self.learn_files(message);
        let log = self.chat_log(chat_id);
        log.next_id = log.next_id.max(message_id + 1);
        let service = is_service(message);
        log.messages.insert(
            message_id,
            Stored {
                message: message.clone(),
                by_bot: false,
                service,
            },
        );
        (chat_id, message_id)
    }

    /// [`Sandbox::telegram_push_update`], after [`validate`].
    fn push(&mut self, update: Value) -> PushedUpdate {
        let Value::Object(mut fields) = update else {
            unreachable!("checked by validate");
        };
        let update_id = fields
            .get("update_id")
            .and_then(Value::as_i64)
            .unwrap_or(self.next_update_id);
        self.next_update_id = self.next_update_id.max(update_id + 1);
        fields.remove("update_id");
        let kind = fields.keys().next().cloned().unwrap_or_default();
        let (mut chat_id, mut message_id) = (None, None);
        if let Some(object) = fields.get_mut(&kind) {
            if kind == "message" || kind == "edited_message" {
                let (chat, id) = self.store_incoming(&kind, object);
                (chat_id, message_id) = (Some(chat), Some(id));
            } else if let Some(from) = object.get("from").cloned() {
                self.learn_user(&from, false);
            }
        }
        fields.insert("update_id".into(), json!(update_id));
        let update = Value::Object(fields);
        self.enqueue(update_id, &kind, update.clone());
        PushedUpdate {
            update_id,
            chat_id,
            message_id,
            update,
        }
    }

    /// A `my_chat_member` update: the bot's status in `chat` changed from `old` to `new`.
    fn my_chat_member(&mut self, chat: Value, from: Value, old: Value, new: Value) {
        let object = json!({"chat": chat, "from": from, "date": now(),
                            "old_chat_member": old, "new_chat_member": new});
        self.push_event("my_chat_member", object);
    }

    fn owner(&self) -> Value {
        json!({"id": GROUP_OWNER_ID, "is_bot": false, "first_name": "Owner"})
    }

    /// The bot's `ChatMember` in the group.
    pub(crate) fn bot_member(&self) -> Value {
        let user = self.bot_user();
        if self.kicked {
            return json!({"status": "kicked", "user": user, "until_date": 0});
        }
        if !self.admin {
            return json!({"status": "member", "user": user});
        }
        json!({
            "status": "administrator", "user": user, "can_be_edited": false, "is_anonymous": false,
            "can_manage_chat": true, "can_change_info": true, "can_delete_messages": true,
            "can_invite_users": true, "can_restrict_members": true, "can_pin_messages": true,
            "can_manage_topics": self.can_manage_topics, "can_promote_members": false,
            "can_manage_video_chats": true, "can_post_stories": false, "can_edit_stories": false,
            "can_delete_stories": false, "can_manage_tags": false, "can_send_welcome_messages": false,
            "can_manage_voice_chats": true,
        })
    }

    fn webhook_info(&self) -> Value {
        let mut info = json!({
            "url": self.webhook.as_ref().map_or("", |w| w.url.as_str()),
            "has_custom_certificate": false,
            "pending_update_count": self.queue.len(),
        });
        if let Some(webhook) = &self.webhook {
            info["max_connections"] = json!(webhook.max_connections);
            info["ip_address"] = json!("127.0.0.1");
        }
        if let Some((date, message)) = &self.last_webhook_error {
            info["last_error_date"] = json!(date);
            info["last_error_message"] = json!(message);
        }
        if let Some(kinds) = &self.allowed_updates {
            info["allowed_updates"] = json!(kinds);
        }
        info
    }
}

/// A message as `reply_to_message`: without its own `reply_to_message`, as the Bot API sends it.
pub(crate) fn strip_reply(message: &Value) -> Value {
    let mut message = message.clone();
    if let Some(fields) = message.as_object_mut() {
        fields.remove("reply_to_message");
    }
    message
}

/// Service messages have none of the content fields but one of these.
const SERVICE_FIELDS: &[&str] = &[
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "pinned_message",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
];

pub(crate) fn is_service(message: &Value) -> bool {
    SERVICE_FIELDS.iter().any(|k| message.get(*k).is_some())
}

/// The bot id in `<bot_id>:<secret>` (0 when the token is not shaped like that).
fn bot_id_of(token: &str) -> i64 {
    token
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(0)
}

/// A failed method: HTTP status = `error_code`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    code: u16,
    description: String,
    parameters: Option<Value>,
}

impl ApiError {
    /// 400 `Bad Request: {detail}`.
    pub(crate) fn bad(detail: impl std::fmt::Display) -> ApiError {
        ApiError {
            code: 400,
            description: format!("Bad Request: {detail}"),
            parameters: None,
        }
    }

    /// 403 `Forbidden: {detail}`.
    pub(crate) fn forbidden(detail: impl std::fmt::Display) -> ApiError {
        ApiError {
            code: 403,
            description: format!("Forbidden: {detail}"),
            parameters: None,
        }
    }

    /// A description used as is (e.g. a parse error built elsewhere).
    pub(crate) fn raw(code: u16, description: impl Into<String>) -> ApiError {
        ApiError {
            code,
            description: description.into(),
            parameters: None,
        }
    }
}

/// `{"ok":false,…}` with the status `code`.
fn error_response(error: ApiError) -> Response {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = json!({"ok": false, "error_code": error.code, "description": error.description});
    if let Some(parameters) = error.parameters {
        body["parameters"] = parameters;
    }
    (status, axum::Json(body)).into_response()
}

fn ok_response(result: Value, description: Option<&str>) -> Response {
    let mut body = json!({"ok": true, "result": result});
    if let Some(description) = description {
        body["description"] = json!(description);
    }
    axum::Json(body).into_response()
}

/// What an injected [`Failure::Status`](crate::Failure::Status) answers on the Telegram fake:
/// the API's own envelope, except 502/503/504, which come from the nginx in front of it as HTML.
pub(crate) fn injected_status(code: u16) -> Option<Response> {
    if matches!(code, 502..=504) {
        return None;
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let description = status.canonical_reason().unwrap_or("Internal Server Error");
    Some(error_response(ApiError::raw(status.as_u16(), description)))
}

/// What an injected [`Failure::TooManyRequests`](crate::Failure::TooManyRequests) answers: the
/// flood-wait envelope, no `Retry-After` header (Telegram sends only the body).
pub(crate) fn injected_too_many_requests(retry_after_secs: u64) -> Response {
    error_response(ApiError {
        code: 429,
        description: format!("Too Many Requests: retry after {retry_after_secs}"),
        parameters: Some(json!({ "retry_after": retry_after_secs })),
    })
}

/// Request parameters by name; JSON values as sent, form and query values as strings.
#[derive(Debug, Default)]
pub(crate) struct Params(Map<String, Value>);

impl Params {
    fn parse(query: Option<&str>, content_type: &str, body: &[u8]) -> Result<Params, ApiError> {
        let mut map = Map::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        let content_type = content_type.to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            if !body.iter().all(u8::is_ascii_whitespace) {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(fields)) => map.extend(fields),
                    _ => return Err(ApiError::bad("can't parse JSON object")),
                }
            }
        } else if content_type.is_empty()
            || content_type.starts_with("application/x-www-form-urlencoded")
        {
            for (k, v) in url::form_urlencoded::parse(body) {
                map.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
        Ok(Params(map))
    }

    /// Present at all (even empty): what `has_arg` tests on the server.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    /// The value as the server reads it: a string, possibly empty.
    pub(crate) fn raw_str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// Non-empty string value.
    pub(crate) fn str(&self, key: &str) -> Option<String> {
        self.raw_str(key).filter(|s| !s.is_empty())
    }

    /// An integer; absent or empty = `None`, garbage = `Some(0)` (like `td::to_integer`).
    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        match self.0.get(key)? {
            Value::Number(n) => Some(n.as_i64().unwrap_or(0)),
            _ => self.str(key).map(|s| s.trim().parse::<i64>().unwrap_or(0)),
        }
    }

    /// `true`, `"true"`, `"1"` or `"yes"`.
    pub(crate) fn bool(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
            Some(Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
            }
            _ => false,
        }
    }

    /// An object or array, given as JSON or as a JSON-serialized string; `None` when absent or
    /// unreadable.
    pub(crate) fn json(&self, key: &str) -> Option<Value> {
        match self.0.get(key)? {
            Value::String(s) if !s.trim().is_empty() => serde_json::from_str(s).ok(),
            v @ (Value::Object(_) | Value::Array(_)) => Some(v.clone()),
            _ => None,
        }
    }
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{bot}/{method}", any(call))
        .route("/file/{bot}/{*path}", get(files::download))
        .fallback(|| async { error_response(ApiError::raw(404, "Not Found")) })
}

/// Changes the Telegram state, wakes [`Sandbox::wait_until`], held polls and the webhook sender.
fn change<R>(shared: &Shared, f: impl FnOnce(&mut TelegramState) -> R) -> R {
    let result = shared.mutate(|s| f(&mut s.telegram));
    shared.telegram_wake.send_modify(|version| *version += 1);
    result
}

/// `{url}/telegram/bot{token}/{method}`: authentication, then the method.
async fn call(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return error_response(ApiError::raw(404, "Not Found"));
    };
    if token != shared.opts.telegram_bot_token {
        return error_response(ApiError::raw(401, "Unauthorized"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let params = match Params::parse(query.as_deref(), content_type, &body) {
        Ok(params) => params,
        Err(error) => return error_response(error),
    };
    let method = method.to_ascii_lowercase();
    let result: Result<(Value, Option<&'static str>), ApiError> = match method.as_str() {
        "getupdates" => return get_updates(&shared, &params).await,
        "getme" => Ok((get_me(&shared.read().telegram), None)),
        "setwebhook" => set_webhook(&shared, &params, false),
        "deletewebhook" => set_webhook(&shared, &params, true),
        "getwebhookinfo" => Ok((shared.read().telegram.webhook_info(), None)),
        "sendmessage" => change(&shared, |t| t.send_message(&params)).map(|v| (v, None)),
        "copymessage" => change(&shared, |t| t.copy_message(&params)).map(|v| (v, None)),
        "editmessagetext" => change(&shared, |t| t.edit_message_text(&params)).map(|v| (v, None)),
        "editmessagecaption" => {
            change(&shared, |t| t.edit_message_caption(&params)).map(|v| (v, None))
        }
        "createforumtopic" => change(&shared, |t| t.create_forum_topic(&params)).map(|v| (v, None)),
        "editforumtopic" => change(&shared, |t| t.edit_forum_topic(&params)).map(|v| (v, None)),
        "closeforumtopic" => {
            change(&shared, |t| t.toggle_forum_topic(&params, true)).map(|v| (v, None))
        }
        "reopenforumtopic" => {
            change(&shared, |t| t.toggle_forum_topic(&params, false)).map(|v| (v, None))
        }
        "deleteforumtopic" => change(&shared, |t| t.delete_forum_topic(&params)).map(|v| (v, None)),
        "answercallbackquery" => {
            change(&shared, |t| t.answer_callback_query(&params)).map(|v| (v, None))
        }
        "getfile" => change(&shared, |t| t.get_file(&params)).map(|v| (v, None)),
        "getchat" => shared.read().telegram.get_chat(&params).map(|v| (v, None)),
        "getchatmember" => shared
            .read()
            .telegram
            .get_chat_member(&params)
            .map(|v| (v, None)),
        _ => Err(ApiError::raw(404, "Not Found")),
    };
    match result {
        Ok((result, description)) => ok_response(result, description),
        Err(error) => {
            tracing::info!(%method, code = error.code, description = %error.description, "telegram method failed");
            error_response(error)
        }
    }
}

/// `getMe` — the bot's `User` with the bot-only fields.
fn get_me(t: &TelegramState) -> Value {
    let mut me = t.bot_user();
    if let Some(fields) = me.as_object_mut() {
        for (key, value) in [
            ("can_join_groups", true),
            ("can_read_all_group_messages", true),
            ("supports_inline_queries", false),
            ("supports_guest_queries", false),
            ("can_connect_to_business", false),
            ("has_main_web_app", false),
            ("has_topics_enabled", false),
            ("allows_users_to_create_topics", false),
            ("can_manage_bots", false),
        ] {
            fields.insert(key.into(), json!(value));
        }
    }
    me
}

/// `setWebhook` / `deleteWebhook` (`delete`, or `setWebhook` with an empty `url`).
fn set_webhook(
    shared: &Shared,
    params: &Params,
    delete: bool,
) -> Result<(Value, Option<&'static str>), ApiError> {
    let url = if delete { None } else { params.str("url") };
    let drop_pending = params.bool("drop_pending_updates");
    let Some(url) = url else {
        let description = change(shared, |t| {
            if drop_pending {
                t.queue.clear();
            }
            t.last_webhook_error = None;
            if t.webhook.take().is_some() {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            }
        });
        return Ok((json!(true), Some(description)));
    };
    let valid = url::Url::parse(&url)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !valid {
        return Err(ApiError::bad("invalid webhook URL specified"));
    }
    let secret_token = params.str("secret_token");
    if let Some(secret) = &secret_token {
        if secret.len() > 256 {
            return Err(ApiError::bad("secret token is too long"));
        }
        if !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ApiError::bad("secret token contains unallowed characters"));
        }
    }
    let max_connections = params
        .int("max_connections")
        .map_or(40, |n| n.clamp(1, 100));
    let allowed = params.json("allowed_updates");
    let description = change(shared, |t| {
        t.set_allowed_updates(allowed);
        let same = t.webhook.as_ref().is_some_and(|w| {
            w.url == url && w.secret_token == secret_token && w.max_connections == max_connections
        });
        if same && !drop_pending {
            return "Webhook is already set";
        }
        t.abort_active_poll(BY_SET_WEBHOOK);
        if drop_pending {
            t.queue.clear();
        }
        t.last_webhook_error = None;
        t.webhook = Some(Webhook {
            url,
            secret_token,
            max_connections,
        });
        "Webhook was set"
    });
    Ok((json!(true), Some(description)))
}

/// Counts a parked `getUpdates` while it lives (also when the client hangs up); registering it
/// ends the previously parked one with 409.
struct Parked<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl<'a> Parked<'a> {
    fn start(shared: &'a Shared) -> Parked<'a> {
        let ticket = change(shared, |t| {
            t.next_poll_ticket += 1;
            let ticket = t.next_poll_ticket;
            t.abort_active_poll(OTHER_GET_UPDATES);
            t.active_poll = Some(ticket);
            t.polls_waiting += 1;
            ticket
        });
        Parked { shared, ticket }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let ticket = self.ticket;
        self.shared.mutate(|s| {
            let t = &mut s.telegram;
            t.polls_waiting -= 1;
            if t.active_poll == Some(ticket) {
                t.active_poll = None;
            }
            t.aborted_polls.remove(&ticket);
        });
    }
}

/// `getUpdates` — <https://core.telegram.org/bots/api#getupdates>.
async fn get_updates(shared: &Arc<Shared>, params: &Params) -> Response {
    let offset = params.int("offset").unwrap_or(0);
    let limit = params.int("limit").map_or(100, |l| l.clamp(1, 100));
    let limit = usize::try_from(limit).unwrap_or(100);
    let timeout = params
        .int("timeout")
        .unwrap_or(0)
        .clamp(0, LONG_POLL_MAX_TIMEOUT_SECS);
    let allowed = params.json("allowed_updates");
    // Subscribe before the first look, so no push can slip between.
    let mut wake = shared.telegram_wake.subscribe();
    wake.borrow_and_update();
    let first = shared.mutate(|s| {
        let t = &mut s.telegram;
        t.get_updates_calls += 1;
        if t.webhook.is_some() {
            return Err(ApiError::raw(409, WEBHOOK_ACTIVE));
        }
        t.set_allowed_updates(allowed);
        Ok(t.take_updates(offset, limit))
    });
    let batch = match first {
        Ok(batch) => batch,
        Err(error) => return error_response(error),
    };
    if !batch.is_empty() || timeout == 0 {
        return ok_response(Value::Array(batch), None);
    }
    let parked = Parked::start(shared);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout.unsigned_abs());
    loop {
        let woken = tokio::select! {
            woken = tokio::time::timeout_at(deadline, wake.changed()) => matches!(woken, Ok(Ok(()))),
            () = shared.shutdown.cancelled() => false,
        };
        if !woken {
            break;
        }
        wake.borrow_and_update();
        let ticket = parked.ticket;
        // A plain mutate: waking the other polls for this look would wake this one again.
        let answer = shared.mutate(|s| {
            let t = &mut s.telegram;
            if let Some(reason) = t.aborted_polls.remove(&ticket) {
                return Err(ApiError::raw(409, reason));
            }
            Ok(t.take_updates(offset, limit))
        });
        match answer {
            Err(error) => return error_response(error),
            Ok(batch) if !batch.is_empty() => return ok_response(Value::Array(batch), None),
            Ok(_) => {}
        }
    }
    drop(parked);
    ok_response(json!([]), None)
}

/// Why `update` cannot be pushed, if it cannot: not an object, a message without `chat.id`,
/// an `edited_message` without `message_id`.
fn validate(update: &Value) -> Result<(), String> {
    let Some(fields) = update.as_object() else {
        return Err(format!(
            "a Telegram update must be a JSON object, got {update}"
        ));
    };
    let Some((kind, object)) = fields.iter().find(|(k, _)| *k != "update_id") else {
        return Err("the update carries nothing besides update_id".to_owned());
    };
    if kind == "message" || kind == "edited_message" {
        if object["chat"]["id"].as_i64().is_none() {
            return Err(format!("a pushed {kind} needs chat.id: {object}"));
        }
        if kind == "edited_message" && object["message_id"].as_i64().is_none() {
            return Err(
                "an edited_message needs the message_id of the pushed message (build it with telegram::edited(pushed.update, …))"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// [`Sandbox::telegram_push_update`] (also for the control API); `Err` when [`validate`] refuses
/// (nothing is changed then).
pub(crate) fn try_push_update(shared: &Shared, update: Value) -> Result<PushedUpdate, String> {
    validate(&update)?;
    Ok(change(shared, |t| t.push(update)))
}

/// [`try_push_update`] for updates known to be well-formed.
///
/// # Panics
/// When [`validate`] refuses the update.
pub(crate) fn push_update(shared: &Shared, update: Value) -> PushedUpdate {
    try_push_update(shared, update).unwrap_or_else(|problem| panic!("sandbox: {problem}"))
}

/// [`Sandbox::telegram_block_user`] / [`Sandbox::telegram_unblock_user`].
pub(crate) fn set_blocked(shared: &Shared, user_id: i64, blocked: bool) {
    change(shared, |t| {
        let changed = if blocked {
            t.blocked.insert(user_id)
        } else {
            t.blocked.remove(&user_id)
        };
        if !changed {
            return;
        }
        let bot = t.bot_user();
        let member = json!({"status": "member", "user": bot});
        let kicked = json!({"status": "kicked", "user": bot, "until_date": 0});
        let (old, new) = if blocked {
            (member, kicked)
        } else {
            (kicked, member)
        };
        let chat = t.private_chat(user_id);
        let from = t.users.get(&user_id).map_or_else(
            || json!({"id": user_id, "is_bot": false, "first_name": ""}),
            |u| u.user.clone(),
        );
        t.my_chat_member(chat, from, old, new);
    });
}

/// Starts the webhook sender (ends with the sandbox).
pub(crate) fn spawn_webhook_sender(shared: Arc<Shared>) {
    webhook::spawn(shared);
}

impl Sandbox {
    /// `{url}/telegram` — `TELEGRAM_API_URL`; the bot calls `{telegram_api_url}/bot{token}/{method}`.
    pub fn telegram_api_url(&self) -> String {
        format!("{}/telegram", self.url())
    }

    /// The bot's user id (the token's part before `:`).
    pub fn telegram_bot_id(&self) -> i64 {
        self.shared.read().telegram.bot_id
    }

    /// Queues an update as Telegram would deliver it (`getUpdates` or the webhook). It gets the
    /// next `update_id` (from 1), unless it already has one, which is kept as is (push
    /// [`PushedUpdate::update`] again to simulate a redelivery; through `getUpdates` a duplicate
    /// is only seen if the bot has not confirmed that `update_id` yet, as with Telegram).
    ///
    /// A `message`/`edited_message` is also stored in its chat (for `copyMessage`, edits,
    /// [`Sandbox::telegram_messages`]): `message_id` (next in the chat) and `date` (now) are
    /// filled in when missing; the group's `chat` is normalised; `entities`/`caption_entities`
    /// Telegram would find (`/start`, URLs, mentions, hashtags) are added when missing; a topic
    /// message without `reply_to_message` gets the topic's `forum_topic_created` message, and a
    /// `reply_to_message` of `{"message_id":N}` becomes the stored message N. Its `from` becomes a
    /// known user (one the bot may write to, if the message was private). Updates whose kind is
    /// not in the bot's `allowed_updates` are stored but not queued, as on the server.
    ///
    /// # Panics
    /// When the update is not a JSON object, a message has no `chat.id`, or an `edited_message`
    /// has no `message_id`: those are bugs in the test.
    pub fn telegram_push_update(&self, update: Value) -> PushedUpdate {
        push_update(&self.shared, update)
    }

    /// Every message of the chat, oldest first, with its current (edited) content: pushed ones,
    /// the bot's, and service messages (`forum_topic_created`, …). Empty for an unknown chat.
    pub fn telegram_messages(&self, chat_id: i64) -> Vec<Value> {
        self.shared
            .read()
            .telegram
            .chats
            .get(&chat_id)
            .map(|log| log.messages.values().map(|s| s.message.clone()).collect())
            .unwrap_or_default()
    }

    /// The messages the bot sent or copied into the chat, oldest first (service messages left
    /// out).
    pub fn telegram_bot_messages(&self, chat_id: i64) -> Vec<Value> {
        self.shared
            .read()
            .telegram
            .chats
            .get(&chat_id)
            .map(|log| {
                log.messages
                    .values()
                    .filter(|s| s.by_bot && !s.service)
                    .map(|s| s.message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The group's forum topics in creation order, deleted ones included.
    pub fn telegram_topics(&self) -> Vec<TelegramTopic> {
        self.shared.read().telegram.topics_list()
    }

    /// An operator deleted the topic by hand: it and its messages are gone; sending into it
    /// answers `Bad Request: message thread not found`.
    pub fn telegram_delete_topic(&self, thread_id: i64) {
        change(&self.shared, |t| t.remove_topic(thread_id));
    }

    /// The user blocks the bot: sending to their private chat answers 403 `Forbidden: bot was
    /// blocked by the user`. Queues the `my_chat_member` update (bot `member` → `kicked`) Telegram
    /// sends.
    pub fn telegram_block_user(&self, user_id: i64) {
        set_blocked(&self.shared, user_id, true);
    }

    /// The user unblocks the bot (and the `my_chat_member` update `kicked` → `member` is queued).
    pub fn telegram_unblock_user(&self, user_id: i64) {
        set_blocked(&self.shared, user_id, false);
    }

    /// The bot is removed from the group: every method on it answers 403 `Forbidden: bot was
    /// kicked from the supergroup chat`. Queues the `my_chat_member` update (→ `kicked`).
    pub fn telegram_kick_bot(&self) {
        change(&self.shared, |t| {
            if !t.kicked {
                let old = t.bot_member();
                t.kicked = true;
                let new = t.bot_member();
                let (chat, owner) = (t.group_chat(), t.owner());
                t.my_chat_member(chat, owner, old, new);
            }
        });
    }

    /// The bot's rights in the group: `admin: false` makes it a plain member (no topics; a
    /// closed topic answers `TOPIC_CLOSED`), `can_manage_topics: false` an administrator without
    /// that right (`createForumTopic` answers `not enough rights to create a topic`). Default:
    /// administrator with `can_manage_topics`. Queues the `my_chat_member` update when it changes.
    pub fn telegram_set_bot_rights(&self, admin: bool, can_manage_topics: bool) {
        change(&self.shared, |t| {
            let old = t.bot_member();
            t.admin = admin;
            t.can_manage_topics = admin && can_manage_topics;
            let new = t.bot_member();
            if old != new && !t.kicked {
                let (chat, owner) = (t.group_chat(), t.owner());
                t.my_chat_member(chat, owner, old, new);
            }
        });
    }

    /// The webhook set with `setWebhook`: `(url, secret_token)`.
    pub fn telegram_webhook(&self) -> Option<(String, Option<String>)> {
        self.shared
            .read()
            .telegram
            .webhook
            .as_ref()
            .map(|w| (w.url.clone(), w.secret_token.clone()))
    }

    /// Every webhook delivery attempt so far, in order.
    pub fn telegram_webhook_deliveries(&self) -> Vec<TelegramWebhookDelivery> {
        self.shared.read().telegram.deliveries.clone()
    }

    /// How many `getUpdates` requests reached the fake (409s included, injected failures not).
    pub fn telegram_get_updates_calls(&self) -> usize {
        self.shared.read().telegram.get_updates_calls
    }

    /// How many `getUpdates` requests are being held right now, waiting for an update.
    pub fn telegram_polls_waiting(&self) -> usize {
        self.shared.read().telegram.polls_waiting
    }

    /// Updates queued and not yet confirmed (`getUpdates`) or delivered (webhook): Telegram's
    /// `pending_update_count`.
    pub fn telegram_pending_updates(&self) -> usize {
        self.shared.read().telegram.queue.len()
    }
}
