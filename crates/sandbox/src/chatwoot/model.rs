//! The Chatwoot fake's records and how Chatwoot renders them.
//!
//! Each `*_json` function mirrors one of Chatwoot's own renderers, named in its doc comment
//! (paths are in <https://github.com/chatwoot/chatwoot>). Three shapes of the same record exist and
//! are easy to mix up:
//! * the REST API partials (`app/views/api/v1/...jbuilder`): `message_type` is a NUMBER, times are
//!   unix seconds;
//! * `push_event_data` (used inside webhooks, e.g. `conversation.messages[]`): raw attributes, so
//!   `message_type` is a NUMBER too, `created_at` unix seconds, `updated_at` ISO 8601;
//! * `webhook_data` (the top level of a webhook): `message_type` is a STRING (`"incoming"`),
//!   `created_at` ISO 8601.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::SandboxOptions;

/// `Message.message_types` (`app/models/message.rb`): incoming 0, outgoing 1, activity 2, template 3.
pub const MESSAGE_TYPES: [&str; 4] = ["incoming", "outgoing", "activity", "template"];

/// `Message.content_types` (`app/models/message.rb`).
pub const CONTENT_TYPES: [&str; 13] = [
    "text",
    "input_text",
    "input_textarea",
    "input_email",
    "input_select",
    "cards",
    "form",
    "article",
    "incoming_email",
    "input_csat",
    "integrations",
    "sticker",
    "voice_call",
];

/// `Conversation.statuses` (`app/models/conversation.rb`).
pub const STATUSES: [&str; 4] = ["open", "resolved", "pending", "snoozed"];

#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    pub(crate) phone_number: Option<String>,
    pub(crate) identifier: Option<String>,
    pub(crate) additional_attributes: Value,
    pub(crate) custom_attributes: Value,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) last_activity_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct ContactInbox {
    pub(crate) id: i64,
    pub(crate) contact_id: i64,
    pub(crate) inbox_id: i64,
    pub(crate) source_id: String,
    pub(crate) pubsub_token: String,
    pub(crate) created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    /// The `display_id`, which is what every API path and payload calls `id`.
    pub(crate) id: i64,
    pub(crate) uuid: String,
    /// The inbox of its contact inbox.
    pub(crate) inbox_id: i64,
    pub(crate) contact_id: i64,
    pub(crate) contact_inbox_id: i64,
    pub(crate) status: String,
    pub(crate) additional_attributes: Value,
    pub(crate) custom_attributes: Value,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) last_activity_at: OffsetDateTime,
    pub(crate) waiting_since: Option<OffsetDateTime>,
    pub(crate) first_reply_created_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    Contact(i64),
    /// The sandbox's one agent.
    Agent,
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) id: i64,
    pub(crate) conversation_id: i64,
    /// Index into [`MESSAGE_TYPES`].
    pub(crate) message_type: i64,
    pub(crate) content: Option<String>,
    pub(crate) private: bool,
    pub(crate) content_type: String,
    pub(crate) content_attributes: Value,
    pub(crate) source_id: Option<String>,
    pub(crate) sender: Sender,
    pub(crate) created_at: OffsetDateTime,
    /// When the request that created it reached the fake (the handler started), full
    /// precision; for the control API's `received` list (latency benchmarks), never rendered
    /// by the Chatwoot API.
    pub(crate) received_at: OffsetDateTime,
}

/// An inbox; the fake has API channel inboxes only (`Channel::Api`).
#[derive(Debug, Clone)]
pub(crate) struct Inbox {
    pub(crate) id: i64,
    /// The id of its `Channel::Api` record.
    pub(crate) channel_id: i64,
    pub(crate) name: String,
    /// `Channel::Api#webhook_url`; stored and rendered, the fake posts nothing to it.
    pub(crate) webhook_url: Option<String>,
    pub(crate) inbox_identifier: String,
}

