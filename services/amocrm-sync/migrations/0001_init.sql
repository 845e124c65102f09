-- Schema `amocrm`: leads and contacts as amoCRM last described them, their links, the history of
-- stage changes, the OAuth tokens and dead letters.

-- One row per amoCRM lead. `updated_at` is amoCRM's time of the change this row shows; an event
-- with an older one never overwrites the row. Deleting is soft (`deleted_at`).
CREATE TABLE IF NOT EXISTS amocrm.leads (
    id                   BIGINT PRIMARY KEY,
    account_id           BIGINT,
    name                 TEXT,
    price                BIGINT,
    status_id            BIGINT,
    pipeline_id          BIGINT,
    -- our status name for status_id (AMOCRM_STATUS_MAP); NULL when the stage is not mapped
    status               TEXT,
    responsible_user_id  BIGINT,
    utm_source           TEXT,
    utm_medium           TEXT,
    utm_campaign         TEXT,
    utm_content          TEXT,
    utm_term             TEXT,
    object_price         NUMERIC(20, 2),
    commission           NUMERIC(20, 2),
    -- every custom field as amoCRM sent it: [{"id":…,"code":…,"name":…,"values":[{"value":…}]}]
    custom_fields        JSONB NOT NULL DEFAULT '[]'::jsonb,
    tags                 TEXT[] NOT NULL DEFAULT '{}',
    created_at           TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL,
    deleted_at           TIMESTAMPTZ,
    synced_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS leads_status_idx ON amocrm.leads (status) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS amocrm.contacts (
    id                   BIGINT PRIMARY KEY,
    account_id           BIGINT,
    name                 TEXT,
    first_name           TEXT,
    last_name            TEXT,
    responsible_user_id  BIGINT,
    -- E.164 (+79031453455); a number that does not read as one is kept as given
    phones               TEXT[] NOT NULL DEFAULT '{}',
    -- trimmed, lower case
    emails               TEXT[] NOT NULL DEFAULT '{}',
    custom_fields        JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at           TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL,
    deleted_at           TIMESTAMPTZ,
    synced_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contacts_phones_idx ON amocrm.contacts USING GIN (phones);
CREATE INDEX IF NOT EXISTS contacts_emails_idx ON amocrm.contacts USING GIN (emails);

-- Lead ↔ contact (either side may arrive first, so no foreign keys).
CREATE TABLE IF NOT EXISTS amocrm.lead_contacts (
    lead_id     BIGINT NOT NULL,
    contact_id  BIGINT NOT NULL,
    is_main     BOOLEAN NOT NULL DEFAULT false,
    linked_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (lead_id, contact_id)
);
CREATE INDEX IF NOT EXISTS lead_contacts_contact_idx ON amocrm.lead_contacts (contact_id);

-- Every stage a lead was seen entering, once per (lead, stage, time of the change).
CREATE TABLE IF NOT EXISTS amocrm.lead_status_history (
    id               BIGSERIAL PRIMARY KEY,
    lead_id          BIGINT NOT NULL,
    status_id        BIGINT NOT NULL,
    status           TEXT,
    pipeline_id      BIGINT,
    old_status_id    BIGINT,
    changed_at       TIMESTAMPTZ NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (lead_id, status_id, changed_at)
);
CREATE INDEX IF NOT EXISTS lead_status_history_lead_idx ON amocrm.lead_status_history (lead_id, changed_at);

-- The OAuth pair of the account (one row per amoCRM domain). Replaced in one UPDATE after a
-- refresh succeeded, so the old pair stays until the new one is stored.
CREATE TABLE IF NOT EXISTS amocrm.oauth_tokens (
    domain         TEXT PRIMARY KEY,
    access_token   TEXT NOT NULL,
    refresh_token  TEXT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages given up on; `amocrm-sync dlq list|replay`.
CREATE TABLE IF NOT EXISTS amocrm.dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    subject      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    payload      JSONB NOT NULL,
    reason       TEXT NOT NULL,
    attempts     INT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at  TIMESTAMPTZ
);
