//! `cmd.vk.message.send` → VK `messages.send`: the agent's files uploaded to VK as message
//! photos and documents ([`crate::media`]; one that cannot be carried becomes a link line), the
//! text split at VK's length limit, each message with a `random_id` derived from the Chatwoot
//! message, so VK sends each once however often the command is delivered — the uploads and
//! sends are retried as one unit. Recorded in `vk.outbound_delivered`.
//!
//! Ordered per VK peer ([`Command::ordering_key`]: `peer:<peer_id>`): the replies to one
//! dialogue are sent in the order agents wrote them — also after a gap in Chatwoot's webhooks
//! (a reply marked `after_gap` sends the missed earlier ones first, [`crate::gap`]).

use domain::{Command, Envelope, Subject};
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{db_failure, vk_failure};
use crate::media::{self, MediaError};
use crate::normalize;
use crate::workers::reconcile::{self, UndeliveredError};

/// `messages.send` takes at most ten attachments (<https://dev.vk.com/ru/method/messages.send>,
/// `attachment`).
const MAX_ATTACHMENTS: usize = 10;

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "vk-connector-sender";

/// `cmd.vk.message.send`, in order per VK peer.
pub fn spec() -> ConsumerSpec<Command> {
    ConsumerSpec::new(DURABLE, Subject::command(Command::VK_MESSAGE_SEND), |env| {
        env.payload.ordering_key()
    })
}

/// Handles one envelope: a reply marked [`after_gap`](domain::OutboundMessage::after_gap)
/// first sends the conversation's earlier replies that never reached VK ([`send_earlier`]).
pub async fn handle(state: AppState, env: Envelope<Command>) -> Result<(), HandleError> {
    let Command::VkMessageSend(out) = env.payload else {
        // Not on this consumer's subject; nothing to send.
        tracing::debug!(r#type = env.payload.type_name(), "not a VK send; skipped");
        return Ok(());
    };
    if out.after_gap {
        send_earlier(&state, &out).await?;
    }
    deliver(&state, &out).await
}

/// Sends, oldest first, the agent replies of `out`'s conversation older than `out` that
/// Chatwoot lists and VK never got ([`reconcile::undelivered`]): their webhooks failed, and the
/// sweep that queues them may come after this reply. Each is recorded as delivered, so its own
/// command (from the sweep) is then skipped. One that can never be sent is left to its own
/// command (to be dead-lettered there); when Chatwoot does not list the conversation, `out` is
/// sent anyway (logged: order is not guaranteed then).
///
/// Errors: VK or the database failing on an earlier reply: retried, `out` waits.
async fn send_earlier(state: &AppState, out: &domain::OutboundMessage) -> Result<(), HandleError> {
    let origin = &out.origin;
    let Some(conv) = state
        .store
        .conversation_link(origin.conversation_id)
        .await
        .map_err(db_failure)?
    else {
        return Ok(());
    };
    let earlier = match reconcile::undelivered(state, &conv, Some(origin.message_id)).await {
        Ok(e) => e,
        Err(UndeliveredError::Store(e)) => return Err(db_failure(e)),
        Err(UndeliveredError::Chatwoot(e)) => {
            tracing::warn!(
                chatwoot_conversation_id = origin.conversation_id,
                error = %e,
                "cannot list the conversation's earlier replies; sending this one without waiting for them"
            );
            return Ok(());
        }
    };
    for o in earlier {
        tracing::info!(
            peer_id = conv.peer_id,
            chatwoot_message_id = o.origin.message_id,
            before = origin.message_id,
            "sending an earlier reply the webhook missed first"
        );
        match deliver(state, &o).await {
            Err(HandleError::Fatal(reason)) => tracing::warn!(
                chatwoot_message_id = o.origin.message_id,
                reason,
                "an earlier missed reply cannot be sent; left to its own command"
            ),
            r => r?,
        }
    }
    Ok(())
}

/// Sends one reply to VK unless `vk.outbound_delivered` has it, and records it there.
async fn deliver(state: &AppState, out: &domain::OutboundMessage) -> Result<(), HandleError> {
    let origin = &out.origin;
    if state
        .store
        .outbound_delivered(origin.account_id, origin.message_id)
        .await
        .map_err(db_failure)?
    {
        tracing::info!(
            chatwoot_message_id = origin.message_id,
            "already delivered to VK"
        );
        return Ok(());
    }
    let peer_id: i64 = out.conversation.id.parse().map_err(|_| {
        HandleError::Fatal(format!("peer id `{}` is not a number", out.conversation.id))
    })?;
    let has_files = out.attachments.iter().any(|a| media::file_url(a).is_some());
    // A reply with files is planned once: the uploads are made and the VK messages (text part,
    // attachment strings) stored before the first send, and every later attempt sends that
    // same plan. So a retry never uploads again, and each random_id always stands for the same
    // message, whatever a file does on the retry.
    let (attempts_before, stored) = if has_files {
        state
            .store
            .start_outbound_attempt(origin.account_id, origin.message_id)
            .await
            .map_err(db_failure)?
    } else {
        (0, None)
    };
    let (messages, files) = match stored.and_then(|p| serde_json::from_value::<Plan>(p).ok()) {
        Some(plan) => {
            tracing::debug!(
                chatwoot_message_id = origin.message_id,
                "sending the stored plan"
            );
            (plan.messages, plan.files)
        }
        None => {
            let plan = plan(state, peer_id, out, attempts_before).await?;
            if has_files {
                let json =
                    serde_json::to_value(&plan).map_err(|e| HandleError::Fatal(e.to_string()))?;
                state
                    .store
                    .save_outbound_plan(origin.account_id, origin.message_id, &json)
                    .await
                    .map_err(db_failure)?;
            }
            (plan.messages, plan.files)
        }
    };
    let mut ids = Vec::new();
    for (part, (chunk, attachment)) in messages.iter().enumerate() {
        let random_id = normalize::random_id(origin.account_id, origin.message_id, part);
        let id = state
            .vk
            .send_message(peer_id, random_id, chunk, attachment.as_deref())
            .await
            .map_err(|e| vk_failure("messages.send", e))?;
        ids.push(id);
    }
    state
        .store
        .mark_outbound_delivered(origin.account_id, origin.message_id, peer_id, &ids)
        .await
        .map_err(db_failure)?;
    tracing::info!(
        peer_id,
        chatwoot_message_id = origin.message_id,
        vk_message_ids = ?ids,
        files,
        "agent reply delivered to VK"
    );
    metrics::counter!("delivered_to_vk_total").increment(1);
    if files > 0 {
        metrics::counter!("media_carried_total", "direction" => "to_vk").increment(files as u64);
    }
    Ok(())
}

/// The VK messages of one reply: `(text, attachment strings joined by commas)` in sending
/// order, the n-th sent with `random_id(account, message, n)`; `files`: how many files were
/// carried. Stored as JSON in `vk.outbound_attempts.plan` for a reply with files.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Plan {
    messages: Vec<(String, Option<String>)>,
    files: usize,
}

