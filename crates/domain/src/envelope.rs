//! The JSON envelope around every NATS message body, and the typed payloads it carries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crm::{Contact, Deletion, Lead};
use crate::helpdesk::{
    CommentCreated, CommentRequest, ContactRegistered, ContactRegistration, IssueCreated,
    IssueRequest, IssueStatusChanged,
};
use crate::message::{ButtonPress, InboundMessage, OutboundMessage};
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

/// Declares a payload enum from one table, so that each variant's wire name is written once.
///
/// ```text
/// wire_enum! {
///     /// Docs of the enum.
///     pub enum Name {
///         /// Docs of the variant.
///         Variant(VARIANT = "wire.name") => PayloadType,
///     }
/// }
/// ```
///
/// expands to the enum, serialized adjacently tagged (`{"type": "wire.name", "data": …}`,
/// serde `tag = "type", content = "data"`, each variant renamed to its wire name, the given
/// attributes and doc comments passed through), plus a `Name::VARIANT` constant per wire name (for subject filters), `Name::TYPES` (every wire name, in table
/// order) and `Name::type_name()`.
macro_rules! wire_enum {
    (
        $(#[$enum_meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$meta:meta])*
                $variant:ident($const:ident = $wire:literal) => $payload:ty
            ),+ $(,)?
        }
    ) => {
        $(#[$enum_meta])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(tag = "type", content = "data")]
        $vis enum $name {
            $(
                $(#[$meta])*
                #[serde(rename = $wire)]
                $variant($payload),
            )+
        }

        impl $name {
            $(
                #[doc = concat!("Wire name of [`", stringify!($name), "::", stringify!($variant), "`]: `", $wire, "` (for subject filters).")]
                pub const $const: &'static str = $wire;
            )+

            /// Every wire name this build knows, one per variant; anything else is an unknown
            /// type to skip.
            pub const TYPES: &'static [&'static str] = &[$($wire),+];

            /// The wire name of this payload (`type` in the envelope).
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $wire,)+
                }
            }
        }
    };
}

wire_enum! {
    /// Facts that happened upstream, published to `events.<source>.<type>`.
    /// The wire name of each variant is written once, here.
    pub enum Event {
        /// A customer wrote to us (VK community message, Telegram message …).
        MessageReceived(MESSAGE_RECEIVED = "message.received") => InboundMessage,
        /// A customer changed the text or caption of a message they sent earlier (Telegram
        /// `edited_message`); `message_id` is the edited message's, the content the new one.
        MessageEdited(MESSAGE_EDITED = "message.edited") => InboundMessage,
        /// A person pressed an inline button under a message of the bot (Telegram
        /// `callback_query`, source `telegram`). Named under `message.` so that it shares the
        /// subject filter (`events.telegram.message.*`) and the lane of the person's messages.
        ButtonPressed(BUTTON_PRESSED = "message.button_pressed") => ButtonPress,
        /// An operator wrote in a customer's forum topic of the operators' Telegram group
        /// (source `telegram`): `conversation` is the group with `thread_id` = the topic.
        TopicMessageReceived(TOPIC_MESSAGE_RECEIVED = "topic_message.received") => InboundMessage,
        /// An operator edited a message in a customer's forum topic.
        TopicMessageEdited(TOPIC_MESSAGE_EDITED = "topic_message.edited") => InboundMessage,
        /// A user of our own messenger posted a message in a chat (source `messenger`); the
        /// same normalized shape as a message received from another messenger:
        /// `conversation.id` is the chat id, `sender.id` the user id, a voice message is an
        /// `audio` attachment whose `url` is the messenger's `/api/files/{id}` path.
        MessagePosted(MESSAGE_POSTED = "message.posted") => InboundMessage,
        /// A lead was created in the CRM (source `amocrm`).
        LeadCreated(LEAD_CREATED = "lead.created") => Lead,
        /// A lead's fields (name, budget, responsible user, custom fields …) changed.
        LeadUpdated(LEAD_UPDATED = "lead.updated") => Lead,
        /// A lead moved to another pipeline stage (`previous_status_id` → `status_id`).
        LeadStatusChanged(LEAD_STATUS_CHANGED = "lead.status_changed") => Lead,
        /// A lead was deleted in the CRM.
        LeadDeleted(LEAD_DELETED = "lead.deleted") => Deletion,
        /// A contact was created in the CRM.
        ContactCreated(CONTACT_CREATED = "contact.created") => Contact,
        /// A contact changed.
        ContactUpdated(CONTACT_UPDATED = "contact.updated") => Contact,
        /// A contact was deleted in the CRM.
        ContactDeleted(CONTACT_DELETED = "contact.deleted") => Deletion,
        /// A messenger user is now a service-desk contact (source `okdesk`), the answer to
        /// `cmd.okdesk.contact.register`.
        ContactRegistered(CONTACT_REGISTERED = "contact.registered") => ContactRegistered,
        /// An issue was opened in the service desk (source `okdesk`).
        IssueCreated(ISSUE_CREATED = "issue.created") => IssueCreated,
        /// An issue's status changed.
        IssueStatusChanged(ISSUE_STATUS_CHANGED = "issue.status_changed") => IssueStatusChanged,
        /// A public comment was added to an issue.
        CommentCreated(COMMENT_CREATED = "comment.created") => CommentCreated,
    }
}

