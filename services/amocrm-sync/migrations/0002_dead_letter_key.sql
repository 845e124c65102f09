-- The consumer's ordering key of a dead letter (a peer, a conversation, an entity), so an
-- operator sees which conversation lost a message.
ALTER TABLE amocrm.dead_letters ADD COLUMN IF NOT EXISTS ordering_key TEXT;
