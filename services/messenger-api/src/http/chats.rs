//! `/api/chats*`: the caller's chats, creating private and group chats, one chat, deleting,
//! read receipts. A chat the caller is not a member of is 404, never 403, so ids don't leak.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::dto::{ChatDto, CreateChatRequest, ErrorBody, MessageDto, ReadReceiptDto, ReadRequest};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, Json, Path};
use crate::messaging;
use crate::store::{NewChat, private_key};

const MAX_TITLE: usize = 100;

/// The caller's chats, most recently active first, with the last message and unread count.
#[utoipa::path(
    get,
    path = "/api/chats",
    tag = "chats",
    responses(
        (status = 200, description = "the caller's chats", body = [ChatDto]),
        (status = 401, description = "no valid access token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ChatDto>>, ApiError> {
    let rows = state.store.list_chats(user.id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let last_ids: Vec<i64> = rows.iter().filter_map(|r| r.last_message_id).collect();
    let mut members: HashMap<Uuid, Vec<_>> = HashMap::new();
    for m in state.store.members(&ids).await? {
        members.entry(m.chat_id).or_default().push(m);
    }
    let mut last: HashMap<i64, MessageDto> = state
        .store
        .messages_by_ids(&last_ids)
        .await?
        .into_iter()
        .map(|m| (m.id, MessageDto::from(m)))
        .collect();
    let chats = rows
        .into_iter()
        .map(|r| {
            let last_message = r.last_message_id.and_then(|id| last.remove(&id));
            ChatDto::build(
                crate::store::ChatRow {
                    id: r.id,
                    kind: r.kind,
                    title: r.title,
                    owner_id: r.owner_id,
                    created_at: r.created_at,
                },
                members.remove(&r.id).unwrap_or_default(),
                last_message,
                r.unread_count,
                user.id,
            )
        })
        .collect();
    Ok(Json(chats))
}

/// Create a private chat with one user (the existing one is returned, 200) or a group with a
/// title and members (the caller owns it).
#[utoipa::path(
    post,
    path = "/api/chats",
    tag = "chats",
    request_body = CreateChatRequest,
    responses(
        (status = 201, description = "created", body = ChatDto),
        (status = 200, description = "the private chat with that user existed already", body = ChatDto),
        (status = 400, description = "invalid request, unknown members (listed in details), or more members than MESSENGER_GROUP_MEMBERS_PER_REQUEST", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "the user of a private chat does not exist", body = ErrorBody),
        (status = 429, description = "the caller's hourly allowance of members added to groups is used up (Retry-After says when to retry)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateChatRequest>,
) -> Result<(StatusCode, Json<ChatDto>), ApiError> {
    let kind = match (req.kind.as_deref(), req.user_id) {
        (Some("private"), _) | (None, Some(_)) => "private",
        (Some("group"), _) | (None, None) => "group",
        (Some(other), _) => {
            return Err(ApiError::invalid(
                format!("unknown chat type `{other}`"),
                json!({ "type": "must be private or group" }),
            ));
        }
    };
    let id = Uuid::now_v7();
    let (chat, created, new_members) = if kind == "private" {
        let other = req.user_id.ok_or_else(|| {
            ApiError::invalid(
                "userId is required for a private chat",
                json!({ "userId": "required" }),
            )
        })?;
        if other == user.id {
            return Err(ApiError::invalid(
                "a private chat needs another user",
                json!({ "userId": "must not be yourself" }),
            ));
        }
        if state.store.existing_users(&[other]).await?.is_empty() {
            return Err(ApiError::NotFound("user"));
        }
        let key = private_key(user.id, other);
        let (chat, created) = state
            .store
            .create_chat(
                id,
                NewChat::Private {
                    a: user.id,
                    b: other,
                    key: &key,
                },
            )
            .await?;
        (chat, created, vec![user.id, other])
    } else {
        let title = req.title.as_deref().map(str::trim).unwrap_or_default();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(ApiError::invalid(
                format!("a group needs a title of 1 to {MAX_TITLE} characters"),
                json!({ "title": "required" }),
            ));
        }
        let wanted: Vec<Uuid> = {
            let mut seen = HashSet::new();
            req.member_ids
                .iter()
                .copied()
                .filter(|m| *m != user.id && seen.insert(*m))
                .collect()
        };
        state.user_limits.check_members_per_request(wanted.len())?;
        if wanted.len() + 1 > state.settings.max_group_members {
            return Err(ApiError::invalid(
                format!(
                    "a group has at most {} members",
                    state.settings.max_group_members
                ),
                json!({ "memberIds": "too many" }),
            ));
        }
        let existing: HashSet<Uuid> = state
            .store
            .existing_users(&wanted)
            .await?
            .into_iter()
            .collect();
        let unknown: Vec<Uuid> = wanted
            .iter()
            .copied()
            .filter(|m| !existing.contains(m))
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::invalid(
                "some members do not exist",
                json!({ "memberIds": unknown }),
            ));
        }
        state
            .user_limits
            .take_members_added(user.id, wanted.len())?;
        let (chat, created) = state
            .store
            .create_chat(
                id,
                NewChat::Group {
                    title,
                    owner: user.id,
                    members: &wanted,
                },
            )
            .await?;
        let mut all = wanted;
        all.push(user.id);
        (chat, created, all)
    };
    if created {
        state.hub.members_added(chat.id, new_members).await;
        tracing::info!(chat = %chat.id, kind, "chat created");
    }
    let members = state.store.members(&[chat.id]).await?;
    // An existing private chat comes with its real last message and unread count.
    let (last, unread) = if created {
        (None, 0)
    } else {
        summary(&state, user.id, chat.id).await?
    };
    let dto = ChatDto::build(chat, members, last, unread, user.id);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(dto)))
}