impl Event {
    /// The key a consumer keeps this event in order by: events with the same key must be
    /// handled one after another, in the order published; events with different keys may be
    /// handled concurrently.
    ///
    /// - `message.received`, `message.edited`, `message.posted`, `message.button_pressed`:
    ///   `conversation:<conversation.id>` (the
    ///   source-side conversation: VK `peer_id`, Telegram chat id, messenger chat id). The
    ///   event does not carry its source, so equal ids from two sources share a key: they are
    ///   ordered together, which is stricter than needed but never wrong.
    /// - `topic_message.*`: `conversation:<conversation.id>:<thread_id>`: one forum topic
    ///   (one customer) is one lane.
    /// - `lead.*`: `lead:<id>`; `lead.deleted` included, so a delete is ordered with the
    ///   lead's updates.
    /// - `contact.*`: `contact:<id>`, `contact.deleted` included.
    ///
    /// - `contact.registered`: `person:<system>:<bot_id>:<user_id>`, the person's lane.
    /// - `issue.*`, `comment.created`: `issue:<id>`: a status change and a comment reach the
    ///   person in the order the desk made them.
    ///
    /// The prefix keeps keys of different kinds apart (lead 7 ≠ contact 7). `None` would mean
    /// the event needs no order; every event has a key today.
    pub fn ordering_key(&self) -> Option<String> {
        match self {
            Event::MessageReceived(m) | Event::MessageEdited(m) | Event::MessagePosted(m) => {
                Some(format!("conversation:{}", m.conversation.id))
            }
            Event::ButtonPressed(b) => Some(format!("conversation:{}", b.conversation.id)),
            Event::TopicMessageReceived(m) | Event::TopicMessageEdited(m) => Some(format!(
                "conversation:{}:{}",
                m.conversation.id,
                m.conversation.thread_id.as_deref().unwrap_or("-")
            )),
            Event::LeadCreated(l) | Event::LeadUpdated(l) | Event::LeadStatusChanged(l) => {
                Some(format!("lead:{}", l.id))
            }
            Event::LeadDeleted(d) => Some(format!("lead:{}", d.id)),
            Event::ContactCreated(c) | Event::ContactUpdated(c) => {
                Some(format!("contact:{}", c.id))
            }
            Event::ContactDeleted(d) => Some(format!("contact:{}", d.id)),
            Event::ContactRegistered(r) => Some(person_key(&r.requester)),
            Event::IssueCreated(i) => Some(format!("issue:{}", i.issue.id)),
            Event::IssueStatusChanged(i) => Some(format!("issue:{}", i.issue.id)),
            Event::CommentCreated(c) => Some(format!("issue:{}", c.issue.id)),
        }
    }
}

wire_enum! {
    /// Requests to act upstream, published to `cmd.<type>`; the type starts with the target.
    pub enum Command {
        /// Send a message to a VK peer through `messages.send`.
        VkMessageSend(VK_MESSAGE_SEND = "vk.message.send") => OutboundMessage,
        /// Register a messenger user as a service-desk contact (found by phone or created).
        OkdeskContactRegister(OKDESK_CONTACT_REGISTER = "okdesk.contact.register") => ContactRegistration,
        /// Open an issue for a registered person.
        OkdeskIssueCreate(OKDESK_ISSUE_CREATE = "okdesk.issue.create") => IssueRequest,
        /// Add the person's public comment (and files) to their issue.
        OkdeskCommentCreate(OKDESK_COMMENT_CREATE = "okdesk.comment.create") => CommentRequest,
    }
}

