//! SQL for schema `okdesk`: requests already carried out (issues, comments), registered
//! contacts, and the last announced state of each watched issue.

use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;

/// Name of this service's schema.
pub const SCHEMA: &str = "okdesk";

/// An issue request seen before.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempted {
    /// The issue (or comment) made, when the earlier attempt finished.
    pub made_id: Option<i64>,
    /// When the first attempt went out.
    pub first_attempt: OffsetDateTime,
}

/// The announced state of a watched issue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Announced {
    /// Status code last announced.
    pub status_code: String,
    /// How many status changes were announced.
    pub status_seq: i32,
}

/// Access to schema `okdesk`.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records the first attempt of issue request `key`; returns what an earlier attempt
    /// left (`None` when this is the first).
    pub async fn issue_attempt(&self, key: &str) -> sqlx::Result<Option<Attempted>> {
        let before: Option<Attempted> = sqlx::query_as(
            "SELECT issue_id AS made_id, first_attempt FROM okdesk.created_issues WHERE request_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        if before.is_none() {
            sqlx::query(
                "INSERT INTO okdesk.created_issues (request_key) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .execute(&self.pool)
            .await?;
        }
        Ok(before)
    }

    /// Issue request `key` made issue `issue_id`.
    pub async fn issue_made(&self, key: &str, issue_id: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE okdesk.created_issues SET issue_id = $2, created_at = now() WHERE request_key = $1",
        )
        .bind(key)
        .bind(issue_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Like [`Self::issue_attempt`], for comment request `key` on `issue_id`.
    pub async fn comment_attempt(
        &self,
        key: &str,
        issue_id: i64,
    ) -> sqlx::Result<Option<Attempted>> {
        let before: Option<Attempted> = sqlx::query_as(
            "SELECT comment_id AS made_id, first_attempt FROM okdesk.created_comments WHERE request_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        if before.is_none() {
            sqlx::query(
                "INSERT INTO okdesk.created_comments (request_key, issue_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .bind(issue_id)
            .execute(&self.pool)
            .await?;
        }
        Ok(before)
    }

    /// Comment request `key` made comment `comment_id` (which is then not announced back).
    pub async fn comment_made(
        &self,
        key: &str,
        issue_id: i64,
        comment_id: i64,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE okdesk.created_comments SET comment_id = $2 WHERE request_key = $1")
            .bind(key)
            .bind(comment_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO okdesk.seen_comments (comment_id, issue_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(comment_id)
        .bind(issue_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Remembers a contact registered through the bridge (its issues are polled).
    pub async fn add_contact(&self, contact_id: i64) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO okdesk.contacts (contact_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(contact_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every registered contact.
    pub async fn contacts(&self) -> sqlx::Result<Vec<i64>> {
        sqlx::query_scalar("SELECT contact_id FROM okdesk.contacts ORDER BY contact_id")
            .fetch_all(&self.pool)
            .await
    }

    /// The status code last announced for issue `issue_id` (`None`: not watched).
    pub async fn issue_status(&self, issue_id: i64) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT status_code FROM okdesk.issues WHERE issue_id = $1")
            .bind(issue_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Whether issue `issue_id` is watched and closed (`None`: not watched).
    pub async fn issue_closed(&self, issue_id: i64) -> sqlx::Result<Option<bool>> {
        sqlx::query_scalar("SELECT closed FROM okdesk.issues WHERE issue_id = $1")
            .bind(issue_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Starts a transaction holding issue `issue_id`'s row (created with `status_code` and
    /// sequence 0 when new), so that the webhook and the poll announce one change once.
    /// Returns the state before and whether the row was new.
    pub async fn lock_issue(
        &self,
        issue_id: i64,
        contact_id: Option<i64>,
        status_code: &str,
    ) -> sqlx::Result<(Transaction<'static, Postgres>, Announced, bool)> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO okdesk.issues (issue_id, contact_id, status_code) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(issue_id)
        .bind(contact_id)
        .bind(status_code)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row: Announced = sqlx::query_as(
            "SELECT status_code, status_seq FROM okdesk.issues WHERE issue_id = $1 FOR UPDATE",
        )
        .bind(issue_id)
        .fetch_one(&mut *tx)
        .await?;
        Ok((tx, row, inserted))
    }

    /// In the transaction of [`Self::lock_issue`]: the announced status is now `code`.
    pub async fn set_status(
        tx: &mut Transaction<'static, Postgres>,
        issue_id: i64,
        code: &str,
        seq: i32,
        closed: bool,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE okdesk.issues SET status_code = $2, status_seq = $3, closed = $4, updated_at = now() \
             WHERE issue_id = $1",
        )
        .bind(issue_id)
        .bind(code)
        .bind(seq)
        .bind(closed)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Whether comment `comment_id` was announced (or existed when its issue was first seen).
    pub async fn comment_seen(&self, comment_id: i64) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM okdesk.seen_comments WHERE comment_id = $1)",
        )
        .bind(comment_id)
        .fetch_one(&self.pool)
        .await
    }

    /// Marks comments as announced.
    pub async fn mark_comments_seen(&self, issue_id: i64, comment_ids: &[i64]) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO okdesk.seen_comments (comment_id, issue_id) SELECT unnest($1::bigint[]), $2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(comment_ids)
        .bind(issue_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Watched issues that are not closed, oldest change first.
    pub async fn open_issues(&self) -> sqlx::Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT issue_id FROM okdesk.issues WHERE NOT closed ORDER BY updated_at",
        )
        .fetch_all(&self.pool)
        .await
    }
}
