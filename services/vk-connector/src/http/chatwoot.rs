//! `POST /chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK}`: Chatwoot account webhooks.
//!
//! Only `message_created` that is `outgoing`, not `private`, written by an agent (sender
//! type `user`) or an allowed agent bot, in a conversation mapped to a VK dialogue becomes a
//! `cmd.vk.message.send`. Everything else — our own `incoming` echo, private notes (Chatwoot
//! does deliver them), activity, template, other events, conversations that are not ours —
//! is answered 200 and logged at debug; so is a payload that names no `account` (Chatwoot names
//! it in every message webhook). Chatwoot sends an account webhook once and never retries it,
//! whatever the answer (`WebhookJob` has no retry; only agent-bot webhooks are retried, on 429
//! and 500 — `lib/webhooks/trigger.rb` in chatwoot/chatwoot), and it does not disable a
//! failing webhook. So a body that passed the path id and signature but does not fit is
//! answered 200 and kept as a dead letter ([`reingest`]) rather than refused: a 400 would lose
//! it for good. What is lost before reaching us is picked up by the reconciliation sweep; a
//! webhook answered 5xx wakes it, and the replies taken until it has caught up are marked
//! `after_gap`, so that they wait for the missed ones ([`crate::gap`]).

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
use crate::consumers::reingest;
use crate::error::ApiError;
use crate::gap::WebhookGuard;
use service_kit::secure_eq;

/// Largest clock difference accepted on `X-Chatwoot-Timestamp`, in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// What became of a webhook that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// An agent's reply, published as `cmd.vk.message.send` (`duplicate`: JetStream had it).
    Queued {
        /// JetStream had seen the idempotency key inside its duplicate window.
        duplicate: bool,
    },
    /// Nothing to relay; the reason is for the log and the answer.
    Ignored(String),
}

/// Why a webhook was not taken.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body does not fit what Chatwoot documents: kept as a dead letter.
    #[error("{0}")]
    Unreadable(String),
    /// JetStream did not store the command: 503.
    #[error(transparent)]
    Bus(#[from] service_kit::bus::PublishError),
    /// The mapping could not be read: 500.
    #[error("looking up the VK dialogue of the conversation")]
    Store(#[source] sqlx::Error),
}

/// Handles one webhook; see the module docs. A wrong path id is 404 and a bad signature 401
/// before anything is read; an authenticated body that does not fit is answered 200
/// `{"ok":true,"dead_letter":<id>}` and kept (see [`reingest`](crate::consumers::reingest)).
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
    // Dropped untaken — an error below, or Chatwoot hanging up mid-publish — it marks a gap.
    let pending = state.gap.guard();
    match process(&state, &body, Some(&pending)).await {
        Ok(Processed::Queued { .. }) => {
            pending.taken();
            metrics::counter!("chatwoot_webhooks_total", "outcome" => "queued").increment(1);
            Ok(Json(json!({ "ok": true, "queued": true })))
        }
        Ok(Processed::Ignored(reason)) => {
            pending.taken();
            Ok(ignored(&reason))
        }
        // Chatwoot delivers an account webhook once and never again, whatever we answer: a 400
        // would lose the reply for good. Kept, it can be replayed once a release reads it.
        Err(WebhookError::Unreadable(reason)) => {
            let id = reingest::keep_chatwoot_webhook(&state, &body, &reason).await?;
            pending.taken();
            metrics::counter!("chatwoot_webhooks_total", "outcome" => "dead_lettered").increment(1);
            Ok(Json(json!({ "ok": true, "dead_letter": id })))
        }
        // Chatwoot will not send this one again: the sweep must pick it up, and the replies
        // after it wait for it (`pending`, dropped untaken, says so: crate::gap).
        Err(WebhookError::Bus(e)) => Err(ApiError::BusDown(e)),
        Err(e @ WebhookError::Store(_)) => Err(ApiError::Unexpected(e.into())),
    }
}

