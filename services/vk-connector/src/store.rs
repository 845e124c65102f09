//! SQL for schema `vk`: the VK ⇄ Chatwoot mapping and the idempotency records.

use sqlx::PgPool;

/// Name of this service's schema.
pub const SCHEMA: &str = "vk";

/// A VK user's Chatwoot contact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactLink {
    /// The Chatwoot contact id.
    pub chatwoot_contact_id: i64,
    /// The contact-inbox `source_id` (`vk:<user id>`).
    pub source_id: String,
}

/// A conversation to reconcile.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationLink {
    /// The VK `peer_id` of the dialogue.
    pub peer_id: i64,
    /// The Chatwoot conversation (display) id.
    pub chatwoot_conversation_id: i64,
    /// Unix seconds when the mapping was made: older Chatwoot messages are not ours.
    pub created_unix: i64,
}

/// Access to schema `vk`.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A store on `pool`, whose database holds schema `vk`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Cached `users.get` name.
    pub async fn user_name(&self, user_id: i64) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT full_name FROM vk.users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Caches a `users.get` name (replacing an older one).
    pub async fn save_user_name(&self, user_id: i64, full_name: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.users (user_id, full_name) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET full_name = EXCLUDED.full_name, fetched_at = now()",
        )
        .bind(user_id)
        .bind(full_name)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// The Chatwoot contact of a VK user, when one was made.
    pub async fn contact(&self, vk_user_id: i64) -> sqlx::Result<Option<ContactLink>> {
        sqlx::query_as(
            "SELECT chatwoot_contact_id, source_id FROM vk.contacts WHERE vk_user_id = $1",
        )
        .bind(vk_user_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records (or replaces) the Chatwoot contact of a VK user.
    pub async fn save_contact(
        &self,
        vk_user_id: i64,
        chatwoot_contact_id: i64,
        source_id: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.contacts (vk_user_id, chatwoot_contact_id, source_id) VALUES ($1, $2, $3) \
             ON CONFLICT (vk_user_id) DO UPDATE SET chatwoot_contact_id = EXCLUDED.chatwoot_contact_id, \
             source_id = EXCLUDED.source_id",
        )
        .bind(vk_user_id)
        .bind(chatwoot_contact_id)
        .bind(source_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// The Chatwoot conversation of a VK dialogue.
    pub async fn conversation_for_peer(&self, peer_id: i64) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT chatwoot_conversation_id FROM vk.conversations WHERE peer_id = $1",
        )
        .bind(peer_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The VK dialogue of a Chatwoot conversation (None: not ours).
    pub async fn peer_for_conversation(&self, conversation_id: i64) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT peer_id FROM vk.conversations WHERE chatwoot_conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records (or replaces) the Chatwoot conversation of a VK dialogue; its creation and activity
    /// times restart now.
    pub async fn save_conversation(
        &self,
        peer_id: i64,
        conversation_id: i64,
        contact_id: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.conversations (peer_id, chatwoot_conversation_id, chatwoot_contact_id) \
             VALUES ($1, $2, $3) ON CONFLICT (peer_id) DO UPDATE SET \
             chatwoot_conversation_id = EXCLUDED.chatwoot_conversation_id, \
             chatwoot_contact_id = EXCLUDED.chatwoot_contact_id, created_at = now(), last_activity_at = now()",
        )
        .bind(peer_id)
        .bind(conversation_id)
        .bind(contact_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Drops a mapping whose Chatwoot conversation is gone (deleted upstream).
    pub async fn forget_conversation(&self, peer_id: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM vk.conversations WHERE peer_id = $1")
            .bind(peer_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Marks the dialogue active now (for the reconciliation lookback).
    pub async fn touch_conversation(&self, peer_id: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE vk.conversations SET last_activity_at = now() WHERE peer_id = $1")
            .bind(peer_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Conversations with activity in the last `lookback_secs`, for the reconciliation sweep.
    pub async fn recent_conversations(
        &self,
        lookback_secs: i64,
    ) -> sqlx::Result<Vec<ConversationLink>> {
        sqlx::query_as(
            "SELECT peer_id, chatwoot_conversation_id, \
             EXTRACT(EPOCH FROM created_at)::BIGINT AS created_unix \
             FROM vk.conversations WHERE last_activity_at > now() - make_interval(secs => $1) \
             ORDER BY last_activity_at DESC LIMIT 500",
        )
        .bind(lookback_secs as f64)
        .fetch_all(&self.pool)
        .await
    }

    /// `true` when the inbound message with this idempotency key is already in Chatwoot.
    pub async fn inbound_done(&self, key: &str) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vk.inbound_processed WHERE idempotency_key = $1)",
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await
    }

    /// Records that the inbound message with this key became Chatwoot message `chatwoot_message_id`
    /// (a repeat is a no-op).
    pub async fn mark_inbound_done(&self, key: &str, chatwoot_message_id: i64) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.inbound_processed (idempotency_key, chatwoot_message_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(chatwoot_message_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// `true` when Chatwoot message `message_id` of `account_id` was already sent to VK.
    pub async fn outbound_delivered(&self, account_id: i64, message_id: i64) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vk.outbound_delivered \
             WHERE chatwoot_account_id = $1 AND chatwoot_message_id = $2)",
        )
        .bind(account_id)
        .bind(message_id)
        .fetch_one(&self.pool)
        .await
    }

    /// Records that a Chatwoot message was sent to VK `peer_id` as `vk_message_ids` (one per part;
    /// a repeat is a no-op).
    pub async fn mark_outbound_delivered(
        &self,
        account_id: i64,
        message_id: i64,
        peer_id: i64,
        vk_message_ids: &[i64],
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.outbound_delivered (chatwoot_account_id, chatwoot_message_id, peer_id, vk_message_ids) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(account_id)
        .bind(message_id)
        .bind(peer_id)
        .bind(vk_message_ids)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// `true` when a message with this key waits in the dead-letter table (not replayed).
    pub async fn dead_lettered(&self, key: &domain::IdempotencyKey) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vk.dead_letters WHERE msg_id = $1 AND replayed_at IS NULL)",
        )
        .bind(key.as_str())
        .fetch_one(&self.pool)
        .await
    }
}
