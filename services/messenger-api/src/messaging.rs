//! What REST and the hub share: posting a message (store, push to the chat's members on every
//! replica, publish `events.messenger.message.posted`), deleting one, read receipts, typing.

use domain::{
    Attachment, AttachmentKind, ConversationKind, ConversationRef, Envelope, Event, IdempotencyKey,
    InboundMessage, Sender, Source,
};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{AuthUser, Role, current_role};
use crate::error::ApiError;
use crate::http::dto::{MessageDto, ReadReceiptDto};
use crate::hub::protocol;
use crate::store::{InsertOutcome, MessageRow, NewMessage, ReadOutcome};

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest client idempotency key.
pub const MAX_CLIENT_ID_CHARS: usize = 100;

/// Checks a client idempotency key.
pub fn check_client_id(id: Option<&str>) -> Result<Option<&str>, ApiError> {
    match id.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > MAX_CLIENT_ID_CHARS => Err(ApiError::bad_request(format!(
            "clientMessageId must be at most {MAX_CLIENT_ID_CHARS} characters"
        ))),
        Some(s) => Ok(Some(s)),
    }
}

/// Posts a text message (REST and the hub's `SendMessage`); `(message, created)`: `created` is
/// false when the idempotency key had been used for the same message before (nothing is
/// pushed or published again).
///
/// Every valid attempt counts against the sender's limit (`MESSENGER_SEND_RATE_PER_MINUTE`,
/// `MESSENGER_SEND_BURST`), a retry with the same key too: 429 once it is used up.
pub async fn post_text(
    state: &AppState,
    user: &AuthUser,
    chat_id: Uuid,
    text: &str,
    client_id: Option<&str>,
) -> Result<(MessageDto, bool), ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid(
            "text must not be empty",
            json!({ "text": "required" }),
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            format!("text must be at most {MAX_TEXT_CHARS} characters"),
            json!({ "text": "too long" }),
        ));
    }
    let client_id = check_client_id(client_id)?;
    state.user_limits.check_send(user.id)?;
    let outcome = state
        .store
        .insert_message(&NewMessage {
            chat_id,
            sender_id: user.id,
            sender_name: &user.name,
            kind: "text",
            text: Some(text),
            file_id: None,
            duration_ms: None,
            client_message_id: client_id,
        })
        .await?;
    match outcome {
        InsertOutcome::Created(row) => Ok((posted(state, row).await, true)),
        InsertOutcome::Existing(row) => {
            if row.chat_id != chat_id || row.kind != "text" || row.text.as_deref() != Some(text) {
                return Err(ApiError::Conflict(
                    "this clientMessageId was already used for a different message".into(),
                ));
            }
            Ok((row.into(), false))
        }
        InsertOutcome::NotMember => Err(ApiError::NotFound("chat")),
    }
}

/// After a message is stored (with its outbox entry, in the same transaction): push it to the
/// chat, then publish the event and drop the outbox entry once JetStream acknowledged it. When
/// JetStream does not, or the process dies before, the outbox sweep publishes it again with the
/// same `Nats-Msg-Id`.
pub async fn posted(state: &AppState, row: MessageRow) -> MessageDto {
    let event = envelope(&row);
    let dto = MessageDto::from(row);
    let frame = protocol::invocation("ReceiveMessage", &[json!(dto)]);
    state.hub.to_chat(dto.chat_id, frame, None).await;
    metrics::counter!("messages_posted_total", "type" => dto.kind.clone()).increment(1);
    match state.bus.publish(&event).await {
        Ok(_) => {
            if let Err(e) = state.store.remove_from_outbox(dto.id).await {
                // The sweep publishes it again; JetStream drops the duplicate by its id.
                tracing::debug!(message_id = dto.id, error = %e, "outbox entry not removed");
            }
        }
        Err(e) => {
            tracing::warn!(message_id = dto.id, error = %e, "message.posted not published; left in the outbox");
            if let Err(e) = state.store.add_to_outbox(dto.id, &e.to_string()).await {
                tracing::warn!(message_id = dto.id, error = %e, "outbox attempt not recorded");
            }
        }
    }
    dto
}

/// The `events.messenger.message.posted` envelope of a stored message.
pub fn envelope(row: &MessageRow) -> Envelope<Event> {
    let attachments = row
        .file_id
        .map(|id| Attachment {
            kind: AttachmentKind::Audio,
            url: Some(format!("/api/files/{id}")),
            mime: row.file_content_type.clone(),
            name: None,
            size: row.file_size.and_then(|s| u64::try_from(s).ok()),
            preview_url: None,
        })
        .into_iter()
        .collect();
    let msg = InboundMessage {
        message_id: row.id.to_string(),
        sender: Sender {
            id: row.sender_id.map(|u| u.to_string()).unwrap_or_default(),
            display_name: row.sender_name.clone(),
            username: None,
            language: None,
        },
        conversation: ConversationRef {
            id: row.chat_id.to_string(),
            kind: if row.chat_kind == "group" {
                ConversationKind::Group
            } else {
                ConversationKind::Private
            },
            thread_id: None,
        },
        text: row.text.clone(),
        attachments,
        reply_to: None,
        sent_at: row.created_at,
        formatting: Vec::new(),
    };
    Envelope::new(
        Source::Messenger,
        row.created_at,
        IdempotencyKey::messenger_message(row.id),
        Event::MessagePosted(msg),
    )
}

