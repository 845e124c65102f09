-- The dead-letter table of the consumer tests' schema, the shape every service has.
CREATE TABLE IF NOT EXISTS kit.dead_letters (
    id            BIGSERIAL PRIMARY KEY,
    subject       TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    payload       JSONB NOT NULL,
    reason        TEXT NOT NULL,
    attempts      INT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at   TIMESTAMPTZ,
    ordering_key  TEXT
);
