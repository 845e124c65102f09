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
//!     ordering_key TEXT);
//! ```
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
        self.insert_keyed(subject, msg_id, None, body, reason, attempts)
            .await
    }

    /// Stores a message given up on, with its ordering key; returns its id.
    pub async fn insert_keyed(
        &self,
        subject: &str,
        msg_id: &str,
        ordering_key: Option<&str>,
        body: &[u8],
        reason: &str,
        attempts: i32,
    ) -> anyhow::Result<i64> {
        let payload: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(body) }));
        let id = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (subject, msg_id, payload, reason, attempts, ordering_key) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            self.table
        )))
        .bind(subject)
        .bind(msg_id)
        .bind(payload)
        .bind(reason)
        .bind(attempts)
        .bind(ordering_key)
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

    /// Publishes dead letter `id` again to its subject (as a new JetStream message, so the
    /// duplicate window does not swallow it) and marks it replayed. The consumers'
    /// idempotency makes a replay of something already done harmless.
    ///
    /// Errors: no such id, or the publish failed (then it stays unreplayed).
    pub async fn replay(&self, bus: &Bus, id: i64) -> anyhow::Result<DeadLetter> {
        let dl: DeadLetter = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, subject, msg_id, payload, reason, ordering_key, attempts, created_at, replayed_at \
             FROM {} WHERE id = $1",
            self.table
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .with_context(|| format!("no dead letter with id {id}"))?;
        let body = serde_json::to_vec(&dl.payload)?;
        let msg_id = format!("{}:replay:{}:{}", dl.msg_id, dl.id, uuid::Uuid::now_v7());
        bus.publish_raw(&dl.subject, &msg_id, None, body).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET replayed_at = now() WHERE id = $1",
            self.table
        )))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(dl)
    }
}
