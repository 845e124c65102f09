//! What the Okdesk API v1 answers and takes (<https://okdesk.ru/apidoc>). Readers are tolerant:
//! unknown fields are ignored, everything but the id is optional, ids and booleans are accepted
//! as numbers or strings. See `docs/okdesk-api.md` for the source of each field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::de;

/// `{"code":"opened","name":"Открыта"}`: how Okdesk names statuses, types and priorities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeName {
    /// The stable code (`opened`, `in_progress`, `service`, `normal` …).
    #[serde(deserialize_with = "de::string")]
    pub code: String,
    /// The display name in the account's language (`Открыта`).
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
}

/// `{"id":3020,"name":"Егор Егоров"}`: a linked person (contact, assignee).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdName {
    /// The person's id.
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// The full name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
}

/// One additional attribute (`parameters[]`) of a company or issue:
/// `{"code":"inn","name":"ИНН","field_type":"ftstring","value":"7707083893"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomParameter {
    /// The attribute code set in the account (the INN one is `OKDESK_INN_PARAMETER_CODE`).
    #[serde(deserialize_with = "de::string")]
    pub code: String,
    /// The display name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// `ftstring`, `ftdate`, `ftdatetime`, `ftcheckbox`, `ftselect`, `ftmultiselect`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub field_type: Option<String>,
    /// The value: a string, bool or list, depending on the type.
    #[serde(default)]
    pub value: Value,
}

/// A company (`GET /api/v1/companies/list`,
/// <https://okdesk.ru/apidoc#!metod-polucheniya-spiska-kompanij-po-parametram-poluchenie-spiska-po-parametram>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// The company id.
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// The name.
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    /// The additional name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub additional_name: Option<String>,
    /// Contact phone of the company.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub phone: Option<String>,
    /// Contact e-mail of the company.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub email: Option<String>,
    /// `false` for archived companies.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// Additional attributes, among them the INN.
    #[serde(default, deserialize_with = "de::list")]
    pub parameters: Vec<CustomParameter>,
}

impl Company {
    /// The value of the additional attribute `code`, as text (`None` when absent or empty).
    pub fn parameter(&self, code: &str) -> Option<String> {
        self.parameters
            .iter()
            .find(|p| p.code == code)
            .and_then(|p| de::value_string(&p.value))
    }
}

/// A contact person (`GET /api/v1/contacts/`, <https://okdesk.ru/apidoc>, «Контакты»).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The contact id.
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// The full name as Okdesk shows it.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// First name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub patronymic: Option<String>,
    /// Phone.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub phone: Option<String>,
    /// Mobile phone.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub mobile_phone: Option<String>,
    /// E-mail.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub email: Option<String>,
    /// The company the contact belongs to.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub company_id: Option<i64>,
}

/// What `POST /api/v1/contacts/` takes, sent as `{"contact":{…}}`
/// (<https://okdesk.ru/apidoc>, «Контакты / Создание контакта»). `first_name` and `last_name` are
/// required by Okdesk; `None` fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewContact {
    /// First name (required).
    pub first_name: String,
    /// Last name (required).
    pub last_name: String,
    /// Patronymic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patronymic: Option<String>,
    /// Phone, e.g. `+79161234567`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Mobile phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The company the contact belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<i64>,
    /// A note on the contact card (e.g. where it came from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An issue (`GET /api/v1/issues/{id}`, <https://okdesk.ru/apidoc>,
/// «Заявки / Получение заявки»). `POST /api/v1/issues/`
/// may answer only `{"id":N}`, so everything but `id` is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The issue id (its number in the web UI).
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// The title.
    #[serde(default, deserialize_with = "de::string")]
    pub title: String,
    /// The description (HTML).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub description: Option<String>,
    /// The current status.
    #[serde(default)]
    pub status: Option<CodeName>,
    /// The type (`service`, `incident` …).
    #[serde(default, rename = "type")]
    pub issue_type: Option<CodeName>,
    /// The priority (`low`, `normal`, `high` …).
    #[serde(default)]
    pub priority: Option<CodeName>,
    /// When it was created (ISO 8601 with offset).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub created_at: Option<String>,
    /// When it last changed.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub updated_at: Option<String>,
    /// When it was solved.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub completed_at: Option<String>,
    /// The client company.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub company_id: Option<i64>,
    /// The client contact person.
    #[serde(default)]
    pub contact: Option<IdName>,
    /// The responsible employee.
    #[serde(default)]
    pub assignee: Option<IdName>,
}

