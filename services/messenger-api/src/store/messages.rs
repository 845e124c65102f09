//! Messages, read receipts, files and the publish outbox.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;

/// A message with what clients show with it (sender name, file facts, chat kind).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub chat_id: Uuid,
    pub chat_kind: String,
    pub sender_id: Option<Uuid>,
    pub sender_name: Option<String>,
    pub kind: String,
    pub text: Option<String>,
    pub file_id: Option<Uuid>,
    pub duration_ms: Option<i32>,
    pub client_message_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub file_content_type: Option<String>,
    pub file_size: Option<i64>,
}

/// A message to store.
pub struct NewMessage<'a> {
    pub chat_id: Uuid,
    pub sender_id: Uuid,
    pub sender_name: &'a str,
    pub kind: &'a str,
    pub text: Option<&'a str>,
    pub file_id: Option<Uuid>,
    pub duration_ms: Option<i32>,
    pub client_message_id: Option<&'a str>,
}

/// What storing a message did.
#[derive(Debug)]
pub enum InsertOutcome {
    Created(MessageRow),
    /// The sender's idempotency key was used before: that message.
    Existing(MessageRow),
    /// The sender is not a member of the chat (or there is no such chat).
    NotMember,
}

/// What a read receipt did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The member's receipt is now this message id (never moves back).
    Read(i64),
    NotMember,
    UnknownMessage,
}

/// A stored file a member may download.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: Uuid,
    pub chat_id: Uuid,
    pub content_type: String,
    pub size_bytes: i64,
}

const SELECT_MESSAGE: &str = "SELECT m.id, m.chat_id, c.kind AS chat_kind, m.sender_id, \
       u.display_name AS sender_name, m.kind, m.text, m.file_id, m.duration_ms, \
       m.client_message_id, m.created_at, f.content_type AS file_content_type, \
       f.size_bytes AS file_size \
     FROM messenger.messages m \
     JOIN messenger.chats c ON c.id = m.chat_id \
     LEFT JOIN messenger.users u ON u.id = m.sender_id \
     LEFT JOIN messenger.files f ON f.id = m.file_id";

