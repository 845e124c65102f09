//! The JSON envelope around every NATS message body, and the typed payloads it carries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crm::{Contact, Deletion, Lead};
use crate::message::{InboundMessage, OutboundMessage};
use crate::subject::{IdempotencyKey, Subject};

/// The system an event comes from (or a command is aimed at); lower case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// VK (vk.com) community messages: `vk`.
    Vk,
    /// Telegram: `telegram`.
    Telegram,
    /// Chatwoot, the agents' helpdesk: `chatwoot`.
    Chatwoot,
    /// Okdesk helpdesk: `okdesk`.
    Okdesk,
    /// amoCRM: `amocrm`.
    Amocrm,
    /// Our own messenger (messenger-api): `messenger`.
    Messenger,
}

impl Source {
    /// The wire name, as used in subjects and in `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Vk => "vk",
            Source::Telegram => "telegram",
            Source::Chatwoot => "chatwoot",
            Source::Okdesk => "okdesk",
            Source::Amocrm => "amocrm",
            Source::Messenger => "messenger",
        }
    }
}

/// Facts that happened upstream, published to `events.<source>.<type>`.
/// The wire name of each variant is written once, here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A customer wrote to us (VK community message, Telegram message …).
    #[serde(rename = "message.received")]
    MessageReceived(InboundMessage),
    /// A user of our own messenger posted a message in a chat (source `messenger`); the same
    /// normalized shape as a message received from another messenger: `conversation.id` is
    /// the chat id, `sender.id` the user id, a voice message is an `audio` attachment whose
    /// `url` is the messenger's `/api/files/{id}` path.
    #[serde(rename = "message.posted")]
    MessagePosted(InboundMessage),
    /// A lead was created in the CRM (source `amocrm`).
    #[serde(rename = "lead.created")]
    LeadCreated(Lead),
    /// A lead's fields (name, budget, responsible user, custom fields …) changed.
    #[serde(rename = "lead.updated")]
    LeadUpdated(Lead),
    /// A lead moved to another pipeline stage (`previous_status_id` → `status_id`).
    #[serde(rename = "lead.status_changed")]
    LeadStatusChanged(Lead),
    /// A lead was deleted in the CRM.
    #[serde(rename = "lead.deleted")]
    LeadDeleted(Deletion),
    /// A contact was created in the CRM.
    #[serde(rename = "contact.created")]
    ContactCreated(Contact),
    /// A contact changed.
    #[serde(rename = "contact.updated")]
    ContactUpdated(Contact),
    /// A contact was deleted in the CRM.
    #[serde(rename = "contact.deleted")]
    ContactDeleted(Deletion),
}

impl Event {
    /// Every wire name this build knows; anything else is an unknown type to skip.
    pub const TYPES: &'static [&'static str] = &[
        "message.received",
        "message.posted",
        "lead.created",
        "lead.updated",
        "lead.status_changed",
        "lead.deleted",
        "contact.created",
        "contact.updated",
        "contact.deleted",
    ];

    /// The wire name of this event (`type` in the envelope).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::MessageReceived(_) => "message.received",
            Event::MessagePosted(_) => "message.posted",
            Event::LeadCreated(_) => "lead.created",
            Event::LeadUpdated(_) => "lead.updated",
            Event::LeadStatusChanged(_) => "lead.status_changed",
            Event::LeadDeleted(_) => "lead.deleted",
            Event::ContactCreated(_) => "contact.created",
            Event::ContactUpdated(_) => "contact.updated",
            Event::ContactDeleted(_) => "contact.deleted",
        }
    }
}

/// Requests to act upstream, published to `cmd.<type>`; the type starts with the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Command {
    /// Send a message to a VK peer through `messages.send`.
    #[serde(rename = "vk.message.send")]
    VkMessageSend(OutboundMessage),
}

impl Command {
    /// Every wire name this build knows.
    pub const TYPES: &'static [&'static str] = &["vk.message.send"];

    /// The wire name of this command (`type` in the envelope).
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::VkMessageSend(_) => "vk.message.send",
        }
    }
}

/// What an envelope can carry: an [`Event`] or a [`Command`]. Gives the subject and the list
/// of known wire names.
pub trait Payload: Serialize + for<'de> Deserialize<'de> + Clone + std::fmt::Debug {
    /// Known wire names (`type`).
    const TYPES: &'static [&'static str];
    /// The subject an envelope with this payload is published to.
    fn subject(&self, source: Source) -> Subject;
}

impl Payload for Event {
    const TYPES: &'static [&'static str] = Event::TYPES;
    fn subject(&self, source: Source) -> Subject {
        Subject::event(source, self.type_name())
    }
}

impl Payload for Command {
    const TYPES: &'static [&'static str] = Command::TYPES;
    fn subject(&self, _source: Source) -> Subject {
        Subject::command(self.type_name())
    }
}

/// One message on NATS.
///
/// Shape: `{"id","type","source","occurred_at","idempotency_key","traceparent","data"}` where
/// `id` is a UUID v7, `occurred_at` RFC 3339, `traceparent` a W3C trace context
/// (<https://www.w3.org/TR/trace-context/#traceparent-header>) and `type`/`data` the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    /// UUID v7 (time ordered), new for every envelope.
    pub id: Uuid,
    /// `type` and `data`.
    #[serde(flatten)]
    pub payload: P,
    /// The system the fact comes from, or that issued the command.
    pub source: Source,
    /// When it happened upstream.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Same upstream delivery ⇒ same key; used as `Nats-Msg-Id`.
    pub idempotency_key: IdempotencyKey,
    /// W3C `traceparent` of the span that published it, when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Why bytes from NATS are not an envelope this build can act on.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A well-formed envelope of a type this build does not know: skip it and log it.
    #[error("unknown envelope type `{0}`")]
    UnknownType(String),
    /// Not an envelope at all, or a known type with a broken `data`.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl<P: Payload> Envelope<P> {
    /// A new envelope with a fresh UUID v7 id.
    pub fn new(
        source: Source,
        occurred_at: OffsetDateTime,
        idempotency_key: IdempotencyKey,
        payload: P,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            payload,
            source,
            occurred_at,
            idempotency_key,
            traceparent: None,
        }
    }

    /// The subject this envelope belongs on (without deployment prefix).
    pub fn subject(&self) -> Subject {
        self.payload.subject(self.source)
    }

    /// Serialized JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail: no maps with non-string keys.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a body; an unknown `type` is [`DecodeError::UnknownType`], so that consumers
    /// can skip newer messages instead of treating them as poison. Unknown fields are
    /// ignored (newer producers may add fields).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "type")]
            kind: String,
        }
        let head: Head = serde_json::from_slice(bytes)?;
        if !P::TYPES.contains(&head.kind.as_str()) {
            return Err(DecodeError::UnknownType(head.kind));
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}
