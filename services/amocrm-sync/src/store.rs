//! SQL for schema `amocrm`: ordered, idempotent upserts of leads and contacts, soft deletes,
//! lead ↔ contact links, the stage history, the OAuth pair and the consent links' `state`s.
//!
//! Ordering: every write is one `INSERT … ON CONFLICT DO UPDATE … WHERE stored.updated_at <=
//! event's` (deletions: `<= deleted_at`), so redeliveries, out-of-order deliveries and
//! concurrent writers of one id (including a first insert racing another) leave the newest
//! state. A stage-history entry is recorded for every stage an event carries that differs from
//! the stage recorded just before it, even when the event is older than the stored row; it is
//! unique per (lead, stage, time of the change), so the same delivery twice records one entry.

use domain::{Contact, Deletion, Lead};
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;

/// Name of this service's schema.
pub const SCHEMA: &str = "amocrm";

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new row was written.
    Inserted,
    /// An existing row was overwritten with the newer state.
    Updated,
    /// The stored row is newer (or the deletion was already stored): nothing written.
    Stale,
}

impl Applied {
    /// `inserted`, `updated` or `stale`, for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Applied::Inserted => "inserted",
            Applied::Updated => "updated",
            Applied::Stale => "stale",
        }
    }
}

/// The stored OAuth pair.
#[derive(Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// The bearer token for API v4.
    pub access_token: String,
    /// The token exchanged for the next pair.
    pub refresh_token: String,
    /// When `access_token` expires: when the pair was received plus its `expires_in`.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why the OAuth callback's `state` is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRefused {
    /// No consent link with this state was printed (or it was removed a day after expiring).
    Unknown,
    /// The state was accepted once already.
    Used,
    /// The state is older than its `--valid-minutes`.
    Expired,
}

