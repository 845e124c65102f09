//! Poison input kept, not refused: an inbound body that was **authenticated** (VK's `secret`
//! and community, the Long Poll key, the Chatwoot path id and signature) but does not fit the
//! structs of this build is answered `ok` / 200 and stored as a dead letter with the reason,
//! instead of a 400 that VK re-sends and, after repeated errors, answers by no longer sending
//! to the server at all (every later message lost).
//!
//! The dead letter is an envelope on `cmd.vk.inbound.reingest` whose `data` is the body as it
//! came (JSON; a non-JSON body as a JSON string; VK's `secret` removed):
//!
//! ```json
//! {"type": "vk.event", "data": {"type": "message_new", "group_id": 1, "object": {…}, …}, …}
//! {"type": "chatwoot.webhook", "data": {"event": "message_created", "id": 7, …}, …}
//! ```
//!
//! `vk-connector dlq replay <id>` publishes it to that subject; this consumer hands `data` to
//! the route's own code after the checks that need no secret ([`ingest`] for a VK event,
//! [`chatwoot::process`] for a webhook), so a build that reads the shape relays it as if it had
//! just arrived. A body this build still cannot read is dead-lettered again, by this consumer,
//! with the reason, and stays replayable.

use anyhow::Context;
use domain::{Envelope, IdempotencyKey, Payload, Source, Subject};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::consumer::{ConsumerSpec, HandleError};
use sha2::{Digest, Sha256};
use vk_api::callback::CallbackEvent;

use crate::AppState;
use crate::consumers::db_failure;
use crate::http::chatwoot::{self, WebhookError};
use crate::ingest::{IngestError, ingest};

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "vk-connector-reingest";

/// The command name: subject `cmd.vk.inbound.reingest`.
pub const REINGEST: &str = "vk.inbound.reingest";

/// Who stored the dead letter (its `consumer` column): one row per body and origin, however
/// often the sender delivers it.
pub mod origin {
    /// `POST /vk/callback/{id}`.
    pub const VK_CALLBACK: &str = "vk-callback";
    /// The Bots Long Poll worker.
    pub const VK_LONG_POLL: &str = "vk-long-poll";
    /// `POST /chatwoot/webhook/{id}`.
    pub const CHATWOOT_WEBHOOK: &str = "chatwoot-webhook";
}

/// An inbound body that did not decode, as the dead letter keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Unreadable {
    /// A VK Callback API / Long Poll event object, without `secret`.
    #[serde(rename = "vk.event")]
    VkEvent(Value),
    /// A Chatwoot webhook body: its JSON, or the text as a JSON string when it was not JSON.
    #[serde(rename = "chatwoot.webhook")]
    ChatwootWebhook(Value),
}

impl Unreadable {
    /// Wire names (`type`).
    pub const TYPES: &'static [&'static str] = &["vk.event", "chatwoot.webhook"];
}

impl Payload for Unreadable {
    const TYPES: &'static [&'static str] = Unreadable::TYPES;
    fn subject(&self, _source: Source) -> Subject {
        Subject::command(REINGEST)
    }
}

/// `cmd.vk.inbound.reingest`; replays are independent of each other (no ordering key).
pub fn spec() -> ConsumerSpec<Unreadable> {
    ConsumerSpec::new(DURABLE, Subject::command(REINGEST), |_| None)
}

/// Stores an authenticated VK event that did not decode; `event` is the body as JSON (its
/// `secret` is dropped here). Returns the dead letter's id.
///
/// Errors: the database did not take it (the caller answers so that VK delivers it again).
pub async fn keep_vk_event(
    state: &AppState,
    origin: &str,
    mut event: Value,
    reason: &str,
) -> anyhow::Result<i64> {
    if let Some(object) = event.as_object_mut() {
        object.remove("secret");
    }
    let group = state.settings.vk.group_id.to_string();
    let key = match event.get("event_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => IdempotencyKey::from_parts(&["vk", &group, "unreadable", id]),
        _ => IdempotencyKey::from_parts(&["vk", &group, "unreadable", &digest(&event)]),
    };
    keep(
        state,
        origin,
        Source::Vk,
        key,
        Unreadable::VkEvent(event),
        reason,
    )
    .await
}

/// Stores an authenticated Chatwoot webhook body that did not decode. Returns the dead
/// letter's id.
///
/// Errors: the database did not take it.
pub async fn keep_chatwoot_webhook(
    state: &AppState,
    body: &[u8],
    reason: &str,
) -> anyhow::Result<i64> {
    let data = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let account = state.settings.chatwoot.account_id.to_string();
    let key = IdempotencyKey::from_parts(&["chatwoot", &account, "unreadable", &digest(&data)]);
    keep(
        state,
        origin::CHATWOOT_WEBHOOK,
        Source::Chatwoot,
        key,
        Unreadable::ChatwootWebhook(data),
        reason,
    )
    .await
}

async fn keep(
    state: &AppState,
    origin: &str,
    source: Source,
    key: IdempotencyKey,
    payload: Unreadable,
    reason: &str,
) -> anyhow::Result<i64> {
    let env = Envelope::new(source, time::OffsetDateTime::now_utc(), key, payload);
    let subject = state.bus.wire_subject(&env.subject());
    let id = state
        .dead_letters
        .store(service_kit::dead_letter::NewDeadLetter {
            consumer: Some(origin),
            subject: &subject,
            msg_id: env.idempotency_key.as_str(),
            ordering_key: None,
            body: &env.to_bytes(),
            reason,
            attempts: 1,
        })
        .await
        .context("keeping an unreadable inbound body")?;
    tracing::error!(
        dead_letter_id = id,
        origin,
        reason,
        "inbound body does not fit; kept as a dead letter (`vk-connector dlq replay {id}` once a release reads it)"
    );
    metrics::counter!("inbound_unreadable_total", "origin" => origin.to_owned()).increment(1);
    Ok(id)
}

/// Hex SHA-256 of the JSON, for a body with no identity of its own.
fn digest(v: &Value) -> String {
    Sha256::digest(v.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Handles one replayed body: the route's code without the secret checks (the bus is ours).
pub async fn handle(state: AppState, env: Envelope<Unreadable>) -> Result<(), HandleError> {
    match env.payload {
        Unreadable::VkEvent(raw) => {
            let event: CallbackEvent = serde_json::from_value(raw)
                .map_err(|e| HandleError::Fatal(format!("still not a VK callback event: {e}")))?;
            if event.group_id != state.settings.vk.group_id {
                return Err(HandleError::Fatal(format!(
                    "group_id {} is not the configured community",
                    event.group_id
                )));
            }
            match ingest(&state, &event).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, event_id = ?event.event_id, "replayed VK event taken");
                    Ok(())
                }
                Err(IngestError::Malformed(m)) => Err(HandleError::Fatal(m)),
                Err(IngestError::Bus(e)) => Err(HandleError::retry(e)),
            }
        }
        Unreadable::ChatwootWebhook(raw) => {
            let body = match raw {
                Value::String(text) => text.into_bytes(),
                other => other.to_string().into_bytes(),
            };
            match chatwoot::process(&state, &body, None).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, "replayed Chatwoot webhook taken");
                    Ok(())
                }
                Err(WebhookError::Unreadable(m)) => Err(HandleError::Fatal(m)),
                Err(WebhookError::Bus(e)) => Err(HandleError::retry(e)),
                Err(WebhookError::Store(e)) => Err(db_failure(e)),
            }
        }
    }
}
