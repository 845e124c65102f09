//! `AmoClient`: OAuth 2.0 token requests and API v4 reads, within amoCRM's rate limit.
//!
//! Every call waits for a slot of the client's rate limiter first (governor; 7 requests per
//! second by default, shared by all clones), and 429/5xx/no-answer are retried by backon with
//! exponential backoff that honours `Retry-After`. A client is cheap to clone.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AmoError;
use crate::webhook::{RawContact, RawLead};

/// The longest `Retry-After` the client sleeps through itself; longer ones end the call with
/// the 429 so that the caller (a JetStream consumer) can come back later.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay (doubles each time) when the answer gave no `Retry-After`.
    pub min_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries from 1 s: 1, 2, 4, 8 s.
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_secs(1),
        }
    }
}

/// The answer of `POST /oauth2/access_token`
/// (<https://www.amocrm.ru/developers/content/oauth/step-by-step>): `access_token` lives
/// `expires_in` seconds (86400), `refresh_token` three months and is exchanged for a new pair.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The token type, `Bearer`.
    pub token_type: String,
    /// Lifetime of `access_token`, in seconds (86400).
    pub expires_in: i64,
    /// The token API v4 calls are made with (`Authorization: Bearer …`).
    pub access_token: String,
    /// The token that is exchanged for the next pair (amoCRM rotates it on every refresh).
    pub refresh_token: String,
    /// Unix seconds of the server when it issued the pair (Kommo documents it; amoCRM may omit it).
    #[serde(default)]
    pub server_time: Option<i64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}

/// `GET /api/v4/account`: who the token belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountInfo {
    /// The account id.
    pub id: i64,
    /// The account name.
    #[serde(default)]
    pub name: String,
    /// The account subdomain, as in `https://<subdomain>.amocrm.ru`.
    #[serde(default)]
    pub subdomain: String,
}

/// A client of one amoCRM account, `https://<subdomain>.amocrm.ru` (or the sandbox).
#[derive(Clone)]
pub struct AmoClient {
    http: reqwest::Client,
    base_url: String,
    limiter: Arc<DefaultDirectRateLimiter>,
    retry: RetryPolicy,
}