/// The ordering key of everything one messenger user asks of the service desk.
fn person_key(r: &crate::Requester) -> String {
    format!("person:{}:{}:{}", r.system, r.bot_id, r.user_id)
}

impl Command {
    /// The key a consumer keeps this command in order by (see [`Event::ordering_key`]).
    ///
    /// - `vk.message.send`: `peer:<conversation.id>`, the VK `peer_id` the message goes to,
    ///   so that all replies to one VK peer are sent in the order they were written.
    /// - `okdesk.*`: `person:<system>:<bot_id>:<user_id>`: what one person asks (register,
    ///   then an issue, then a comment on it) is done in the order asked.
    ///
    /// `None` would mean the command needs no order; every command has a key today.
    pub fn ordering_key(&self) -> Option<String> {
        match self {
            Command::VkMessageSend(out) => Some(format!("peer:{}", out.conversation.id)),
            Command::OkdeskContactRegister(r) => Some(person_key(&r.requester)),
            Command::OkdeskIssueCreate(r) => Some(person_key(&r.requester)),
            Command::OkdeskCommentCreate(r) => Some(person_key(&r.requester)),
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::crm::Utm;
    use crate::message::{ConversationKind, ConversationRef, MessageOrigin, Sender};

    fn at() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn inbound(conversation_id: &str) -> InboundMessage {
        InboundMessage {
            message_id: "1".to_owned(),
            sender: Sender {
                id: "42".to_owned(),
                display_name: None,
                username: None,
                language: None,
            },
            conversation: ConversationRef {
                id: conversation_id.to_owned(),
                kind: ConversationKind::Private,
                thread_id: None,
            },
            text: Some("hi".to_owned()),
            attachments: Vec::new(),
            reply_to: None,
            sent_at: at(),
            formatting: Vec::new(),
        }
    }

    fn lead(id: i64) -> Lead {
        Lead {
            id,
            account_id: Some(1),
            name: None,
            price: None,
            status_id: None,
            pipeline_id: None,
            status: None,
            previous_status_id: None,
            responsible_user_id: None,
            utm: Utm::default(),
            object_price: None,
            commission: None,
            custom_fields: None,
            contacts: Vec::new(),
            tags: Vec::new(),
            created_at: None,
            updated_at: at(),
        }
    }

    fn contact(id: i64) -> Contact {
        Contact {
            id,
            account_id: Some(1),
            name: None,
            first_name: None,
            last_name: None,
            responsible_user_id: None,
            phones: None,
            emails: None,
            custom_fields: None,
            lead_ids: Vec::new(),
            created_at: None,
            updated_at: at(),
        }
    }

    fn deletion(id: i64) -> Deletion {
        Deletion {
            id,
            account_id: None,
            deleted_at: at(),
        }
    }

    fn outbound(peer_id: &str) -> OutboundMessage {
        OutboundMessage {
            conversation: ConversationRef {
                id: peer_id.to_owned(),
                kind: ConversationKind::Private,
                thread_id: None,
            },
            text: Some("hello".to_owned()),
            attachments: Vec::new(),
            origin: MessageOrigin {
                system: "chatwoot".to_owned(),
                account_id: 1,
                conversation_id: 2,
                message_id: 3,
            },
            author: None,
            after_gap: false,
        }
    }

    /// One value of every event variant.
    fn every_event() -> Vec<Event> {
        vec![
            Event::MessageReceived(inbound("2000000001")),
            Event::MessagePosted(inbound("chat-1")),
            Event::MessageEdited(inbound("42")),
            Event::ButtonPressed(button("42")),
            Event::TopicMessageReceived(topic_message("-1001", "12")),
            Event::TopicMessageEdited(topic_message("-1001", "12")),
            Event::LeadCreated(lead(7)),
            Event::LeadUpdated(lead(7)),
            Event::LeadStatusChanged(lead(7)),
            Event::LeadDeleted(deletion(7)),
            Event::ContactCreated(contact(7)),
            Event::ContactUpdated(contact(7)),
            Event::ContactDeleted(deletion(7)),
            Event::ContactRegistered(crate::ContactRegistered {
                requester: requester(),
                contact_id: 11,
                company: None,
                created: true,
            }),
            Event::IssueCreated(crate::IssueCreated {
                issue: issue(5),
                requester: Some(requester()),
            }),
            Event::IssueStatusChanged(crate::IssueStatusChanged {
                issue: issue(5),
                old_status: None,
            }),
            Event::CommentCreated(crate::CommentCreated {
                issue: issue(5),
                comment_id: 9,
                text: "Готово".into(),
                author: Some("Инженер".into()),
                by_contact: false,
            }),
        ]
    }

    fn requester() -> crate::Requester {
        crate::Requester {
            system: "telegram".into(),
            bot_id: 7,
            user_id: 42,
        }
    }

    fn issue(id: i64) -> crate::Issue {
        crate::Issue {
            id,
            title: "Не работает принтер".into(),
            status: crate::IssueStatus {
                code: "opened".into(),
                name: "Открыта".into(),
            },
            url: format!("https://demo.okdesk.ru/issues/{id}"),
            contact_id: Some(11),
            company_id: None,
            created_at: Some(at()),
        }
    }

    fn button(chat: &str) -> ButtonPress {
        ButtonPress {
            sender: inbound(chat).sender,
            conversation: inbound(chat).conversation,
            data: "issue:5".into(),
            callback_id: "4382045912".into(),
            message_id: Some("7".into()),
        }
    }

    fn topic_message(group: &str, thread: &str) -> InboundMessage {
        let mut m = inbound(group);
        m.conversation.kind = ConversationKind::Group;
        m.conversation.thread_id = Some(thread.to_owned());
        m
    }

    #[test]
    fn a_persons_requests_share_a_lane_and_issue_events_are_per_issue() {
        let cmds = every_command();
        let keys: Vec<_> = cmds[1..]
            .iter()
            .map(|c| c.ordering_key().unwrap())
            .collect();
        assert!(keys.iter().all(|k| k == "person:telegram:7:42"), "{keys:?}");
        let events = every_event();
        let issue_keys: Vec<_> = events
            .iter()
            .filter(|e| e.type_name().starts_with("issue.") || e.type_name() == "comment.created")
            .map(|e| e.ordering_key().unwrap())
            .collect();
        assert_eq!(issue_keys, ["issue:5", "issue:5", "issue:5"]);
    }

    #[test]
    fn topic_messages_are_ordered_by_topic() {
        let a = Event::TopicMessageReceived(topic_message("-1001", "12"));
        let b = Event::TopicMessageEdited(topic_message("-1001", "12"));
        let other = Event::TopicMessageReceived(topic_message("-1001", "13"));
        assert_eq!(a.ordering_key().as_deref(), Some("conversation:-1001:12"));
        assert_eq!(
            a.ordering_key(),
            b.ordering_key(),
            "an edit waits for its message"
        );
        assert_ne!(a.ordering_key(), other.ordering_key());
        assert_eq!(
            Event::MessageEdited(inbound("42")).ordering_key(),
            Event::MessageReceived(inbound("42")).ordering_key()
        );
    }

    #[test]
    fn a_button_press_shares_the_lane_and_the_filter_of_the_chats_messages() {
        let press = Event::ButtonPressed(button("42"));
        assert_eq!(
            press.ordering_key(),
            Event::MessageReceived(inbound("42")).ordering_key()
        );
        assert_eq!(
            press.subject(Source::Telegram).as_str(),
            "events.telegram.message.button_pressed"
        );
    }

    /// One value of every command variant.
    fn every_command() -> Vec<Command> {
        vec![
            Command::VkMessageSend(outbound("2000000001")),
            Command::OkdeskContactRegister(crate::ContactRegistration {
                requester: requester(),
                full_name: "Иванов Иван".into(),
                phone: Some("+79001234567".into()),
                company: None,
            }),
            Command::OkdeskIssueCreate(crate::IssueRequest {
                requester: requester(),
                contact_id: 11,
                company_id: None,
                title: "Не работает принтер".into(),
                description: "Не работает принтер в бухгалтерии.".into(),
            }),
            Command::OkdeskCommentCreate(crate::CommentRequest {
                requester: requester(),
                contact_id: 11,
                issue_id: 5,
                text: "Фото ошибки".into(),
                files: Vec::new(),
            }),
        ]
    }

    /// `type_name()` is the serde `type` tag of each sample, the samples cover `types` (each
    /// wire name exactly once), and each sample round-trips.
    fn assert_wire_names<P>(samples: &[P], types: &[&str], type_name: impl Fn(&P) -> &'static str)
    where
        P: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let unique: HashSet<&str> = types.iter().copied().collect();
        assert_eq!(
            unique.len(),
            types.len(),
            "TYPES has a duplicate: {types:?}"
        );
        assert_eq!(
            samples.len(),
            types.len(),
            "the test needs one sample per variant"
        );
        for sample in samples {
            let json = serde_json::to_value(sample).expect("serializes");
            let name = type_name(sample);
            assert_eq!(json["type"], name, "tag of {sample:?}");
            assert!(json.get("data").is_some(), "content of {sample:?}");
            assert_eq!(
                types.iter().filter(|t| **t == name).count(),
                1,
                "`{name}` must be in TYPES exactly once"
            );
            let back: P = serde_json::from_value(json).expect("deserializes");
            assert_eq!(&back, sample);
        }
        let covered: HashSet<&str> = samples.iter().map(&type_name).collect();
        assert_eq!(covered, unique, "every variant has its own wire name");
    }

    #[test]
    fn event_type_name_is_the_serde_tag_and_listed_once() {
        assert_wire_names(&every_event(), Event::TYPES, Event::type_name);
        assert_eq!(<Event as Payload>::TYPES, Event::TYPES);
    }

    #[test]
    fn command_type_name_is_the_serde_tag_and_listed_once() {
        assert_wire_names(&every_command(), Command::TYPES, Command::type_name);
        assert_eq!(<Command as Payload>::TYPES, Command::TYPES);
    }

    #[test]
    fn message_events_are_ordered_by_conversation() {
        let received = Event::MessageReceived(inbound("2000000001"));
        let posted = Event::MessagePosted(inbound("chat-1"));
        assert_eq!(
            received.ordering_key().as_deref(),
            Some("conversation:2000000001")
        );
        assert_eq!(
            posted.ordering_key().as_deref(),
            Some("conversation:chat-1")
        );
        // Another message in the same conversation shares the key, whoever wrote it.
        let mut other = inbound("2000000001");
        other.message_id = "2".to_owned();
        other.sender.id = "43".to_owned();
        assert_eq!(
            Event::MessageReceived(other).ordering_key(),
            received.ordering_key()
        );
    }

    #[test]
    fn lead_events_are_ordered_by_lead_deletion_included() {
        let key = Some("lead:7".to_owned());
        assert_eq!(Event::LeadCreated(lead(7)).ordering_key(), key);
        assert_eq!(Event::LeadUpdated(lead(7)).ordering_key(), key);
        assert_eq!(Event::LeadStatusChanged(lead(7)).ordering_key(), key);
        assert_eq!(Event::LeadDeleted(deletion(7)).ordering_key(), key);
        assert_eq!(
            Event::LeadUpdated(lead(8)).ordering_key().as_deref(),
            Some("lead:8")
        );
    }

    #[test]
    fn contact_events_are_ordered_by_contact_deletion_included() {
        let key = Some("contact:7".to_owned());
        assert_eq!(Event::ContactCreated(contact(7)).ordering_key(), key);
        assert_eq!(Event::ContactUpdated(contact(7)).ordering_key(), key);
        assert_eq!(Event::ContactDeleted(deletion(7)).ordering_key(), key);
    }

    #[test]
    fn keys_of_different_kinds_never_collide() {
        // Same numeric id for a lead, a contact and a conversation: three different keys.
        let keys: HashSet<String> = [
            Event::LeadUpdated(lead(7)),
            Event::LeadDeleted(deletion(7)),
            Event::ContactUpdated(contact(7)),
            Event::ContactDeleted(deletion(7)),
            Event::MessageReceived(inbound("7")),
        ]
        .iter()
        .filter_map(Event::ordering_key)
        .collect();
        assert_eq!(
            keys,
            HashSet::from([
                "lead:7".to_owned(),
                "contact:7".to_owned(),
                "conversation:7".to_owned(),
            ])
        );
        assert_eq!(
            Command::VkMessageSend(outbound("7"))
                .ordering_key()
                .as_deref(),
            Some("peer:7")
        );
    }

    #[test]
    fn vk_message_send_is_ordered_by_peer() {
        let first = Command::VkMessageSend(outbound("2000000001"));
        let mut reply = outbound("2000000001");
        reply.text = Some("second".to_owned());
        reply.origin.message_id = 4;
        reply.origin.conversation_id = 99;
        let reply = Command::VkMessageSend(reply);
        assert_eq!(first.ordering_key().as_deref(), Some("peer:2000000001"));
        // Keyed by the VK peer, not by the helpdesk conversation the agent wrote in.
        assert_eq!(reply.ordering_key(), first.ordering_key());
        assert_eq!(
            Command::VkMessageSend(outbound("123"))
                .ordering_key()
                .as_deref(),
            Some("peer:123")
        );
    }
}
