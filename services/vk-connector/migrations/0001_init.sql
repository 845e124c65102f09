-- Schema `vk`: the VK ⇄ Chatwoot mapping, idempotency records and dead letters.

-- VK users' names from users.get, so that a contact is named without asking VK every time.
CREATE TABLE IF NOT EXISTS vk.users (
    user_id     BIGINT PRIMARY KEY,
    full_name   TEXT NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- VK user (from_id) ↔ Chatwoot contact and its contact inbox.
CREATE TABLE IF NOT EXISTS vk.contacts (
    vk_user_id           BIGINT PRIMARY KEY,
    chatwoot_contact_id  BIGINT NOT NULL,
    source_id            TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- VK dialogue (peer_id) ↔ Chatwoot conversation (display id).
CREATE TABLE IF NOT EXISTS vk.conversations (
    peer_id                   BIGINT PRIMARY KEY,
    chatwoot_conversation_id  BIGINT NOT NULL UNIQUE,
    chatwoot_contact_id       BIGINT NOT NULL,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_activity_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Inbound VK events already posted to Chatwoot (key = envelope idempotency key).
CREATE TABLE IF NOT EXISTS vk.inbound_processed (
    idempotency_key      TEXT PRIMARY KEY,
    chatwoot_message_id  BIGINT NOT NULL,
    processed_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Chatwoot agent messages already delivered to VK.
CREATE TABLE IF NOT EXISTS vk.outbound_delivered (
    chatwoot_account_id  BIGINT NOT NULL,
    chatwoot_message_id  BIGINT NOT NULL,
    peer_id              BIGINT NOT NULL,
    vk_message_ids       BIGINT[] NOT NULL,
    delivered_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chatwoot_account_id, chatwoot_message_id)
);

-- Messages given up on; `vk-connector dlq list|replay`.
CREATE TABLE IF NOT EXISTS vk.dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    subject      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    payload      JSONB NOT NULL,
    reason       TEXT NOT NULL,
    attempts     INT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at  TIMESTAMPTZ
);
