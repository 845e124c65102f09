-- The consumer that dead-lettered a message; (consumer, msg_id) is unique, so a message whose
-- ack was lost after its dead letter was stored is not stored twice (service-kit dead_letter).
ALTER TABLE amocrm.dead_letters ADD COLUMN IF NOT EXISTS consumer TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_consumer_msg_id ON amocrm.dead_letters (consumer, msg_id);
