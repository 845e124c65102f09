//! The reconciliation sweep: Chatwoot sends each webhook once and never retries, so an agent
//! reply written while vk-connector was down (or NATS was) would be lost. At start and every
//! `RECONCILE_INTERVAL_SECS`, this lists the recent messages of recently active VK-mapped
//! conversations and queues the agent messages that were never delivered. The command has
//! the same idempotency key as the webhook path, and the sender checks
//! `vk.outbound_delivered` and uses the same `random_id`, so a reply is sent once. A failed
//! webhook wakes a sweep within seconds ([`crate::gap`]).

use chatwoot_api::MessageType;
use domain::OutboundMessage;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::gap::{GAP_SWEEP_DELAY, GAP_SWEEP_MAX_DELAY};
use crate::http::chatwoot::{command_of, reply_for};
use crate::store::ConversationLink;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Conversations looked at.
    pub conversations: usize,
    /// Agent replies queued (`cmd.vk.message.send`) because they were never delivered.
    pub queued: usize,
    /// Conversations whose messages Chatwoot did not list for a reason that can pass (5xx,
    /// 429, no answer): the sweep is incomplete.
    pub failed_conversations: usize,
    /// Conversations Chatwoot refused to list (a 4xx: deleted, no access): nothing in them can
    /// be sent either, so they do not keep a gap open.
    pub refused_conversations: usize,
}

/// Runs sweeps until `shutdown`: one now, then every `interval` (0 = no periodic sweeps),
/// and [`GAP_SWEEP_DELAY`] after a failed webhook ([`crate::gap`]), again while a gap is
/// still suspected (the wait doubling up to [`GAP_SWEEP_MAX_DELAY`]). A sweep that listed
/// every conversation it covers closes the gap. Never fails: a failed sweep is logged and the
/// next one tries again.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = state.settings.reconcile_interval;
    let mut gap_delay = GAP_SWEEP_DELAY;
    loop {
        let start = state.gap.sweep_started();
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = sweep_with(&state, &start.missed) => r,
        };
        match outcome {
            Ok(r) => {
                state.gap.swept(&start, r.failed_conversations == 0);
                if r.queued > 0 || r.failed_conversations > 0 || r.refused_conversations > 0 {
                    tracing::warn!(?r, "reconciliation queued undelivered agent replies");
                } else {
                    tracing::debug!(?r, "reconciliation found nothing to do");
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reconciliation sweep failed"),
        }
        let next = if state.gap.is_suspected() {
            let d = gap_delay;
            gap_delay = (gap_delay * 2).min(GAP_SWEEP_MAX_DELAY);
            Some(d)
        } else {
            gap_delay = GAP_SWEEP_DELAY;
            (!interval.is_zero()).then_some(interval)
        };
        let periodic = async {
            match next {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = periodic => {}
            _ = state.gap.woken() => {
                // Let the outage that failed the webhook pass before listing.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(GAP_SWEEP_DELAY) => {}
                }
            }
        }
    }
}

/// One sweep over the conversations active within the lookback (`RECONCILE_LOOKBACK_SECS`,
/// the 500 most recent): queues every undelivered agent reply ([`undelivered`]),
/// conversation by conversation, oldest first.
///
/// Errors: the database or the bus failing (the sweep stops; the next one starts over). A
/// conversation whose messages Chatwoot does not list is counted in
/// [`SweepReport::failed_conversations`] or [`SweepReport::refused_conversations`] and skipped.
pub async fn sweep(state: &AppState) -> anyhow::Result<SweepReport> {
    sweep_with(state, &[]).await
}

/// [`sweep`], and also the Chatwoot conversations `missed` (of failed webhooks) when they
/// are not among the recently active ones.
async fn sweep_with(state: &AppState, missed: &[i64]) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut conversations = state
        .store
        .recent_conversations(state.settings.reconcile_lookback.as_secs() as i64)
        .await?;
    for &id in missed {
        if !conversations
            .iter()
            .any(|c| c.chatwoot_conversation_id == id)
            && let Some(conv) = state.store.conversation_link(id).await?
        {
            conversations.push(conv);
        }
    }
    for conv in conversations {
        report.conversations += 1;
        let replies = match undelivered(state, &conv, None).await {
            Ok(c) => c,
            Err(UndeliveredError::Chatwoot(e)) => {
                tracing::warn!(chatwoot_conversation_id = conv.chatwoot_conversation_id, error = %e, "cannot list messages");
                if e.is_retriable() {
                    report.failed_conversations += 1;
                } else {
                    report.refused_conversations += 1;
                }
                continue;
            }
            Err(UndeliveredError::Store(e)) => return Err(e.into()),
        };
        for reply in replies {
            let cmd = command_of(reply);
            state.bus.publish(&cmd).await?;
            tracing::info!(
                idempotency_key = %cmd.idempotency_key,
                peer_id = conv.peer_id,
                "queued an agent reply the webhook missed"
            );
            report.queued += 1;
        }
    }
    metrics::counter!("reconcile_queued_total").increment(report.queued as u64);
    Ok(report)
}

/// Why the undelivered replies of a conversation are not known.
#[derive(Debug, thiserror::Error)]
pub enum UndeliveredError {
    /// Chatwoot did not list the conversation's messages.
    #[error("listing the conversation's messages in Chatwoot: {0}")]
    Chatwoot(#[from] chatwoot_api::ChatwootError),
    /// `vk.outbound_delivered` or the dead letters could not be read.
    #[error("reading what was delivered: {0}")]
    Store(#[from] sqlx::Error),
}

/// Every agent reply in a page of `conv`'s Chatwoot messages
/// (`GET /conversations/{id}/messages`: the latest; with `before`, the ones just older than
/// that message id) that was never delivered to VK and not dead-lettered, oldest first.
/// Agent replies are outgoing, public messages of a user or an allowed agent bot with text or
/// files, written after the conversation was mapped and within `RECONCILE_LOOKBACK_SECS`.
/// Shared by the sweep and by the sender of a reply marked `after_gap`.
pub async fn undelivered(
    state: &AppState,
    conv: &ConversationLink,
    before: Option<i64>,
) -> Result<Vec<OutboundMessage>, UndeliveredError> {
    let lookback = state.settings.reconcile_lookback.as_secs() as i64;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cw = &state.settings.chatwoot;
    let mut messages = state
        .chatwoot
        .messages_before(conv.chatwoot_conversation_id, before)
        .await?;
    messages.sort_by_key(|m| m.id);
    let mut replies = Vec::new();
    for m in messages {
        if before.is_some_and(|b| m.id >= b) {
            continue;
        }
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
        replies.push(reply_for(
            cw.account_id,
            conv.chatwoot_conversation_id,
            conv.peer_id,
            m.id,
            m.content.clone(),
            attachments,
            author,
        ));
    }
    Ok(replies)
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
