//! SQL for schema `telegram`: the long-poll offset, customer ↔ topic, message ↔ copy, and
//! the operator notices already sent. Every row is keyed by the bot id, so two bots can share
//! the database.

use sqlx::PgPool;

/// Name of this service's schema.
pub const SCHEMA: &str = "telegram";

/// A customer's forum topic.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Topic {
    /// The customer's Telegram user id (= their private chat id).
    pub user_id: i64,
    /// The topic's `message_thread_id` in the group.
    pub thread_id: i64,
    /// The customer's `language_code` when last seen.
    pub language: Option<String>,
    /// Closed with `/close`; reopened on the customer's next message.
    pub closed: bool,
    /// Banned with `/ban`: their messages are not relayed.
    pub banned: bool,
    /// The customer blocked the bot (403).
    pub blocked: bool,
    /// The operators were told about the block.
    pub blocked_notified: bool,
}

/// What a relayed message became on the other side.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Link {
    /// Chat of the copies.
    pub target_chat_id: i64,
    /// Message ids of the copies (several when a text was split; none for a command).
    pub target_message_ids: Vec<i64>,
    /// `text`, `media`, `command` or `banned` (dropped).
    pub kind: String,
}

/// Access to schema `telegram`.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    bot_id: i64,
}

impl Store {
    /// A store for bot `bot_id` on `pool`.
    pub fn new(pool: PgPool, bot_id: i64) -> Self {
        Self { pool, bot_id }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The next getUpdates `offset`, 0 when the bot never polled.
    pub async fn poll_offset(&self) -> sqlx::Result<i64> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT next_update_id FROM telegram.poll_offsets WHERE bot_id = $1",
        )
        .bind(self.bot_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(v.unwrap_or(0))
    }

    /// Stores the next offset (never moves it back).
    pub async fn save_poll_offset(&self, next_update_id: i64) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO telegram.poll_offsets (bot_id, next_update_id) VALUES ($1, $2) \
             ON CONFLICT (bot_id) DO UPDATE SET \
               next_update_id = GREATEST(telegram.poll_offsets.next_update_id, EXCLUDED.next_update_id), \
               updated_at = now()",
        )
        .bind(self.bot_id)
        .bind(next_update_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The topic of customer `user_id`.
    pub async fn topic_of_user(&self, user_id: i64) -> sqlx::Result<Option<Topic>> {
        sqlx::query_as(
            "SELECT user_id, thread_id, language, closed, banned, blocked, blocked_notified \
             FROM telegram.topics WHERE bot_id = $1 AND user_id = $2",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The customer of topic `thread_id` in `group_id`.
    pub async fn topic_of_thread(
        &self,
        group_id: i64,
        thread_id: i64,
    ) -> sqlx::Result<Option<Topic>> {
        sqlx::query_as(
            "SELECT user_id, thread_id, language, closed, banned, blocked, blocked_notified \
             FROM telegram.topics WHERE bot_id = $1 AND group_id = $2 AND thread_id = $3",
        )
        .bind(self.bot_id)
        .bind(group_id)
        .bind(thread_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records the (new) topic of a customer: open, not blocked; a ban stays.
    pub async fn save_topic(
        &self,
        user_id: i64,
        group_id: i64,
        thread_id: i64,
        name: &str,
        language: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO telegram.topics (bot_id, user_id, group_id, thread_id, name, language) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (bot_id, user_id) DO UPDATE SET group_id = EXCLUDED.group_id, \
               thread_id = EXCLUDED.thread_id, name = EXCLUDED.name, language = EXCLUDED.language, \
               closed = false, blocked = false, blocked_notified = false, updated_at = now()",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .bind(group_id)
        .bind(thread_id)
        .bind(name)
        .bind(language)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets the `closed` / `banned` flags of a customer's topic.
    pub async fn set_flags(
        &self,
        user_id: i64,
        closed: Option<bool>,
        banned: Option<bool>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE telegram.topics SET closed = COALESCE($3, closed), banned = COALESCE($4, banned), \
             updated_at = now() WHERE bot_id = $1 AND user_id = $2",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .bind(closed)
        .bind(banned)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The customer wrote again: not blocked any more (and the language as now).
    pub async fn customer_seen(&self, user_id: i64, language: Option<&str>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE telegram.topics SET blocked = false, blocked_notified = false, \
             language = COALESCE($3, language), updated_at = now() \
             WHERE bot_id = $1 AND user_id = $2 AND (blocked OR language IS DISTINCT FROM COALESCE($3, language))",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .bind(language)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the customer as having blocked the bot; `true` when the operators have not been
    /// told yet (the caller tells them, once).
    pub async fn mark_blocked(&self, user_id: i64) -> sqlx::Result<bool> {
        // Both flags go together (only `customer_seen` clears them), so a row comes back only
        // for the first 403.
        let first: Option<bool> = sqlx::query_scalar(
            "UPDATE telegram.topics SET blocked = true, blocked_notified = true, updated_at = now() \
             WHERE bot_id = $1 AND user_id = $2 AND NOT blocked_notified RETURNING true",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(first.unwrap_or(false))
    }

    /// What message `message_id` of `chat_id` became, when it was relayed.
    pub async fn link(&self, chat_id: i64, message_id: i64) -> sqlx::Result<Option<Link>> {
        sqlx::query_as(
            "SELECT target_chat_id, target_message_ids, kind FROM telegram.message_links \
             WHERE bot_id = $1 AND source_chat_id = $2 AND source_message_id = $3",
        )
        .bind(self.bot_id)
        .bind(chat_id)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The source message whose copy is message `message_id` of `chat_id` (for replies).
    pub async fn source_of_copy(&self, chat_id: i64, message_id: i64) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT source_message_id FROM telegram.message_links \
             WHERE bot_id = $1 AND target_chat_id = $2 AND target_message_ids[1] = $3",
        )
        .bind(self.bot_id)
        .bind(chat_id)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records that message `message_id` of `chat_id` was relayed as `target_ids` in
    /// `target_chat_id` (or handled, for a command).
    pub async fn save_link(
        &self,
        chat_id: i64,
        message_id: i64,
        target_chat_id: i64,
        target_ids: &[i64],
        kind: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO telegram.message_links \
               (bot_id, source_chat_id, source_message_id, target_chat_id, target_message_ids, kind) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(self.bot_id)
        .bind(chat_id)
        .bind(message_id)
        .bind(target_chat_id)
        .bind(target_ids)
        .bind(kind)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims operator notice `kind`: `true` when it was not sent yet (the caller sends it).
    pub async fn claim_notice(&self, kind: &str) -> sqlx::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO telegram.operator_notices (bot_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(self.bot_id)
        .bind(kind)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets notice `kind` (the problem is gone, or sending it failed): it may be sent again.
    pub async fn clear_notice(&self, kind: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM telegram.operator_notices WHERE bot_id = $1 AND kind = $2")
            .bind(self.bot_id)
            .bind(kind)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
