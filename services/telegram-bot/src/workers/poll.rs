//! Long polling ([getUpdates](https://core.telegram.org/bots/api#getupdates)), the default:
//! works behind NAT, without a domain.
//!
//! At start `deleteWebhook` (getUpdates answers 409 while a webhook is set), then the stored
//! offset. Each batch is published update by update, in update_id order, each after the
//! previous one's JetStream ack; only then is the next offset stored in
//! `telegram.poll_offsets` and asked for, which is what tells Telegram to forget the batch.
//! A restart therefore neither loses an update (it was not confirmed before it was stored)
//! nor relays one twice (a re-published update has the same `Nats-Msg-Id`, and the relay
//! skips messages it relayed already).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::config::Mode;
use crate::ingest::{IngestError, ingest};
use crate::normalize;
use crate::notices;
use crate::workers::{Backoff, pause};

/// Polls until `stop`, on one replica at a time: the poller holds the Postgres lease
/// `telegram.poll.<bot_id>` (two pollers on one token get 409 Conflict from Telegram); the
/// others stand by and take over, from the stored offset, when it goes away.
///
/// Errors: none; every failure is logged and retried.
pub async fn run(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let name = format!("telegram.poll.{}", state.settings.bot_id);
    let pool = state.store.pool().clone();
    service_kit::lease::run_exclusive(&pool, &name, stop, |held| poll(state.clone(), held)).await;
    Ok(())
}

/// The long poll itself, until `stop` (shutdown, or the lease lost).
async fn poll(state: AppState, stop: CancellationToken) {
    let Mode::Polling { timeout } = state.settings.mode else {
        return;
    };
    let mut backoff = Backoff::default();
    // getUpdates refuses to work while a webhook is set.
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => return,
            r = state.telegram.delete_webhook() => r,
        };
        match r {
            Ok(()) => break,
            Err(e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff.next());
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "deleteWebhook failed");
                if !pause(&stop, wait).await {
                    return;
                }
            }
        }
    }
    backoff.reset();
    let mut offset = loop {
        match state.store.poll_offset().await {
            Ok(o) => break o,
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, "reading the long-poll offset failed");
                if !pause(&stop, wait).await {
                    return;
                }
            }
        }
    };
    tracing::info!(
        offset,
        timeout_secs = timeout.as_secs(),
        "long polling Telegram"
    );
    backoff.reset();
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => return,
            r = state.telegram.get_updates(offset, timeout) => r,
        };
        let batch = match r {
            Ok(b) => {
                backoff.reset();
                notices::resolved(&state, notices::Kind::PollConflict).await;
                b
            }
            Err(e) => {
                let wait = if e.is_conflict() {
                    notices::raise(&state, notices::Kind::PollConflict).await;
                    Duration::from_secs(5)
                } else {
                    e.retry_after().unwrap_or_else(|| backoff.next())
                };
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "getUpdates failed");
                if !pause(&stop, wait).await {
                    return;
                }
                continue;
            }
        };
        let before = offset;
        for raw in &batch {
            let Some(id) = normalize::update_id(raw) else {
                keep(&state, raw, "update without a numeric update_id").await;
                continue;
            };
            // No `id < offset` guard: Telegram returns only what it still holds unconfirmed,
            // and after a week without updates it starts update ids afresh (at random), so an
            // id below the stored offset is a new update, not an old one.
            loop {
                match ingest(&state, raw).await {
                    Ok(_) => break,
                    Err(IngestError::Malformed(m)) => {
                        keep(&state, raw, &m.0).await;
                        break;
                    }
                    Err(IngestError::Bus(e)) => {
                        let wait = backoff.next();
                        tracing::warn!(error = %e, update_id = id, retry_in_secs = wait.as_secs(), "publishing an update failed; retrying it before any later one");
                        if !pause(&stop, wait).await {
                            // Not confirmed to Telegram: it comes again after the restart.
                            return;
                        }
                    }
                }
            }
            backoff.reset();
            offset = id + 1;
        }
        if offset != before {
            if let Err(e) = state.store.save_poll_offset(offset).await {
                // Telegram forgets the batch at the next getUpdates anyway; a restart before
                // the offset is stored re-reads nothing Telegram still has, and re-publishes
                // nothing twice (same Nats-Msg-Id).
                tracing::warn!(error = %e, offset, "storing the long-poll offset failed");
            }
            metrics::gauge!("telegram_poll_offset").set(offset as f64);
        }
    }
}

/// An update that cannot be read: stored as a dead letter and skipped, so it does not block
/// every later update.
async fn keep(state: &AppState, raw: &serde_json::Value, reason: &str) {
    if let Err(e) = crate::ingest::keep_unreadable(state, raw, reason).await {
        tracing::error!(
            error = format!("{e:#}"),
            reason,
            "unreadable Telegram update could not be stored; skipped"
        );
    }
}
