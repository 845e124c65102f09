//! Users, invite codes and refresh tokens.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Store, is_unique_violation, now};

/// A row of `messenger.users`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// The user id.
    pub id: Uuid,
    /// Phone number, E.164; unique.
    pub phone: String,
    /// Name shown to other users.
    pub display_name: String,
    /// An argon2id PHC string, or an imported ASP.NET Core Identity V3 hash (base64) until the
    /// first login.
    pub password_hash: String,
    /// `User` or `Admin`.
    pub role: String,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When the user last left the hub (their last connection on a replica closed); `None` until
    /// then.
    pub last_seen_at: Option<OffsetDateTime>,
}

/// A row of `messenger.invites`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    /// The code, as typed at registration.
    pub code: String,
    /// Registrations the code allows (positive).
    pub max_uses: i32,
    /// Registrations made with it so far.
    pub uses: i32,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No invite has this code.
    #[error("invite code is not valid")]
    InviteUnknown,
    /// The invite is past `expires_at`.
    #[error("invite code has expired")]
    InviteExpired,
    /// The invite has no uses left.
    #[error("invite code has been used up")]
    InviteUsedUp,
    /// Another account has this phone number.
    #[error("a user with this phone number already exists")]
    PhoneTaken,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What exchanging a refresh token found.
#[derive(Debug)]
pub enum RotateOutcome {
    /// Valid: the old one is spent, the new one stored; here is its owner.
    Rotated(UserRow),
    /// Already spent or revoked: the whole family is revoked now.
    Reused,
    /// Unknown or expired.
    Invalid,
}

const USER_COLUMNS: &str = "id, phone, display_name, password_hash, role, created_at, last_seen_at";

