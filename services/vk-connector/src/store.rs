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

/// The `SELECT … FROM vk.conversations` of a [`ConversationLink`], for `concat!`.
macro_rules! link_select {
    () => {
        "SELECT peer_id, chatwoot_conversation_id, \
         EXTRACT(EPOCH FROM created_at)::BIGINT AS created_unix FROM vk.conversations"
    };
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

    /// Maps a conversation another gateway made ([`crate::legacy`]) to its VK dialogue, unless
    /// the dialogue already has a conversation or the conversation a dialogue; for a private
    /// dialogue (`peer_id` = user id) the user's contact is recorded too when none is. Returns
    /// whether the mapping was stored.
    pub async fn adopt_conversation(
        &self,
        peer_id: i64,
        conversation_id: i64,
        contact_id: i64,
        source_id: Option<&str>,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let stored = sqlx::query(
            "INSERT INTO vk.conversations (peer_id, chatwoot_conversation_id, chatwoot_contact_id) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(peer_id)
        .bind(conversation_id)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if let Some(source_id) = source_id.filter(|_| peer_id < vk_api::callback::CHAT_PEER_OFFSET)
        {
            sqlx::query(
                "INSERT INTO vk.contacts (vk_user_id, chatwoot_contact_id, source_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (vk_user_id) DO NOTHING",
            )
            .bind(peer_id)
            .bind(contact_id)
            .bind(source_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(stored)
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

    /// The mapping of Chatwoot conversation `conversation_id`, for reconciling it alone.
    pub async fn conversation_link(
        &self,
        conversation_id: i64,
    ) -> sqlx::Result<Option<ConversationLink>> {
        sqlx::query_as(concat!(
            link_select!(),
            " WHERE chatwoot_conversation_id = $1"
        ))
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

    /// Conversations with activity in the last `lookback_secs`, for the reconciliation sweep.
    pub async fn recent_conversations(
        &self,
        lookback_secs: i64,
    ) -> sqlx::Result<Vec<ConversationLink>> {
        sqlx::query_as(concat!(
            link_select!(),
            " WHERE last_activity_at > now() - make_interval(secs => $1) \
             ORDER BY last_activity_at DESC LIMIT 500"
        ))
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

    /// Counts an attempt to send Chatwoot message `message_id` (one with files) to VK and
    /// returns how many were made before this one (0 the first time) and the plan an earlier
    /// attempt stored ([`Store::save_outbound_plan`]). Both end with
    /// [`Store::mark_outbound_delivered`].
    pub async fn start_outbound_attempt(
        &self,
        account_id: i64,
        message_id: i64,
    ) -> sqlx::Result<(i32, Option<serde_json::Value>)> {
        let (attempts, plan): (i32, Option<serde_json::Value>) = sqlx::query_as(
            "INSERT INTO vk.outbound_attempts (chatwoot_account_id, chatwoot_message_id) VALUES ($1, $2) \
             ON CONFLICT (chatwoot_account_id, chatwoot_message_id) \
             DO UPDATE SET attempts = vk.outbound_attempts.attempts + 1 RETURNING attempts, plan",
        )
        .bind(account_id)
        .bind(message_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((attempts - 1, plan))
    }

    /// Stores the VK messages a reply with files is sent as (uploads done), before the first
    /// is sent: every later attempt sends exactly these.
    pub async fn save_outbound_plan(
        &self,
        account_id: i64,
        message_id: i64,
        plan: &serde_json::Value,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE vk.outbound_attempts SET plan = $3 \
             WHERE chatwoot_account_id = $1 AND chatwoot_message_id = $2",
        )
        .bind(account_id)
        .bind(message_id)
        .bind(plan)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Records that a Chatwoot message was sent to VK `peer_id` as `vk_message_ids` (one per part;
    /// a repeat is a no-op), and ends its attempt count.
    pub async fn mark_outbound_delivered(
        &self,
        account_id: i64,
        message_id: i64,
        peer_id: i64,
        vk_message_ids: &[i64],
    ) -> sqlx::Result<()> {
        sqlx::query(
            "WITH finished AS (DELETE FROM vk.outbound_attempts \
               WHERE chatwoot_account_id = $1 AND chatwoot_message_id = $2) \
             INSERT INTO vk.outbound_delivered (chatwoot_account_id, chatwoot_message_id, peer_id, vk_message_ids) \
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

/// How long a relay waits for another's find-or-create of the same dialogue before it gives up
/// (and retries): longer than the Chatwoot calls made under the lock take.
const DIALOGUE_LOCK_TIMEOUT: &str = "60s";

/// The advisory lock key of VK dialogue `peer_id`, hashed by `hashtextextended(…, 0)`.
fn dialogue_lock_name(peer_id: i64) -> String {
    format!("vk:dialogue:{peer_id}")
}

/// The find-or-create lock of one VK dialogue, held by every replica's relay: a transaction
/// holding `pg_advisory_xact_lock(hashtextextended('vk:dialogue:<peer_id>', 0))` and then the
/// same of `'vk:contact:<chatwoot contact id>'` (the contact's open conversations are the
/// candidates every dialogue of that contact looks at; always taken in this order, so two
/// relays never wait on each other in a cycle). Dropping it rolls the transaction back and
/// releases both (also when the process dies: Postgres ends the session). Its queries run on
/// the lock's own connection, so a relay under the lock needs no second connection from the
/// pool.
pub struct DialogueLock {
    peer_id: i64,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl DialogueLock {
    /// The dialogue's conversation, read under the lock: set when the holder this relay waited
    /// for created it.
    pub async fn conversation(&mut self) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT chatwoot_conversation_id FROM vk.conversations WHERE peer_id = $1",
        )
        .bind(self.peer_id)
        .fetch_optional(&mut *self.tx)
        .await
    }

    /// `true` when Chatwoot conversation `conversation_id` is mapped to another VK dialogue (a
    /// user's private chat and a group chat share one contact, not one conversation).
    pub async fn mapped_elsewhere(&mut self, conversation_id: i64) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vk.conversations \
             WHERE chatwoot_conversation_id = $1 AND peer_id <> $2)",
        )
        .bind(conversation_id)
        .bind(self.peer_id)
        .fetch_one(&mut *self.tx)
        .await
    }

    /// Records the dialogue's conversation (as [`Store::save_conversation`] does) and commits,
    /// releasing the lock.
    pub async fn save_conversation(
        mut self,
        conversation_id: i64,
        contact_id: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.conversations (peer_id, chatwoot_conversation_id, chatwoot_contact_id) \
             VALUES ($1, $2, $3) ON CONFLICT (peer_id) DO UPDATE SET \
             chatwoot_conversation_id = EXCLUDED.chatwoot_conversation_id, \
             chatwoot_contact_id = EXCLUDED.chatwoot_contact_id, created_at = now(), last_activity_at = now()",
        )
        .bind(self.peer_id)
        .bind(conversation_id)
        .bind(contact_id)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }
}

/// An earlier attempt to post an inbound message to Chatwoot that was never marked processed:
/// it may have reached Chatwoot.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EarlierAttempt {
    /// The conversation that attempt posted into.
    pub chatwoot_conversation_id: i64,
    /// Attempts started before this one.
    pub attempts: i32,
    /// Unix seconds when the first attempt started.
    pub first_started_unix: i64,
}

impl Store {
    /// Takes the find-or-create lock of VK dialogue `peer_id` whose writer is Chatwoot contact
    /// `contact_id`, waiting while another relay (of any replica) holds either — at most 60 s
    /// each (`lock_timeout`), then an error.
    pub async fn lock_dialogue(&self, peer_id: i64, contact_id: i64) -> sqlx::Result<DialogueLock> {
        let mut tx = self.pool.begin().await?;
        // `SET LOCAL`: for this transaction only.
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(DIALOGUE_LOCK_TIMEOUT)
            .execute(&mut *tx)
            .await?;
        for name in [
            dialogue_lock_name(peer_id),
            format!("vk:contact:{contact_id}"),
        ] {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        Ok(DialogueLock { peer_id, tx })
    }

    /// Records that an attempt to post the inbound message `key` into `conversation_id` starts
    /// now, before the post. Returns the earlier attempt when one was recorded and never
    /// finished by [`Store::mark_relayed`]: that post may be in Chatwoot already.
    pub async fn start_relay_attempt(
        &self,
        key: &str,
        conversation_id: i64,
    ) -> sqlx::Result<Option<EarlierAttempt>> {
        // A data-modifying CTE runs whether or not the outer query reads it; `earlier` sees
        // the row as it was before this statement.
        sqlx::query_as(
            "WITH earlier AS ( \
               SELECT chatwoot_conversation_id, attempts, \
                      EXTRACT(EPOCH FROM first_started_at)::BIGINT AS first_started_unix \
               FROM vk.relay_attempts WHERE idempotency_key = $1 \
             ), started AS ( \
               INSERT INTO vk.relay_attempts (idempotency_key, chatwoot_conversation_id) \
               VALUES ($1, $2) ON CONFLICT (idempotency_key) DO UPDATE SET \
               chatwoot_conversation_id = EXCLUDED.chatwoot_conversation_id, \
               attempts = vk.relay_attempts.attempts + 1, last_started_at = now() \
             ) \
             SELECT chatwoot_conversation_id, attempts, first_started_unix FROM earlier",
        )
        .bind(key)
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Marks the inbound message `key` done (Chatwoot message `chatwoot_message_id`), ends its
    /// relay attempt and touches the conversation of `peer_id` (for the reconciliation sweep),
    /// in one statement: one commit per relayed message instead of two.
    pub async fn mark_relayed(
        &self,
        key: &str,
        chatwoot_message_id: i64,
        peer_id: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "WITH finished AS (DELETE FROM vk.relay_attempts WHERE idempotency_key = $1), \
             touched AS (UPDATE vk.conversations SET last_activity_at = now() WHERE peer_id = $3) \
             INSERT INTO vk.inbound_processed (idempotency_key, chatwoot_message_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(chatwoot_message_id)
        .bind(peer_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

/// The Bots Long Poll position (`vk.long_poll_state`), per community.
impl Store {
    /// The `ts` the long poll worker last reached for `group_id`, if it ever ran.
    pub async fn long_poll_ts(&self, group_id: i64) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT ts FROM vk.long_poll_state WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Records that every event of `group_id` up to `ts` is published (or replaced by a
    /// `failed` answer's `ts`).
    pub async fn save_long_poll_ts(&self, group_id: i64, ts: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vk.long_poll_state (group_id, ts) VALUES ($1, $2) \
             ON CONFLICT (group_id) DO UPDATE SET ts = EXCLUDED.ts, updated_at = now()",
        )
        .bind(group_id)
        .bind(ts)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}
