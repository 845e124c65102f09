//! The reconciliation sweep: Chatwoot sends each webhook once and never retries, so an agent
//! reply written while vk-connector was down (or NATS was) would be lost. At start and every
//! `RECONCILE_INTERVAL_SECS`, this lists the recent messages of recently active VK-mapped
//! conversations and queues the agent messages that were never delivered. The command has
//! the same idempotency key as the webhook path, and the sender checks
//! `vk.outbound_delivered` and uses the same `random_id`, so a reply is sent once.

use chatwoot_api::MessageType;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::http::chatwoot::command_for;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Conversations looked at.
    pub conversations: usize,
    /// Agent replies queued (`cmd.vk.message.send`) because they were never delivered.
    pub queued: usize,
    /// Conversations whose messages could not be listed in Chatwoot.
    pub failed_conversations: usize,
}

/// Runs sweeps until `shutdown`: one now, then every `interval` (0 = only the first). Never
/// fails: a failed sweep is logged and the next one tries again.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = state.settings.reconcile_interval;
    loop {
        match sweep(&state).await {
            Ok(r) if r.queued > 0 || r.failed_conversations > 0 => {
                tracing::warn!(?r, "reconciliation queued undelivered agent replies")
            }
            Ok(r) => tracing::debug!(?r, "reconciliation found nothing to do"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reconciliation sweep failed"),
        }
        if interval.is_zero() {
            return Ok(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One sweep over conversations active within the lookback.
pub async fn sweep(state: &AppState) -> anyhow::Result<SweepReport> {
    let lookback = state.settings.reconcile_lookback.as_secs() as i64;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cw = &state.settings.chatwoot;
    let mut report = SweepReport::default();
    for conv in state.store.recent_conversations(lookback).await? {
        report.conversations += 1;
        let messages = match state.chatwoot.messages(conv.chatwoot_conversation_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(chatwoot_conversation_id = conv.chatwoot_conversation_id, error = %e, "cannot list messages");
                report.failed_conversations += 1;
                continue;
            }
        };
        for m in messages {
            if MessageType::from_json(&m.message_type) != Some(MessageType::Outgoing) || m.private {
                continue;
            }
            if !is_agent(&m, &cw.allowed_agent_bots) {
                continue;
            }
            let created = m
                .created_at
                .as_ref()
                .and_then(|v| v.as_i64())
                .unwrap_or(now);
            if created < conv.created_unix - 5 || created < now - lookback {
                continue;
            }
            if state.store.outbound_delivered(cw.account_id, m.id).await?
                || state
                    .store
                    .dead_lettered(&domain::IdempotencyKey::chatwoot_message(
                        cw.account_id,
                        m.id,
                    ))
                    .await?
            {
                // Delivered, or given up on for a reason an operator must see (dlq list).
                continue;
            }
            let has_text = m.content.as_deref().is_some_and(|c| !c.trim().is_empty());
            let attachments: Vec<domain::Attachment> = m
                .attachments
                .iter()
                .map(|a| {
                    crate::http::chatwoot::attachment_of(
                        Some(&a.file_type),
                        Some(&a.data_url),
                        a.extension.as_deref(),
                        a.file_size.and_then(|s| u64::try_from(s).ok()),
                    )
                })
                .collect();
            if !has_text && attachments.is_empty() {
                continue;
            }
            let author = m
                .sender
                .as_ref()
                .and_then(|s| s.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_owned);
            let cmd = command_for(
                cw.account_id,
                conv.chatwoot_conversation_id,
                conv.peer_id,
                m.id,
                m.content.clone(),
                attachments,
                author,
            );
            state.bus.publish(&cmd).await?;
            tracing::info!(
                chatwoot_message_id = m.id,
                peer_id = conv.peer_id,
                "queued an agent reply the webhook missed"
            );
            report.queued += 1;
        }
    }
    metrics::counter!("reconcile_queued_total").increment(report.queued as u64);
    Ok(report)
}

fn is_agent(m: &chatwoot_api::Message, allowed_bots: &[i64]) -> bool {
    let kind = m
        .sender
        .as_ref()
        .and_then(|s| s.get("type"))
        .and_then(|t| t.as_str())
        .map(str::to_ascii_lowercase)
        .or_else(|| m.sender_type.as_deref().map(str::to_ascii_lowercase));
    match kind.as_deref() {
        Some("user") => true,
        Some("agent_bot") | Some("agentbot") => m
            .sender
            .as_ref()
            .and_then(|s| s.get("id"))
            .and_then(|i| i.as_i64())
            .is_some_and(|id| allowed_bots.contains(&id)),
        _ => false,
    }
}
