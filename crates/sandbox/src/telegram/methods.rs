//! The Bot API methods that work on chats, messages and forum topics. Each runs under the one
//! state lock; the checks come in the server's order (parameters, chat access, topic, reply,
//! server-side limits) with its error texts.

use serde_json::{Map, Value, json};

use super::build::content_of;
use super::format::{self, Formatted, utf16_len};
use super::{
    ApiError, CAPTION_MAX_UTF16, MESSAGE_MAX_UTF16, Params, Stored, TOPIC_ICON_COLORS,
    TelegramState, TelegramTopic, Topic, is_service, now, strip_reply,
};

/// The bot-side view of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChatRef {
    /// The support group (a forum supergroup).
    Group,
    /// The private chat with this user.
    Private(i64),
}

/// What a method needs from the chat (the server's `AccessRights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Edit,
    Write,
}

/// The longest `text` the server reads at all (`Text is too long` above it), in bytes.
const RAW_TEXT_MAX_BYTES: usize = 1 << 15;

/// Longest topic name; longer ones are cut (TDLib's `clean_name`).
const TOPIC_NAME_MAX_CHARS: usize = 128;

fn chat_id_empty() -> ApiError {
    ApiError::bad("chat_id is empty")
}

fn not_modified() -> ApiError {
    ApiError::bad(
        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    )
}

fn entities_value(entities: &[Value]) -> Option<Value> {
    (!entities.is_empty()).then(|| json!(entities))
}

/// `reply_markup` as a Message carries it: only inline keyboards.
fn inline_markup(params: &Params) -> Option<Value> {
    params
        .json("reply_markup")
        .filter(|m| m.get("inline_keyboard").is_some())
}

fn set_or_remove(message: &mut Value, key: &str, value: Option<Value>) {
    if let Some(fields) = message.as_object_mut() {
        match value {
            Some(value) => {
                fields.insert(key.to_owned(), value);
            }
            None => {
                fields.remove(key);
            }
        }
    }
}

impl TelegramState {
    /// `chat_id` → the chat, with the server's access checks.
    fn resolve_chat(
        &self,
        raw: Option<String>,
        access: Access,
        missing: ApiError,
    ) -> Result<(i64, ChatRef), ApiError> {
        let raw = raw.ok_or(missing)?;
        // `@username` only names public chats; none here has one.
        let id = raw.trim().parse::<i64>().unwrap_or(0);
        if id == self.group_id {
            if self.kicked {
                return Err(ApiError::forbidden(
                    "bot was kicked from the supergroup chat",
                ));
            }
            return Ok((id, ChatRef::Group));
        }
        if id > 0
            && let Some(user) = self.users.get(&id)
        {
            if access == Access::Write {
                if self.blocked.contains(&id) {
                    return Err(ApiError::forbidden("bot was blocked by the user"));
                }
                if !user.started {
                    return Err(ApiError::forbidden(
                        "bot can't initiate conversation with a user",
                    ));
                }
            }
            return Ok((id, ChatRef::Private(id)));
        }
        Err(ApiError::bad("chat not found"))
    }

    fn chat_json(&self, chat: ChatRef) -> Value {
        match chat {
            ChatRef::Group => self.group_chat(),
            ChatRef::Private(user_id) => self.private_chat(user_id),
        }
    }

    /// `message_thread_id` of a send → the topic it goes to (`None`: General / no topic).
    fn resolve_thread(&self, chat: ChatRef, thread: Option<i64>) -> Result<Option<i64>, ApiError> {
        let Some(thread) = thread.filter(|t| *t != 0) else {
            return Ok(None);
        };
        let not_found = || ApiError::bad("message thread not found");
        if chat != ChatRef::Group || thread == 1 {
            return Err(not_found());
        }
        match self.topics.get(&thread) {
            Some(topic) if !topic.deleted => {
                if topic.closed && !(self.admin && self.can_manage_topics) {
                    return Err(ApiError::bad("TOPIC_CLOSED"));
                }
                Ok(Some(thread))
            }
            _ => Err(not_found()),
        }
    }