impl Store {
    /// Whether `invite` could be used now (one cheap read, nothing changed): the check before
    /// a password is hashed. [`Store::register`] spends the code atomically afterwards.
    pub async fn check_invite(&self, invite: &str) -> Result<(), RegisterError> {
        let row: Option<(i32, i32, OffsetDateTime)> = sqlx::query_as(
            "SELECT uses, max_uses, expires_at FROM messenger.invites WHERE code = $1",
        )
        .bind(invite)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Err(RegisterError::InviteUnknown),
            Some((uses, max, _)) if uses >= max => Err(RegisterError::InviteUsedUp),
            Some((_, _, expires)) if expires <= OffsetDateTime::now_utc() => {
                Err(RegisterError::InviteExpired)
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates a user and spends one use of `invite`, in one transaction: a refused
    /// registration spends nothing.
    pub async fn register(
        &self,
        id: Uuid,
        phone: &str,
        display_name: &str,
        password_hash: &str,
        invite: &str,
    ) -> Result<UserRow, RegisterError> {
        let mut tx = self.pool.begin().await?;
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE messenger.invites SET uses = uses + 1 \
             WHERE code = $1 AND uses < max_uses AND expires_at > now() RETURNING code",
        )
        .bind(invite)
        .fetch_optional(&mut *tx)
        .await?;
        if spent.is_none() {
            let row: Option<(i32, i32, OffsetDateTime)> = sqlx::query_as(
                "SELECT uses, max_uses, expires_at FROM messenger.invites WHERE code = $1",
            )
            .bind(invite)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match row {
                None => RegisterError::InviteUnknown,
                Some((uses, max, _)) if uses >= max => RegisterError::InviteUsedUp,
                Some(_) => RegisterError::InviteExpired,
            });
        }
        let user = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO messenger.users (id, phone, display_name, password_hash) \
             VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
        )))
        .bind(id)
        .bind(phone)
        .bind(display_name)
        .bind(password_hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                RegisterError::PhoneTaken
            } else {
                RegisterError::Db(e)
            }
        })?;
        tx.commit().await?;
        Ok(user)
    }

    /// Creates a user without an invite (the `admin create` command). None: the phone is taken.
    pub async fn create_user(
        &self,
        id: Uuid,
        phone: &str,
        display_name: &str,
        password_hash: &str,
        role: &str,
    ) -> sqlx::Result<Option<UserRow>> {
        let r = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO messenger.users (id, phone, display_name, password_hash, role) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (phone) DO NOTHING RETURNING {USER_COLUMNS}"
        )))
        .bind(id)
        .bind(phone)
        .bind(display_name)
        .bind(password_hash)
        .bind(role)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r)
    }

    /// The user with this phone number (E.164, as stored).
    pub async fn user_by_phone(&self, phone: &str) -> sqlx::Result<Option<UserRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM messenger.users WHERE phone = $1"
        )))
        .bind(phone)
        .fetch_optional(&self.pool)
        .await
    }

    /// The current role of a user (`None`: no such user, e.g. deleted since its token was
    /// issued). One primary-key lookup: cheap enough for every admin request and hub upgrade.
    pub async fn user_role(&self, id: Uuid) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT role FROM messenger.users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: Uuid) -> sqlx::Result<Option<UserRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM messenger.users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Replaces the user's password hash.
    pub async fn set_password_hash(&self, id: Uuid, hash: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE messenger.users SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Sets the user's role (`User` or `Admin`).
    pub async fn set_role(&self, id: Uuid, role: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE messenger.users SET role = $2 WHERE id = $1")
            .bind(id)
            .bind(role)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Users, oldest first.
    pub async fn list_users(&self, limit: i64, offset: i64) -> sqlx::Result<Vec<UserRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM messenger.users ORDER BY created_at, id LIMIT $1 OFFSET $2"
        )))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes a user (memberships and tokens go with it; their messages stay, authorless).
    /// Returns the chat ids they were in, or None when there was no such user.
    pub async fn delete_user(&self, id: Uuid) -> sqlx::Result<Option<Vec<Uuid>>> {
        let mut tx = self.pool.begin().await?;
        let chats: Vec<Uuid> =
            sqlx::query_scalar("SELECT chat_id FROM messenger.chat_members WHERE user_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let deleted = sqlx::query("DELETE FROM messenger.users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((deleted > 0).then_some(chats))
    }

    /// Sets `last_seen_at` to now.
    pub async fn touch_last_seen(&self, id: Uuid) -> sqlx::Result<()> {
        sqlx::query("UPDATE messenger.users SET last_seen_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Which of `ids` are users.
    pub async fn existing_users(&self, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("SELECT id FROM messenger.users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
    }

    // ------------------------------------------------------------------ invites

    /// Stores a new invite code allowing `max_uses` registrations until `expires_at`.
    pub async fn create_invite(
        &self,
        code: &str,
        max_uses: i32,
        expires_at: OffsetDateTime,
        created_by: Option<Uuid>,
    ) -> sqlx::Result<InviteRow> {
        sqlx::query_as(
            "INSERT INTO messenger.invites (code, max_uses, expires_at, created_by) \
             VALUES ($1, $2, $3, $4) RETURNING code, max_uses, uses, expires_at, created_at",
        )
        .bind(code)
        .bind(max_uses)
        .bind(expires_at)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await
    }

    // ------------------------------------------------------------------ refresh tokens

    /// Stores a new refresh token of `family`.
    pub async fn insert_refresh_token(
        &self,
        user_id: Uuid,
        family_id: Uuid,
        hash: &[u8],
        expires_at: OffsetDateTime,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO messenger.refresh_tokens (id, user_id, family_id, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(family_id)
        .bind(hash)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Spends the token with `old_hash` and stores `new_hash` in its family, atomically. A token
    /// that was spent or revoked before revokes its whole family (someone holds a stolen copy).
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        expires_at: OffsetDateTime,
    ) -> sqlx::Result<RotateOutcome> {
        let mut tx = self.pool.begin().await?;
        #[derive(sqlx::FromRow)]
        struct Token {
            user_id: Uuid,
            family_id: Uuid,
            expires_at: OffsetDateTime,
            used_at: Option<OffsetDateTime>,
            revoked_at: Option<OffsetDateTime>,
        }
        let row: Option<Token> = sqlx::query_as(
            "SELECT user_id, family_id, expires_at, used_at, revoked_at \
             FROM messenger.refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(Token {
            user_id,
            family_id: family,
            expires_at: expires,
            used_at: used,
            revoked_at: revoked,
        }) = row
        else {
            return Ok(RotateOutcome::Invalid);
        };
        if used.is_some() || revoked.is_some() {
            sqlx::query(
                "UPDATE messenger.refresh_tokens SET revoked_at = now() \
                 WHERE family_id = $1 AND revoked_at IS NULL",
            )
            .bind(family)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RotateOutcome::Reused);
        }
        if expires <= now() {
            return Ok(RotateOutcome::Invalid);
        }
        sqlx::query("UPDATE messenger.refresh_tokens SET used_at = now() WHERE token_hash = $1")
            .bind(old_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO messenger.refresh_tokens (id, user_id, family_id, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(family)
        .bind(new_hash)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let user: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM messenger.users WHERE id = $1"
        )))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return Ok(RotateOutcome::Invalid);
        };
        tx.commit().await?;
        Ok(RotateOutcome::Rotated(user))
    }

    /// Revokes the family of one token of `user_id` (logout of one device). False: not theirs.
    pub async fn revoke_family_of(&self, user_id: Uuid, hash: &[u8]) -> sqlx::Result<bool> {
        let n = sqlx::query(
            "UPDATE messenger.refresh_tokens SET revoked_at = now() \
             WHERE revoked_at IS NULL AND family_id = \
               (SELECT family_id FROM messenger.refresh_tokens WHERE token_hash = $1 AND user_id = $2)",
        )
        .bind(hash)
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Revokes every refresh token of a user (logout everywhere).
    pub async fn revoke_all_refresh_tokens(&self, user_id: Uuid) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE messenger.refresh_tokens SET revoked_at = now() \
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}
