-- Schema `telegram`, the Okdesk helpdesk (OKDESK_ENABLED): where each person is in a dialog,
-- who is registered as which Okdesk contact, and what was handled already. Keyed by the bot id
-- like everything else here.

-- The dialog of a person with the bot: the current step (`idle` outside a dialog) and its data,
-- written by the same handler that answers, so a restart mid-dialog resumes where they were.
-- `registrations` counts the registrations sent (part of their idempotency key).
CREATE TABLE IF NOT EXISTS telegram.helpdesk_dialogs (
    bot_id         BIGINT NOT NULL,
    user_id        BIGINT NOT NULL,
    step           TEXT NOT NULL DEFAULT 'idle',
    data           JSONB,
    language       TEXT,
    registrations  INT NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, user_id)
);

-- A person's registration: what they gave, and the Okdesk contact once okdesk-bridge answered
-- (`contact_id` NULL while it is pending). Notifications of an issue go to every person whose
-- contact is the issue's.
CREATE TABLE IF NOT EXISTS telegram.helpdesk_people (
    bot_id         BIGINT NOT NULL,
    user_id        BIGINT NOT NULL,
    contact_id     BIGINT,
    company_id     BIGINT,
    company_name   TEXT,
    full_name      TEXT NOT NULL,
    phone          TEXT,
    -- The person's Telegram language (`language_code`), for notifications.
    language       TEXT,
    registered_at  TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, user_id)
);
CREATE INDEX IF NOT EXISTS helpdesk_people_contact
    ON telegram.helpdesk_people (bot_id, contact_id) WHERE contact_id IS NOT NULL;

-- What was done already, so a redelivery has no second effect: `press:<callback id>` (a
-- button press answered), `notice:<event idempotency key>:<user id>` (a notification sent).
CREATE TABLE IF NOT EXISTS telegram.helpdesk_done (
    bot_id      BIGINT NOT NULL,
    key         TEXT NOT NULL,
    done_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, key)
);