/// One chat with its members.
#[utoipa::path(
    get,
    path = "/api/chats/{id}",
    tag = "chats",
    params(("id" = Uuid, Path, description = "chat id")),
    responses(
        (status = 200, description = "the chat", body = ChatDto),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "no such chat, or the caller is not a member", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ChatDto>, ApiError> {
    let chat = state
        .store
        .chat_for_member(id, user.id)
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    let members = state.store.members(&[id]).await?;
    let (last, unread) = summary(&state, user.id, id).await?;
    Ok(Json(ChatDto::build(chat, members, last, unread, user.id)))
}

/// The last message of a chat and the caller's unread count in it.
async fn summary(
    state: &AppState,
    user: Uuid,
    chat: Uuid,
) -> Result<(Option<MessageDto>, i64), ApiError> {
    let row = state
        .store
        .list_chats(user)
        .await?
        .into_iter()
        .find(|c| c.id == chat);
    let (unread, last_id) = row.map_or((0, None), |r| (r.unread_count, r.last_message_id));
    let last = match last_id {
        Some(mid) => state
            .store
            .messages_by_ids(&[mid])
            .await?
            .into_iter()
            .next()
            .map(MessageDto::from),
        None => None,
    };
    Ok((last, unread))
}

/// Delete a chat with its messages and files: any member for a private chat, only the owner
/// for a group.
#[utoipa::path(
    delete,
    path = "/api/chats/{id}",
    tag = "chats",
    params(("id" = Uuid, Path, description = "chat id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 403, description = "a group member who is not its owner", body = ErrorBody),
        (status = 404, description = "no such chat, or the caller is not a member", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let chat = state
        .store
        .chat_for_member(id, user.id)
        .await?
        .ok_or(ApiError::NotFound("chat"))?;
    if chat.kind == "group" && chat.owner_id != Some(user.id) {
        return Err(ApiError::Forbidden(
            "only the group's owner may delete it".into(),
        ));
    }
    let files = state.store.delete_chat(id).await?;
    for f in files {
        state.files.remove(f).await;
    }
    state.hub.chat_removed(id).await;
    tracing::info!(chat = %id, "chat deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Read receipt: everything up to `messageId` (default: the newest message) is read. Pushes
/// `MessageRead` to the chat.
#[utoipa::path(
    post,
    path = "/api/chats/{id}/read",
    tag = "chats",
    params(("id" = Uuid, Path, description = "chat id")),
    request_body(content = ReadRequest, description = "optional"),
    responses(
        (status = 200, description = "the caller's receipt now", body = ReadReceiptDto),
        (status = 400, description = "invalid messageId", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "no such chat (for the caller), or the message is not in it", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<ReadReceiptDto>, ApiError> {
    let req: ReadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReadRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    Ok(Json(
        messaging::mark_read(&state, &user, id, req.message_id).await?,
    ))
}
