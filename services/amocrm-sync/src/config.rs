//! Configuration of amocrm-sync: flags or environment variables (a `.env` file is read when
//! present). `amocrm-sync --help` lists them all.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use service_kit::cli::StandardCommand;
use service_kit::config::{long_secret, required_str, secret};
use service_kit::{ConfigError, RuntimeArgs, Secret};

use crate::mapping::Mapping;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "amocrm-sync",
    version,
    about = "amoCRM → gateway: lead and contact webhooks (amoCRM's form format and the JSON \
             format) become events on NATS and rows in Postgres; OAuth 2.0 and API v4 fill in \
             what a webhook leaves out.",
    after_help = "Without a command it serves. A missing or placeholder secret stops the service \
                  at start with the name of the variable. Field ids and the status map come from \
                  AMOCRM_MAPPING_FILE and/or the AMOCRM_FIELD_* / AMOCRM_STATUS_MAP variables \
                  (variables win); see docs/amocrm.md."
)]
pub struct Cli {
    /// What to do; `None` serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Every setting.
    #[command(flatten)]
    pub config: Config,
}

/// What to do: the standard commands (`serve` runs the HTTP server, the store consumer and
/// the token refresher; `check` also tries the stored OAuth token against amoCRM with
/// GET /api/v4/account), and `oauth-url`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// `serve | migrate | check | dlq list|replay | healthcheck`.
    #[command(flatten)]
    Standard(StandardCommand),
    /// Print amoCRM's consent URL for this integration with a fresh `state` (stored in schema
    /// amocrm, valid once, for --valid-minutes). Open it, choose the account, press "Allow";
    /// the callback checks the state before it exchanges the code.
    OauthUrl {
        /// How amoCRM's consent window behaves: `post_message` (open the URL in a browser tab:
        /// after "Allow" the tab goes to the redirect URI) or `popup` (for a page that opens it
        /// in a popup window).
        #[arg(long, value_enum, default_value_t = ConsentMode::PostMessage)]
        mode: ConsentMode,
        /// Minutes the state is accepted (1 to 1440).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1440))]
        valid_minutes: u32,
    },
}

/// The `mode` parameter of amoCRM's consent URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsentMode {
    /// `mode=post_message`.
    PostMessage,
    /// `mode=popup`.
    Popup,
}

impl ConsentMode {
    /// The wire value, `post_message` or `popup`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMode::PostMessage => "post_message",
            ConsentMode::Popup => "popup",
        }
    }
}

