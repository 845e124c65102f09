-- Agents' replies with files whose sending to VK was started and not yet recorded in
-- vk.outbound_delivered: how often, and the messages they are sent as. After a few attempts a file whose server stays unreachable
-- is sent as a link instead of holding the dialogue's later replies back (the reply is never
-- dead-lettered for a file). The row is removed when the reply is recorded as delivered.
CREATE TABLE IF NOT EXISTS vk.outbound_attempts (
    chatwoot_account_id  BIGINT NOT NULL,
    chatwoot_message_id  BIGINT NOT NULL,
    attempts             INT NOT NULL DEFAULT 1,
    first_started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The VK messages planned once the files were uploaded, before the first was sent:
    -- {"messages": [[text, "photo1_2,doc1_3" | null], …], "files": N}. A retry sends this plan
    -- again (same random_ids, same content), never a new layout.
    plan                 JSONB,
    PRIMARY KEY (chatwoot_account_id, chatwoot_message_id)
);
