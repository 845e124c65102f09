//! JSON shapes of the API: camelCase, as ASP.NET Core emits them and the existing clients read
//! them. Times are RFC 3339 UTC.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Role;
use crate::store::{ChatRow, InviteRow, MemberRow, MessageRow, UserRow};

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    /// The user id.
    pub id: Uuid,
    /// Phone number, E.164.
    #[schema(example = "+79991234567")]
    pub phone: String,
    /// Name shown to other users.
    pub display_name: String,
    /// `User` or `Admin`.
    pub role: Role,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the user last left the hub; `null` until then.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_seen_at: Option<OffsetDateTime>,
}

impl From<UserRow> for UserDto {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            phone: u.phone,
            display_name: u.display_name,
            role: Role::parse(&u.role),
            created_at: u.created_at,
            last_seen_at: u.last_seen_at,
        }
    }
}

/// `POST /api/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// E.164.
    #[schema(example = "+79991234567")]
    pub phone: String,
    /// 8 to 128 characters.
    pub password: String,
    /// 1 to 64 characters.
    pub display_name: String,
    /// An invite code from an administrator.
    pub invite_code: String,
}

/// `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// Phone number, E.164 (spaces, dashes and parentheses are ignored).
    #[schema(example = "+79991234567")]
    pub phone: String,
    /// The password.
    pub password: String,
}

/// `POST /api/auth/refresh` and `POST /api/auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token from the last register, login or refresh.
    pub refresh_token: String,
}

/// `POST /api/auth/logout`: the refresh token of this device; none logs out everywhere.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    /// This device's refresh token; absent to log out everywhere.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Tokens after register, login or refresh.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    /// JWT (HS256) for `Authorization: Bearer` and the hub's `access_token`.
    pub access_token: String,
    /// Opaque; exchange it once at `/api/auth/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The account the tokens belong to.
    pub user: UserDto,
}

/// A voice message's file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileDto {
    /// The file id.
    pub id: Uuid,
    /// `/api/files/{id}` (members only; Range requests supported).
    pub url: String,
    /// MIME type, as uploaded.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
}

/// A message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    /// Increasing: a newer message has a larger id (the pagination cursor).
    pub id: i64,
    /// The chat it is in.
    pub chat_id: Uuid,
    /// None when the author's account was deleted.
    pub sender_id: Option<Uuid>,
    /// The author's display name; `null` when the account was deleted.
    pub sender_name: Option<String>,
    /// `text` or `audio`.
    #[serde(rename = "type")]
    #[schema(example = "text")]
    pub kind: String,
    /// The text of a `text` message; `null` for `audio`.
    pub text: Option<String>,
    /// The voice message's file, for `audio`.
    pub file: Option<FileDto>,
    /// Duration of a voice message in milliseconds, when the client said.
    pub duration_ms: Option<i32>,
    /// The client's idempotency key, when it sent one.
    pub client_message_id: Option<String>,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<MessageRow> for MessageDto {
    fn from(m: MessageRow) -> Self {
        let file = m.file_id.map(|id| FileDto {
            id,
            url: format!("/api/files/{id}"),
            content_type: m.file_content_type.clone().unwrap_or_default(),
            size_bytes: m.file_size.unwrap_or_default(),
        });
        Self {
            id: m.id,
            chat_id: m.chat_id,
            sender_id: m.sender_id,
            sender_name: m.sender_name,
            kind: m.kind,
            text: m.text,
            file,
            duration_ms: m.duration_ms,
            client_message_id: m.client_message_id,
            created_at: m.created_at,
        }
    }
}

/// A chat member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDto {
    /// The member's user id.
    pub id: Uuid,
    /// The member's display name.
    pub display_name: String,
    /// This member's read receipt (0: nothing read).
    pub last_read_message_id: i64,
}

impl From<MemberRow> for MemberDto {
    fn from(m: MemberRow) -> Self {
        Self {
            id: m.user_id,
            display_name: m.display_name,
            last_read_message_id: m.last_read_message_id,
        }
    }
}

/// A chat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatDto {
    /// The chat id.
    pub id: Uuid,
    /// `private` or `group`.
    #[serde(rename = "type")]
    #[schema(example = "group")]
    pub kind: String,
    /// The group's title; for a private chat the other member's name.
    pub title: Option<String>,
    /// The group's owner (None for private chats).
    pub owner_id: Option<Uuid>,
    /// When the chat was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Every member, by join time.
    pub members: Vec<MemberDto>,
    /// The newest message; `null` for an empty chat.
    pub last_message: Option<MessageDto>,
    /// Messages of others after the caller's read receipt.
    pub unread_count: i64,
}

