//! The ingress half shared by the Callback API route and the Long Poll worker: a verified VK
//! event becomes a normalized envelope on JetStream.

use domain::{Envelope, Event, IdempotencyKey, Source};
use service_kit::bus::PublishError;
use vk_api::callback::{CallbackEvent, MessageNew};

use crate::AppState;
use crate::normalize;

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored on JetStream (`duplicate`: it had been stored before).
    Published {
        /// JetStream had seen the idempotency key inside its duplicate window.
        duplicate: bool,
    },
    /// Nothing to relay; the reason is for the log.
    Skipped(&'static str),
}

/// Why an event was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The event's object is not what its type documents: 400 for a callback.
    #[error("{0}")]
    Malformed(String),
    /// JetStream did not store it: 503 for a callback, retry for Long Poll.
    #[error(transparent)]
    Bus(#[from] PublishError),
}

/// Publishes `message_new` as `events.vk.message.received` (key `vk:<group_id>:<event_id>`);
/// other types are skipped (`message_reply` is VK echoing the community's own sends).
/// The event's group and secret must have been checked by the caller.
pub async fn ingest(state: &AppState, event: &CallbackEvent) -> Result<Ingested, IngestError> {
    let outcome = match event.kind.as_str() {
        "message_new" => message_new(state, event).await?,
        _ => Ingested::Skipped("event type not relayed"),
    };
    let label = match outcome {
        Ingested::Published { duplicate: false } => "published",
        Ingested::Published { duplicate: true } => "duplicate",
        Ingested::Skipped(_) => "ignored",
    };
    metrics::counter!("vk_events_total", "type" => event.kind.clone(), "outcome" => label)
        .increment(1);
    Ok(outcome)
}

/// The normalized envelope of a `message_new` (`events.vk.message.received`, key
/// `vk:<group_id>:<event_id>`), without publishing it: `None` for other types and for the
/// community's own messages. Shared by [`ingest`] and the benchmark's ceiling binary.
///
/// Errors: [`IngestError::Malformed`] when the object is not the API ≥ 5.103 shape.
pub fn envelope(
    group_id: i64,
    event: &CallbackEvent,
) -> Result<Option<Envelope<Event>>, IngestError> {
    if event.kind != "message_new" {
        return Ok(None);
    }
    let object: MessageNew = serde_json::from_value(event.object.clone()).map_err(|e| {
        IngestError::Malformed(format!(
            "message_new object is not the API ≥ 5.103 shape {{message, client_info}}: {e}"
        ))
    })?;
    if object.message.from_id <= 0 || object.message.out == Some(1) {
        return Ok(None);
    }
    let key = match event.event_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => IdempotencyKey::vk_event(group_id, id),
        // Very old API versions had no event_id: the message identity is as good.
        None => IdempotencyKey::from_parts(&[
            "vk",
            &group_id.to_string(),
            "msg",
            &object.message.peer_id.to_string(),
            &object.message.id.to_string(),
        ]),
    };
    let msg = normalize::inbound(&object.message);
    Ok(Some(Envelope::new(
        Source::Vk,
        msg.sent_at,
        key,
        Event::MessageReceived(msg),
    )))
}

async fn message_new(state: &AppState, event: &CallbackEvent) -> Result<Ingested, IngestError> {
    let Some(env) = envelope(state.settings.vk.group_id, event)? else {
        return Ok(Ingested::Skipped("written by the community itself"));
    };
    let published = state.bus.publish(&env).await?;
    if let Event::MessageReceived(m) = &env.payload {
        tracing::info!(
            peer_id = %m.conversation.id,
            vk_message_id = %m.message_id,
            duplicate = published.duplicate,
            "VK message accepted"
        );
    }
    Ok(Ingested::Published {
        duplicate: published.duplicate,
    })
}
