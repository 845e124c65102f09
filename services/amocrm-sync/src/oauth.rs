//! The account's OAuth pair: exchanged from the authorization code once, refreshed before it
//! expires, never logged; and the consent links (`amocrm-sync oauth-url`) whose `state` the
//! callback checks.
//!
//! Before a new pair is stored it must answer `GET /api/v4/account` at `AMOCRM_BASE_URL` with the
//! configured subdomain: a code granted by another account (anyone can consent to our
//! integration for their own account: the client id is in every consent URL) never replaces the
//! stored pair. The exchange itself goes to our account's domain with our client secret and
//! redirect URI, never to the `referer` the redirect names.
//!
//! A refresh runs inside one Postgres transaction that locks the token row: read the pair, ask
//! amoCRM for a new one, store it, commit. If storing fails (or the process dies) the
//! transaction rolls back and the old pair stays; amoCRM keeps the old refresh token good until
//! the new pair is used, so the next attempt refreshes again instead of locking us out. The row
//! lock also makes replicas refresh one at a time: the second finds a fresh pair and uses it.

use std::sync::Arc;
use std::time::Duration;

use amocrm_api::{AmoClient, AmoError, TokenResponse};
use anyhow::Context;
use time::OffsetDateTime;

use crate::config::{ConsentMode, Settings};
use crate::store::{StateRefused, Store, TokenRow};

/// amoCRM's consent page (<https://www.amocrm.ru/developers/content/oauth/step-by-step>, «Получение
/// Authorization code»): `?client_id=…&state=…&mode=post_message|popup`.
pub const CONSENT_URL: &str = "https://www.amocrm.ru/oauth";

