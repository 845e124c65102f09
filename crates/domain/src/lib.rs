//! The event contract shared by every Messenger Gateway service.
//!
//! Everything that crosses NATS is defined here: the [`Envelope`] that wraps every message
//! body, the typed [`Event`]s and [`Command`]s it can carry, the normalized message shapes
//! ([`InboundMessage`], [`OutboundMessage`]), the normalized CRM records ([`Lead`],
//! [`Contact`], [`Deletion`]), the service-desk records and requests ([`Issue`],
//! [`IssueRequest`], [`CommentRequest`] …), [`Subject`] constructors and
//! [`IdempotencyKey`]s. The crate does no I/O and depends only on serde, uuid, time and
//! thiserror, so every service can use it cheaply.
//!
//! Wire format (see `shared/DESIGN.md`, "Events on NATS"):
//!
//! ```json
//! {"id":"<uuid v7>","type":"message.received","source":"vk","occurred_at":"<RFC 3339>",
//!  "idempotency_key":"vk:<group_id>:<event_id>","traceparent":"<W3C trace context>","data":{…}}
//! ```

#![warn(missing_docs)]

mod crm;
mod envelope;
mod helpdesk;
mod message;
mod subject;

pub use crm::{Contact, CustomField, CustomFieldValue, Deletion, Lead, LinkedContact, Utm};
pub use envelope::{Command, DecodeError, Envelope, Event, Payload, Source};
pub use helpdesk::{
    CommentCreated, CommentRequest, Company, ContactRegistered, ContactRegistration, FileData,
    FindCompanyByInn, Issue, IssueCreated, IssueGetRequest, IssueListRequest, IssueRequest,
    IssueStatus, IssueStatusChanged, Requester, RpcErrorKind, RpcReply,
};
pub use message::{
    Attachment, AttachmentKind, ButtonPress, ConversationKind, ConversationRef, InboundMessage,
    MessageOrigin, OutboundMessage, Sender, TextSpan,
};
pub use subject::{IdempotencyKey, Subject};