impl Store {
    /// Stores a message when the sender is a member, in one round trip; a repeated
    /// (sender, client message id) returns the first message instead.
    pub async fn insert_message(&self, m: &NewMessage<'_>) -> sqlx::Result<InsertOutcome> {
        let created: Option<MessageRow> = sqlx::query_as(
            "WITH ins AS ( \
               INSERT INTO messenger.messages \
                 (chat_id, sender_id, kind, text, file_id, duration_ms, client_message_id) \
               SELECT $1, $2, $3, $4, $5, $6, $7 \
               WHERE EXISTS (SELECT 1 FROM messenger.chat_members \
                             WHERE chat_id = $1 AND user_id = $2) \
               ON CONFLICT (sender_id, client_message_id) WHERE client_message_id IS NOT NULL \
               DO NOTHING \
               RETURNING * ) \
             SELECT ins.id, ins.chat_id, c.kind AS chat_kind, ins.sender_id, \
               $8::text AS sender_name, ins.kind, ins.text, ins.file_id, ins.duration_ms, \
               ins.client_message_id, ins.created_at, f.content_type AS file_content_type, \
               f.size_bytes AS file_size \
             FROM ins JOIN messenger.chats c ON c.id = ins.chat_id \
             LEFT JOIN messenger.files f ON f.id = ins.file_id",
        )
        .bind(m.chat_id)
        .bind(m.sender_id)
        .bind(m.kind)
        .bind(m.text)
        .bind(m.file_id)
        .bind(m.duration_ms)
        .bind(m.client_message_id)
        .bind(m.sender_name)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = created {
            return Ok(InsertOutcome::Created(row));
        }
        if let Some(key) = m.client_message_id {
            let existing: Option<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_MESSAGE} WHERE m.sender_id = $1 AND m.client_message_id = $2"
            )))
            .bind(m.sender_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = existing {
                return Ok(InsertOutcome::Existing(row));
            }
        }
        Ok(InsertOutcome::NotMember)
    }

    /// One page of a chat's messages, newest first, older than `before` when given.
    pub async fn messages_page(
        &self,
        chat_id: Uuid,
        before: Option<i64>,
        limit: i64,
    ) -> sqlx::Result<Vec<MessageRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_MESSAGE} WHERE m.chat_id = $1 AND m.deleted_at IS NULL \
             AND ($2::bigint IS NULL OR m.id < $2) ORDER BY m.id DESC LIMIT $3"
        )))
        .bind(chat_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Messages by id (not deleted), in no particular order.
    pub async fn messages_by_ids(&self, ids: &[i64]) -> sqlx::Result<Vec<MessageRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_MESSAGE} WHERE m.id = ANY($1) AND m.deleted_at IS NULL"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
    }

    /// A message that is not deleted, with whether `user` is a member of its chat.
    pub async fn message_for(
        &self,
        id: i64,
        user: Uuid,
    ) -> sqlx::Result<Option<(MessageRow, bool)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            m: MessageRow,
            is_member: bool,
        }
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT q.*, EXISTS (SELECT 1 FROM messenger.chat_members k \
                 WHERE k.chat_id = q.chat_id AND k.user_id = $2) AS is_member \
             FROM ({SELECT_MESSAGE} WHERE m.id = $1 AND m.deleted_at IS NULL) q"
        )))
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.m, r.is_member)))
    }

    /// Marks a message deleted (its text is dropped and its file row removed); returns the file
    /// id whose bytes are to be removed. False when it was deleted already.
    pub async fn delete_message(&self, id: i64) -> sqlx::Result<(bool, Option<Uuid>)> {
        let mut tx = self.pool.begin().await?;
        let file: Option<Option<Uuid>> = sqlx::query_scalar(
            "UPDATE messenger.messages SET deleted_at = now(), text = NULL \
             WHERE id = $1 AND deleted_at IS NULL RETURNING file_id",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(file) = file else {
            return Ok((false, None));
        };
        if let Some(f) = file {
            sqlx::query("DELETE FROM messenger.files WHERE id = $1")
                .bind(f)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((true, file))
    }

    /// Moves `user`'s read receipt in `chat_id` forward to `message_id` (or to the newest
    /// message when None).
    pub async fn mark_read(
        &self,
        chat_id: Uuid,
        user: Uuid,
        message_id: Option<i64>,
    ) -> sqlx::Result<ReadOutcome> {
        if let Some(id) = message_id {
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM messenger.messages WHERE id = $1 AND chat_id = $2)",
            )
            .bind(id)
            .bind(chat_id)
            .fetch_one(&self.pool)
            .await?;
            if !known {
                let member: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM messenger.chat_members \
                     WHERE chat_id = $1 AND user_id = $2)",
                )
                .bind(chat_id)
                .bind(user)
                .fetch_one(&self.pool)
                .await?;
                return Ok(if member {
                    ReadOutcome::UnknownMessage
                } else {
                    ReadOutcome::NotMember
                });
            }
        }
        let read: Option<i64> = sqlx::query_scalar(
            "UPDATE messenger.chat_members m \
             SET last_read_message_id = GREATEST(m.last_read_message_id, coalesce($3, \
               (SELECT max(x.id) FROM messenger.messages x WHERE x.chat_id = $1), 0)) \
             WHERE m.chat_id = $1 AND m.user_id = $2 RETURNING m.last_read_message_id",
        )
        .bind(chat_id)
        .bind(user)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(read.map_or(ReadOutcome::NotMember, ReadOutcome::Read))
    }

    // ------------------------------------------------------------------ files

    pub async fn insert_file(
        &self,
        id: Uuid,
        chat_id: Uuid,
        uploader: Uuid,
        content_type: &str,
        size: i64,
        name: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO messenger.files (id, chat_id, uploader_id, content_type, size_bytes, file_name) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(chat_id)
        .bind(uploader)
        .bind(content_type)
        .bind(size)
        .bind(name)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn delete_file_row(&self, id: Uuid) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM messenger.files WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// The file, when `user` is a member of its chat.
    pub async fn file_for_member(&self, id: Uuid, user: Uuid) -> sqlx::Result<Option<FileRow>> {
        sqlx::query_as(
            "SELECT f.id, f.chat_id, f.content_type, f.size_bytes FROM messenger.files f \
             JOIN messenger.chat_members m ON m.chat_id = f.chat_id AND m.user_id = $2 \
             WHERE f.id = $1",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await
    }

    // ------------------------------------------------------------------ outbox

    /// Remembers a message whose event JetStream did not acknowledge.
    pub async fn add_to_outbox(&self, message_id: i64, error: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO messenger.outbox (message_id, last_error) VALUES ($1, $2) \
             ON CONFLICT (message_id) DO UPDATE SET attempts = messenger.outbox.attempts + 1, \
             last_error = EXCLUDED.last_error",
        )
        .bind(message_id)
        .bind(error)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Oldest outbox entries first.
    pub async fn outbox(&self, limit: i64) -> sqlx::Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT message_id FROM messenger.outbox ORDER BY created_at, message_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn remove_from_outbox(&self, message_id: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM messenger.outbox WHERE message_id = $1")
            .bind(message_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