/// Access to the pair.
#[derive(Clone)]
pub struct Tokens {
    store: Store,
    amo: AmoClient,
    settings: Arc<Settings>,
    /// One refresh at a time inside this process (the row lock covers other replicas).
    local: Arc<tokio::sync::Mutex<()>>,
    /// When Postgres last said "no token stored": every lead event asks for the token, and
    /// before the OAuth step the answer does not change.
    none_since: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How long "no token stored" is believed without asking Postgres again.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// Why there is no usable token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// amoCRM refused the code or refresh token: someone must authorize the integration again.
    #[error("amoCRM refused: {0}")]
    Refused(AmoError),
    /// amoCRM did not answer usefully; try later.
    #[error("amoCRM unavailable: {0}")]
    Upstream(AmoError),
    /// The new pair does not belong to the configured account (its `GET /api/v4/account` was
    /// refused, or names another subdomain); nothing was stored.
    #[error("the code was granted by another amoCRM account ({})", .0.as_deref().unwrap_or("its token does not open this account"))]
    OtherAccount(Option<String>),
    /// Postgres failed; the stored pair is unchanged.
    #[error("storing the token failed: {0}")]
    Store(#[from] sqlx::Error),
}

impl TokenError {
    fn from_amo(e: AmoError) -> Self {
        if e.is_retriable() {
            TokenError::Upstream(e)
        } else {
            TokenError::Refused(e)
        }
    }
}

fn row_from(resp: &TokenResponse) -> TokenRow {
    TokenRow {
        access_token: resp.access_token.clone(),
        refresh_token: resp.refresh_token.clone(),
        expires_at: OffsetDateTime::now_utc() + Duration::from_secs(resp.expires_in.max(0) as u64),
    }
}

impl Tokens {
    /// Token access through `store` (the pair) and `amo` (exchange and refresh), for the account in
    /// `settings`.
    pub fn new(store: Store, amo: AmoClient, settings: Arc<Settings>) -> Self {
        Self {
            store,
            amo,
            settings,
            local: Arc::new(tokio::sync::Mutex::new(())),
            none_since: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    fn set_none_since(&self, at: Option<std::time::Instant>) {
        if let Ok(mut c) = self.none_since.lock() {
            *c = at;
        }
    }

    async fn current(&self) -> Result<Option<TokenRow>, sqlx::Error> {
        let known_none = self
            .none_since
            .lock()
            .ok()
            .and_then(|c| *c)
            .is_some_and(|at| at.elapsed() < CACHE_FOR);
        if known_none {
            return Ok(None);
        }
        let row = self.store.token(&self.settings.domain).await?;
        if row.is_none() {
            self.set_none_since(Some(std::time::Instant::now()));
        }
        Ok(row)
    }

    fn fresh(&self, row: &TokenRow) -> bool {
        row.expires_at - self.settings.refresh_margin > OffsetDateTime::now_utc()
    }

    /// Exchanges the code from `/api/auth/amo/callback`, checks that the new pair opens the
    /// configured account, and stores it.
    pub async fn exchange_code(&self, code: &str) -> Result<OffsetDateTime, TokenError> {
        let s = &self.settings;
        let resp = self
            .amo
            .exchange_code(
                s.client_id.expose(),
                s.client_secret.expose(),
                code,
                &s.redirect_uri,
            )
            .await
            .map_err(TokenError::from_amo)?;
        match self.amo.account(&resp.access_token).await {
            Ok(a) if a.subdomain.eq_ignore_ascii_case(&s.subdomain) => {}
            Ok(a) => return Err(self.other_account(Some(a.subdomain))),
            Err(e) if matches!(e.status(), Some(401 | 403)) => {
                return Err(self.other_account(None));
            }
            Err(e) => return Err(TokenError::from_amo(e)),
        }
        let row = row_from(&resp);
        let mut tx = self.store.pool().begin().await?;
        Store::save_token(&mut tx, &s.domain, &row).await?;
        tx.commit().await?;
        let expires_at = row.expires_at;
        self.set_none_since(None);
        metrics::counter!("amocrm_oauth_total", "grant" => "authorization_code", "outcome" => "ok")
            .increment(1);
        tracing::info!(domain = %s.domain, %expires_at, "amoCRM authorized");
        Ok(expires_at)
    }

    fn other_account(&self, subdomain: Option<String>) -> TokenError {
        metrics::counter!("amocrm_oauth_total", "grant" => "authorization_code", "outcome" => "other_account")
            .increment(1);
        tracing::warn!(
            other = subdomain.as_deref().unwrap_or("unknown"),
            "an OAuth code of another amoCRM account was refused; the stored pair is unchanged"
        );
        TokenError::OtherAccount(subdomain)
    }

    /// The access token to call API v4 with, refreshed first when it expires within the margin;
    /// `None` when the integration was never authorized.
    pub async fn access_token(&self) -> Result<Option<String>, TokenError> {
        match self.current().await? {
            None => Ok(None),
            Some(row) if self.fresh(&row) => Ok(Some(row.access_token)),
            Some(_) => self.refresh(false).await.map(Some),
        }
    }

    /// Refreshes the pair (unless another task just did, or `force`), returns the new access
    /// token. See the module docs for what happens when storing fails.
    pub async fn refresh(&self, force: bool) -> Result<String, TokenError> {
        let _one = self.local.lock().await;
        let s = &self.settings;
        let mut tx = self.store.pool().begin().await?;
        let Some(row) = Store::token_for_update(&mut tx, &s.domain).await? else {
            return Err(TokenError::Refused(AmoError::Decode(
                "no token stored: authorize the integration first".into(),
            )));
        };
        if !force && self.fresh(&row) {
            return Ok(row.access_token);
        }
        let resp = match self
            .amo
            .refresh_token(
                s.client_id.expose(),
                s.client_secret.expose(),
                &row.refresh_token,
                &s.redirect_uri,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!("amocrm_oauth_total", "grant" => "refresh_token", "outcome" => "refused").increment(1);
                return Err(TokenError::from_amo(e));
            }
        };
        let new = row_from(&resp);
        // Until this commits, the old pair is what the table holds.
        Store::save_token(&mut tx, &s.domain, &new).await?;
        tx.commit().await?;
        metrics::counter!("amocrm_oauth_total", "grant" => "refresh_token", "outcome" => "ok")
            .increment(1);
        tracing::info!(domain = %s.domain, expires_at = %new.expires_at, "amoCRM token refreshed");
        Ok(new.access_token)
    }

    /// One round of keeping the pair alive without traffic: refreshes when the access token
    /// is inside the margin, and says how long to wait before the next round (at most an hour:
    /// another replica or the callback may change the row). See
    /// [`crate::workers::token_refresh`].
    pub async fn keep_alive(&self) -> Duration {
        let wait = match self.store.token(&self.settings.domain).await {
            Ok(Some(row)) => {
                let due = row.expires_at - self.settings.refresh_margin;
                let left = due - OffsetDateTime::now_utc();
                if left.is_positive() {
                    Duration::try_from(left).unwrap_or(Duration::from_secs(60))
                } else {
                    match self.refresh(false).await {
                        Ok(_) => Duration::ZERO,
                        Err(e) => {
                            tracing::warn!(error = %e, "background token refresh failed; trying again in 60 s");
                            Duration::from_secs(60)
                        }
                    }
                }
            }
            // Not authorized yet, or Postgres away: look again in a minute.
            Ok(None) | Err(_) => Duration::from_secs(60),
        };
        wait.min(Duration::from_secs(3600))
    }

    /// `GET /api/v4/account` with the stored token (for `amocrm-sync check`).
    pub async fn check(&self) -> anyhow::Result<String> {
        let token = self
            .access_token()
            .await
            .context("reading or refreshing the token")?
            .context(
                "no token stored: open the integration's authorization link (docs/amocrm.md, \
                 «Connect OAuth»)",
            )?;
        let account = self
            .amo
            .account(&token)
            .await
            .context("GET /api/v4/account")?;
        Ok(format!(
            "account «{}», subdomain {}, id {}",
            account.name, account.subdomain, account.id
        ))
    }
}

/// A consent link and until when its `state` is accepted.
#[derive(Debug, Clone)]
pub struct ConsentLink {
    /// `https://www.amocrm.ru/oauth?client_id=…&state=…&mode=…`.
    pub url: String,
    /// When the state stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// A new consent link: a random `state` (128 bits, hex) whose SHA-256 is stored, valid once
/// until `valid_for` from now.
///
/// Errors: no randomness from the OS, or Postgres failed.
pub async fn consent_link(
    store: &Store,
    settings: &Settings,
    mode: ConsentMode,
    valid_for: Duration,
) -> anyhow::Result<ConsentLink> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let state = hex::encode(raw);
    let expires_at = OffsetDateTime::now_utc() + valid_for;
    store
        .save_oauth_state(&state_sha256(&state), expires_at)
        .await
        .context("storing the state")?;
    let mut url = url::Url::parse(CONSENT_URL).context("the consent URL")?;
    url.query_pairs_mut()
        .append_pair("client_id", settings.client_id.expose())
        .append_pair("state", &state)
        .append_pair("mode", mode.as_str());
    Ok(ConsentLink {
        url: url.into(),
        expires_at,
    })
}

/// Accepts the callback's `state` once: it must come from a link [`consent_link`] made, be
/// unused and unexpired.
///
/// Errors: the outer one is Postgres; the inner one says why the state is refused.
pub async fn use_state(store: &Store, state: &str) -> sqlx::Result<Result<(), StateRefused>> {
    store.use_oauth_state(&state_sha256(state)).await
}

fn state_sha256(state: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(state.trim().as_bytes()))
}
