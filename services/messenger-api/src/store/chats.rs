//! Chats and their members.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;

/// A row of `messenger.chats`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChatRow {
    /// The chat id.
    pub id: Uuid,
    /// `private` or `group`.
    pub kind: String,
    /// The group's title; `None` for a private chat.
    pub title: Option<String>,
    /// The group's owner; `None` for a private chat or when the owner's account was deleted.
    pub owner_id: Option<Uuid>,
    /// When the chat was created.
    pub created_at: OffsetDateTime,
}

/// A member with the fields clients show.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// The chat.
    pub chat_id: Uuid,
    /// The member's user id.
    pub user_id: Uuid,
    /// The member's display name.
    pub display_name: String,
    /// The member's read receipt: the newest message id read (0: none).
    pub last_read_message_id: i64,
}

/// One chat of the caller's list: the chat, their unread count and the newest message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChatListRow {
    /// The chat id.
    pub id: Uuid,
    /// `private` or `group`.
    pub kind: String,
    /// The group's title; `None` for a private chat.
    pub title: Option<String>,
    /// The group's owner; `None` for a private chat or when the owner's account was deleted.
    pub owner_id: Option<Uuid>,
    /// When the chat was created.
    pub created_at: OffsetDateTime,
    /// Messages of others after the user's read receipt (deleted ones not counted).
    pub unread_count: i64,
    /// The newest message that is not deleted; `None` for an empty chat.
    pub last_message_id: Option<i64>,
}

/// A chat to create.
pub enum NewChat<'a> {
    /// With one other user; `key` is [`super::private_key`] of the two.
    Private {
        /// One of the two users.
        a: Uuid,
        /// The other user.
        b: Uuid,
        /// `private_key(a, b)`, unique per pair.
        key: &'a str,
    },
    /// Owned by `owner`, who is a member too.
    Group {
        /// The group's title.
        title: &'a str,
        /// The owner, made a member too.
        owner: Uuid,
        /// The other members (a repeated id, or the owner, is added once).
        members: &'a [Uuid],
    },
}

const CHAT_COLUMNS: &str = "c.id, c.kind, c.title, c.owner_id, c.created_at";

impl Store {
    /// Creates a chat. For a private chat that exists already, returns that one and `false`.
    pub async fn create_chat(&self, id: Uuid, chat: NewChat<'_>) -> sqlx::Result<(ChatRow, bool)> {
        let mut tx = self.pool.begin().await?;
        let (row, created): (ChatRow, bool) = match chat {
            NewChat::Private { a, b, key } => {
                let inserted: Option<ChatRow> = sqlx::query_as(
                    "INSERT INTO messenger.chats AS c (id, kind, private_key) VALUES ($1, 'private', $2) \
                     ON CONFLICT (private_key) DO NOTHING \
                     RETURNING c.id, c.kind, c.title, c.owner_id, c.created_at",
                )
                .bind(id)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
                match inserted {
                    Some(row) => {
                        sqlx::query(
                            "INSERT INTO messenger.chat_members (chat_id, user_id) \
                             SELECT $1, u FROM unnest($2::uuid[]) AS u",
                        )
                        .bind(id)
                        .bind(&[a, b][..])
                        .execute(&mut *tx)
                        .await?;
                        (row, true)
                    }
                    None => {
                        let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT {CHAT_COLUMNS} FROM messenger.chats c WHERE c.private_key = $1"
                        )))
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                        (row, false)
                    }
                }
            }
            NewChat::Group {
                title,
                owner,
                members,
            } => {
                let row: ChatRow = sqlx::query_as(
                    "INSERT INTO messenger.chats AS c (id, kind, title, owner_id) \
                     VALUES ($1, 'group', $2, $3) \
                     RETURNING c.id, c.kind, c.title, c.owner_id, c.created_at",
                )
                .bind(id)
                .bind(title)
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
                let mut all: Vec<Uuid> = members.to_vec();
                all.push(owner);
                sqlx::query(
                    "INSERT INTO messenger.chat_members (chat_id, user_id) \
                     SELECT $1, u FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(&all)
                .execute(&mut *tx)
                .await?;
                (row, true)
            }
        };
        tx.commit().await?;
        Ok((row, created))
    }

    /// The chat, when `user` is a member of it.
    pub async fn chat_for_member(
        &self,
        chat_id: Uuid,
        user: Uuid,
    ) -> sqlx::Result<Option<ChatRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CHAT_COLUMNS} FROM messenger.chats c \
             JOIN messenger.chat_members m ON m.chat_id = c.id AND m.user_id = $2 \
             WHERE c.id = $1"
        )))
        .bind(chat_id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await
    }

    /// Members of these chats, by join time.
    pub async fn members(&self, chat_ids: &[Uuid]) -> sqlx::Result<Vec<MemberRow>> {
        sqlx::query_as(
            "SELECT m.chat_id, m.user_id, u.display_name, m.last_read_message_id \
             FROM messenger.chat_members m JOIN messenger.users u ON u.id = m.user_id \
             WHERE m.chat_id = ANY($1) ORDER BY m.joined_at, u.display_name",
        )
        .bind(chat_ids)
        .fetch_all(&self.pool)
        .await
    }

    /// The user's chats, most recently active first, with unread counts (messages of others
    /// after the user's read receipt) and the newest message's id.
    pub async fn list_chats(&self, user: Uuid) -> sqlx::Result<Vec<ChatListRow>> {
        sqlx::query_as(
            "SELECT c.id, c.kind, c.title, c.owner_id, c.created_at, \
               (SELECT count(*) FROM messenger.messages x \
                 WHERE x.chat_id = c.id AND x.id > m.last_read_message_id \
                   AND x.deleted_at IS NULL AND x.sender_id IS DISTINCT FROM $1) AS unread_count, \
               lm.id AS last_message_id \
             FROM messenger.chat_members m \
             JOIN messenger.chats c ON c.id = m.chat_id \
             LEFT JOIN LATERAL (SELECT x.id, x.created_at FROM messenger.messages x \
                 WHERE x.chat_id = c.id AND x.deleted_at IS NULL ORDER BY x.id DESC LIMIT 1) lm ON true \
             WHERE m.user_id = $1 \
             ORDER BY coalesce(lm.created_at, c.created_at) DESC, c.id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes a chat with its members, messages and file rows; returns the file ids whose
    /// bytes are to be removed.
    pub async fn delete_chat(&self, chat_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
        let mut tx = self.pool.begin().await?;
        let files: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM messenger.files WHERE chat_id = $1")
                .bind(chat_id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM messenger.chats WHERE id = $1")
            .bind(chat_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(files)
    }

    /// Ids of the chats `user` is a member of (the hub's groups of a new connection).
    pub async fn chat_ids_of(&self, user: Uuid) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("SELECT chat_id FROM messenger.chat_members WHERE user_id = $1")
            .bind(user)
            .fetch_all(&self.pool)
            .await
    }

    /// Who sees `user` come and go: members of their private chats and of their groups with at
    /// most `max_group` members.
    pub async fn presence_audience(&self, user: Uuid, max_group: i64) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar(
            "SELECT DISTINCT o.user_id FROM messenger.chat_members m \
             JOIN messenger.chats c ON c.id = m.chat_id \
             JOIN messenger.chat_members o ON o.chat_id = m.chat_id AND o.user_id <> $1 \
             WHERE m.user_id = $1 AND (c.kind = 'private' OR \
               (SELECT count(*) FROM messenger.chat_members k WHERE k.chat_id = c.id) <= $2)",
        )
        .bind(user)
        .bind(max_group)
        .fetch_all(&self.pool)
        .await
    }
}
