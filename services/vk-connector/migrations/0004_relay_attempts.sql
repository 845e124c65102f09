-- Inbound VK messages whose post to Chatwoot was started but not yet recorded in
-- vk.inbound_processed. A row written before the post and still there on the next handling means
-- an earlier attempt may have reached Chatwoot (accepted, then the process died or the processed
-- mark failed): that handling looks the message up by its `source_id` before posting again.
-- The row is removed in the statement that writes the processed mark.
CREATE TABLE IF NOT EXISTS vk.relay_attempts (
    idempotency_key           TEXT PRIMARY KEY,
    -- The conversation the latest attempt posts into.
    chatwoot_conversation_id  BIGINT NOT NULL,
    attempts                  INT NOT NULL DEFAULT 1,
    -- When the first attempt started: the lookup pages back no further than this (less a margin).
    first_started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_started_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