    /// `reply_parameters` (or the older `reply_to_message_id`) → the message replied to.
    fn resolve_reply(&self, chat_id: i64, params: &Params) -> Result<Option<Value>, ApiError> {
        let (message_id, allow_without) = match params.json("reply_parameters") {
            Some(rp) => (
                rp["message_id"].as_i64(),
                rp["allow_sending_without_reply"].as_bool().unwrap_or(false),
            ),
            None => (
                params.int("reply_to_message_id"),
                params.bool("allow_sending_without_reply"),
            ),
        };
        let Some(message_id) = message_id.filter(|id| *id > 0) else {
            return Ok(None);
        };
        match self.stored(chat_id, message_id) {
            Some(stored) => Ok(Some(strip_reply(&stored.message))),
            None if allow_without => Ok(None),
            None => Err(ApiError::bad("message to be replied not found")),
        }
    }

    /// Where a send goes: chat, topic and replied message (a reply to a topic message goes into
    /// that topic).
    fn destination(
        &self,
        params: &Params,
    ) -> Result<(i64, ChatRef, Option<i64>, Option<Value>), ApiError> {
        let (chat_id, chat) =
            self.resolve_chat(params.str("chat_id"), Access::Write, chat_id_empty())?;
        let reply = self.resolve_reply(chat_id, params)?;
        let implicit_thread = reply
            .as_ref()
            .filter(|r| r["is_topic_message"] == true)
            .and_then(|r| r["message_thread_id"].as_i64());
        let thread =
            self.resolve_thread(chat, params.int("message_thread_id").or(implicit_thread))?;
        Ok((chat_id, chat, thread, reply))
    }

    /// Stores a new message from the bot and returns it.
    fn post(
        &mut self,
        chat_id: i64,
        chat: ChatRef,
        thread: Option<i64>,
        reply: Option<Value>,
        content: Map<String, Value>,
    ) -> Value {
        let mut message = json!({
            "message_id": 0, "from": self.bot_user(), "chat": self.chat_json(chat), "date": now(),
        });
        let mut reply = reply;
        if let Some(thread) = thread {
            message["message_thread_id"] = json!(thread);
            message["is_topic_message"] = json!(true);
            if reply.is_none() {
                reply = self
                    .stored(chat_id, thread)
                    .map(|root| strip_reply(&root.message));
            }
        }
        if let Some(reply) = reply {
            message["reply_to_message"] = reply;
        }
        if let Some(fields) = message.as_object_mut() {
            fields.extend(content);
        }
        let service = is_service(&message);
        let log = self.chat_log(chat_id);
        let message_id = log.next_id;
        log.next_id += 1;
        message["message_id"] = json!(message_id);
        log.messages.insert(
            message_id,
            Stored {
                message: message.clone(),
                by_bot: true,
                service,
            },
        );
        message
    }

    /// `sendMessage` — <https://core.telegram.org/bots/api#sendmessage>.
    pub(crate) fn send_message(&mut self, params: &Params) -> Result<Value, ApiError> {
        let raw = params.raw_str("text").unwrap_or_default();
        let text = message_text(&raw, params, "entities")?;
        TelegramState::check_inline_markup(params)?;
        let (chat_id, chat, thread, reply) = self.destination(params)?;
        if utf16_len(&text.text) > MESSAGE_MAX_UTF16 {
            return Err(ApiError::bad("message is too long"));
        }
        let mut content = Map::new();
        content.insert("text".into(), json!(text.text));
        if let Some(entities) = entities_value(&text.entities) {
            content.insert("entities".into(), entities);
        }
        if params.bool("protect_content") {
            content.insert("has_protected_content".into(), json!(true));
        }
        if let Some(markup) = inline_markup(params) {
            content.insert("reply_markup".into(), markup);
        }
        self.track_reply_keyboard(chat_id, params);
        Ok(self.post(chat_id, chat, thread, reply, content))
    }

