//! Normalized service-desk records (Okdesk today) and the requests the messenger side makes of
//! the service desk: registering a person as a contact, opening an issue, adding a comment, and
//! the request/reply look-ups (`rpc.okdesk.*`) a person waits for.
//!
//! The shapes are the gateway's, not Okdesk's: ids are the service desk's own numbers, statuses
//! keep the desk's open-ended `code` beside its display `name`, comment text is plain text (the
//! bridge converts to and from Okdesk's HTML), phones are E.164.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who asked, on the messenger side: where answers and notifications go back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// `telegram` today.
    pub system: String,
    /// The bot (Telegram bot id) that talks to the person.
    pub bot_id: i64,
    /// The person's user id there (Telegram user id = private chat id).
    pub user_id: i64,
}

/// A company in the service desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// The desk's company id.
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// An issue status: the desk's code (`opened`, `in_progress`, `delayed`, `completed`,
/// `closed`, or an account's own) and its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueStatus {
    /// Status code, an open set.
    pub code: String,
    /// Display name as the desk calls it (e.g. «Открыта»); the code when unknown.
    pub name: String,
}

/// An issue as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The desk's issue id (Okdesk shows it as the issue number).
    pub id: i64,
    /// Title.
    pub title: String,
    /// Current status.
    pub status: IssueStatus,
    /// Web link to the issue in the desk.
    pub url: String,
    /// The contact the issue belongs to, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<i64>,
    /// The company, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<i64>,
    /// When it was created.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
}

/// `cmd.okdesk.contact.register`: find the person's contact by phone, or create it (under a
/// company when `company_id` is set). Answered with `events.okdesk.contact.registered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRegistration {
    /// Who registers.
    pub requester: Requester,
    /// Last, first and middle name as the person typed them.
    pub full_name: String,
    /// Phone in E.164, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The confirmed company, for an employee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<Company>,
}

/// `events.okdesk.contact.registered`: the person is contact `contact_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRegistered {
    /// Who registered.
    pub requester: Requester,
    /// The desk's contact id.
    pub contact_id: i64,
    /// The company, for an employee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<Company>,
    /// `false` when an existing contact with that phone was found.
    pub created: bool,
}

/// `cmd.okdesk.issue.create`: open an issue for a registered person. Created once however
/// often the command is delivered (the envelope's idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRequest {
    /// Who asked.
    pub requester: Requester,
    /// Their contact.
    pub contact_id: i64,
    /// Their company, for an employee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<i64>,
    /// Short title (≤ 80 characters, cut at a word boundary).
    pub title: String,
    /// The person's message, plain text.
    pub description: String,
}

/// `events.okdesk.issue.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueCreated {
    /// The issue.
    pub issue: Issue,
    /// Who asked, when it was opened from the messenger (absent for issues opened in the desk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
}

/// `events.okdesk.issue.status_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueStatusChanged {
    /// The issue, with its new status.
    pub issue: Issue,
    /// The status before, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_status: Option<IssueStatus>,
}

/// A file attached to a comment, carried inline (base64): the desk side cannot reach the
/// messenger's file storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileData {
    /// File name.
    pub name: String,
    /// MIME type.
    pub mime: String,
    /// The bytes, standard base64.
    pub base64: String,
}

/// `cmd.okdesk.comment.create`: a public comment by the person on their issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRequest {
    /// Who writes.
    pub requester: Requester,
    /// Their contact (the comment's author).
    pub contact_id: i64,
    /// The issue.
    pub issue_id: i64,
    /// Plain text (may be empty when only files are attached).
    pub text: String,
    /// Files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileData>,
}

/// `events.okdesk.comment.created`: a **public** comment on an issue (private ones never
/// leave the desk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentCreated {
    /// The issue.
    pub issue: Issue,
    /// The desk's comment id.
    pub comment_id: i64,
    /// Plain text (converted from the desk's HTML).
    pub text: String,
    /// Who wrote it, as the desk names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `true` when the issue's own contact wrote it (the person's own comment, not to be
    /// echoed back to them).
    #[serde(default)]
    pub by_contact: bool,
}

/// `rpc.okdesk.company.find_by_inn` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindCompanyByInn {
    /// A checked INN (10 or 12 digits).
    pub inn: String,
}

/// `rpc.okdesk.issue.list` request: the issues of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueListRequest {
    /// The contact.
    pub contact_id: i64,
    /// At most this many, newest first.
    pub limit: u32,
}

/// `rpc.okdesk.issue.get` request: one issue, only when it belongs to `contact_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueGetRequest {
    /// The issue.
    pub issue_id: i64,
    /// Who asks: an issue of another contact is `not_found`.
    pub contact_id: i64,
}

/// Why a look-up failed, for the person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcErrorKind {
    /// The desk does not answer (5xx, timeout): try later.
    Unavailable,
    /// No such thing (or not theirs).
    NotFound,
    /// The desk refused (e.g. a contact-person API key may not search companies).
    Forbidden,
    /// The request itself is wrong.
    Invalid,
}

/// The answer of a `rpc.okdesk.*` look-up: `{"ok": …}` or `{"error": {"kind", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcReply<T> {
    /// The answer.
    Ok(T),
    /// Why there is none.
    Error {
        /// What kind of failure.
        kind: RpcErrorKind,
        /// For the log (never shown to the person as is).
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_replies_are_tagged_ok_or_error() {
        let ok: RpcReply<Option<Company>> = RpcReply::Ok(Some(Company {
            id: 3,
            name: "ООО «Ромашка»".into(),
        }));
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["ok"]["id"], 3);
        let err: RpcReply<Option<Company>> =
            serde_json::from_str(r#"{"error":{"kind":"unavailable","message":"Okdesk 503"}}"#)
                .unwrap();
        assert!(matches!(
            err,
            RpcReply::Error {
                kind: RpcErrorKind::Unavailable,
                ..
            }
        ));
    }
}
