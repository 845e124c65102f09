//! The ingress half shared by the long-poll worker and the webhook route: a raw update is
//! classified ([`crate::normalize`]) and, when it is relayed, published to JetStream with
//! `Nats-Msg-Id` `tg:<bot_id>:<update_id>` — so the same update published twice (a webhook
//! retry, a restart between publish and offset) is stored once.

use serde_json::Value;
use service_kit::bus::PublishError;

use crate::AppState;
use crate::normalize::{self, Classified, Malformed};

/// What happened to an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored on JetStream (`duplicate`: it had been stored before).
    Published {
        /// JetStream had seen the key inside its duplicate window.
        duplicate: bool,
    },
    /// Not relayed; the reason is for the log.
    Ignored(&'static str),
}

/// Why an update was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not a Telegram update: 400 for the webhook, a dead letter for long polling.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// JetStream did not store it: 503 for the webhook, retried by long polling.
    #[error(transparent)]
    Bus(#[from] PublishError),
}

/// Classifies and publishes one update; returns after the JetStream ack.
pub async fn ingest(state: &AppState, raw: &Value) -> Result<Ingested, IngestError> {
    let outcome = match normalize::classify(state.scope(), raw)? {
        Classified::Ignore(reason) => {
            tracing::debug!(
                update_id = normalize::update_id(raw),
                reason,
                "update not relayed"
            );
            Ingested::Ignored(reason)
        }
        Classified::Publish(env) => {
            let published = state.bus.publish(&*env).await?;
            tracing::info!(
                update_id = normalize::update_id(raw),
                subject = %env.subject(),
                duplicate = published.duplicate,
                "Telegram update accepted"
            );
            Ingested::Published {
                duplicate: published.duplicate,
            }
        }
    };
    let label = match outcome {
        Ingested::Published { duplicate: false } => "published",
        Ingested::Published { duplicate: true } => "duplicate",
        Ingested::Ignored(_) => "ignored",
    };
    metrics::counter!("telegram_updates_total", "outcome" => label).increment(1);
    Ok(outcome)
}

/// An update that cannot be read (the secret or the poll vouch for it coming from Telegram):
/// kept as a dead letter in `telegram.dead_letters` (subject `telegram.update.unreadable`), so
/// that nothing Telegram sent is lost without a trace; returns its id.
///
/// Errors: the database did not take it.
pub async fn keep_unreadable(state: &AppState, raw: &Value, reason: &str) -> anyhow::Result<i64> {
    let body = raw.to_string();
    let key = format!(
        "tg:{}:unreadable:{}",
        state.settings.bot_id,
        normalize::update_id(raw).map_or_else(|| "-".to_owned(), |i| i.to_string())
    );
    let id = state
        .dead_letters
        .store(service_kit::dead_letter::NewDeadLetter {
            consumer: None,
            subject: "telegram.update.unreadable",
            msg_id: &key,
            ordering_key: None,
            body: body.as_bytes(),
            reason,
            attempts: 1,
        })
        .await?;
    tracing::error!(
        dead_letter = id,
        reason,
        "unreadable Telegram update kept as a dead letter"
    );
    metrics::counter!("telegram_updates_total", "outcome" => "dead_lettered").increment(1);
    Ok(id)
}
