//! Okdesk webhooks (Settings → Integrations → Webhooks,
//! <https://help.okdesk.ru/knowledge_base/articles/vebhuki-148>): one `POST` with a JSON body
//! `{"event":{"event_type":"new_comment",…},"issue":{…}}` per event. Ids in webhooks are strings
//! (`"id":"123"`), unlike the API; the parser takes both. Okdesk does not sign webhooks: the
//! secret token in the URL (`/okdesk/webhook/{OKDESK_WEBHOOK_TOKEN}`) is the credential.
//!
//! Issue events the gateway cares about: `new_ticket`, `new_ticket_status`, `new_comment`.
//! Others (`new_assignee`, `new_csat_rate`, `new_files`, `new_deadline`, `ticket_deleted` …)
//! parse as [`EventKind::Other`] and should be acknowledged and skipped.
//!
//! ```
//! use okdesk_api::webhook::{EventKind, WebhookPayload};
//!
//! let body = r#"{"event":{"event_type":"new_comment","author":{"id":"3","first_name":"Иван",
//!   "last_name":"Петров","type":"employee"},"comment":{"id":"77","is_public":true,
//!   "content":"<p>Готово</p>"}},"issue":{"id":"15","title":"Не печатает принтер"}}"#;
//! let p = WebhookPayload::parse(body.as_bytes()).unwrap();
//! assert_eq!(p.kind(), EventKind::NewComment);
//! assert_eq!(p.issue_id(), Some(15));
//! let c = p.comment.unwrap();
//! assert!(c.is_public && c.id == Some(77));
//! assert!(!p.author.unwrap().is_contact());
//! ```

use serde::Serialize;
use serde_json::Value;

use crate::de::{value_bool, value_id, value_string};

/// `new_ticket`: an issue was created.
pub const NEW_TICKET: &str = "new_ticket";
/// `new_ticket_status`: an issue's status changed.
pub const NEW_TICKET_STATUS: &str = "new_ticket_status";
/// `new_comment`: a comment was added to an issue.
pub const NEW_COMMENT: &str = "new_comment";

/// What a webhook is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// [`NEW_TICKET`].
    NewTicket,
    /// [`NEW_TICKET_STATUS`].
    NewTicketStatus,
    /// [`NEW_COMMENT`].
    NewComment,
    /// Anything else: acknowledge and skip.
    Other,
}

/// A body that is not an Okdesk webhook (not JSON, or no `event_type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Okdesk webhook: {0}")]
pub struct WebhookError(pub String);

/// `{"code":"in_progress","name":"В работе"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRef {
    /// The status code.
    pub code: String,
    /// Its display name.
    pub name: Option<String>,
}

/// A person in a webhook: `{"id":"3","first_name":"Иван","last_name":"Петров",
/// "patronymic":"","type":"employee"|"contact"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookPerson {
    /// The person's id.
    pub id: Option<i64>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Patronymic.
    pub patronymic: Option<String>,
    /// `employee` or `contact` (only for authors).
    pub person_type: Option<String>,
}

impl WebhookPerson {
    /// `true` for a contact person (a client: the gateway's own comments come back as such).
    pub fn is_contact(&self) -> bool {
        self.person_type.as_deref() == Some("contact")
    }

    /// `true` for an employee (an engineer).
    pub fn is_employee(&self) -> bool {
        self.person_type.as_deref() == Some("employee")
    }

    /// "First Last" (or whatever parts are present).
    pub fn display_name(&self) -> String {
        [&self.first_name, &self.last_name]
            .iter()
            .filter_map(|p| p.as_deref())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A file attached to the event (`event.attachments[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookAttachment {
    /// The attachment id (download with `GET /issues/{id}/attachments/{attachment_id}`).
    pub id: Option<i64>,
    /// The file name.
    pub file_name: Option<String>,
    /// The size in bytes.
    pub size: Option<i64>,
    /// Visible to clients.
    pub is_public: bool,
}

/// `event.comment`: `{"id":"77","is_public":true,"content":"<p>…</p>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookComment {
    /// The comment id.
    pub id: Option<i64>,
    /// The text, HTML.
    pub content: String,
    /// Visible to the client; `false` is an internal note, never relayed.
    pub is_public: bool,
}

/// The `issue` block, as far as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookIssue {
    /// The issue id.
    pub id: i64,
    /// The title.
    pub title: Option<String>,
    /// The current status.
    pub status: Option<StatusRef>,
    /// The client company (`issue.client.company.id`).
    pub company_id: Option<i64>,
    /// The client contact (`issue.client.contact.id`).
    pub contact_id: Option<i64>,
    /// When the issue was created.
    pub created_at: Option<String>,
}

/// A parsed webhook. `raw` keeps the whole body for logging and fields not modelled here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookPayload {
    /// `event.event_type`, as sent.
    pub event_type: String,
    /// The issue the event is about.
    pub issue: Option<WebhookIssue>,
    /// `event.new_status` (for `new_ticket_status`; falls back to `issue.status`).
    pub new_status: Option<StatusRef>,
    /// `event.old_status`.
    pub old_status: Option<StatusRef>,
    /// `event.comment` (for `new_comment`, and the comment given with a status change).
    pub comment: Option<WebhookComment>,
    /// `event.author`: who did it.
    pub author: Option<WebhookPerson>,
    /// `event.attachments`.
    pub attachments: Vec<WebhookAttachment>,
    /// The body as received.
    pub raw: Value,
}

impl WebhookPayload {
    /// Parses a webhook body.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError(format!("invalid JSON: {e}")))?;
        Self::from_value(v)
    }

