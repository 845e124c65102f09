//! JetStream: the `EVENTS` and `COMMANDS` streams and publishing envelopes to them.
//!
//! Every publish carries `Nats-Msg-Id` = the envelope's idempotency key (so one upstream
//! delivery published twice inside the duplicate window is stored once) and the W3C
//! `traceparent` of the publishing span, and returns only after JetStream acknowledged it.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use domain::{Envelope, Payload, Subject};

/// Duplicate window of both streams: a publish with a `Nats-Msg-Id` seen within it is
/// acknowledged as a duplicate and not stored again.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How long a publish may wait for JetStream's acknowledgement.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to NATS with JetStream, bound to a subject prefix (empty in production).
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
}

/// Publishing failed: NATS is unreachable, or JetStream did not acknowledge in time.
/// Callers at the ingress answer 5xx so that the upstream retries.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {subject} failed: {reason}")]
pub struct PublishError {
    /// The subject on the wire (with prefix) the publish was for.
    pub subject: String,
    /// What went wrong: the NATS error, or the missing acknowledgement.
    pub reason: String,
}

/// What JetStream said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Stream sequence number of the stored message.
    pub sequence: u64,
    /// `true` when the `Nats-Msg-Id` had been seen inside the duplicate window.
    pub duplicate: bool,
}

impl Bus {
    /// Connects (reconnecting by itself when NATS goes away later) and creates or
    /// updates the two streams.
    ///
    /// Errors: NATS unreachable at start, or JetStream disabled on the server.
    pub async fn connect(url: &str, prefix: &str, name: &str) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(5)))
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let bus = Self {
            js: jetstream::new(client.clone()),
            client,
            prefix: prefix.trim_matches('.').to_owned(),
        };
        bus.ensure_streams().await?;
        Ok(bus)
    }

    /// The core NATS client (request/reply, fan-out).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// `EVENTS`, or `<PREFIX>_EVENTS` with a prefix.
    pub fn events_stream(&self) -> String {
        self.stream_name("EVENTS")
    }

    /// `COMMANDS`, or `<PREFIX>_COMMANDS` with a prefix.
    pub fn commands_stream(&self) -> String {
        self.stream_name("COMMANDS")
    }

    fn stream_name(&self, base: &str) -> String {
        if self.prefix.is_empty() {
            base.to_owned()
        } else {
            let p: String = self
                .prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{p}_{base}")
        }
    }

    /// The subject as it is on the wire, with this bus's prefix.
    pub fn wire_subject(&self, subject: &Subject) -> String {
        subject.with_prefix(&self.prefix)
    }

    /// Creates both streams, or updates them to this configuration (idempotent; safe to run
    /// from every replica at start).
    pub async fn ensure_streams(&self) -> anyhow::Result<()> {
        for (name, subject) in [
            (self.events_stream(), Subject::all_events()),
            (self.commands_stream(), Subject::all_commands()),
        ] {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![self.wire_subject(&subject)],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            };
            match self.js.get_stream(&name).await {
                Ok(_) => {
                    self.js
                        .update_stream(&config)
                        .await
                        .with_context(|| format!("updating stream {name}"))?;
                }
                Err(_) => {
                    self.js
                        .get_or_create_stream(config)
                        .await
                        .with_context(|| format!("creating stream {name}"))?;
                }
            }
        }
        Ok(())
    }

    /// Publishes `envelope` to its subject and waits for JetStream's acknowledgement.
    /// Sets `Nats-Msg-Id` to the idempotency key and `traceparent` to the current trace
    /// (the envelope's own `traceparent` is filled in too when empty).
    pub async fn publish<P: Payload>(
        &self,
        envelope: &Envelope<P>,
    ) -> Result<Published, PublishError> {
        let mut envelope = envelope.clone();
        if envelope.traceparent.is_none() {
            envelope.traceparent = crate::telemetry::current_traceparent();
        }
        let subject = self.wire_subject(&envelope.subject());
        let id = envelope.idempotency_key.to_string();
        self.publish_raw(
            &subject,
            &id,
            envelope.traceparent.as_deref(),
            envelope.to_bytes(),
        )
        .await
    }

    /// Publishes bytes that already are an envelope (dead-letter replay) under `msg_id`.
    pub async fn publish_raw(
        &self,
        wire_subject: &str,
        msg_id: &str,
        traceparent: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Published, PublishError> {
        let err = |reason: String| PublishError {
            subject: wire_subject.to_owned(),
            reason,
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let ack = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            self.js
                .publish_with_headers(wire_subject.to_owned(), headers, body.into())
                .await
                .map_err(|e| err(e.to_string()))?
                .await
                .map_err(|e| err(e.to_string()))
        })
        .await
        .map_err(|_| err("no acknowledgement from JetStream within 5 s".into()))??;
        metrics::counter!("bus_published_total", "duplicate" => ack.duplicate.to_string())
            .increment(1);
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// `true` when the client is connected, for `/ready`.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Deletes this bus's streams (tests clean up their prefixed streams with it).
    pub async fn delete_streams(&self) -> anyhow::Result<()> {
        for name in [self.events_stream(), self.commands_stream()] {
            let _ = self.js.delete_stream(&name).await;
        }
        Ok(())
    }
}
