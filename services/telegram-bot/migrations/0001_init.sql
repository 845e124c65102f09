-- Schema `telegram`: what the support relay must remember. Every table is keyed by the bot id
-- (the number before `:` in BOT_TOKEN), so two bots can share one database.

-- Long polling: the next `offset` for getUpdates, stored after the updates before it were
-- published to JetStream, so a restart neither loses nor repeats updates.
CREATE TABLE IF NOT EXISTS telegram.poll_offsets (
    bot_id          BIGINT PRIMARY KEY,
    next_update_id  BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One forum topic of the operators' group per customer.
CREATE TABLE IF NOT EXISTS telegram.topics (
    bot_id            BIGINT NOT NULL,
    user_id           BIGINT NOT NULL,
    -- The forum topic (`message_thread_id`) in BOT_GROUP_ID.
    thread_id         BIGINT NOT NULL,
    group_id          BIGINT NOT NULL,
    name              TEXT NOT NULL,
    -- The customer's Telegram language (`language_code`), for service texts sent to them.
    language          TEXT,
    closed            BOOLEAN NOT NULL DEFAULT false,
    banned            BOOLEAN NOT NULL DEFAULT false,
    -- The customer blocked the bot (403); `blocked_notified`: the operators were told.
    blocked           BOOLEAN NOT NULL DEFAULT false,
    blocked_notified  BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, user_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS topics_thread ON telegram.topics (bot_id, group_id, thread_id);

-- What each relayed message became on the other side: replies and edits are mirrored through
-- it, and a message found here was relayed already (the same update twice is one relay).
CREATE TABLE IF NOT EXISTS telegram.message_links (
    bot_id              BIGINT NOT NULL,
    source_chat_id      BIGINT NOT NULL,
    source_message_id   BIGINT NOT NULL,
    target_chat_id      BIGINT NOT NULL,
    -- Empty for a message that was handled without a copy (/start, /ban …); more than one when
    -- a long text was split.
    target_message_ids  BIGINT[] NOT NULL,
    -- `text`: sent with sendMessage (edits use editMessageText); `media`: copyMessage (edits
    -- use editMessageCaption); `command`: handled, nothing copied; `banned`: dropped, the customer
    -- was banned.
    kind                TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, source_chat_id, source_message_id)
);
CREATE INDEX IF NOT EXISTS message_links_target
    ON telegram.message_links (bot_id, target_chat_id, (target_message_ids[1]));

-- Operator notices already sent to BOT_DEV_ID (one per kind until the problem is gone).
CREATE TABLE IF NOT EXISTS telegram.operator_notices (
    bot_id      BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, kind)
);

-- Messages a consumer gave up on (service-kit dead_letter), for `telegram-bot dlq`.
CREATE TABLE IF NOT EXISTS telegram.dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    subject      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    payload      JSONB NOT NULL,
    reason       TEXT NOT NULL,
    attempts     INT NOT NULL,
    ordering_key TEXT,
    consumer     TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_consumer_msg_id ON telegram.dead_letters (consumer, msg_id);