    /// Reads an already parsed body.
    pub fn from_value(raw: Value) -> Result<Self, WebhookError> {
        if !raw.is_object() {
            return Err(WebhookError("the body is not a JSON object".into()));
        }
        // `event` is an object; tolerate a bare string or a top-level `event_type` too.
        let event = match raw.get("event") {
            Some(e @ Value::Object(_)) => e.clone(),
            _ => Value::Null,
        };
        let event_type = event
            .get("event_type")
            .and_then(value_string)
            .or_else(|| raw.get("event_type").and_then(value_string))
            .or_else(|| raw.get("event").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| WebhookError("no event.event_type".into()))?;
        let issue = raw.get("issue").and_then(parse_issue).or_else(|| {
            raw.get("issue_id")
                .and_then(value_id)
                .map(|id| WebhookIssue {
                    id,
                    title: None,
                    status: None,
                    company_id: None,
                    contact_id: None,
                    created_at: None,
                })
        });
        let field = |k: &str| event.get(k).filter(|v| !v.is_null());
        let mut new_status = field("new_status").and_then(parse_status);
        if new_status.is_none() && event_type == NEW_TICKET_STATUS {
            new_status = issue.as_ref().and_then(|i| i.status.clone());
        }
        let old_status = field("old_status").and_then(parse_status);
        let comment = field("comment").and_then(parse_comment);
        let author = field("author").and_then(parse_person);
        let attachments = field("attachments")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(parse_attachment).collect())
            .unwrap_or_default();
        Ok(Self {
            event_type,
            issue,
            new_status,
            old_status,
            comment,
            author,
            attachments,
            raw,
        })
    }

    /// The kind of event.
    pub fn kind(&self) -> EventKind {
        match self.event_type.as_str() {
            NEW_TICKET => EventKind::NewTicket,
            NEW_TICKET_STATUS => EventKind::NewTicketStatus,
            NEW_COMMENT => EventKind::NewComment,
            _ => EventKind::Other,
        }
    }

    /// The issue id, when the event is about an issue.
    pub fn issue_id(&self) -> Option<i64> {
        self.issue.as_ref().map(|i| i.id)
    }
}

fn parse_status(v: &Value) -> Option<StatusRef> {
    match v {
        Value::Object(_) => Some(StatusRef {
            code: v.get("code").and_then(value_string)?,
            name: v.get("name").and_then(value_string),
        }),
        Value::String(code) if !code.is_empty() => Some(StatusRef {
            code: code.clone(),
            name: None,
        }),
        _ => None,
    }
}

fn parse_person(v: &Value) -> Option<WebhookPerson> {
    if !v.is_object() {
        return None;
    }
    let s = |k: &str| v.get(k).and_then(value_string);
    let mut person = WebhookPerson {
        id: v.get("id").and_then(value_id),
        first_name: s("first_name"),
        last_name: s("last_name"),
        patronymic: s("patronymic"),
        person_type: s("type"),
    };
    // Some shapes carry only `name` ("Иванов Иван"); keep it as the first name then.
    if person.first_name.is_none() && person.last_name.is_none() {
        person.first_name = s("name");
    }
    Some(person)
}

fn parse_comment(v: &Value) -> Option<WebhookComment> {
    if !v.is_object() {
        return None;
    }
    Some(WebhookComment {
        id: v.get("id").and_then(value_id),
        content: v.get("content").and_then(value_string).unwrap_or_default(),
        is_public: v
            .get("is_public")
            .or_else(|| v.get("public"))
            .and_then(value_bool)
            .unwrap_or(false),
    })
}

fn parse_attachment(v: &Value) -> Option<WebhookAttachment> {
    if !v.is_object() {
        return None;
    }
    Some(WebhookAttachment {
        id: v.get("id").and_then(value_id),
        file_name: v.get("attachment_file_name").and_then(value_string),
        size: v.get("attachment_file_size").and_then(value_id),
        is_public: v.get("is_public").and_then(value_bool).unwrap_or(false),
    })
}

fn parse_issue(v: &Value) -> Option<WebhookIssue> {
    let id = v.get("id").and_then(value_id)?;
    let client = v.get("client");
    let nested = |outer: &str| {
        client
            .and_then(|c| c.get(outer))
            .and_then(|o| o.get("id"))
            .and_then(value_id)
            .or_else(|| v.get(outer).and_then(|o| o.get("id")).and_then(value_id))
            .or_else(|| v.get(format!("{outer}_id")).and_then(value_id))
    };
    Some(WebhookIssue {
        id,
        title: v.get("title").and_then(value_string),
        status: v.get("status").and_then(parse_status),
        company_id: nested("company"),
        contact_id: nested("contact"),
        created_at: v.get("created_at").and_then(value_string),
    })
}
