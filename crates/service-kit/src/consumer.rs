//! Durable JetStream pull consumers: the egress half of every service.
//!
//! A message is acked only after its handler succeeded. A retriable failure is NAKed with a
//! delay (the upstream's `retry_after` when it gave one, else the consumer's backoff for that
//! attempt); after the last attempt, or on a failure that can never succeed, the message goes
//! to the service's dead-letter table and is then acked. A message that is not an envelope is
//! dead-lettered at once; an envelope of an unknown `type` is acked and logged (a newer
//! producer), never retried forever.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use domain::{DecodeError, Envelope, Payload, Subject};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::Bus;
use crate::dead_letter::DeadLetters;

/// What a handler says when it could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Try again later (upstream 5xx/429/timeout, VK code 6 …); `after` overrides the
    /// backoff, e.g. from `Retry-After`.
    #[error("{reason}")]
    Retry {
        /// What failed, for the log and, after the last attempt, the dead letter.
        reason: String,
        /// Delay before the redelivery; `None` = the consumer's backoff for this attempt.
        after: Option<Duration>,
    },
    /// Can never succeed (VK code 901, a 4xx that is not 429 …): dead-letter it now.
    #[error("{0}")]
    Fatal(String),
    /// The service's own dependency (its database) is down: nothing is wrong with the message.
    /// It is NAKed with `after` however often it was delivered and never dead-lettered (the
    /// dead-letter table is in that same database), so it is done once the dependency is back.
    #[error("{reason}")]
    Unavailable {
        /// What is down, for the log.
        reason: String,
        /// Delay before the redelivery.
        after: Duration,
    },
}

impl HandleError {
    /// Retriable, with the consumer's backoff.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }
}

/// How one durable consumer behaves.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Stream name (`bus.events_stream()` or `bus.commands_stream()`).
    pub stream: String,
    /// Durable name, shared by every replica of the service (they share the work).
    pub durable: String,
    /// Subject filter, without prefix (the bus adds it).
    pub filter: Subject,
    /// Deliveries before the message is dead-lettered (≥ 1).
    pub max_attempts: u32,
    /// NAK delay before attempt 2, 3, …; the last entry repeats.
    pub backoff: Vec<Duration>,
    /// How long JetStream waits for an ack before redelivering (longer than a handler runs).
    pub ack_wait: Duration,
}

impl ConsumerSpec {
    /// Defaults: 8 attempts, backoff 1 s, 5 s, 15 s, 30 s, 60 s…, ack wait 60 s.
    pub fn new(stream: String, durable: impl Into<String>, filter: Subject) -> Self {
        Self {
            stream,
            durable: durable.into(),
            filter,
            max_attempts: 8,
            backoff: [1, 5, 15, 30, 60]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            ack_wait: Duration::from_secs(60),
        }
    }

