//! Messages, read receipts, files and the publish outbox.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;

/// A message with what clients show with it (sender name, file facts, chat kind).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    /// The message id (identity, increasing).
    pub id: i64,
    /// The chat it is in.
    pub chat_id: Uuid,
    /// The chat's kind: `private` or `group`.
    pub chat_kind: String,
    /// The author; `None` when the account was deleted.
    pub sender_id: Option<Uuid>,
    /// The author's display name; `None` when the account was deleted.
    pub sender_name: Option<String>,
    /// `text` or `audio`.
    pub kind: String,
    /// The text of a `text` message; `None` for `audio` and once deleted.
    pub text: Option<String>,
    /// The voice message's file (`audio`).
    pub file_id: Option<Uuid>,
    /// Duration of a voice message in milliseconds, when the client gave it.
    pub duration_ms: Option<i32>,
    /// The sender's idempotency key, when given.
    pub client_message_id: Option<String>,
    /// When it was stored.
    pub created_at: OffsetDateTime,
    /// MIME type of the file, when there is one.
    pub file_content_type: Option<String>,
    /// Size of the file in bytes, when there is one.
    pub file_size: Option<i64>,
}

/// A message to store.
pub struct NewMessage<'a> {
    /// The chat to post in.
    pub chat_id: Uuid,
    /// The author; must be a member of the chat.
    pub sender_id: Uuid,
    /// The author's display name, returned with the created row.
    pub sender_name: &'a str,
    /// `text` or `audio`.
    pub kind: &'a str,
    /// The text of a `text` message.
    pub text: Option<&'a str>,
    /// The stored file of an `audio` message.
    pub file_id: Option<Uuid>,
    /// Duration of a voice message in milliseconds.
    pub duration_ms: Option<i32>,
    /// The sender's idempotency key: unique per sender.
    pub client_message_id: Option<&'a str>,
}

/// What storing a message did.
#[derive(Debug)]
pub enum InsertOutcome {
    /// Stored now.
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
    /// The user is not a member of the chat (or there is no such chat).
    NotMember,
    /// The chat has no message with that id.
    UnknownMessage,
}

/// A stored file a member may download.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    /// The file id; the bytes are `MESSENGER_FILES_DIR/<id>`.
    pub id: Uuid,
    /// The chat it was posted in.
    pub chat_id: Uuid,
    /// MIME type, as uploaded.
    pub content_type: String,
    /// Size in bytes.
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
               RETURNING * ), \
             ob AS ( \
               INSERT INTO messenger.outbox (message_id, last_error) \
               SELECT id, 'not published yet' FROM ins ) \
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

    /// Records an uploaded file of `size` bytes posted in `chat_id` by `uploader`.
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

    /// Deletes a file's row (not its bytes).
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

    /// Remembers a message whose event JetStream did not acknowledge. (Every new message is
    /// in the outbox from its own transaction on; this records a failed attempt.)
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

    /// Oldest outbox entries first: those that failed to publish, and those older than
    /// `min_age` (a message's own entry is removed by its poster once JetStream acknowledged;
    /// one still there after `min_age` was lost to a crash or a failure).
    pub async fn outbox(&self, limit: i64, min_age: std::time::Duration) -> sqlx::Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT message_id FROM messenger.outbox \
             WHERE attempts > 0 OR created_at <= now() - make_interval(secs => $2) \
             ORDER BY created_at, message_id LIMIT $1",
        )
        .bind(limit)
        .bind(min_age.as_secs_f64())
        .fetch_all(&self.pool)
        .await
    }

    /// Drops a message from the outbox (its event was published, or the message was deleted).
    pub async fn remove_from_outbox(&self, message_id: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM messenger.outbox WHERE message_id = $1")
            .bind(message_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