/// Everything after authentication: reads the body and, for an agent's reply in a conversation
/// mapped to a VK dialogue, publishes the `cmd.vk.message.send`, marked `after_gap` when
/// `guard` (the route's; `None` for a replay: the process's gap state) says so ([`crate::gap`]).
/// Shared by the route and the replay of a kept body.
///
/// Errors: [`WebhookError::Unreadable`] when the body does not fit (not JSON, no `event`, a
/// `message_created` whose fields have other types, an agent reply without `conversation`);
/// the bus or the database failing.
pub async fn process(
    state: &AppState,
    body: &[u8],
    guard: Option<&WebhookGuard<'_>>,
) -> Result<Processed, WebhookError> {
    let cw = &state.settings.chatwoot;
    let event: WebhookEvent = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Unreadable(format!("body is not a Chatwoot webhook: {e}")))?;
    let span = tracing::Span::current();
    span.record("event", event.event.as_str());
    if event.event != "message_created" {
        return Ok(Processed::Ignored(format!("event {}", event.event)));
    }
    // Kept as JSON for recognising another gateway's conversation ([`crate::legacy`]).
    let conversation_json = event
        .rest
        .get("conversation")
        .cloned()
        .unwrap_or(Value::Null);
    let msg: MessagePayload = serde_json::from_value(Value::Object(event.rest)).map_err(|e| {
        WebhookError::Unreadable(format!("message_created payload is malformed: {e}"))
    })?;
    span.record("chatwoot_message_id", msg.id);
    if let Some(reason) = skip_reason(&msg, &cw.allowed_agent_bots) {
        return Ok(Processed::Ignored(reason.into()));
    }
    // Chatwoot names the account in every message webhook; a payload without one is not
    // Chatwoot's, or not of the account this connector serves.
    match &msg.account {
        None => {
            tracing::warn!("message_created names no account; not relayed");
            return Ok(Processed::Ignored("no account in the payload".into()));
        }
        Some(account) if account.id != cw.account_id => {
            return Ok(Processed::Ignored("another account".into()));
        }
        Some(_) => {}
    }
    let Some(conversation) = msg.conversation.as_ref() else {
        return Err(WebhookError::Unreadable(
            "message_created without conversation".into(),
        ));
    };
    span.record("chatwoot_conversation_id", conversation.id);
    if let Some(g) = guard {
        g.conversation(conversation.id);
    }
    let mapped = state
        .store
        .peer_for_conversation(conversation.id)
        .await
        .map_err(WebhookError::Store)?;
    let peer_id = match mapped {
        Some(peer_id) => peer_id,
        // Not ours: perhaps the old gateway's, whose conventions name the VK user.
        None => match crate::legacy::peer_of_unmapped(
            state,
            conversation.id,
            conversation.inbox_id.or(msg.inbox.as_ref().map(|i| i.id)),
            &conversation_json,
        )
        .await
        .map_err(WebhookError::Store)?
        {
            Some(peer_id) => peer_id,
            None => return Ok(Processed::Ignored("conversation not mapped to VK".into())),
        },
    };
    let mut out = outbound_of(cw.account_id, conversation.id, peer_id, &msg);
    out.after_gap = guard.map_or_else(|| state.gap.is_suspected(), WebhookGuard::after_gap);
    let command = command_of(out);
    let published = state.bus.publish(&command).await?;
    tracing::info!(
        peer_id,
        duplicate = published.duplicate,
        "agent reply queued for VK"
    );
    Ok(Processed::Queued {
        duplicate: published.duplicate,
    })
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

/// The reply of an agent message's webhook, for [`command_of`].
pub fn outbound_of(
    account_id: i64,
    conversation_id: i64,
    peer_id: i64,
    msg: &MessagePayload,
) -> OutboundMessage {
    let attachments = msg
        .attachments
        .iter()
        .map(|a| {
            attachment_of(
                a.file_type.as_deref(),
                a.data_url.as_deref(),
                a.extension.as_deref(),
                a.file_size,
            )
        })
        .collect();
    reply_for(
        account_id,
        conversation_id,
        peer_id,
        msg.id,
        msg.content.clone(),
        attachments,
        msg.sender.as_ref().and_then(|s| s.name.clone()),
    )
}

/// A Chatwoot attachment (`file_type` of `Attachment#push_event_data`: image, audio, video,
/// file, location …, <https://github.com/chatwoot/chatwoot/blob/develop/app/models/attachment.rb>)
/// as a normalized [`Attachment`]; the webhook and the sweep share it. The name is left to the
/// download (the file URL's last segment); the extension gives the MIME type.
pub fn attachment_of(
    file_type: Option<&str>,
    data_url: Option<&str>,
    extension: Option<&str>,
    size: Option<u64>,
) -> Attachment {
    Attachment {
        kind: match file_type {
            Some("image") => AttachmentKind::Image,
            Some("audio") => AttachmentKind::Audio,
            Some("video") => AttachmentKind::Video,
            Some("location") => AttachmentKind::Location,
            _ => AttachmentKind::File,
        },
        url: data_url.filter(|u| !u.is_empty()).map(str::to_owned),
        mime: extension
            .and_then(crate::media::mime_of_extension)
            .map(str::to_owned),
        name: None,
        size,
        preview_url: None,
    }
}

/// An agent's reply from its parts (webhook and sweep share it), not marked `after_gap`.
pub fn reply_for(
    account_id: i64,
    conversation_id: i64,
    peer_id: i64,
    message_id: i64,
    text: Option<String>,
    attachments: Vec<Attachment>,
    author: Option<String>,
) -> OutboundMessage {
    OutboundMessage {
        conversation: ConversationRef {
            id: peer_id.to_string(),
            kind: if peer_id >= vk_api::callback::CHAT_PEER_OFFSET {
                ConversationKind::Group
            } else {
                ConversationKind::Private
            },
            thread_id: None,
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
        after_gap: false,
    }
}

/// The `cmd.vk.message.send` of a reply; its key is the Chatwoot message's identity, so the
/// webhook's and the sweep's commands of one reply are one in JetStream.
pub fn command_of(out: OutboundMessage) -> Envelope<Command> {
    Envelope::new(
        Source::Chatwoot,
        time::OffsetDateTime::now_utc(),
        IdempotencyKey::chatwoot_message(out.origin.account_id, out.origin.message_id),
        Command::VkMessageSend(out),
    )
}
