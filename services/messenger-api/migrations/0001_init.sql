-- Schema `messenger`: accounts, invite codes, refresh tokens, chats, members, messages, files.

CREATE TABLE IF NOT EXISTS messenger.users (
    id             UUID PRIMARY KEY,
    -- E.164, e.g. +79991234567
    phone          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    -- argon2id PHC string; an imported ASP.NET Identity V3 hash (base64) until the first login
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL DEFAULT 'User' CHECK (role IN ('User', 'Admin')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS messenger.invites (
    code        TEXT PRIMARY KEY,
    max_uses    INT NOT NULL CHECK (max_uses > 0),
    uses        INT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_by  UUID REFERENCES messenger.users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per refresh token ever issued; a family is one login's chain of rotations. Only the
-- SHA-256 of a token is stored.
CREATE TABLE IF NOT EXISTS messenger.refresh_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES messenger.users (id) ON DELETE CASCADE,
    family_id   UUID NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- set when the token was exchanged for the next one; a second use is a reuse
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON messenger.refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON messenger.refresh_tokens (user_id);

CREATE TABLE IF NOT EXISTS messenger.chats (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('private', 'group')),
    title        TEXT,
    owner_id     UUID REFERENCES messenger.users (id) ON DELETE SET NULL,
    -- private chats: '<smaller user id>:<larger user id>', so that two users have one chat
    private_key  TEXT UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS messenger.chat_members (
    chat_id               UUID NOT NULL REFERENCES messenger.chats (id) ON DELETE CASCADE,
    user_id               UUID NOT NULL REFERENCES messenger.users (id) ON DELETE CASCADE,
    joined_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- read receipt: the newest message id this member has read (0: none)
    last_read_message_id  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX IF NOT EXISTS chat_members_user ON messenger.chat_members (user_id);

-- Uploaded voice messages; the bytes are MESSENGER_FILES_DIR/<id>.
CREATE TABLE IF NOT EXISTS messenger.files (
    id            UUID PRIMARY KEY,
    chat_id       UUID NOT NULL REFERENCES messenger.chats (id) ON DELETE CASCADE,
    uploader_id   UUID REFERENCES messenger.users (id) ON DELETE SET NULL,
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    file_name     TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS messenger.messages (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id            UUID NOT NULL REFERENCES messenger.chats (id) ON DELETE CASCADE,
    sender_id          UUID REFERENCES messenger.users (id) ON DELETE SET NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('text', 'audio')),
    text               TEXT,
    file_id            UUID REFERENCES messenger.files (id) ON DELETE SET NULL,
    duration_ms        INT,
    -- the client's idempotency key: a retried send stores one message
    client_message_id  TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at         TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS messages_chat ON messenger.messages (chat_id, id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id
    ON messenger.messages (sender_id, client_message_id) WHERE client_message_id IS NOT NULL;

-- Messages whose events.messenger.message.posted was not acknowledged by JetStream; the outbox
-- sweep publishes them again (same Nats-Msg-Id, so a late first publish is not stored twice).
CREATE TABLE IF NOT EXISTS messenger.outbox (
    message_id  BIGINT PRIMARY KEY REFERENCES messenger.messages (id) ON DELETE CASCADE,
    attempts    INT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