/// Access to schema `amocrm`.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A store on `pool`, whose database holds schema `amocrm`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores a lead unless a newer version is stored; records its stage in the history (also
    /// when the event is older than the stored row) unless the stage recorded just before is the
    /// same.
    /// Fields the event does not carry (`None`) keep their stored value; custom-field-derived
    /// columns are replaced only when the event carries custom fields.
    pub async fn apply_lead(&self, lead: &Lead) -> sqlx::Result<Applied> {
        let has_fields = lead.custom_fields.is_some();
        let fields_json = serde_json::to_value(lead.custom_fields.as_deref().unwrap_or(&[]))
            .unwrap_or_else(|_| serde_json::json!([]));
        // One statement (one round trip, its own transaction): write the row unless the stored
        // one is newer, and record the stage. `ON CONFLICT DO UPDATE` locks the row and checks
        // the guard against the latest committed version, also when a concurrent writer
        // inserted it after this statement started.
        let query = sqlx::query_as::<_, (bool, bool)>(
            "WITH up AS ( \
               INSERT INTO amocrm.leads (id, account_id, name, price, status_id, pipeline_id, status, \
                 responsible_user_id, utm_source, utm_medium, utm_campaign, utm_content, utm_term, \
                 object_price, commission, custom_fields, tags, created_at, updated_at, deleted_at, synced_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::numeric, $15::numeric, \
                 $16, $17, $18, $19, NULL, now()) \
               ON CONFLICT (id) DO UPDATE SET \
                 account_id = COALESCE(EXCLUDED.account_id, leads.account_id), \
                 name = COALESCE(EXCLUDED.name, leads.name), \
                 price = COALESCE(EXCLUDED.price, leads.price), \
                 status_id = COALESCE(EXCLUDED.status_id, leads.status_id), \
                 pipeline_id = COALESCE(EXCLUDED.pipeline_id, leads.pipeline_id), \
                 status = CASE WHEN EXCLUDED.status_id IS NULL THEN leads.status ELSE EXCLUDED.status END, \
                 responsible_user_id = COALESCE(EXCLUDED.responsible_user_id, leads.responsible_user_id), \
                 utm_source = CASE WHEN $20 THEN EXCLUDED.utm_source ELSE leads.utm_source END, \
                 utm_medium = CASE WHEN $20 THEN EXCLUDED.utm_medium ELSE leads.utm_medium END, \
                 utm_campaign = CASE WHEN $20 THEN EXCLUDED.utm_campaign ELSE leads.utm_campaign END, \
                 utm_content = CASE WHEN $20 THEN EXCLUDED.utm_content ELSE leads.utm_content END, \
                 utm_term = CASE WHEN $20 THEN EXCLUDED.utm_term ELSE leads.utm_term END, \
                 object_price = CASE WHEN $20 THEN EXCLUDED.object_price ELSE leads.object_price END, \
                 commission = CASE WHEN $20 THEN EXCLUDED.commission ELSE leads.commission END, \
                 custom_fields = CASE WHEN $20 THEN EXCLUDED.custom_fields ELSE leads.custom_fields END, \
                 tags = CASE WHEN cardinality(EXCLUDED.tags) > 0 THEN EXCLUDED.tags ELSE leads.tags END, \
                 created_at = COALESCE(leads.created_at, EXCLUDED.created_at), \
                 updated_at = EXCLUDED.updated_at, \
                 deleted_at = NULL, \
                 synced_at = now() \
               WHERE leads.updated_at <= EXCLUDED.updated_at \
               RETURNING (xmax = 0) AS inserted \
             ), prev AS ( \
               SELECT status_id FROM amocrm.lead_status_history \
               WHERE lead_id = $1 AND changed_at <= $19 \
               ORDER BY changed_at DESC, id DESC LIMIT 1 \
             ), hist AS ( \
               INSERT INTO amocrm.lead_status_history \
                 (lead_id, status_id, status, pipeline_id, old_status_id, changed_at) \
               SELECT $1, $5, $7, $6, COALESCE($21, (SELECT status_id FROM prev)), $19 \
               WHERE $5::bigint IS NOT NULL \
                 AND (SELECT status_id FROM prev) IS DISTINCT FROM $5::bigint \
               ON CONFLICT DO NOTHING \
             ) \
             SELECT COALESCE((SELECT NOT inserted FROM up), false), EXISTS (SELECT 1 FROM up)",
        )
        .bind(lead.id)
        .bind(lead.account_id)
        .bind(&lead.name)
        .bind(lead.price)
        .bind(lead.status_id)
        .bind(lead.pipeline_id)
        .bind(&lead.status)
        .bind(lead.responsible_user_id)
        .bind(&lead.utm.source)
        .bind(&lead.utm.medium)
        .bind(&lead.utm.campaign)
        .bind(&lead.utm.content)
        .bind(&lead.utm.term)
        .bind(&lead.object_price)
        .bind(&lead.commission)
        .bind(fields_json)
        .bind(&lead.tags)
        .bind(lead.created_at)
        .bind(lead.updated_at)
        .bind(has_fields)
        .bind(lead.previous_status_id);
        let (existed, written) = if lead.contacts.is_empty() {
            query.fetch_one(&self.pool).await?
        } else {
            // The delivery listed the lead's contacts (API v4, JSON): that list is the truth,
            // written in the same transaction as the lead.
            let mut tx = self.pool.begin().await?;
            let (existed, written) = query.fetch_one(&mut *tx).await?;
            if written {
                Self::replace_links(&mut tx, lead).await?;
            }
            tx.commit().await?;
            (existed, written)
        };
        Ok(match (existed, written) {
            (_, false) => Applied::Stale,
            (true, true) => Applied::Updated,
            (false, true) => Applied::Inserted,
        })
    }

    async fn replace_links(tx: &mut Transaction<'_, Postgres>, lead: &Lead) -> sqlx::Result<()> {
        let ids: Vec<i64> = lead.contacts.iter().map(|c| c.id).collect();
        let mains: Vec<bool> = lead.contacts.iter().map(|c| c.is_main).collect();
        sqlx::query(
            "DELETE FROM amocrm.lead_contacts WHERE lead_id = $1 AND NOT (contact_id = ANY($2))",
        )
        .bind(lead.id)
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO amocrm.lead_contacts (lead_id, contact_id, is_main) \
             SELECT $1, c, m FROM unnest($2::bigint[], $3::bool[]) AS t(c, m) \
             ON CONFLICT (lead_id, contact_id) DO UPDATE SET is_main = EXCLUDED.is_main",
        )
        .bind(lead.id)
        .bind(&ids)
        .bind(&mains)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Soft-deletes a lead (a tombstone when it was never seen, so an older `add` arriving later
    /// does not bring it back).
    pub async fn delete_lead(&self, d: &Deletion) -> sqlx::Result<Applied> {
        self.delete("leads", d).await
    }

    /// Soft-deletes a contact.
    pub async fn delete_contact(&self, d: &Deletion) -> sqlx::Result<Applied> {
        self.delete("contacts", d).await
    }

    async fn delete(&self, table: &'static str, d: &Deletion) -> sqlx::Result<Applied> {
        // One statement: a tombstone when the row is missing, else the soft delete unless the
        // stored row is newer or already deleted. `ON CONFLICT DO UPDATE` waits for a concurrent
        // insert of the same id and then applies the same guard to the committed row, so a
        // deletion racing an `add` is never lost.
        let inserted: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO amocrm.{table} AS t (id, account_id, updated_at, deleted_at, synced_at) \
             VALUES ($1, $2, $3, $3, now()) \
             ON CONFLICT (id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at, \
               updated_at = GREATEST(t.updated_at, EXCLUDED.deleted_at), synced_at = now() \
             WHERE t.deleted_at IS NULL AND t.updated_at <= EXCLUDED.deleted_at \
             RETURNING (xmax = 0)"
        )))
        .bind(d.id)
        .bind(d.account_id)
        .bind(d.deleted_at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match inserted {
            None => Applied::Stale,
            Some(true) => Applied::Inserted,
            Some(false) => Applied::Updated,
        })
    }

    /// Stores a contact unless a newer version is stored; adds the links to the leads it lists.
    pub async fn apply_contact(&self, c: &Contact) -> sqlx::Result<Applied> {
        let has_fields = c.custom_fields.is_some();
        let fields_json = serde_json::to_value(c.custom_fields.as_deref().unwrap_or(&[]))
            .unwrap_or_else(|_| serde_json::json!([]));
        let mut tx = self.pool.begin().await?;
        // The guard is in the upsert itself: with no row yet there is nothing to lock, and a
        // concurrent insert of the same id is only seen by `ON CONFLICT`, which then re-checks
        // `updated_at` against the committed row. Phones, e-mails and fields are columns of
        // this row, so they follow the same guard; the lead links are written only when the
        // row was.
        let inserted: Option<bool> = sqlx::query_scalar(
            "INSERT INTO amocrm.contacts (id, account_id, name, first_name, last_name, \
               responsible_user_id, phones, emails, custom_fields, created_at, updated_at, deleted_at, synced_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, now()) \
             ON CONFLICT (id) DO UPDATE SET \
               account_id = COALESCE(EXCLUDED.account_id, contacts.account_id), \
               name = COALESCE(EXCLUDED.name, contacts.name), \
               first_name = COALESCE(EXCLUDED.first_name, contacts.first_name), \
               last_name = COALESCE(EXCLUDED.last_name, contacts.last_name), \
               responsible_user_id = COALESCE(EXCLUDED.responsible_user_id, contacts.responsible_user_id), \
               phones = CASE WHEN $12 THEN EXCLUDED.phones ELSE contacts.phones END, \
               emails = CASE WHEN $12 THEN EXCLUDED.emails ELSE contacts.emails END, \
               custom_fields = CASE WHEN $12 THEN EXCLUDED.custom_fields ELSE contacts.custom_fields END, \
               created_at = COALESCE(contacts.created_at, EXCLUDED.created_at), \
               updated_at = EXCLUDED.updated_at, \
               deleted_at = NULL, \
               synced_at = now() \
             WHERE contacts.updated_at <= EXCLUDED.updated_at \
             RETURNING (xmax = 0)",
        )
        .bind(c.id)
        .bind(c.account_id)
        .bind(&c.name)
        .bind(&c.first_name)
        .bind(&c.last_name)
        .bind(c.responsible_user_id)
        .bind(c.phones.as_deref().unwrap_or(&[]))
        .bind(c.emails.as_deref().unwrap_or(&[]))
        .bind(fields_json)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(has_fields)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(inserted) = inserted else {
            tx.rollback().await?;
            return Ok(Applied::Stale);
        };
        if !c.lead_ids.is_empty() {
            sqlx::query(
                "INSERT INTO amocrm.lead_contacts (lead_id, contact_id) \
                 SELECT l, $1 FROM unnest($2::bigint[]) AS t(l) ON CONFLICT DO NOTHING",
            )
            .bind(c.id)
            .bind(&c.lead_ids)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(if inserted {
            Applied::Inserted
        } else {
            Applied::Updated
        })
    }

    /// Which of these contacts are not stored yet.
    pub async fn unknown_contacts(&self, ids: &[i64]) -> sqlx::Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT c FROM unnest($1::bigint[]) AS t(c) \
             WHERE NOT EXISTS (SELECT 1 FROM amocrm.contacts WHERE id = c)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
    }

    /// The stored OAuth pair of `domain`.
    pub async fn token(&self, domain: &str) -> sqlx::Result<Option<TokenRow>> {
        sqlx::query_as(
            "SELECT access_token, refresh_token, expires_at FROM amocrm.oauth_tokens WHERE domain = $1",
        )
        .bind(domain)
        .fetch_optional(&self.pool)
        .await
    }

    /// Locks and reads the pair inside `tx` (one refresh at a time, across replicas).
    pub async fn token_for_update(
        tx: &mut Transaction<'_, Postgres>,
        domain: &str,
    ) -> sqlx::Result<Option<TokenRow>> {
        sqlx::query_as(
            "SELECT access_token, refresh_token, expires_at FROM amocrm.oauth_tokens \
             WHERE domain = $1 FOR UPDATE",
        )
        .bind(domain)
        .fetch_optional(&mut **tx)
        .await
    }

    /// Stores a pair (insert or replace) in `tx`.
    pub async fn save_token(
        tx: &mut Transaction<'_, Postgres>,
        domain: &str,
        row: &TokenRow,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO amocrm.oauth_tokens (domain, access_token, refresh_token, expires_at, updated_at) \
             VALUES ($1, $2, $3, $4, now()) ON CONFLICT (domain) DO UPDATE SET \
             access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token, \
             expires_at = EXCLUDED.expires_at, updated_at = now()",
        )
        .bind(domain)
        .bind(&row.access_token)
        .bind(&row.refresh_token)
        .bind(row.expires_at)
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Stores the SHA-256 (hex) of a consent link's `state`, accepted until `expires_at`; states
    /// expired for more than a day are removed on the way.
    pub async fn save_oauth_state(
        &self,
        state_sha256: &str,
        expires_at: OffsetDateTime,
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM amocrm.oauth_states WHERE expires_at < now() - interval '1 day'")
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO amocrm.oauth_states (state_sha256, expires_at) VALUES ($1, $2)")
            .bind(state_sha256)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Marks the state with this SHA-256 used, if it is known, unused and not expired; one
    /// statement, so two callbacks with the same state cannot both pass.
    pub async fn use_oauth_state(
        &self,
        state_sha256: &str,
    ) -> sqlx::Result<Result<(), StateRefused>> {
        let taken: Option<i32> = sqlx::query_scalar(
            "UPDATE amocrm.oauth_states SET used_at = now() \
             WHERE state_sha256 = $1 AND used_at IS NULL AND expires_at > now() RETURNING 1",
        )
        .bind(state_sha256)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let row: Option<(Option<OffsetDateTime>,)> =
            sqlx::query_as("SELECT used_at FROM amocrm.oauth_states WHERE state_sha256 = $1")
                .bind(state_sha256)
                .fetch_optional(&self.pool)
                .await?;
        Ok(Err(match row {
            None => StateRefused::Unknown,
            Some((Some(_),)) => StateRefused::Used,
            Some((None,)) => StateRefused::Expired,
        }))
    }

    /// `true` when a dead letter with this `msg_id` is stored and not replayed yet (a webhook
    /// amoCRM delivers again is kept once).
    pub async fn dead_letter_pending(&self, msg_id: &str) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM amocrm.dead_letters WHERE msg_id = $1 AND replayed_at IS NULL)",
        )
        .bind(msg_id)
        .fetch_one(&self.pool)
        .await
    }
}