/// Every setting; checked by [`Settings::from_config`].
#[derive(Clone, clap::Args)]
pub struct Config {
    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 8084)]
    pub port: u16,

    /// The amoCRM account's domain, e.g. example.amocrm.ru (or just `example`). Webhooks whose
    /// `account[subdomain]` is another account are refused.
    #[arg(long, env = "AMOCRM_DOMAIN")]
    pub amocrm_domain: Option<String>,
    /// amoCRM base URL for OAuth and API v4; default https://<AMOCRM_DOMAIN>. Tests point it at
    /// the sandbox.
    #[arg(long, env = "AMOCRM_BASE_URL")]
    pub amocrm_base_url: Option<String>,
    /// Integration id (Settings → Integrations → your integration → Keys and scopes).
    #[arg(long, env = "AMOCRM_CLIENT_ID", hide_env_values = true)]
    pub amocrm_client_id: Option<String>,
    /// Integration secret key; also the HMAC key of the legacy JSON webhook's X-Signature. Never
    /// logged.
    #[arg(long, env = "AMOCRM_CLIENT_SECRET", hide_env_values = true)]
    pub amocrm_client_secret: Option<String>,
    /// Redirect URI registered in the integration:
    /// `https://amocrm.<DOMAIN>/api/auth/amo/callback`.
    #[arg(long, env = "AMOCRM_REDIRECT_URI")]
    pub amocrm_redirect_uri: Option<String>,
    /// Unguessable path segment of the webhook URL amoCRM posts to:
    /// POST /api/webhooks/amo/{AMOCRM_WEBHOOK_TOKEN}, at least 16 characters (openssl rand -hex
    /// 16). amoCRM signs nothing, so this is the credential. Never logged.
    #[arg(long, env = "AMOCRM_WEBHOOK_TOKEN", hide_env_values = true)]
    pub amocrm_webhook_token: Option<String>,
    /// Accept the earlier deployment's JSON webhook on POST /api/webhooks/amo (X-Signature over
    /// the client UUID and account id only: it covers no body and no time, so whoever saw one
    /// request can post any body). Off: that route answers 404. Only while migrating to
    /// amoCRM's own webhook (docs/amocrm.md).
    #[arg(long, env = "AMOCRM_LEGACY_JSON_WEBHOOK", default_value_t = false, action = clap::ArgAction::Set)]
    pub amocrm_legacy_json_webhook: bool,
    /// Most lead and contact entries one webhook may carry; a body with more is answered 413
    /// and nothing of it is published.
    #[arg(long, env = "AMOCRM_MAX_ENTRIES_PER_WEBHOOK", default_value_t = 500)]
    pub amocrm_max_entries_per_webhook: usize,

    /// JSON file with the status map and field ids:
    /// {"statuses":{"142":"won"},"fields":{"utm_source":123458,…},"phone_region":"RU"}.
    #[arg(long, env = "AMOCRM_MAPPING_FILE")]
    pub amocrm_mapping_file: Option<PathBuf>,
    /// Status map, `<status_id>=<name>` comma separated, e.g. `31245=new,31246=contacted`.
    /// Replaces the default map 1 new … 7 completed; 142 won and 143 lost stay unless given.
    #[arg(long, env = "AMOCRM_STATUS_MAP")]
    pub amocrm_status_map: Option<String>,
    /// Lead custom field id of utm_source (default 123458).
    #[arg(long, env = "AMOCRM_FIELD_UTM_SOURCE")]
    pub amocrm_field_utm_source: Option<i64>,
    /// Lead custom field id of utm_medium (default 123459).
    #[arg(long, env = "AMOCRM_FIELD_UTM_MEDIUM")]
    pub amocrm_field_utm_medium: Option<i64>,
    /// Lead custom field id of utm_campaign (default 123460).
    #[arg(long, env = "AMOCRM_FIELD_UTM_CAMPAIGN")]
    pub amocrm_field_utm_campaign: Option<i64>,
    /// Lead custom field id of utm_content (default 123461).
    #[arg(long, env = "AMOCRM_FIELD_UTM_CONTENT")]
    pub amocrm_field_utm_content: Option<i64>,
    /// Lead custom field id of utm_term (default 123462).
    #[arg(long, env = "AMOCRM_FIELD_UTM_TERM")]
    pub amocrm_field_utm_term: Option<i64>,
    /// Lead custom field id of the object price (default 123463).
    #[arg(long, env = "AMOCRM_FIELD_OBJECT_PRICE")]
    pub amocrm_field_object_price: Option<i64>,
    /// Lead custom field id of the commission (default 123464).
    #[arg(long, env = "AMOCRM_FIELD_COMMISSION")]
    pub amocrm_field_commission: Option<i64>,
    /// Contact custom field id of phones (default 123456; fields with code PHONE count too).
    #[arg(long, env = "AMOCRM_FIELD_PHONE")]
    pub amocrm_field_phone: Option<i64>,
    /// Contact custom field id of e-mails (default 123457; fields with code EMAIL count too).
    #[arg(long, env = "AMOCRM_FIELD_EMAIL")]
    pub amocrm_field_email: Option<i64>,
    /// Country whose rules read phone numbers written without +country (default RU: 8 903 … →
    /// +7903…).
    #[arg(long, env = "AMOCRM_PHONE_REGION")]
    pub amocrm_phone_region: Option<String>,

    /// After a lead event, fetch the whole lead with its contacts from API v4 (when a token is
    /// stored).
    #[arg(long, env = "AMOCRM_FETCH_LEADS", default_value_t = true, action = clap::ArgAction::Set)]
    pub amocrm_fetch_leads: bool,
    /// API v4 requests per second (amoCRM allows 7).
    #[arg(long, env = "AMOCRM_API_RPS", default_value_t = 7)]
    pub amocrm_api_rps: u32,
    /// First backoff of an API call answered 429/5xx without Retry-After, in milliseconds.
    #[arg(long, env = "AMOCRM_API_RETRY_MIN_MS", default_value_t = 1000)]
    pub amocrm_api_retry_min_ms: u64,
    /// Refresh the access token this many seconds before it expires.
    #[arg(long, env = "AMOCRM_TOKEN_REFRESH_MARGIN_SECS", default_value_t = 600)]
    pub amocrm_token_refresh_margin_secs: u64,

    /// Delays between attempts to store an event, in seconds, comma separated; after the last
    /// one the event goes to the dead-letter table. Default: again at once, after 5 s, after 30 s.
    #[arg(long, env = "AMOCRM_RETRY_DELAYS_SECS", default_value = "0,5,30")]
    pub amocrm_retry_delays_secs: String,
    /// While Postgres is unreachable, events wait this many seconds between tries (never dead-
    /// lettered for it).
    #[arg(long, env = "AMOCRM_DB_RETRY_SECS", default_value_t = 5.0)]
    pub amocrm_db_retry_secs: f64,
    /// Store-consumer handlers at once (1 to 64), never two of one lead or contact: the events
    /// of one entity are stored one after another, in the order they arrived. Each lead event
    /// may call API v4 (7 requests/s), so more than a few handlers mostly wait for the rate
    /// limiter. For this consumer it takes the place of CONSUMER_CONCURRENCY and
    /// CONSUMER_CONCURRENCY_AMOCRM_SYNC_STORE.
    #[arg(long, env = "AMOCRM_CONSUMER_CONCURRENCY", default_value_t = 4)]
    pub amocrm_consumer_concurrency: usize,

    /// The flags every service shares (database, NATS, logs, HTTP limits).
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Only the shared runtime flags (their URLs with passwords redacted): the service's own fields
/// hold raw secrets until [`Settings::from_config`] wraps them, so they are never printed.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// Everything `serve` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT`: the HTTP port.
    pub port: u16,
    /// `example.amocrm.ru`.
    pub domain: String,
    /// `example`: what `account[subdomain]` must say.
    pub subdomain: String,
    /// `AMOCRM_BASE_URL` without a trailing `/`, default `https://<domain>`.
    pub base_url: String,
    /// `AMOCRM_CLIENT_ID`: the integration id.
    pub client_id: Secret,
    /// `AMOCRM_CLIENT_SECRET`: the integration secret; also the HMAC key of the legacy JSON
    /// webhook.
    pub client_secret: Secret,
    /// `AMOCRM_REDIRECT_URI`: the absolute redirect URI registered in the integration.
    pub redirect_uri: String,
    /// `AMOCRM_WEBHOOK_TOKEN`: the path segment of `POST /api/webhooks/amo/{token}`.
    pub webhook_token: Secret,
    /// `AMOCRM_LEGACY_JSON_WEBHOOK`: `POST /api/webhooks/amo` (the JSON format) is served.
    pub legacy_json_webhook: bool,
    /// `AMOCRM_MAX_ENTRIES_PER_WEBHOOK`: most entries one webhook may carry (at least 1).
    pub max_entries_per_webhook: usize,
    /// Status map and custom-field ids.
    pub mapping: std::sync::Arc<Mapping>,
    /// `AMOCRM_FETCH_LEADS`: fetch the whole lead from API v4 after a lead event.
    pub fetch_leads: bool,
    /// `AMOCRM_API_RPS`: API v4 requests per second (at least 1).
    pub api_rps: u32,
    /// `AMOCRM_API_RETRY_MIN_MS`: first backoff of an API call answered 429/5xx without
    /// `Retry-After`.
    pub api_retry_min: Duration,
    /// `AMOCRM_TOKEN_REFRESH_MARGIN_SECS`: how long before expiry the access token is refreshed.
    pub refresh_margin: Duration,
    /// Delay before attempt 2, 3, …; attempts = len + 1.
    pub retry_delays: Vec<Duration>,
    /// `AMOCRM_DB_RETRY_SECS`: wait between tries while Postgres is unreachable.
    pub db_retry: Duration,
    /// `AMOCRM_CONSUMER_CONCURRENCY`: store handlers at once, never two of one entity (1 to 64).
    pub consumer_concurrency: usize,
    /// The flags every service shares.
    pub runtime: RuntimeArgs,
}