    /// `copyMessage` — <https://core.telegram.org/bots/api#copymessage>: answers only
    /// `{"message_id":N}`.
    pub(crate) fn copy_message(&mut self, params: &Params) -> Result<Value, ApiError> {
        let from_chat = params
            .str("from_chat_id")
            .ok_or_else(|| ApiError::bad("parameter \"from_chat_id\" is required"))?;
        let caption = if params.has("caption") {
            Some(caption_text(params)?)
        } else {
            None
        };
        let (from_chat_id, _) =
            self.resolve_chat(Some(from_chat), Access::Read, chat_id_empty())?;
        let source = params
            .int("message_id")
            .filter(|id| *id > 0)
            .and_then(|id| self.stored(from_chat_id, id))
            .ok_or_else(|| ApiError::bad("message to copy not found"))?;
        if source.service {
            return Err(ApiError::bad("message can't be copied"));
        }
        let mut content = content_of(&source.message);
        let (chat_id, chat, thread, reply) = self.destination(params)?;
        if let Some(caption) = caption
            && !content.contains_key("text")
        {
            if utf16_len(&caption.text) > CAPTION_MAX_UTF16 {
                return Err(ApiError::bad("message caption is too long"));
            }
            content.remove("caption");
            content.remove("caption_entities");
            if !caption.text.is_empty() {
                content.insert("caption".into(), json!(caption.text));
                if let Some(entities) = entities_value(&caption.entities) {
                    content.insert("caption_entities".into(), entities);
                }
            }
        }
        if params.bool("protect_content") {
            content.insert("has_protected_content".into(), json!(true));
        }
        if let Some(markup) = inline_markup(params) {
            content.insert("reply_markup".into(), markup);
        }
        self.track_reply_keyboard(chat_id, params);
        let copy = self.post(chat_id, chat, thread, reply, content);
        Ok(json!({"message_id": copy["message_id"]}))
    }

    /// The message an edit is about: the bot's own, not a service message.
    fn message_to_edit(&self, params: &Params) -> Result<(i64, i64), ApiError> {
        let message_id = params.int("message_id").unwrap_or(0);
        if params.str("chat_id").is_none() && message_id == 0 {
            return Err(match params.str("inline_message_id") {
                None => ApiError::bad("message identifier is not specified"),
                Some(_) => ApiError::bad("MESSAGE_ID_INVALID"),
            });
        }
        let (chat_id, _) =
            self.resolve_chat(params.str("chat_id"), Access::Edit, chat_id_empty())?;
        let stored = self
            .stored(chat_id, message_id)
            .filter(|_| message_id > 0)
            .ok_or_else(|| ApiError::bad("message to edit not found"))?;
        if stored.service || !stored.by_bot {
            return Err(ApiError::bad("message can't be edited"));
        }
        Ok((chat_id, message_id))
    }

    fn replace_message(
        &mut self,
        chat_id: i64,
        message_id: i64,
        edit: impl FnOnce(&mut Value),
    ) -> Value {
        let log = self.chat_log(chat_id);
        let stored = log
            .messages
            .get_mut(&message_id)
            .unwrap_or_else(|| unreachable!("checked by message_to_edit"));
        edit(&mut stored.message);
        stored.message["edit_date"] = json!(now());
        stored.message.clone()
    }

    /// `editMessageText` — <https://core.telegram.org/bots/api#editmessagetext>.
    pub(crate) fn edit_message_text(&mut self, params: &Params) -> Result<Value, ApiError> {
        let raw = params.raw_str("text").unwrap_or_default();
        let text = message_text(&raw, params, "entities")?;
        let (chat_id, message_id) = self.message_to_edit(params)?;
        let current = &self
            .stored(chat_id, message_id)
            .unwrap_or_else(|| unreachable!("found above"))
            .message;
        if current.get("text").is_none() {
            return Err(ApiError::bad("there is no text in the message to edit"));
        }
        if utf16_len(&text.text) > MESSAGE_MAX_UTF16 {
            return Err(ApiError::bad("message is too long"));
        }
        TelegramState::check_inline_markup(params)?;
        let markup = inline_markup(params);
        let entities = entities_value(&text.entities);
        if current["text"] == json!(text.text)
            && current.get("entities") == entities.as_ref()
            && current.get("reply_markup") == markup.as_ref()
        {
            return Err(not_modified());
        }
        Ok(self.replace_message(chat_id, message_id, |m| {
            m["text"] = json!(text.text);
            set_or_remove(m, "entities", entities);
            set_or_remove(m, "reply_markup", markup);
        }))
    }

