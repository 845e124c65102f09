-- Where the Bots Long Poll worker stopped: the `ts` after the last response whose events are
-- all on JetStream (or the `ts` a `failed` answer moved it to), per community. A start
-- continues from it instead of the server's current `ts`, so a restart skips nothing.
CREATE TABLE IF NOT EXISTS vk.long_poll_state (
    group_id    BIGINT PRIMARY KEY,
    ts          TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