/// Deletes a message: its author, or an administrator (the role read from the database, not
/// the token's claim: a demoted or deleted admin is refused like any other non-author — 404
/// outside the chat, 403 inside). Pushes `MessageDeleted` to the chat.
pub async fn delete_message(state: &AppState, user: &AuthUser, id: i64) -> Result<(), ApiError> {
    let Some((row, is_member)) = state.store.message_for(id, user.id).await? else {
        return Err(ApiError::NotFound("message"));
    };
    let is_author = row.sender_id == Some(user.id);
    if !(is_member && is_author) {
        // Only an administrator goes further; the lookup is skipped for the common case, an
        // author deleting their own message.
        let is_admin = current_role(state, user).await? == Some(Role::Admin);
        if !is_member && !is_admin {
            return Err(ApiError::NotFound("message"));
        }
        if !is_author && !is_admin {
            return Err(ApiError::Forbidden(
                "only the author or an admin may delete a message".into(),
            ));
        }
    }
    let (deleted, file) = state.store.delete_message(id).await?;
    if !deleted {
        return Err(ApiError::NotFound("message"));
    }
    if let Some(f) = file {
        state.files.remove(f).await;
    }
    let frame = protocol::invocation(
        "MessageDeleted",
        &[json!({ "chatId": row.chat_id, "messageId": id })],
    );
    state.hub.to_chat(row.chat_id, frame, None).await;
    Ok(())
}

/// Moves the caller's read receipt and pushes `MessageRead` to the chat.
pub async fn mark_read(
    state: &AppState,
    user: &AuthUser,
    chat_id: Uuid,
    message_id: Option<i64>,
) -> Result<ReadReceiptDto, ApiError> {
    if message_id.is_some_and(|m| m <= 0) {
        return Err(ApiError::bad_request("messageId must be positive"));
    }
    let read = match state.store.mark_read(chat_id, user.id, message_id).await? {
        ReadOutcome::Read(id) => id,
        ReadOutcome::NotMember => return Err(ApiError::NotFound("chat")),
        ReadOutcome::UnknownMessage => return Err(ApiError::NotFound("message")),
    };
    let receipt = ReadReceiptDto {
        chat_id,
        user_id: user.id,
        message_id: read,
        read_at: time::OffsetDateTime::now_utc(),
    };
    let frame = protocol::invocation("MessageRead", &[json!(receipt)]);
    state.hub.to_chat(chat_id, frame, None).await;
    Ok(receipt)
}

/// Tells the other members that the caller is typing.
pub async fn typing(state: &AppState, user: &AuthUser, chat_id: Uuid) -> Result<(), ApiError> {
    if state
        .store
        .chat_for_member(chat_id, user.id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("chat"));
    }
    let frame = protocol::invocation(
        "Typing",
        &[json!({ "chatId": chat_id, "userId": user.id, "displayName": user.name })],
    );
    state.hub.to_chat(chat_id, frame, Some(user.id)).await;
    Ok(())
}

/// How old an outbox entry that never failed must be before the sweep takes it: its poster
/// normally publishes it and removes it well within this.
pub const OUTBOX_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// One pass over every outbox entry, however young; returns how many events were published.
pub async fn flush_outbox(state: &AppState) -> anyhow::Result<usize> {
    flush_outbox_older_than(state, std::time::Duration::ZERO).await
}

/// One pass over the outbox entries that failed or are older than `min_age`; returns how many
/// events were published.
pub async fn flush_outbox_older_than(
    state: &AppState,
    min_age: std::time::Duration,
) -> anyhow::Result<usize> {
    let ids = state.store.outbox(100, min_age).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = state.store.messages_by_ids(&ids).await?;
    let mut published = 0;
    for id in &ids {
        match rows.iter().find(|r| r.id == *id) {
            // deleted since: nothing to announce
            None => state.store.remove_from_outbox(*id).await?,
            Some(row) => match state.bus.publish(&envelope(row)).await {
                Ok(_) => {
                    state.store.remove_from_outbox(*id).await?;
                    published += 1;
                }
                Err(e) => {
                    state.store.add_to_outbox(*id, &e.to_string()).await?;
                    anyhow::bail!("JetStream still unavailable: {e}");
                }
            },
        }
    }
    if published > 0 {
        tracing::info!(published, "outbox events published");
    }
    Ok(published)
}
