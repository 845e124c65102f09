//! SQL for schema `telegram`: the long-poll offset, customer ↔ topic, message ↔ copy, the
//! operator notices already sent, and the helpdesk's dialogs, registrations and done-keys.
//! Every row is keyed by the bot id, so two bots can share the database.

use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;

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
    /// `text`, `media`, `command`, `banned` (dropped), or `partial` (some parts of a split
    /// text sent; not relayed yet).
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

    /// Stores the next offset, as the last batch set it (it may move back: Telegram restarts
    /// update ids after a week without updates).
    pub async fn save_poll_offset(&self, next_update_id: i64) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO telegram.poll_offsets (bot_id, next_update_id) VALUES ($1, $2) \
             ON CONFLICT (bot_id) DO UPDATE SET \
               next_update_id = EXCLUDED.next_update_id, \
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

    /// The notice about a block could not be sent: the next 403 tries again.
    pub async fn unmark_blocked_notice(&self, user_id: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE telegram.topics SET blocked_notified = false WHERE bot_id = $1 AND user_id = $2",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
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
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (bot_id, source_chat_id, source_message_id) \
             DO UPDATE SET target_chat_id = EXCLUDED.target_chat_id, \
               target_message_ids = EXCLUDED.target_message_ids, kind = EXCLUDED.kind \
             WHERE telegram.message_links.kind = 'partial'",
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

    /// The parts of a split text already sent for message `message_id` of `chat_id` into
    /// `target_chat_id` (kind `partial`), so a retry resumes after them.
    pub async fn partial(
        &self,
        chat_id: i64,
        message_id: i64,
        target_chat_id: i64,
    ) -> sqlx::Result<Vec<i64>> {
        Ok(self
            .link(chat_id, message_id)
            .await?
            .filter(|l| l.kind == "partial" && l.target_chat_id == target_chat_id)
            .map(|l| l.target_message_ids)
            .unwrap_or_default())
    }

    /// Forgets the parts sent so far (they went into a topic that was deleted).
    pub async fn drop_partial(&self, chat_id: i64, message_id: i64) -> sqlx::Result<()> {
        sqlx::query(
            "DELETE FROM telegram.message_links WHERE bot_id = $1 AND source_chat_id = $2 \
             AND source_message_id = $3 AND kind = 'partial'",
        )
        .bind(self.bot_id)
        .bind(chat_id)
        .bind(message_id)
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

    /// The helpdesk dialog of `user_id`, when they ever had one.
    pub async fn dialog(&self, user_id: i64) -> sqlx::Result<Option<DialogRow>> {
        sqlx::query_as(
            "SELECT step, data, registrations, updated_at FROM telegram.helpdesk_dialogs \
             WHERE bot_id = $1 AND user_id = $2",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Ends a helpdesk turn in one transaction: the dialog's new step (and the person's
    /// language), and what was done — message `message_id` of `chat_id` handled (its link, kind
    /// `helpdesk`, to the bot's answers `answer_ids`) or `done_key` recorded.
    pub async fn finish_turn(&self, turn: &TurnRecord<'_>) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO telegram.helpdesk_dialogs \
               (bot_id, user_id, step, data, language, registrations, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, now()) \
             ON CONFLICT (bot_id, user_id) DO UPDATE SET step = EXCLUDED.step, data = EXCLUDED.data, \
               language = COALESCE(EXCLUDED.language, telegram.helpdesk_dialogs.language), \
               registrations = EXCLUDED.registrations, updated_at = now()",
        )
        .bind(self.bot_id)
        .bind(turn.user_id)
        .bind(turn.step)
        .bind(turn.data)
        .bind(turn.language)
        .bind(turn.registrations)
        .execute(&mut *tx)
        .await?;
        if let Some(lang) = turn.language {
            sqlx::query(
                "UPDATE telegram.helpdesk_people SET language = $3 \
                 WHERE bot_id = $1 AND user_id = $2 AND language IS DISTINCT FROM $3",
            )
            .bind(self.bot_id)
            .bind(turn.user_id)
            .bind(lang)
            .execute(&mut *tx)
            .await?;
        }
        match &turn.done {
            Done::Message {
                chat_id,
                message_id,
                answer_ids,
            } => {
                sqlx::query(
                    "INSERT INTO telegram.message_links \
                       (bot_id, source_chat_id, source_message_id, target_chat_id, target_message_ids, kind) \
                     VALUES ($1, $2, $3, $2, $4, 'helpdesk') ON CONFLICT DO NOTHING",
                )
                .bind(self.bot_id)
                .bind(chat_id)
                .bind(message_id)
                .bind(answer_ids)
                .execute(&mut *tx)
                .await?;
            }
            Done::Key(key) => {
                sqlx::query(
                    "INSERT INTO telegram.helpdesk_done (bot_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(self.bot_id)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }

    /// `true` when `key` was recorded as done ([`Self::mark_done`], [`Self::finish_turn`]).
    pub async fn is_done(&self, key: &str) -> sqlx::Result<bool> {
        let v: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM telegram.helpdesk_done WHERE bot_id = $1 AND key = $2",
        )
        .bind(self.bot_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(v.is_some())
    }

    /// Records `key` as done.
    pub async fn mark_done(&self, key: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO telegram.helpdesk_done (bot_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(self.bot_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The registration of `user_id`, when they sent one.
    pub async fn person(&self, user_id: i64) -> sqlx::Result<Option<Person>> {
        sqlx::query_as(
            "SELECT user_id, contact_id, company_id, company_name, full_name, phone, language \
             FROM telegram.helpdesk_people WHERE bot_id = $1 AND user_id = $2",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Every person registered as Okdesk contact `contact_id`.
    pub async fn people_of_contact(&self, contact_id: i64) -> sqlx::Result<Vec<Person>> {
        sqlx::query_as(
            "SELECT user_id, contact_id, company_id, company_name, full_name, phone, language \
             FROM telegram.helpdesk_people WHERE bot_id = $1 AND contact_id = $2 ORDER BY user_id",
        )
        .bind(self.bot_id)
        .bind(contact_id)
        .fetch_all(&self.pool)
        .await
    }

    /// A registration was sent: what the person gave, pending (no contact) until
    /// okdesk-bridge answers. Written before the command is published, so the answer always
    /// finds the row.
    pub async fn registration_sent(&self, p: &Person) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO telegram.helpdesk_people \
               (bot_id, user_id, contact_id, company_id, company_name, full_name, phone, language) \
             VALUES ($1, $2, NULL, $3, $4, $5, $6, $7) \
             ON CONFLICT (bot_id, user_id) DO UPDATE SET contact_id = NULL, \
               company_id = EXCLUDED.company_id, company_name = EXCLUDED.company_name, \
               full_name = EXCLUDED.full_name, phone = EXCLUDED.phone, \
               language = COALESCE(EXCLUDED.language, telegram.helpdesk_people.language), \
               registered_at = NULL, updated_at = now()",
        )
        .bind(self.bot_id)
        .bind(p.user_id)
        .bind(p.company_id)
        .bind(&p.company_name)
        .bind(&p.full_name)
        .bind(&p.phone)
        .bind(&p.language)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// okdesk-bridge registered `user_id` as contact `contact_id` (of `company`, when an
    /// employee); returns the person as now stored.
    pub async fn registered(
        &self,
        user_id: i64,
        contact_id: i64,
        company: Option<(i64, &str)>,
    ) -> sqlx::Result<Person> {
        sqlx::query_as(
            "INSERT INTO telegram.helpdesk_people \
               (bot_id, user_id, contact_id, company_id, company_name, full_name, registered_at) \
             VALUES ($1, $2, $3, $4, $5, '', now()) \
             ON CONFLICT (bot_id, user_id) DO UPDATE SET contact_id = EXCLUDED.contact_id, \
               company_id = COALESCE(EXCLUDED.company_id, telegram.helpdesk_people.company_id), \
               company_name = COALESCE(EXCLUDED.company_name, telegram.helpdesk_people.company_name), \
               registered_at = now(), updated_at = now() \
             RETURNING user_id, contact_id, company_id, company_name, full_name, phone, language",
        )
        .bind(self.bot_id)
        .bind(user_id)
        .bind(contact_id)
        .bind(company.map(|c| c.0))
        .bind(company.map(|c| c.1))
        .fetch_one(&self.pool)
        .await
    }
}

/// A helpdesk dialog as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DialogRow {
    /// The step's name (`idle` outside a dialog).
    pub step: String,
    /// The step's data.
    pub data: Option<Value>,
    /// Registrations sent so far.
    pub registrations: i32,
    /// When the dialog last moved.
    pub updated_at: OffsetDateTime,
}

/// What one helpdesk turn leaves behind ([`Store::finish_turn`]).
#[derive(Debug, Clone)]
pub struct TurnRecord<'a> {
    /// The person.
    pub user_id: i64,
    /// The new step's name.
    pub step: &'a str,
    /// Its data.
    pub data: Option<&'a Value>,
    /// The person's Telegram language, when known.
    pub language: Option<&'a str>,
    /// Registrations sent so far.
    pub registrations: i32,
    /// What was handled.
    pub done: Done,
}

/// What a helpdesk turn handled.
#[derive(Debug, Clone)]
pub enum Done {
    /// A message of the person, answered by the bot's messages `answer_ids`.
    Message {
        /// The private chat.
        chat_id: i64,
        /// The person's message.
        message_id: i64,
        /// The bot's answers.
        answer_ids: Vec<i64>,
    },
    /// Anything else, by key (`press:<callback id>`).
    Key(String),
}

/// A person's helpdesk registration.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Person {
    /// Telegram user id.
    pub user_id: i64,
    /// The Okdesk contact; `None` while the registration is pending.
    pub contact_id: Option<i64>,
    /// The company, for an employee.
    pub company_id: Option<i64>,
    /// Its name.
    pub company_name: Option<String>,
    /// As typed.
    pub full_name: String,
    /// E.164.
    pub phone: Option<String>,
    /// `language_code`.
    pub language: Option<String>,
}