/// `0,5,30` → durations.
pub fn parse_delays(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("`{p}` is not a number of seconds"))
        })
        .collect()
}

impl Settings {
    /// Checks every value `serve` needs; the first problem wins.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        let domain = required_str(&c.amocrm_domain, "AMOCRM_DOMAIN")?
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        if domain.starts_with("your") || domain == "change_me" || domain.contains('/') {
            return Err(ConfigError::Invalid {
                name: "AMOCRM_DOMAIN",
                reason: "expected the account's domain, e.g. example.amocrm.ru".into(),
            });
        }
        let subdomain = domain.split('.').next().unwrap_or_default().to_owned();
        let domain = if domain.contains('.') {
            domain
        } else {
            format!("{domain}.amocrm.ru")
        };
        let base_url = c
            .amocrm_base_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{domain}"));
        let client_id = secret(&c.amocrm_client_id, "AMOCRM_CLIENT_ID")?;
        let client_secret = secret(&c.amocrm_client_secret, "AMOCRM_CLIENT_SECRET")?;
        let redirect_uri = required_str(&c.amocrm_redirect_uri, "AMOCRM_REDIRECT_URI")?;
        if !redirect_uri.starts_with("http") {
            return Err(ConfigError::Invalid {
                name: "AMOCRM_REDIRECT_URI",
                reason:
                    "expected an absolute URL, e.g. https://amocrm.example.com/api/auth/amo/callback"
                        .into(),
            });
        }
        let webhook_token = long_secret(
            &c.amocrm_webhook_token,
            "AMOCRM_WEBHOOK_TOKEN",
            MIN_WEBHOOK_TOKEN_CHARS,
        )?;
        let retry_delays =
            parse_delays(&c.amocrm_retry_delays_secs).map_err(|reason| ConfigError::Invalid {
                name: "AMOCRM_RETRY_DELAYS_SECS",
                reason,
            })?;
        if !(c.amocrm_db_retry_secs.is_finite() && c.amocrm_db_retry_secs >= 0.0) {
            return Err(ConfigError::Invalid {
                name: "AMOCRM_DB_RETRY_SECS",
                reason: "expected a number of seconds".into(),
            });
        }
        let mapping = Mapping::load(c).map_err(|e| e.into_config_error())?;
        Ok(Self {
            port: c.port,
            domain,
            subdomain,
            base_url,
            client_id,
            client_secret,
            redirect_uri,
            webhook_token,
            legacy_json_webhook: c.amocrm_legacy_json_webhook,
            max_entries_per_webhook: c.amocrm_max_entries_per_webhook.max(1),
            mapping: std::sync::Arc::new(mapping),
            fetch_leads: c.amocrm_fetch_leads,
            api_rps: c.amocrm_api_rps.max(1),
            api_retry_min: Duration::from_millis(c.amocrm_api_retry_min_ms),
            refresh_margin: Duration::from_secs(c.amocrm_token_refresh_margin_secs),
            retry_delays,
            db_retry: Duration::from_secs_f64(c.amocrm_db_retry_secs),
            consumer_concurrency: c.amocrm_consumer_concurrency.clamp(1, 64),
            runtime: c.runtime.clone(),
        })
    }
}

