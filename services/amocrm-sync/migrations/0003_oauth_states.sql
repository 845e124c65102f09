-- The `state` of every consent link `amocrm-sync oauth-url` printed: the OAuth callback accepts a
-- state only when it is here, unused and not expired, and marks it used. Only a SHA-256 of the
-- state is kept (hex), so reading this table gives no usable link.
CREATE TABLE IF NOT EXISTS amocrm.oauth_states (
    state_sha256  TEXT PRIMARY KEY,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ
);