    /// `editMessageCaption` — <https://core.telegram.org/bots/api#editmessagecaption>; an empty
    /// caption removes it.
    pub(crate) fn edit_message_caption(&mut self, params: &Params) -> Result<Value, ApiError> {
        let caption = caption_text(params)?;
        let (chat_id, message_id) = self.message_to_edit(params)?;
        let current = &self
            .stored(chat_id, message_id)
            .unwrap_or_else(|| unreachable!("found above"))
            .message;
        if current.get("text").is_some() {
            return Err(ApiError::bad("there is no caption in the message to edit"));
        }
        if utf16_len(&caption.text) > CAPTION_MAX_UTF16 {
            return Err(ApiError::bad("message caption is too long"));
        }
        let markup = inline_markup(params);
        let new_caption = (!caption.text.is_empty()).then(|| json!(caption.text));
        let entities = entities_value(&caption.entities);
        if current.get("caption") == new_caption.as_ref()
            && current.get("caption_entities") == entities.as_ref()
            && current.get("reply_markup") == markup.as_ref()
        {
            return Err(not_modified());
        }
        Ok(self.replace_message(chat_id, message_id, |m| {
            set_or_remove(m, "caption", new_caption);
            set_or_remove(m, "caption_entities", entities);
            set_or_remove(m, "reply_markup", markup);
        }))
    }

    /// The forum a topic method works on: the group (403 when the bot was kicked).
    fn forum(&self, params: &Params) -> Result<i64, ApiError> {
        match self.resolve_chat(params.str("chat_id"), Access::Read, chat_id_empty())? {
            (chat_id, ChatRef::Group) => Ok(chat_id),
            (_, ChatRef::Private(_)) => Err(ApiError::bad("the chat is not a forum")),
        }
    }

    /// `message_thread_id` of a topic method → a live topic.
    fn topic_id(&self, params: &Params) -> Result<i64, ApiError> {
        let thread = params.int("message_thread_id").unwrap_or(0);
        if thread <= 0 {
            return Err(ApiError::bad("invalid message thread identifier specified"));
        }
        match self.topics.get(&thread) {
            Some(topic) if !topic.deleted => Ok(thread),
            _ => Err(ApiError::bad("TOPIC_ID_INVALID")),
        }
    }

    fn may_manage(&self, thread: i64) -> bool {
        (self.admin && self.can_manage_topics) || self.topics.get(&thread).is_some_and(|t| t.by_bot)
    }

    /// Posts a service message into a topic.
    fn post_service(&mut self, chat_id: i64, thread: i64, field: &str, value: Value) {
        let mut content = Map::new();
        content.insert(field.to_owned(), value);
        self.post(chat_id, ChatRef::Group, Some(thread), None, content);
    }

    /// `createForumTopic` — <https://core.telegram.org/bots/api#createforumtopic>.
    pub(crate) fn create_forum_topic(&mut self, params: &Params) -> Result<Value, ApiError> {
        let chat_id = self.forum(params)?;
        if !(self.admin && self.can_manage_topics) {
            return Err(ApiError::bad("not enough rights to create a topic"));
        }
        let name = clean_name(&params.raw_str("name").unwrap_or_default());
        if name.is_empty() {
            return Err(ApiError::bad("title must be non-empty"));
        }
        let icon_color = match params.int("icon_color") {
            Some(color) if !(0..=0xFF_FFFF).contains(&color) => {
                return Err(ApiError::bad("invalid icon color specified"));
            }
            Some(color) if color != 0 => color,
            _ => TOPIC_ICON_COLORS[self.topics_created % TOPIC_ICON_COLORS.len()],
        };
        let icon_custom_emoji_id = params.str("icon_custom_emoji_id");
        self.topics_created += 1;
        // The service message is the topic's root: its id is the thread id.
        let thread = self.chat_log(chat_id).next_id;
        let mut created = json!({"name": name, "icon_color": icon_color});
        if let Some(emoji) = &icon_custom_emoji_id {
            created["icon_custom_emoji_id"] = json!(emoji);
        }
        self.topics.insert(
            thread,
            Topic {
                name: name.clone(),
                icon_custom_emoji_id: icon_custom_emoji_id.clone(),
                closed: false,
                deleted: false,
                by_bot: true,
            },
        );
        let mut content = Map::new();
        content.insert("forum_topic_created".into(), created);
        let root = self.post(chat_id, ChatRef::Group, Some(thread), None, content);
        debug_assert_eq!(root["message_id"], json!(thread));
        let mut topic =
            json!({"message_thread_id": thread, "name": name, "icon_color": icon_color});
        if let Some(emoji) = icon_custom_emoji_id {
            topic["icon_custom_emoji_id"] = json!(emoji);
        }
        Ok(topic)
    }

