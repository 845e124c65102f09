-- Schema `okdesk`: what okdesk-bridge must remember to make each upstream effect once and each
-- notification once, whichever path (webhook or poll) saw the change first.

-- Issues opened through cmd.okdesk.issue.create, by the command's idempotency key: a
-- redelivered command answers with the same issue instead of opening another.
CREATE TABLE IF NOT EXISTS okdesk.created_issues (
    request_key   TEXT PRIMARY KEY,
    issue_id      BIGINT,
    -- When the first attempt went out: a retry after a timeout first looks for an issue of
    -- the contact created since then with the same title (Okdesk has no idempotency key).
    first_attempt TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at    TIMESTAMPTZ
);

-- Comments written through cmd.okdesk.comment.create, likewise.
CREATE TABLE IF NOT EXISTS okdesk.created_comments (
    request_key   TEXT PRIMARY KEY,
    issue_id      BIGINT NOT NULL,
    comment_id    BIGINT,
    first_attempt TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Contacts registered through the bridge: the poll watches their issues.
CREATE TABLE IF NOT EXISTS okdesk.contacts (
    contact_id    BIGINT PRIMARY KEY,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The last status of each watched issue that was announced, and how many changes were: the
-- n-th change is published with key okdesk:issue:<id>:status:<n>, so the webhook and the poll
-- seeing the same change publish it once.
CREATE TABLE IF NOT EXISTS okdesk.issues (
    issue_id     BIGINT PRIMARY KEY,
    contact_id   BIGINT,
    status_code  TEXT NOT NULL,
    status_seq   INT NOT NULL DEFAULT 0,
    -- Closed issues are not polled any more.
    closed       BOOLEAN NOT NULL DEFAULT false,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Comments already announced (or present when the issue was first seen).
CREATE TABLE IF NOT EXISTS okdesk.seen_comments (
    comment_id  BIGINT PRIMARY KEY,
    issue_id    BIGINT NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages a consumer gave up on (service-kit dead_letter), for `okdesk-bridge dlq`.
CREATE TABLE IF NOT EXISTS okdesk.dead_letters (
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
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_consumer_msg_id ON okdesk.dead_letters (consumer, msg_id);
