//! Okdesk for the gateway: a client for the REST API v1 ([`OkdeskClient`]), the webhook
//! payloads ([`webhook`]) and the HTML ↔ text helpers ([`text_to_html`], [`html_to_text`]).
//!
//! API reference: <https://okdesk.ru/apidoc> (English: <https://okdesk.com/apidoc>). Every
//! request carries the `api_token` query parameter; the base URL is
//! `https://<account>.okdesk.ru/api/v1` (`OKDESK_API_URL`). What each shape rests on — the docs,
//! public clients, or nothing — is written down in `docs/okdesk-api.md` of this repository.

#![warn(missing_docs)]

mod client;
mod de;
mod error;
mod html;
mod types;
pub mod webhook;

pub use client::OkdeskClient;
pub use error::{OkdeskError, error_message};
pub use html::{html_to_text, text_to_html};
pub use types::{
    Attachment, AttachmentInfo, CodeName, Comment, CommentAuthor, Company, Contact,
    CustomParameter, IdName, Issue, IssueStatus, NewComment, NewContact, NewIssue,
};
pub use webhook::{EventKind, WebhookPayload};