impl ChatDto {
    /// A chat as `viewer` sees it.
    pub fn build(
        chat: ChatRow,
        members: Vec<MemberRow>,
        last_message: Option<MessageDto>,
        unread_count: i64,
        viewer: Uuid,
    ) -> Self {
        let title = match (&chat.title, chat.kind.as_str()) {
            (Some(t), _) => Some(t.clone()),
            (None, "private") => members
                .iter()
                .find(|m| m.user_id != viewer)
                .map(|m| m.display_name.clone()),
            _ => None,
        };
        Self {
            id: chat.id,
            kind: chat.kind,
            title,
            owner_id: chat.owner_id,
            created_at: chat.created_at,
            members: members.into_iter().map(MemberDto::from).collect(),
            last_message,
            unread_count,
        }
    }
}

/// `POST /api/chats`: `{"type":"private","userId":…}` or
/// `{"type":"group","title":…,"memberIds":[…]}`. Without `type`, a `userId` means private.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateChatRequest {
    /// `private` or `group`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The other user of a private chat.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// The title of a group, 1 to 100 characters.
    #[serde(default)]
    pub title: Option<String>,
    /// Members of a group besides the caller, who owns it.
    #[serde(default)]
    pub member_ids: Vec<Uuid>,
}

/// `POST /api/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// The chat to post in; the caller must be a member.
    pub chat_id: Uuid,
    /// 1 to 4000 characters.
    pub text: String,
    /// Idempotency key (or the `Idempotency-Key` header): a retried send with the same key
    /// stores one message and answers with it.
    #[serde(default)]
    pub client_message_id: Option<String>,
}

/// `GET /api/messages/{chatId}`: newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Messages, newest first.
    pub items: Vec<MessageDto>,
    /// Pass as `before` for the next (older) page; None at the beginning of the chat.
    pub next_before: Option<i64>,
}

/// Query of `GET /api/messages/{chatId}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    /// Only messages with a smaller id.
    pub before: Option<i64>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
}

/// `POST /api/chats/{id}/read`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadRequest {
    /// The newest message read; none: everything up to now.
    #[serde(default)]
    pub message_id: Option<i64>,
}

/// A read receipt (answer of `POST /api/chats/{id}/read` and the hub's `MessageRead`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceiptDto {
    /// The chat.
    pub chat_id: Uuid,
    /// The member who read.
    pub user_id: Uuid,
    /// The member's receipt now: the newest message id read.
    pub message_id: i64,
    /// When the receipt was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
}

/// An invite code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteDto {
    /// The code to register with.
    pub code: String,
    /// Registrations the code allows.
    pub max_uses: i32,
    /// Registrations made with it so far.
    pub uses: i32,
    /// When it stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<InviteRow> for InviteDto {
    fn from(i: InviteRow) -> Self {
        Self {
            code: i.code,
            max_uses: i.max_uses,
            uses: i.uses,
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

/// `POST /api/admin/invites`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteRequest {
    /// Registrations the code allows (default 1, at most 10 000).
    #[serde(default)]
    pub max_uses: Option<i32>,
    /// Hours until it expires (default 72, at most a year).
    #[serde(default)]
    pub expires_in_hours: Option<i64>,
}

/// Query of `GET /api/admin/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct UsersQuery {
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// Users to skip, not negative (default 0).
    pub offset: Option<i64>,
}

/// The error body of every 4xx/5xx.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people (`internal error` for a 500).
    pub error: String,
    /// Per-field problems, when there are several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// The request's id (as in `X-Request-Id`), on a 5xx: quote it to the operator.
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `POST /hubs/chat/negotiate` (SignalR negotiate protocol, version 1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NegotiateResponse {
    /// The negotiate version answered: 1 when the client asked for 1 or more, else 0.
    pub negotiate_version: u32,
    /// Version 1: the connection id; version 0: the connection token, which the client sends as
    /// `id`.
    pub connection_id: String,
    /// Version 1: the token the client sends as `id` when it connects (signed, bound to the
    /// user, valid 5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_token: Option<String>,
    /// Only WebSockets with text frames.
    pub available_transports: Vec<TransportDto>,
}

/// One transport of the negotiate answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportDto {
    /// `WebSockets`.
    pub transport: String,
    /// `Text` (the JSON hub protocol).
    pub transfer_formats: Vec<String>,
}
