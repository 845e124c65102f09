//! A typed client for the parts of the Chatwoot Application API the gateway uses (contacts,
//! conversations, messages with files, and the account setup: inboxes, webhooks), and the
//! `message_created` webhook payload.
//!
//! API reference: <https://developers.chatwoot.com/api-reference/introduction> (Application
//! APIs, authenticated with the `api_access_token` header of an agent or bot).
//! Webhooks: <https://www.chatwoot.com/hc/user-guide/articles/1677693021-how-to-use-webhooks>.

#![warn(missing_docs)]

mod admin;
mod client;
pub mod webhook;

pub use admin::{CONVERSATIONS_PER_PAGE, ContactDetails, ContactInboxRef, Inbox, Webhook};
pub use client::{
    Attachment, CONTACTS_PER_PAGE, ChatwootClient, ChatwootError, Contact, ContactInbox,
    Conversation, ConversationMeta, MESSAGES_PER_PAGE, Message, Profile, Upload,
};

/// Chatwoot's `message_type`: a string in webhook payloads, a number inside
/// `conversation.messages` and in API list responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Written by the contact (customer), or posted on their behalf: `"incoming"` / `0`.
    Incoming,
    /// Written by an agent or a bot: `"outgoing"` / `1`.
    Outgoing,
    /// A system note such as a status change or assignment: `"activity"` / `2`.
    Activity,
    /// A template message: `"template"` / `3`.
    Template,
}

impl MessageType {
    /// From either wire form: `"outgoing"` or `1`.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::String(s) => match s.as_str() {
                "incoming" => Some(Self::Incoming),
                "outgoing" => Some(Self::Outgoing),
                "activity" => Some(Self::Activity),
                "template" => Some(Self::Template),
                _ => None,
            },
            serde_json::Value::Number(n) => match n.as_i64()? {
                0 => Some(Self::Incoming),
                1 => Some(Self::Outgoing),
                2 => Some(Self::Activity),
                3 => Some(Self::Template),
                _ => None,
            },
            _ => None,
        }
    }

    /// The string form the API takes when creating a message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incoming => "incoming",
            Self::Outgoing => "outgoing",
            Self::Activity => "activity",
            Self::Template => "template",
        }
    }
}