/// A file attached to a message (`Attachment` with its ActiveStorage blob).
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) id: i64,
    pub(crate) message_id: i64,
    /// `image`, `audio`, `video` or `file` (see [`file_type`]).
    pub(crate) file_type: &'static str,
    /// The blob's (sanitized) file name.
    pub(crate) file_name: String,
    /// The blob's content type, as the upload part declared it.
    pub(crate) content_type: String,
    pub(crate) bytes: Arc<Vec<u8>>,
    /// The blob's signed id, the path segment of `/rails/active_storage/blobs/redirect/…`.
    pub(crate) signed_id: String,
    /// The blob's key, the path segment of `/rails/active_storage/disk/…`.
    pub(crate) key: String,
    /// `Attachment#file_url`, absolute.
    pub(crate) data_url: String,
    /// `Attachment#thumb_url`: a representation URL for images, `""` for the rest.
    pub(crate) thumb_url: String,
    /// Set by `Sandbox::chatwoot_fail_file`: every download of this file answers it.
    pub(crate) fail_status: Option<u16>,
}

/// An account webhook (`Webhook`, `app/models/webhook.rb`).
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub(crate) id: i64,
    pub(crate) name: Option<String>,
    pub(crate) url: String,
    pub(crate) subscriptions: Vec<String>,
    /// Set for an inbox webhook: only that inbox's events are delivered.
    pub(crate) inbox_id: Option<i64>,
    /// The signing secret (`has_secure_token`, 24 characters), shown in every render.
    pub(crate) secret: String,
}

/// `Attachmentable#validate_file_size`: `40.megabytes`.
pub(crate) const MAX_ATTACHMENT_BYTES: u64 = 40 * 1024 * 1024;

/// `Webhook::ALLOWED_WEBHOOK_EVENTS` (`app/models/webhook.rb`).
pub(crate) const WEBHOOK_EVENTS: [&str; 12] = [
    "conversation_status_changed",
    "conversation_updated",
    "conversation_created",
    "contact_created",
    "contact_updated",
    "message_created",
    "message_updated",
    "webwidget_triggered",
    "inbox_created",
    "inbox_updated",
    "conversation_typing_on",
    "conversation_typing_off",
];

/// The `webhooks.subscriptions` column default, what a webhook created without `subscriptions`
/// gets (`db/schema.rb`).
pub(crate) const DEFAULT_SUBSCRIPTIONS: [&str; 6] = [
    "conversation_status_changed",
    "conversation_updated",
    "conversation_created",
    "message_created",
    "message_updated",
    "webwidget_triggered",
];

/// `FileTypeHelper#file_type` (`app/helpers/file_type_helper.rb`): a handful of image and video
/// types by exact match, anything containing `audio/` is audio, the rest (SVG, HEIC, MKV …) a
/// plain file.
pub(crate) fn file_type(content_type: &str) -> &'static str {
    const IMAGES: [&str; 5] = [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/bmp",
        "image/webp",
    ];
    const VIDEOS: [&str; 4] = ["video/ogg", "video/mp4", "video/webm", "video/quicktime"];
    if IMAGES.contains(&content_type) {
        "image"
    } else if VIDEOS.contains(&content_type) {
        "video"
    } else if content_type.contains("audio/") {
        "audio"
    } else {
        "file"
    }
}

/// All Chatwoot records: one account, its API inboxes (the one of
/// `SandboxOptions::chatwoot_inbox_id` and those created through the API), one agent, and what
/// the API creates.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) account_id: i64,
    /// The seeded inbox (`SandboxOptions::chatwoot_inbox_id`).
    pub(crate) inbox_id: i64,
    pub(crate) inboxes: Vec<Inbox>,
    pub(crate) contacts: Vec<Contact>,
    pub(crate) contact_inboxes: Vec<ContactInbox>,
    pub(crate) conversations: Vec<Conversation>,
    pub(crate) messages: Vec<Message>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) webhooks: Vec<Webhook>,
    /// Largest attachment accepted, in bytes ([`MAX_ATTACHMENT_BYTES`] unless a test lowers it).
    pub(crate) attachment_limit: u64,
    /// `FRONTEND_URL` of the fake, e.g. `http://127.0.0.1:PORT/chatwoot`: the last API request's
    /// `Host`, so file URLs point where the client reached the fake.
    pub(crate) frontend_url: Option<String>,
    last_id: i64,
    last_webhook_id: i64,
}

