//! The dead-letter table of a service: messages that failed for good, kept for an operator
//! to list and replay (`<service> dlq list|replay <id>`).
//!
//! Every service has the table `<schema>.dead_letters` in its own migrations:
//!
//! ```sql
//! CREATE TABLE <schema>.dead_letters (
//!     id BIGSERIAL PRIMARY KEY, subject TEXT NOT NULL, msg_id TEXT NOT NULL,
//!     payload JSONB NOT NULL, reason TEXT NOT NULL, attempts INT NOT NULL,
//!     created_at TIMESTAMPTZ NOT NULL DEFAULT now(), replayed_at TIMESTAMPTZ,
//!     ordering_key TEXT, consumer TEXT);
//! CREATE UNIQUE INDEX dead_letters_consumer_msg_id ON <schema>.dead_letters (consumer, msg_id);
//! ```
//!
//! `(consumer, msg_id)` is unique: a message whose ack was lost after its dead letter was
//! stored, and that comes again and fails again, is stored once.
//!
//! `ordering_key` is the consumer's ordering key of the message (a peer, a conversation …),
//! so an operator sees which conversation lost a message.

use anyhow::Context;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::bus::Bus;

/// One dead letter.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeadLetter {
    /// Row id (`BIGSERIAL`); what `dlq replay <id>` takes.
    pub id: i64,
    /// Subject on the wire (with prefix) the message was consumed from.
    pub subject: String,
    /// `Nats-Msg-Id` (idempotency key) of the original message.
    pub msg_id: String,
    /// The envelope as it was consumed (or `{"raw": "<text>"}` when it was not JSON).
    pub payload: serde_json::Value,
    /// The last error, in words an operator can act on.
    pub reason: String,
    /// The consumer's ordering key of the message (`None` for an undecodable one).
    pub ordering_key: Option<String>,
    /// Deliveries tried before it was given up.
    pub attempts: i32,
    /// When it was dead-lettered (RFC 3339 in JSON).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last replayed; `None` while it never was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<OffsetDateTime>,
}

/// A dead letter to store ([`DeadLetters::store`]).
#[derive(Debug, Clone, Copy)]
pub struct NewDeadLetter<'a> {
    /// The durable consumer that gave up (`None` for one stored at an ingress route).
    pub consumer: Option<&'a str>,
    /// Subject on the wire (with prefix), where a replay publishes it.
    pub subject: &'a str,
    /// `Nats-Msg-Id` (idempotency key) of the message.
    pub msg_id: &'a str,
    /// The consumer's ordering key of the message.
    pub ordering_key: Option<&'a str>,
    /// The message body as received.
    pub body: &'a [u8],
    /// Why it was given up, in words an operator can act on.
    pub reason: &'a str,
    /// Attempts made.
    pub attempts: i32,
}

/// Access to `<schema>.dead_letters`.
#[derive(Clone)]
pub struct DeadLetters {
    pool: PgPool,
    table: String,
}

impl DeadLetters {
    /// The table in `schema` (an identifier from code, never user input).
    pub fn new(pool: PgPool, schema: &str) -> Self {
        Self {
            pool,
            table: format!("{schema}.dead_letters"),
        }
    }

    /// Stores a message given up on; returns its id.
    pub async fn insert(
        &self,
        subject: &str,
        msg_id: &str,
        body: &[u8],
        reason: &str,
        attempts: i32,
    ) -> anyhow::Result<i64> {
        self.store(NewDeadLetter {
            consumer: None,
            subject,
            msg_id,
            ordering_key: None,
            body,
            reason,
            attempts,
        })
        .await
    }

    /// Stores a message a consumer gave up on, with its ordering key; returns its id. The same
    /// `(consumer, msg_id)` stored again updates the first row (reason, attempts) instead of
    /// adding a second.
    pub async fn store(&self, dl: NewDeadLetter<'_>) -> anyhow::Result<i64> {
        let NewDeadLetter {
            consumer,
            subject,
            msg_id,
            ordering_key,
            body,
            reason,
            attempts,
        } = dl;
        let payload: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(body) }));
        let id = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (subject, msg_id, payload, reason, attempts, ordering_key, consumer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (consumer, msg_id) DO UPDATE \
               SET reason = EXCLUDED.reason, attempts = EXCLUDED.attempts \
             RETURNING id",
            self.table
        )))
        .bind(subject)
        .bind(msg_id)
        .bind(payload)
        .bind(reason)
        .bind(attempts)
        .bind(ordering_key)
        .bind(consumer)
        .fetch_one(&self.pool)
        .await
        .context("storing a dead letter")?;
        metrics::counter!("dead_letters_total").increment(1);
        Ok(id)
    }

    /// The newest `limit` dead letters, newest first; `pending_only` hides replayed ones.
    pub async fn list(&self, limit: i64, pending_only: bool) -> anyhow::Result<Vec<DeadLetter>> {
        let filter = if pending_only {
            "WHERE replayed_at IS NULL"
        } else {
            ""
        };
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, subject, msg_id, payload, reason, ordering_key, attempts, created_at, replayed_at \
             FROM {} {filter} ORDER BY id DESC LIMIT $1",
            self.table
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Publishes dead letter `id` again to its subject and marks it replayed, once:
    /// [`Self::replay_with`] without `force`.
    ///
    /// Errors: as [`Self::replay_with`].
    pub async fn replay(&self, bus: &Bus, id: i64) -> anyhow::Result<DeadLetter> {
        self.replay_with(bus, id, false).await
    }

    /// Publishes dead letter `id` again to its subject and marks it replayed, under a row
    /// lock, so two operators replaying at once publish it once. A row already replayed is
    /// refused unless `force`. The republished `Nats-Msg-Id` is derived from the dead letter
    /// (`<msg_id>:replay:<id>:<generation>`, the generation being the previous replay's time
    /// or 0), so a replay repeated after a lost answer is deduplicated by JetStream, while a
    /// forced replay is a new message. The consumers' idempotency makes a replay of something
    /// already done harmless.
    ///
    /// Errors: no such id, already replayed (without `force`), or the publish failed (then it
    /// stays as it was).
    pub async fn replay_with(&self, bus: &Bus, id: i64, force: bool) -> anyhow::Result<DeadLetter> {
        let mut tx = self.pool.begin().await.context("connecting to Postgres")?;
        let dl: DeadLetter = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, subject, msg_id, payload, reason, ordering_key, attempts, created_at, replayed_at \
             FROM {} WHERE id = $1 FOR UPDATE",
            self.table
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .with_context(|| format!("no dead letter with id {id}"))?;
        let generation = match dl.replayed_at {
            Some(at) if !force => anyhow::bail!(
                "dead letter {id} was replayed already ({}); add --force to replay it again",
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            Some(at) => at.unix_timestamp_nanos(),
            None => 0,
        };
        let body = serde_json::to_vec(&dl.payload)?;
        let msg_id = format!("{}:replay:{}:{generation}", dl.msg_id, dl.id);
        bus.publish_raw(&dl.subject, &msg_id, None, body).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET replayed_at = now() WHERE id = $1",
            self.table
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit()
            .await
            .context("marking the dead letter replayed")?;
        Ok(dl)
    }
}