    fn delay_before(&self, next_attempt: u32) -> Duration {
        let i = (next_attempt.saturating_sub(2) as usize).min(self.backoff.len().saturating_sub(1));
        self.backoff
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// Runs the consumer until `shutdown` is cancelled; the message in hand is finished (and
/// acked or NAKed) before it returns. `handler` gets each decoded envelope.
///
/// It never gives up on its own: when the consumer cannot be created (stream missing, NATS
/// down) it logs a warning and tries again every second.
pub async fn run<P, F, Fut>(
    bus: Bus,
    dead_letters: DeadLetters,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    handler: F,
) -> anyhow::Result<()>
where
    P: Payload,
    F: Fn(Envelope<P>) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    // The consumer is (re-)created whenever pulling fails, e.g. after its stream was
    // deleted and re-created or NATS lost its state; until then the loop retries every
    // second and says so in the log.
    let mut consumer = None;
    tracing::info!(durable = %spec.durable, filter = %spec.filter, "consumer starting");
    while !shutdown.is_cancelled() {
        let current = match consumer.take() {
            Some(c) => c,
            None => match create(&bus, &spec).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(durable = %spec.durable, error = format!("{e:#}"), "cannot create consumer; retrying in 1 s");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        // Small batches: messages are handled one at a time and must be acked within
        // ack_wait. Heartbeats every 2 s make a vanished consumer show up as an error
        // within seconds, and then it is re-created.
        let pulled = current
            .stream()
            .max_messages_per_batch(10)
            .expires(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await;
        let mut messages = match pulled {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(durable = %spec.durable, error = %e, "cannot pull; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(msg)) => handle_one(&spec, &dead_letters, &handler, msg).await,
                Some(Err(e)) => {
                    tracing::warn!(durable = %spec.durable, error = %e, "pull failed; re-creating the consumer");
                    break;
                }
                None => break,
            }
        }
    }
    tracing::info!(durable = %spec.durable, "consumer stopped");
    Ok(())
}

async fn create(
    bus: &Bus,
    spec: &ConsumerSpec,
) -> anyhow::Result<jetstream::consumer::PullConsumer> {
    let stream = bus
        .jetstream()
        .get_stream(&spec.stream)
        .await
        .with_context(|| format!("stream {} not found", spec.stream))?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        filter_subject: bus.wire_subject(&spec.filter),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        // Unlimited at the server: we dead-letter ourselves, and only ack once that is stored.
        max_deliver: -1,
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&spec.durable, config)
        .await
        .with_context(|| format!("creating consumer {}", spec.durable))
}

async fn handle_one<P, F, Fut>(
    spec: &ConsumerSpec,
    dead_letters: &DeadLetters,
    handler: &F,
    msg: jetstream::Message,
) where
    P: Payload,
    F: Fn(Envelope<P>) -> Fut,
    Fut: Future<Output = Result<(), HandleError>>,
{
    let attempt = msg.info().map(|i| i.delivered).unwrap_or(1).max(1) as u32;
    let msg_id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "consume",
        durable = %spec.durable,
        subject = %msg.subject,
        msg_id = %msg_id,
        attempt,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::set_parent_from_headers(&span, msg.headers.as_ref());
    crate::telemetry::record_trace_id(&span);
    async {
        let started = std::time::Instant::now();
        let outcome = match Envelope::<P>::decode(&msg.payload) {
            Err(DecodeError::UnknownType(t)) => {
                tracing::info!(r#type = %t, "skipping an envelope of unknown type");
                Outcome::Ack("unknown_type")
            }
            Err(e @ DecodeError::Malformed(_)) => Outcome::DeadLetter(format!("undecodable: {e}")),
            Ok(env) => match handler(env).await {
                Ok(()) => Outcome::Ack("ok"),
                Err(HandleError::Fatal(reason)) => Outcome::DeadLetter(reason),
                Err(HandleError::Unavailable { reason, after }) => {
                    tracing::warn!(%reason, delay_ms = after.as_millis() as u64, "dependency unavailable; will retry");
                    Outcome::Nak(after)
                }
                Err(HandleError::Retry { reason, .. }) if attempt >= spec.max_attempts => {
                    Outcome::DeadLetter(format!("gave up after {attempt} attempts: {reason}"))
                }
                Err(HandleError::Retry { reason, after }) => {
                    let delay = after.unwrap_or_else(|| spec.delay_before(attempt + 1));
                    tracing::warn!(%reason, delay_ms = delay.as_millis() as u64, "will retry");
                    Outcome::Nak(delay)
                }
            },
        };
        let result = match outcome {
            Outcome::Ack(label) => {
                metrics::counter!("consumer_messages_total", "durable" => spec.durable.clone(), "outcome" => label).increment(1);
                msg.ack().await
            }
            Outcome::Nak(delay) => {
                metrics::counter!("consumer_messages_total", "durable" => spec.durable.clone(), "outcome" => "retry").increment(1);
                msg.ack_with(AckKind::Nak(Some(delay))).await
            }
            Outcome::DeadLetter(reason) => {
                match dead_letters
                    .insert(msg.subject.as_str(), &msg_id, &msg.payload, &reason, attempt as i32)
                    .await
                {
                    Ok(id) => {
                        tracing::error!(dead_letter_id = id, %reason, "message dead-lettered");
                        metrics::counter!("consumer_messages_total", "durable" => spec.durable.clone(), "outcome" => "dead_letter").increment(1);
                        msg.ack().await
                    }
                    Err(e) => {
                        // Keep the message: it is redelivered until the dead letter is stored.
                        tracing::error!(error = %e, %reason, "cannot store dead letter; keeping the message");
                        msg.ack_with(AckKind::Nak(Some(Duration::from_secs(30)))).await
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "ack failed; JetStream will redeliver");
        }
        metrics::histogram!("consumer_handle_seconds", "durable" => spec.durable.clone())
            .record(started.elapsed().as_secs_f64());
    }
    .instrument(span.clone())
    .await;
}

enum Outcome {
    Ack(&'static str),
    Nak(Duration),
    DeadLetter(String),
}