pub(crate) const ACCOUNT_NAME: &str = "Sandbox Account";
pub(crate) const INBOX_NAME: &str = "VK (sandbox)";
pub(crate) const AGENT: (i64, &str, &str) = (1, "Sandbox Agent", "agent@sandbox.invalid");

impl Default for Store {
    fn default() -> Self {
        Store::new(&SandboxOptions::default())
    }
}

impl Store {
    pub(crate) fn new(opts: &SandboxOptions) -> Store {
        Store {
            account_id: opts.chatwoot_account_id,
            inbox_id: opts.chatwoot_inbox_id,
            inboxes: vec![Inbox {
                id: opts.chatwoot_inbox_id,
                channel_id: 1,
                name: INBOX_NAME.to_owned(),
                webhook_url: None,
                inbox_identifier: "sandbox-api-inbox".to_owned(),
            }],
            contacts: Vec::new(),
            contact_inboxes: Vec::new(),
            conversations: Vec::new(),
            messages: Vec::new(),
            attachments: Vec::new(),
            webhooks: Vec::new(),
            attachment_limit: MAX_ATTACHMENT_BYTES,
            frontend_url: None,
            last_id: 0,
            last_webhook_id: 0,
        }
    }

    /// Webhooks have their own id sequence, from 1.
    pub(crate) fn next_webhook_id(&mut self) -> i64 {
        self.last_webhook_id += 1;
        self.last_webhook_id
    }

    pub(crate) fn inbox(&self, id: i64) -> Option<&Inbox> {
        self.inboxes.iter().find(|i| i.id == id)
    }

    /// Creates an API channel inbox; inboxes have their own id sequence.
    pub(crate) fn create_inbox(&mut self, name: String, webhook_url: Option<String>) -> i64 {
        let id = self.inboxes.iter().map(|i| i.id).max().unwrap_or(0) + 1;
        let channel_id = self.inboxes.iter().map(|i| i.channel_id).max().unwrap_or(0) + 1;
        self.inboxes.push(Inbox {
            id,
            channel_id,
            name,
            webhook_url,
            inbox_identifier: uuid::Uuid::new_v4().simple().to_string()[..24].to_owned(),
        });
        id
    }

    /// The attachments of a message, in upload order.
    pub(crate) fn attachments_of(&self, message_id: i64) -> impl Iterator<Item = &Attachment> {
        self.attachments
            .iter()
            .filter(move |a| a.message_id == message_id)
    }