    /// `editForumTopic` — <https://core.telegram.org/bots/api#editforumtopic>: `name` and/or
    /// `icon_custom_emoji_id` (empty: remove the icon); neither is a no-op `true`, the same values
    /// are `TOPIC_NOT_MODIFIED`.
    pub(crate) fn edit_forum_topic(&mut self, params: &Params) -> Result<Value, ApiError> {
        let chat_id = self.forum(params)?;
        let thread = self.topic_id(params)?;
        if !self.may_manage(thread) {
            return Err(ApiError::bad("not enough rights to edit the topic"));
        }
        let raw_name = params.raw_str("name").unwrap_or_default();
        let name = (!raw_name.is_empty()).then(|| clean_name(&raw_name));
        if name.as_deref() == Some("") {
            return Err(ApiError::bad("title must be non-empty"));
        }
        let emoji = params
            .has("icon_custom_emoji_id")
            .then(|| params.str("icon_custom_emoji_id"));
        if name.is_none() && emoji.is_none() {
            return Ok(json!(true));
        }
        let topic = self
            .topics
            .get_mut(&thread)
            .unwrap_or_else(|| unreachable!("checked by topic_id"));
        let name_changes = name.as_ref().is_some_and(|n| *n != topic.name);
        let emoji_changes = emoji
            .as_ref()
            .is_some_and(|e| *e != topic.icon_custom_emoji_id);
        if !name_changes && !emoji_changes {
            return Err(ApiError::bad("TOPIC_NOT_MODIFIED"));
        }
        let mut edited = json!({});
        if let Some(name) = name.filter(|_| name_changes) {
            topic.name.clone_from(&name);
            edited["name"] = json!(name);
        }
        if let Some(emoji) = emoji.filter(|_| emoji_changes) {
            edited["icon_custom_emoji_id"] = json!(emoji.clone().unwrap_or_default());
            topic.icon_custom_emoji_id = emoji;
        }
        self.post_service(chat_id, thread, "forum_topic_edited", edited);
        Ok(json!(true))
    }

    /// `closeForumTopic` / `reopenForumTopic`; closing a closed topic (or reopening an open one)
    /// is `TOPIC_NOT_MODIFIED`.
    pub(crate) fn toggle_forum_topic(
        &mut self,
        params: &Params,
        close: bool,
    ) -> Result<Value, ApiError> {
        let chat_id = self.forum(params)?;
        let thread = self.topic_id(params)?;
        if !self.may_manage(thread) {
            return Err(ApiError::bad(
                "not enough rights to close or open the topic",
            ));
        }
        let topic = self
            .topics
            .get_mut(&thread)
            .unwrap_or_else(|| unreachable!("checked by topic_id"));
        if topic.closed == close {
            return Err(ApiError::bad("TOPIC_NOT_MODIFIED"));
        }
        topic.closed = close;
        let field = if close {
            "forum_topic_closed"
        } else {
            "forum_topic_reopened"
        };
        self.post_service(chat_id, thread, field, json!({}));
        Ok(json!(true))
    }

    /// `deleteForumTopic` — the topic and all its messages.
    pub(crate) fn delete_forum_topic(&mut self, params: &Params) -> Result<Value, ApiError> {
        self.forum(params)?;
        let thread = self.topic_id(params)?;
        let own = self.topics.get(&thread).is_some_and(|t| t.by_bot);
        if !own && !self.admin {
            return Err(ApiError::bad("not enough rights to delete the topic"));
        }
        self.remove_topic(thread);
        Ok(json!(true))
    }

