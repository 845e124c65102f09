//! `cmd.vk.message.send` → VK `messages.send`: the text (attachments as links) split at VK's
//! length limit, each part with a `random_id` derived from the Chatwoot message, so VK sends
//! each part once however often the command is delivered. Recorded in `vk.outbound_delivered`.
//!
//! Ordered per VK peer ([`Command::ordering_key`]: `peer:<peer_id>`): the replies to one
//! dialogue are sent in the order agents wrote them.

use domain::{Command, Envelope, Subject};
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{db_failure, vk_failure};
use crate::normalize;

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "vk-connector-sender";

/// `cmd.vk.message.send`, in order per VK peer.
pub fn spec() -> ConsumerSpec<Command> {
    ConsumerSpec::new(DURABLE, Subject::command(Command::VK_MESSAGE_SEND), |env| {
        env.payload.ordering_key()
    })
}

/// Handles one envelope.
pub async fn handle(state: AppState, env: Envelope<Command>) -> Result<(), HandleError> {
    let Command::VkMessageSend(out) = env.payload else {
        // Not on this consumer's subject; nothing to send.
        tracing::debug!(r#type = env.payload.type_name(), "not a VK send; skipped");
        return Ok(());
    };
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
    let mut text = out.text.clone().unwrap_or_default();
    for a in &out.attachments {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&normalize::attachment_line(a));
    }
    if text.trim().is_empty() {
        return Err(HandleError::Fatal(
            "nothing to send: no text and no attachments".into(),
        ));
    }
    let mut ids = Vec::new();
    for (part, chunk) in normalize::split_text(&text, vk_api::MAX_MESSAGE_CHARS)
        .iter()
        .enumerate()
    {
        let random_id = normalize::random_id(origin.account_id, origin.message_id, part);
        let id = state
            .vk
            .send_message(peer_id, random_id, chunk, None)
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
        "agent reply delivered to VK"
    );
    metrics::counter!("delivered_to_vk_total").increment(1);
    Ok(())
}