    /// Ids are unique across record kinds, which keeps a mixed-up id from finding a wrong record.
    pub(crate) fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    pub(crate) fn contact(&self, id: i64) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }

    pub(crate) fn conversation(&self, id: i64) -> Option<&Conversation> {
        self.conversations.iter().find(|c| c.id == id)
    }

    pub(crate) fn conversation_mut(&mut self, id: i64) -> Option<&mut Conversation> {
        self.conversations.iter_mut().find(|c| c.id == id)
    }

    pub(crate) fn contact_inbox(&self, id: i64) -> Option<&ContactInbox> {
        self.contact_inboxes.iter().find(|ci| ci.id == id)
    }

    /// Oldest first, like Chatwoot's `default_scope { order(created_at: :asc) }`.
    pub(crate) fn messages_of(&self, conversation_id: i64) -> impl Iterator<Item = &Message> {
        self.messages
            .iter()
            .filter(move |m| m.conversation_id == conversation_id)
    }

    /// Finds or creates the contact's link to the inbox, like `ContactInboxBuilder`: an API inbox
    /// without `source_id` gets a random UUID. `Err` when `source_id` belongs to another contact.
    pub(crate) fn link_contact(
        &mut self,
        contact_id: i64,
        inbox_id: i64,
        source_id: Option<String>,
    ) -> Result<i64, ()> {
        if let Some(source_id) = &source_id
            && let Some(existing) = self
                .contact_inboxes
                .iter()
                .find(|ci| ci.inbox_id == inbox_id && &ci.source_id == source_id)
        {
            return if existing.contact_id == contact_id {
                Ok(existing.id)
            } else {
                Err(())
            };
        }
        let id = self.next_id();
        self.contact_inboxes.push(ContactInbox {
            id,
            contact_id,
            inbox_id,
            source_id: source_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            pubsub_token: uuid::Uuid::new_v4().simple().to_string()[..24].to_owned(),
            created_at: OffsetDateTime::now_utc(),
        });
        Ok(id)
    }

    /// `app/views/api/v1/models/_contact.json.jbuilder` (with `contact_inboxes` on `/contacts`
    /// endpoints).
    pub(crate) fn contact_json(&self, c: &Contact, with_contact_inboxes: bool) -> Value {
        let mut json = json!({
            "additional_attributes": c.additional_attributes,
            "availability_status": "offline",
            "email": c.email,
            "id": c.id,
            "name": c.name,
            "phone_number": c.phone_number,
            "blocked": false,
            "identifier": c.identifier,
            "thumbnail": "",
            "custom_attributes": c.custom_attributes,
            "created_at": c.created_at.unix_timestamp(),
        });
        if let Some(at) = c.last_activity_at {
            json["last_activity_at"] = json!(at.unix_timestamp());
        }
        if with_contact_inboxes {
            json["contact_inboxes"] = self
                .contact_inboxes
                .iter()
                .filter(|ci| ci.contact_id == c.id)
                .map(|ci| self.contact_inbox_json(ci))
                .collect();
        }
        json
    }

    /// `Contact#push_event_data` (`app/models/contact.rb`).
    fn contact_push(&self, c: &Contact) -> Value {
        json!({
            "additional_attributes": c.additional_attributes,
            "custom_attributes": c.custom_attributes,
            "email": c.email,
            "id": c.id,
            "identifier": c.identifier,
            "name": c.name,
            "phone_number": c.phone_number,
            "thumbnail": "",
            "blocked": false,
            "type": "contact",
        })
    }

    /// `Contact#webhook_data`: the documented `{id, name, avatar, type}`
    /// (<https://www.chatwoot.com/docs/product/others/webhook-events>) plus what newer Chatwoot adds.
    fn contact_webhook(&self, c: &Contact) -> Value {
        json!({
            "account": self.account_json(),
            "additional_attributes": c.additional_attributes,
            "avatar": "",
            "custom_attributes": c.custom_attributes,
            "email": c.email,
            "id": c.id,
            "identifier": c.identifier,
            "name": c.name,
            "phone_number": c.phone_number,
            "thumbnail": "",
            "blocked": false,
            "type": "contact",
        })
    }

    /// `User#push_event_data` (`app/models/user.rb`).
    fn agent_push(&self) -> Value {
        json!({
            "id": AGENT.0, "name": AGENT.1, "available_name": AGENT.1, "avatar_url": "",
            "type": "user", "availability_status": "online", "thumbnail": "",
        })
    }

    /// `User#webhook_data` (`app/models/user.rb`).
    fn agent_webhook(&self) -> Value {
        json!({"id": AGENT.0, "name": AGENT.1, "email": AGENT.2, "type": "user"})
    }

    /// `GET /api/v1/profile` (`app/views/api/v1/models/_user.json.jbuilder`), the sandbox agent.
    pub(crate) fn profile_json(&self, token: &str) -> Value {
        json!({
            "access_token": token,
            "account_id": self.account_id,
            "available_name": AGENT.1,
            "avatar_url": "",
            "confirmed": true,
            "display_name": null,
            "message_signature": null,
            "email": AGENT.2,
            "id": AGENT.0,
            "inviter_id": null,
            "name": AGENT.1,
            "provider": "email",
            "pubsub_token": "sandbox-agent-pubsub-token",
            "role": "administrator",
            "ui_settings": {},
            "uid": AGENT.2,
            "type": "SuperAdmin",
            "custom_attributes": {},
            "accounts": [{
                "id": self.account_id, "name": ACCOUNT_NAME, "status": "active", "active_at": null,
                "role": "administrator", "permissions": ["administrator"], "availability": "online",
                "availability_status": "online", "auto_offline": true,
            }],
        })
    }

    /// `Account#webhook_data`, `{id, name}`.
    fn account_json(&self) -> Value {
        json!({"id": self.account_id, "name": ACCOUNT_NAME})
    }

    /// `app/views/api/v1/models/_inbox.json.jbuilder` for an API channel inbox (the fields that
    /// apply to it).
    pub(crate) fn inbox_json(&self, inbox: &Inbox) -> Value {
        json!({
            "id": inbox.id,
            "avatar_url": "",
            "channel_id": inbox.channel_id,
            "name": inbox.name,
            "channel_type": "Channel::Api",
            "greeting_enabled": false,
            "greeting_message": null,
            "working_hours_enabled": false,
            "enable_email_collect": true,
            "csat_survey_enabled": false,
            "enable_auto_assignment": true,
            "out_of_office_message": null,
            "working_hours": [],
            "timezone": "UTC",
            "callback_webhook_url": null,
            "allow_messages_after_resolved": true,
            "lock_to_single_conversation": false,
            "sender_name_type": "friendly",
            "business_name": null,
            "webhook_url": inbox.webhook_url,
            "inbox_identifier": inbox.inbox_identifier,
            "additional_attributes": {},
            "provider": null,
        })
    }

    /// `app/views/api/v1/models/_contact_inbox.json.jbuilder`: `{source_id, inbox}`.
    pub(crate) fn contact_inbox_json(&self, ci: &ContactInbox) -> Value {
        let inbox = self.inbox(ci.inbox_id).map(|i| self.inbox_json(i));
        json!({"source_id": ci.source_id, "inbox": inbox})
    }

    /// `Inbox#webhook_data`: `{id, name}`.
    fn inbox_webhook(&self, inbox_id: i64) -> Value {
        json!({"id": inbox_id, "name": self.inbox(inbox_id).map(|i| i.name.as_str())})
    }

    /// The inbox a message is in (its conversation's).
    fn message_inbox_id(&self, m: &Message) -> i64 {
        self.conversation(m.conversation_id)
            .map_or(self.inbox_id, |c| c.inbox_id)
    }

    /// `Attachment#push_event_data` for a file (`base_data.merge(file_metadata)`,
    /// `app/models/attachment.rb`): `extension` is a column the API upload path never fills, and
    /// `width`/`height` come from the blob analysis, which runs later in a job: both `null` here
    /// as in a fresh real message.
    pub(crate) fn attachment_push(&self, a: &Attachment) -> Value {
        json!({
            "id": a.id,
            "message_id": a.message_id,
            "file_type": a.file_type,
            "account_id": self.account_id,
            "extension": null,
            "data_url": a.data_url,
            "thumb_url": a.thumb_url,
            "file_size": a.bytes.len(),
            "width": null,
            "height": null,
        })
    }

    /// `attachments.map(&:push_event_data)`, or `None` when the message has none (the key is
    /// then absent: `if attachments.present?`).
    fn attachments_json(&self, message_id: i64) -> Option<Value> {
        let list: Vec<Value> = self
            .attachments_of(message_id)
            .map(|a| self.attachment_push(a))
            .collect();
        (!list.is_empty()).then_some(Value::Array(list))
    }

    /// `app/views/api/v1/accounts/webhooks/_webhook.json.jbuilder` (with `secret`, v4.11.2+).
    pub(crate) fn webhook_json(&self, w: &Webhook) -> Value {
        let mut json = json!({
            "id": w.id,
            "name": w.name,
            "url": w.url,
            "account_id": self.account_id,
            "subscriptions": w.subscriptions,
            "secret": w.secret,
        });
        if let Some(inbox) = w.inbox_id.and_then(|id| self.inbox(id)) {
            json["inbox"] = json!({"id": inbox.id, "name": inbox.name});
        }
        json
    }

    /// A `ContactInbox` serialised whole, as in `conversation.contact_inbox` of a webhook.
    fn contact_inbox_raw(&self, ci: &ContactInbox) -> Value {
        json!({
            "id": ci.id, "contact_id": ci.contact_id, "inbox_id": ci.inbox_id, "source_id": ci.source_id,
            "created_at": iso(ci.created_at), "updated_at": iso(ci.created_at), "hmac_verified": false,
            "pubsub_token": ci.pubsub_token,
        })
    }

    fn sender_push(&self, sender: Sender) -> Value {
        match sender {
            Sender::Agent => self.agent_push(),
            Sender::Contact(id) => self
                .contact(id)
                .map_or(Value::Null, |c| self.contact_push(c)),
        }
    }

    /// `app/views/api/v1/models/_message.json.jbuilder` (REST API; `message_type` NUMBER).
    pub(crate) fn message_json(&self, m: &Message) -> Value {
        let mut json = json!({
            "id": m.id,
            "content": m.content,
            "inbox_id": self.message_inbox_id(m),
            "conversation_id": m.conversation_id,
            "message_type": m.message_type,
            "content_type": m.content_type,
            "status": "sent",
            "content_attributes": m.content_attributes,
            "created_at": m.created_at.unix_timestamp(),
            "private": m.private,
            "source_id": m.source_id,
            "sender": self.sender_push(m.sender),
        });
        if json["sender"].is_null() {
            json.as_object_mut().map(|o| o.remove("sender"));
        }
        if let Some(attachments) = self.attachments_json(m.id) {
            json["attachments"] = attachments;
        }
        json
    }

    /// `Message#push_event_data`: the raw attributes plus `conversation` and `sender`
    /// (`message_type` NUMBER, `created_at` unix, `updated_at` ISO).
    fn message_push(&self, m: &Message) -> Value {
        let (sender_type, sender_id) = match m.sender {
            Sender::Agent => ("User", AGENT.0),
            Sender::Contact(id) => ("Contact", id),
        };
        let conversation = self.conversation(m.conversation_id);
        let mut json = json!({
            "id": m.id,
            "content": m.content,
            "account_id": self.account_id,
            "inbox_id": self.message_inbox_id(m),
            "conversation_id": m.conversation_id,
            "message_type": m.message_type,
            "created_at": m.created_at.unix_timestamp(),
            "updated_at": iso(m.created_at),
            "private": m.private,
            "status": "sent",
            "source_id": m.source_id,
            "content_type": m.content_type,
            "content_attributes": m.content_attributes,
            "sender_type": sender_type,
            "sender_id": sender_id,
            "external_source_ids": {},
            "additional_attributes": {},
            "processed_message_content": m.content,
            "sentiment": {},
            "conversation": conversation.map(|c| json!({
                "assignee_id": null,
                "unread_count": self.unread_count(c.id),
                "last_activity_at": c.last_activity_at.unix_timestamp(),
                "contact_inbox": {"source_id": self.contact_inbox(c.contact_inbox_id).map(|ci| ci.source_id.clone())},
            })),
            "sender": self.sender_push(m.sender),
        });
        if let Some(attachments) = self.attachments_json(m.id) {
            json["attachments"] = attachments;
        }
        json
    }

    /// Incoming messages the agent has not seen; the sandbox agent never looks.
    fn unread_count(&self, conversation_id: i64) -> usize {
        self.messages_of(conversation_id)
            .filter(|m| m.message_type == 0)
            .count()
    }

    /// `messages.chat.last` — the last message that is neither activity nor private.
    fn last_chat_message(&self, conversation_id: i64) -> Option<&Message> {
        self.messages_of(conversation_id)
            .filter(|m| m.message_type != 2 && !m.private)
            .last()
    }

    /// `app/views/api/v1/conversations/partials/_conversation.json.jbuilder` (REST API).
    pub(crate) fn conversation_json(&self, c: &Conversation) -> Value {
        let contact = self.contact(c.contact_id);
        let last = self.messages_of(c.id).last();
        let last_non_activity = self
            .messages_of(c.id)
            .filter(|m| m.message_type != 2)
            .last();
        json!({
            "meta": {
                "sender": contact.map(|ct| self.contact_json(ct, false)),
                "channel": "Channel::Api",
                "hmac_verified": false,
            },
            "id": c.id,
            "messages": last.map(|m| vec![self.message_push(m)]).unwrap_or_default(),
            "account_id": self.account_id,
            "uuid": c.uuid,
            "additional_attributes": c.additional_attributes,
            "agent_last_seen_at": 0,
            "assignee_last_seen_at": 0,
            "can_reply": true,
            "contact_last_seen_at": 0,
            "custom_attributes": c.custom_attributes,
            "inbox_id": c.inbox_id,
            "labels": [],
            "muted": false,
            "snoozed_until": null,
            "status": c.status,
            "created_at": c.created_at.unix_timestamp(),
            "timestamp": c.last_activity_at.unix_timestamp(),
            "first_reply_created_at": c.first_reply_created_at.map_or(0, OffsetDateTime::unix_timestamp),
            "unread_count": self.unread_count(c.id),
            "last_non_activity_message": last_non_activity.map(|m| self.message_push(m)),
            "last_activity_at": c.last_activity_at.unix_timestamp(),
            "priority": null,
            "waiting_since": c.waiting_since.map_or(0, OffsetDateTime::unix_timestamp),
            "sla_policy_id": null,
        })
    }

    /// `Conversations::EventDataPresenter#push_data` — what `Conversation#webhook_data` returns.
    fn conversation_push(&self, c: &Conversation) -> Value {
        let contact = self.contact(c.contact_id);
        json!({
            "additional_attributes": c.additional_attributes,
            "can_reply": true,
            "channel": "Channel::Api",
            "contact_inbox": self.contact_inbox(c.contact_inbox_id).map(|ci| self.contact_inbox_raw(ci)),
            "id": c.id,
            "inbox_id": c.inbox_id,
            "messages": self.last_chat_message(c.id).map(|m| vec![self.message_push(m)]).unwrap_or_default(),
            "labels": [],
            "meta": {
                "sender": contact.map(|ct| self.contact_push(ct)),
                "assignee": null,
                "assignee_type": null,
                "team": null,
                "hmac_verified": false,
            },
            "status": c.status,
            "custom_attributes": c.custom_attributes,
            "snoozed_until": null,
            "unread_count": self.unread_count(c.id),
            "first_reply_created_at": c.first_reply_created_at.map(iso),
            "priority": null,
            "waiting_since": c.waiting_since.map_or(0, OffsetDateTime::unix_timestamp),
            "agent_last_seen_at": 0,
            "contact_last_seen_at": 0,
            "last_activity_at": c.last_activity_at.unix_timestamp(),
            "timestamp": c.last_activity_at.unix_timestamp(),
            "created_at": c.created_at.unix_timestamp(),
            "updated_at": c.updated_at.unix_timestamp_nanos() as f64 / 1e9,
        })
    }

    /// The `message_created` webhook body: `Message#webhook_data.merge(event:)`
    /// (`app/models/message.rb`, `app/listeners/webhook_listener.rb`). `message_type` is a STRING
    /// here, `created_at` ISO 8601.
    pub(crate) fn message_webhook(&self, m: &Message, event: &str) -> Value {
        let sender = match m.sender {
            Sender::Agent => self.agent_webhook(),
            Sender::Contact(id) => self
                .contact(id)
                .map_or(Value::Null, |c| self.contact_webhook(c)),
        };
        let mut json = json!({
            "account": self.account_json(),
            "additional_attributes": {},
            "content_attributes": m.content_attributes,
            "content_type": m.content_type,
            "content": m.content,
            "conversation": self.conversation(m.conversation_id).map(|c| self.conversation_push(c)),
            "created_at": iso(m.created_at),
            "id": m.id,
            "inbox": self.inbox_webhook(self.message_inbox_id(m)),
            "message_type": MESSAGE_TYPES[m.message_type as usize],
            "private": m.private,
            "sender": sender,
            "source_id": m.source_id,
            "event": event,
        });
        if let Some(attachments) = self.attachments_json(m.id) {
            json["attachments"] = attachments;
        }
        json
    }
}

/// How Rails renders a time in JSON: `2021-07-23T18:02:48.000Z`.
pub(crate) fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