/// What `POST /api/v1/issues/` takes, sent as `{"issue":{…}}`
/// (<https://okdesk.ru/apidoc#!sozdanie-zayavki-sozdanie-zayavki>). Without `issue_type` and
/// `priority` Okdesk uses the account's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewIssue {
    /// The title (required).
    pub title: String,
    /// The description (HTML; see [`crate::text_to_html`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The client contact person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<i64>,
    /// The client company.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<i64>,
    /// The type code (`service`, `incident`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub issue_type: Option<String>,
    /// The priority code (`low`, `normal`, `high`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// One status of the account's workflow (`GET /api/v1/issues/statuses`). Okdesk's built-in
/// codes are `opened`, `in_progress`, `delayed`, `completed` and `closed`; accounts add their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueStatus {
    /// The status id.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<i64>,
    /// The code.
    #[serde(deserialize_with = "de::string")]
    pub code: String,
    /// The display name.
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    /// The colour in the UI (`#5cb85c`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub color: Option<String>,
}

/// Who wrote a comment: `{"id":10,"name":"Иванов Сергей Петрович","type":"employee"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentAuthor {
    /// The person's id.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<i64>,
    /// The full name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// `employee` or `contact`.
    #[serde(default, rename = "type", deserialize_with = "de::opt_string")]
    pub author_type: Option<String>,
}

impl CommentAuthor {
    /// `true` when a contact person (a client) wrote it, e.g. the gateway itself.
    pub fn is_contact(&self) -> bool {
        self.author_type.as_deref() == Some("contact")
    }
}

/// A file attached to an issue or comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// The attachment id.
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// The file name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub attachment_file_name: Option<String>,
    /// The size in bytes.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub attachment_file_size: Option<i64>,
    /// Visible to clients.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub is_public: Option<bool>,
    /// The description.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub description: Option<String>,
}

/// A comment (`GET /api/v1/issues/{id}/comments`,
/// <https://okdesk.ru/apidoc#!kommentarii-poluchenie-spiska-kommentariev>).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The comment id.
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// The text, as HTML (see [`crate::html_to_text`]).
    #[serde(default, deserialize_with = "de::string")]
    pub content: String,
    /// Visible to the client (`false`: an internal note).
    #[serde(default, deserialize_with = "de::flex_bool")]
    pub public: bool,
    /// When it was published.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub published_at: Option<String>,
    /// Who wrote it.
    #[serde(default)]
    pub author: Option<CommentAuthor>,
    /// Attached files.
    #[serde(default, deserialize_with = "de::list")]
    pub attachments: Vec<AttachmentInfo>,
}

/// A comment to post (`POST /api/v1/issues/{id}/comments`,
/// <https://okdesk.ru/apidoc#!kommentarii-dobavlenie-kommentariya>). The gateway always writes
/// on behalf of a contact person (`author_type: "contact"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewComment {
    /// The text as HTML (Okdesk renders it; use [`crate::text_to_html`] for plain text).
    pub content_html: String,
    /// The contact person the comment is from.
    pub author_id: i64,
    /// Visible to the client (and to the engineer as a client message).
    pub public: bool,
    /// Files; when there are any the comment is sent as `multipart/form-data`.
    pub attachments: Vec<Attachment>,
}

/// A file to attach to a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// The file name shown in Okdesk.
    pub file_name: String,
    /// The MIME type, e.g. `image/jpeg`.
    pub mime: String,
    /// The content.
    pub bytes: Vec<u8>,
}