/// Uploads the reply's files (those that cannot be carried become link lines), splits the
/// text at VK's limit and puts the files on the last text part, at most VK's ten per
/// message; more go in messages of their own after it.
///
/// Errors: nothing to send at all (final); an outage while carrying a file (retried).
async fn plan(
    state: &AppState,
    peer_id: i64,
    out: &domain::OutboundMessage,
    attempts_before: i32,
) -> Result<Plan, HandleError> {
    let mut vk_attachments = Vec::new();
    let mut lines = Vec::new();
    for a in &out.attachments {
        match carry(state, peer_id, a, attempts_before).await? {
            Some(attachment) => vk_attachments.push(attachment),
            None => lines.push(normalize::attachment_line(a)),
        }
    }
    let text = normalize::with_lines(out.text.as_deref().unwrap_or_default(), &lines);
    if text.trim().is_empty() && vk_attachments.is_empty() {
        return Err(HandleError::Fatal(
            "nothing to send: no text and no attachments".into(),
        ));
    }
    let mut messages: Vec<(String, Option<String>)> =
        normalize::split_text(&text, vk_api::MAX_MESSAGE_CHARS)
            .into_iter()
            .map(|t| (t, None))
            .collect();
    for (n, group) in vk_attachments.chunks(MAX_ATTACHMENTS).enumerate() {
        let joined = group.join(",");
        match messages.last_mut() {
            Some(last) if n == 0 => last.1 = Some(joined),
            _ => messages.push((String::new(), Some(joined))),
        }
    }
    Ok(Plan {
        messages,
        files: vk_attachments.len(),
    })
}

/// Uploads one agent's file to VK: the attachment string, or `None` when it goes as a link
/// (not a file, too large, refused by Chatwoot's storage or by VK — logged with the reason).
///
/// Errors: an outage of Chatwoot's storage or of VK's upload, for the consumer to retry, for
/// [`media::MEDIA_HANDLINGS`] handlings (`attempts_before` came before this one); the last one
/// sends the file as a link.
async fn carry(
    state: &AppState,
    peer_id: i64,
    a: &domain::Attachment,
    attempts_before: i32,
) -> Result<Option<String>, HandleError> {
    let Some(url) = media::file_url(a) else {
        return Ok(None);
    };
    let uploaded = match media::fetch(&state.media_http, state.settings.media, a, url).await {
        Ok(file) => media::upload_to_vk(&state.media_vk, peer_id, a.kind, file).await,
        Err(e) => Err(e),
    };
    match uploaded.map_err(|e| e.or_skip_after(attempts_before)) {
        Ok(attachment) => Ok(Some(attachment)),
        Err(MediaError::Skip(reason)) => {
            tracing::warn!(peer_id, kind = ?a.kind, reason = %reason, "an agent's file is sent to VK as a link");
            metrics::counter!("media_fallbacks_total", "direction" => "to_vk").increment(1);
            Ok(None)
        }
        Err(MediaError::Retry { reason, after }) => Err(HandleError::Retry {
            reason: format!("carrying an agent's file to VK: {reason}"),
            after,
        }),
    }
}