    /// Marks the topic deleted and removes its messages.
    pub(crate) fn remove_topic(&mut self, thread: i64) {
        if let Some(topic) = self.topics.get_mut(&thread) {
            topic.deleted = true;
        }
        let group_id = self.group_id;
        if let Some(log) = self.chats.get_mut(&group_id) {
            log.messages.retain(|id, stored| {
                *id != thread && stored.message["message_thread_id"].as_i64() != Some(thread)
            });
        }
    }

    pub(crate) fn topics_list(&self) -> Vec<TelegramTopic> {
        self.topics
            .iter()
            .map(|(thread, t)| TelegramTopic {
                message_thread_id: *thread,
                name: t.name.clone(),
                icon_custom_emoji_id: t.icon_custom_emoji_id.clone(),
                closed: t.closed,
                deleted: t.deleted,
            })
            .collect()
    }

    /// `getChat` — `ChatFullInfo` of the group or of a known user's private chat.
    pub(crate) fn get_chat(&self, params: &Params) -> Result<Value, ApiError> {
        let (_, chat) = self.resolve_chat(params.str("chat_id"), Access::Read, chat_id_empty())?;
        let mut info = self.chat_json(chat);
        info["accent_color_id"] = json!(0);
        info["max_reaction_count"] = json!(11);
        info["accepted_gift_types"] = json!({"unlimited_gifts": false, "limited_gifts": false,
            "unique_gifts": false, "premium_subscription": false, "gifts_from_channels": false});
        if chat == ChatRef::Group {
            info["permissions"] = json!({
                "can_send_messages": true, "can_send_audios": true, "can_send_documents": true,
                "can_send_photos": true, "can_send_videos": true, "can_send_video_notes": true,
                "can_send_voice_notes": true, "can_send_polls": true, "can_send_other_messages": true,
                "can_add_web_page_previews": true, "can_change_info": false, "can_invite_users": true,
                "can_pin_messages": false, "can_manage_topics": false,
            });
        }
        Ok(info)
    }

    /// `getChatMember` — the bot in the group (administrator or member, see
    /// [`Sandbox::telegram_set_bot_rights`](crate::Sandbox::telegram_set_bot_rights)), or a known
    /// user as `member`.
    pub(crate) fn get_chat_member(&self, params: &Params) -> Result<Value, ApiError> {
        let user_id = params
            .int("user_id")
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::bad("invalid user_id specified"))?;
        let (_, chat) = self.resolve_chat(params.str("chat_id"), Access::Read, chat_id_empty())?;
        if user_id == self.bot_id {
            return Ok(match chat {
                ChatRef::Group => self.bot_member(),
                ChatRef::Private(_) => json!({"status": "member", "user": self.bot_user()}),
            });
        }
        let member_of_chat = match chat {
            ChatRef::Group => true,
            ChatRef::Private(owner) => owner == user_id,
        };
        match self.users.get(&user_id) {
            Some(user) if member_of_chat => Ok(json!({"status": "member", "user": user.user})),
            _ => Err(ApiError::bad("user not found")),
        }
    }
}

/// A message text: not empty before or after trimming, at most 32 KiB raw.
fn message_text(raw: &str, params: &Params, entities_key: &str) -> Result<Formatted, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    if raw.len() > RAW_TEXT_MAX_BYTES {
        return Err(ApiError::bad("text is too long"));
    }
    let text = format::format(
        raw,
        params.str("parse_mode").as_deref(),
        params.json(entities_key),
    )
    .map_err(|description| ApiError::raw(400, description))?;
    if text.text.is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    Ok(text)
}

/// A caption (may be empty).
fn caption_text(params: &Params) -> Result<Formatted, ApiError> {
    let raw = params.raw_str("caption").unwrap_or_default();
    if raw.len() > RAW_TEXT_MAX_BYTES {
        return Err(ApiError::bad("text is too long"));
    }
    format::format(
        &raw,
        params.str("parse_mode").as_deref(),
        params.json("caption_entities"),
    )
    .map_err(|description| ApiError::raw(400, description))
}

/// Whitespace trimmed, control characters dropped, cut to 128 characters.
fn clean_name(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(TOPIC_NAME_MAX_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}
