//! `POST /chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK}`: Chatwoot account webhooks.
//!
//! Only `message_created` that is `outgoing`, not `private`, written by an agent (sender
//! type `user`) or an allowed agent bot, in a conversation mapped to a VK dialogue becomes a
//! `cmd.vk.message.send`. Everything else — our own `incoming` echo, private notes (Chatwoot
//! does deliver them), activity, template, other events, conversations that are not ours —
//! is answered 200 and logged at debug. Chatwoot sends each webhook once and never retries;
//! what is lost here is picked up by the reconciliation sweep.

use anyhow::Context;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chatwoot_api::MessageType;
use chatwoot_api::webhook::{MessagePayload, WebhookEvent, verify_signature};
use domain::{
    Attachment, AttachmentKind, Command, ConversationKind, ConversationRef, Envelope,
    IdempotencyKey, MessageOrigin, OutboundMessage, Source,
};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use service_kit::secure_eq;

/// Largest clock difference accepted on `X-Chatwoot-Timestamp`, in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Handles one webhook; see the module docs.
#[tracing::instrument(skip_all, fields(event, chatwoot_message_id, chatwoot_conversation_id))]
pub async fn handle(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cw = &state.settings.chatwoot;
    if !secure_eq(webhook_id.as_bytes(), cw.webhook_id.expose().as_bytes()) {
        return Err(ApiError::NotFound);
    }
    if let Some(secret) = &cw.webhook_secret {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        verify_signature(
            secret.expose().as_bytes(),
            h("x-chatwoot-signature"),
            h("x-chatwoot-timestamp"),
            &body,
            time::OffsetDateTime::now_utc().unix_timestamp(),
            SIGNATURE_TOLERANCE_SECS,
        )
        .map_err(|e| {
            metrics::counter!("chatwoot_webhooks_total", "outcome" => "bad_signature").increment(1);
            ApiError::Unauthorized(e.to_string())
        })?;
    }
    let event: WebhookEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a Chatwoot webhook: {e}")))?;
    tracing::Span::current().record("event", event.event.as_str());
    if event.event != "message_created" {
        return Ok(ignored(&format!("event {}", event.event)));
    }
    let msg: MessagePayload = serde_json::from_value(Value::Object(event.rest))
        .map_err(|e| ApiError::BadRequest(format!("message_created payload is malformed: {e}")))?;
    let span = tracing::Span::current();
    span.record("chatwoot_message_id", msg.id);
    if let Some(reason) = skip_reason(&msg, &cw.allowed_agent_bots) {
        return Ok(ignored(reason));
    }
    let Some(conversation) = msg.conversation.as_ref() else {
        return Err(ApiError::BadRequest(
            "message_created without conversation".into(),
        ));
    };
    span.record("chatwoot_conversation_id", conversation.id);
    if let Some(account) = &msg.account
        && account.id != cw.account_id
    {
        return Ok(ignored("another account"));
    }
    let Some(peer_id) = state
        .store
        .peer_for_conversation(conversation.id)
        .await
        .context("looking up the VK dialogue of the conversation")?
    else {
        return Ok(ignored("conversation not mapped to VK"));
    };
    let command = outbound_command(cw.account_id, conversation.id, peer_id, &msg);
    let published = state
        .bus
        .publish(&command)
        .await
        .map_err(ApiError::BusDown)?;
    tracing::info!(
        peer_id,
        duplicate = published.duplicate,
        "agent reply queued for VK"
    );
    metrics::counter!("chatwoot_webhooks_total", "outcome" => "queued").increment(1);
    Ok(Json(json!({ "ok": true, "queued": true })))
}

fn ignored(reason: &str) -> Json<Value> {
    tracing::debug!(reason, "webhook ignored");
    metrics::counter!("chatwoot_webhooks_total", "outcome" => "ignored").increment(1);
    Json(json!({ "ok": true, "ignored": reason }))
}

/// Why a `message_created` is not relayed, or None when it is an agent's public reply.
pub fn skip_reason(msg: &MessagePayload, allowed_bots: &[i64]) -> Option<&'static str> {
    match msg.message_type() {
        Some(MessageType::Outgoing) => {}
        Some(MessageType::Incoming) => return Some("incoming (our own echo)"),
        Some(_) => return Some("activity or template"),
        None => return Some("unknown message_type"),
    }
    if msg.private {
        return Some("private note");
    }
    let sender = msg.sender.as_ref();
    match sender.and_then(|s| s.kind.as_deref()) {
        Some("user") => {}
        Some("agent_bot")
            if sender
                .and_then(|s| s.id)
                .is_some_and(|id| allowed_bots.contains(&id)) => {}
        Some("agent_bot") => return Some("agent bot not allowed"),
        _ => return Some("not written by an agent"),
    }
    let has_text = msg.content.as_deref().is_some_and(|c| !c.trim().is_empty());
    if !has_text && msg.attachments.is_empty() {
        return Some("nothing to send");
    }
    None
}

/// The `cmd.vk.message.send` for an agent message; the key is the Chatwoot message's identity,
/// shared with the reconciliation sweep.
pub fn outbound_command(
    account_id: i64,
    conversation_id: i64,
    peer_id: i64,
    msg: &MessagePayload,
) -> Envelope<Command> {
    let attachments = msg
        .attachments
        .iter()
        .map(|a| Attachment {
            kind: match a.file_type.as_deref() {
                Some("image") => AttachmentKind::Image,
                Some("audio") => AttachmentKind::Audio,
                Some("video") => AttachmentKind::Video,
                Some("location") => AttachmentKind::Location,
                _ => AttachmentKind::File,
            },
            url: a.data_url.clone(),
            mime: None,
            name: a.extension.as_ref().map(|e| format!("file.{e}")),
            size: a.file_size,
        })
        .collect();
    command_for(
        account_id,
        conversation_id,
        peer_id,
        msg.id,
        msg.content.clone(),
        attachments,
        msg.sender.as_ref().and_then(|s| s.name.clone()),
    )
}

/// Builds the command from its parts (webhook and sweep share it).
pub fn command_for(
    account_id: i64,
    conversation_id: i64,
    peer_id: i64,
    message_id: i64,
    text: Option<String>,
    attachments: Vec<Attachment>,
    author: Option<String>,
) -> Envelope<Command> {
    let out = OutboundMessage {
        conversation: ConversationRef {
            id: peer_id.to_string(),
            kind: if peer_id >= vk_api::callback::CHAT_PEER_OFFSET {
                ConversationKind::Group
            } else {
                ConversationKind::Private
            },
        },
        text: text.filter(|t| !t.trim().is_empty()),
        attachments,
        origin: MessageOrigin {
            system: "chatwoot".into(),
            account_id,
            conversation_id,
            message_id,
        },
        author,
    };
    Envelope::new(
        Source::Chatwoot,
        time::OffsetDateTime::now_utc(),
        IdempotencyKey::chatwoot_message(account_id, message_id),
        Command::VkMessageSend(out),
    )
}