/// The shortest `AMOCRM_WEBHOOK_TOKEN` accepted: the token in the URL is the only thing that
/// authenticates amoCRM's form webhooks.
pub const MIN_WEBHOOK_TOKEN_CHARS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut args = vec!["amocrm-sync".to_owned()];
        for (k, v) in env {
            args.push(format!(
                "--{}={v}",
                k.to_ascii_lowercase().replace('_', "-")
            ));
        }
        let cli = Cli::try_parse_from(args).expect("flags parse");
        Settings::from_config(&cli.config)
    }

    const FULL: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://x@localhost/db"),
        ("AMOCRM_DOMAIN", "Example.amocrm.ru"),
        ("AMOCRM_CLIENT_ID", "4f1c…id"),
        ("AMOCRM_CLIENT_SECRET", "s3cr3t-amo"),
        (
            "AMOCRM_REDIRECT_URI",
            "https://amocrm.example.com/api/auth/amo/callback",
        ),
        ("AMOCRM_WEBHOOK_TOKEN", "hook-7f3a9c21d4e8b6"),
    ];

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != name).collect();
        v.push((name, value));
        v
    }

    #[test]
    fn a_complete_config_is_accepted_and_debug_hides_secrets() {
        let s = parse(FULL).expect("valid");
        assert_eq!(s.subdomain, "example");
        assert_eq!(s.base_url, "https://example.amocrm.ru");
        assert_eq!(s.port, 8084);
        assert!(
            !s.legacy_json_webhook,
            "the legacy JSON route is off unless asked for"
        );
        assert_eq!(s.max_entries_per_webhook, 500);
        assert_eq!(
            s.retry_delays,
            vec![
                Duration::ZERO,
                Duration::from_secs(5),
                Duration::from_secs(30)
            ]
        );
        let debug = format!("{s:?}");
        for secret in ["s3cr3t-amo", "hook-7f3a9c21d4e8b6"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
    }

    #[test]
    fn missing_or_placeholder_secrets_are_named() {
        let without: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "AMOCRM_CLIENT_SECRET")
            .collect();
        assert_eq!(
            parse(&without).unwrap_err().to_string(),
            "AMOCRM_CLIENT_SECRET is not set; set it in the environment or in .env"
        );
        let e = parse(&with("AMOCRM_WEBHOOK_TOKEN", "change_me"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("AMOCRM_WEBHOOK_TOKEN "), "{e}");
        let e = parse(&with("AMOCRM_WEBHOOK_TOKEN", "hook-7f3a"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("AMOCRM_WEBHOOK_TOKEN"), "{e}");
        assert!(e.contains("at least 16"), "{e}");
        assert!(
            !e.contains("hook-7f3a"),
            "the token leaked into the error: {e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
        let e = parse(&with("AMOCRM_RETRY_DELAYS_SECS", "1,x"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("AMOCRM_RETRY_DELAYS_SECS"), "{e}");
        let e = parse(&with("AMOCRM_STATUS_MAP", "142"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("AMOCRM_STATUS_MAP"), "{e}");
    }

    #[test]
    fn a_bare_subdomain_is_enough() {
        let s = parse(&with("AMOCRM_DOMAIN", "sandbox")).expect("valid");
        assert_eq!(
            (s.subdomain.as_str(), s.domain.as_str()),
            ("sandbox", "sandbox.amocrm.ru")
        );
    }

    #[test]
    fn debug_of_settings_shows_no_secret_value() {
        // issue 9 item 14: every secret set, the database password in DATABASE_URL too
        const SECRETS: &[(&str, &str)] = &[
            ("AMOCRM_CLIENT_ID", "dbgClientId0123456789abcdef"),
            ("AMOCRM_CLIENT_SECRET", "dbgClientSecret0123456789abcdef"),
            ("AMOCRM_WEBHOOK_TOKEN", "dbgWebhookToken0123456789abcdef"),
        ];
        let mut env: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "DATABASE_URL" && !SECRETS.iter().any(|(s, _)| s == k))
            .collect();
        env.extend_from_slice(SECRETS);
        env.push((
            "DATABASE_URL",
            "postgres://amocrm:dbgDbPassword0123@postgres:5432/gateway",
        ));
        let s = parse(&env).expect("valid");
        // The raw flags too (`Cli`/`Config` Debug), before they are wrapped in `Secret`.
        let args = std::iter::once("amocrm-sync".to_owned()).chain(
            env.iter()
                .map(|(k, v)| format!("--{}={v}", k.to_ascii_lowercase().replace('_', "-"))),
        );
        let cli = Cli::try_parse_from(args).expect("flags parse");
        let debug = format!("{s:?} {cli:?}");
        for (name, value) in SECRETS
            .iter()
            .chain(&[("the DATABASE_URL password", "dbgDbPassword0123")])
        {
            assert!(!debug.contains(value), "{name} leaked into Debug: {debug}");
        }
        assert!(debug.contains("postgres://amocrm:[redacted]@postgres:5432/gateway"));
    }
}