impl AmoClient {
    /// `http` is the gateway's one outbound client (`upstream_http::build`; a service passes
    /// its `Runtime::http`, whose timeout is `UPSTREAM_TIMEOUT_SECS`); `base_url` without a
    /// trailing slash, e.g. `https://example.amocrm.ru`; `requests_per_second` is amoCRM's
    /// limit (7).
    pub fn new(http: reqwest::Client, base_url: &str, requests_per_second: u32) -> Self {
        let rps = NonZeroU32::new(requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(rps))),
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Exchanges an authorization code (from the redirect `?code=…`, valid 20 minutes) for a
    /// token pair.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, AmoError> {
        self.token_request(json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
        }))
        .await
    }

    /// Exchanges a refresh token for a new pair. amoCRM rotates: the answer holds a new refresh
    /// token, which the caller must store before it relies on the old one being gone.
    pub async fn refresh_token(
        &self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, AmoError> {
        self.token_request(json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "redirect_uri": redirect_uri,
        }))
        .await
    }

    async fn token_request(&self, body: Value) -> Result<TokenResponse, AmoError> {
        let url = format!("{}/oauth2/access_token", self.base_url);
        // Not retried on 4xx: a code or refresh token that was refused stays refused.
        let value = (|| async {
            self.limiter.until_ready().await;
            let res = self.http.post(&url).json(&body).send().await.inspect_err(|_| {
                metrics::counter!("amocrm_api_calls_total", "endpoint" => "oauth2/access_token", "status" => "unreachable").increment(1);
            })?;
            read(res, "oauth2/access_token").await
        })
        .retry(self.backoff())
        .when(AmoError::is_retriable)
        .adjust(adjust)
        .await?
        .ok_or_else(|| AmoError::Decode("empty token answer".into()))?;
        serde_json::from_value(value).map_err(|e| AmoError::Decode(format!("token answer: {e}")))
    }

    /// `GET /api/v4/leads/{id}?with=contacts`; `None` when amoCRM has no such lead (204/404).
    pub async fn lead(&self, access_token: &str, id: i64) -> Result<Option<RawLead>, AmoError> {
        let url = format!("{}/api/v4/leads/{id}?with=contacts", self.base_url);
        match self.get(access_token, &url, "leads").await? {
            Some(v) => RawLead::from_value(&v)
                .map(Some)
                .map_err(|e| AmoError::Decode(format!("lead {id}: {e}"))),
            None => Ok(None),
        }
    }

    /// `GET /api/v4/contacts/{id}?with=leads`; `None` when amoCRM has no such contact.
    pub async fn contact(
        &self,
        access_token: &str,
        id: i64,
    ) -> Result<Option<RawContact>, AmoError> {
        let url = format!("{}/api/v4/contacts/{id}?with=leads", self.base_url);
        match self.get(access_token, &url, "contacts").await? {
            Some(v) => RawContact::from_value(&v)
                .map(Some)
                .map_err(|e| AmoError::Decode(format!("contact {id}: {e}"))),
            None => Ok(None),
        }
    }

    /// `GET /api/v4/account`: checks a token and names its account.
    pub async fn account(&self, access_token: &str) -> Result<AccountInfo, AmoError> {
        let url = format!("{}/api/v4/account", self.base_url);
        let v = self
            .get(access_token, &url, "account")
            .await?
            .ok_or_else(|| AmoError::Decode("empty account answer".into()))?;
        serde_json::from_value(v).map_err(|e| AmoError::Decode(format!("account: {e}")))
    }

    async fn get(
        &self,
        access_token: &str,
        url: &str,
        endpoint: &'static str,
    ) -> Result<Option<Value>, AmoError> {
        (|| async {
            self.limiter.until_ready().await;
            let res = self
                .http
                .get(url)
                .bearer_auth(access_token)
                .send()
                .await
                .inspect_err(|_| {
                    metrics::counter!("amocrm_api_calls_total", "endpoint" => endpoint, "status" => "unreachable").increment(1);
                })?;
            read(res, endpoint).await
        })
        .retry(self.backoff())
        .when(AmoError::is_retriable)
        .adjust(adjust)
        .notify(|e, d| tracing::warn!(endpoint, error = %e, delay_ms = d.as_millis() as u64, "amoCRM call failed; retrying"))
        .await
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(MAX_RETRY_AFTER)
            .with_max_times(self.retry.max_retries)
    }
}

/// Honour `Retry-After` (up to [`MAX_RETRY_AFTER`]; beyond that, stop retrying).
fn adjust(e: &AmoError, backoff: Option<Duration>) -> Option<Duration> {
    match (e.retry_after(), backoff) {
        (_, None) => None,
        (Some(ra), Some(_)) if ra > MAX_RETRY_AFTER => None,
        (Some(ra), Some(_)) => Some(ra),
        (None, b) => b,
    }
}

/// 2xx with JSON → `Some`, 204/404 → `None`, anything else → [`AmoError::Status`].
async fn read(res: reqwest::Response, endpoint: &'static str) -> Result<Option<Value>, AmoError> {
    let status = res.status();
    tracing::debug!(endpoint, status = status.as_u16(), "amoCRM answered");
    metrics::counter!("amocrm_api_calls_total", "endpoint" => endpoint, "status" => status.as_u16().to_string())
        .increment(1);
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let retry_after = upstream_http::retry_after(res.headers());
    let bytes = res.bytes().await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AmoError::Decode(format!("{endpoint}: {e}")));
    }
    let detail = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => ["hint", "detail", "title"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| v.to_string()),
        Err(_) => upstream_http::truncate_body(&String::from_utf8_lossy(&bytes), 200),
    };
    Err(AmoError::Status {
        status: status.as_u16(),
        detail,
        retry_after,
    })
}
