//! Configuration of okdesk-bridge: flags or environment variables (a `.env` file is read when
//! present). `okdesk-bridge --help` lists them all. `OKDESK_API_URL` and `OKDESK_API_TOKEN`
//! carry over from the old bot's `.env`; its `WEBHOOK_SECRET` is `OKDESK_WEBHOOK_SECRET` here.

use std::time::Duration;

use clap::Parser;
use service_kit::config::{long_secret, optional_secret, required_str, secret};
use service_kit::{ConfigError, RuntimeArgs, Secret};

use crate::cli::Command;

/// Shortest accepted `OKDESK_WEBHOOK_TOKEN`, in characters: the path segment is the webhook's
/// only credential (Okdesk signs nothing), so it must not be guessable (`openssl rand -hex 16`).
pub const MIN_WEBHOOK_TOKEN_CHARS: usize = 16;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "okdesk-bridge",
    version,
    about = "Okdesk bridge: opens issues, registers contacts and adds comments for the messenger \
             side; turns Okdesk webhooks (and a poll for missed ones) into events.",
    after_help = "Without a command it serves. A missing or placeholder secret stops the service at start."
)]
pub struct Cli {
    /// What to do; `None` serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Every setting.
    #[command(flatten)]
    pub config: Config,
}

/// Every setting; checked by [`Settings::from_config`].
#[derive(Clone, clap::Args)]
pub struct Config {
    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 8083)]
    pub port: u16,
    /// Okdesk API base URL, e.g. https://<account>.okdesk.ru/api/v1.
    #[arg(long, env = "OKDESK_API_URL")]
    pub okdesk_api_url: Option<String>,
    /// Okdesk API token (Settings → API; an employee's key: contact-person keys cannot search
    /// companies). Sent as the `api_token` query parameter; never logged.
    #[arg(long, env = "OKDESK_API_TOKEN", hide_env_values = true)]
    pub okdesk_api_token: Option<String>,
    /// Unguessable path segment of the webhook URL: POST /okdesk/webhook/{OKDESK_WEBHOOK_TOKEN},
    /// at least 16 characters (openssl rand -hex 16). Never logged.
    #[arg(long, env = "OKDESK_WEBHOOK_TOKEN", hide_env_values = true)]
    pub okdesk_webhook_token: Option<String>,
    /// Optional shared secret, for an Okdesk set up to send one (header X-Okdesk-Secret or
    /// query parameter `secret`); when set, webhooks without it are refused with 401.
    #[arg(long, env = "OKDESK_WEBHOOK_SECRET", hide_env_values = true)]
    pub okdesk_webhook_secret: Option<String>,
    /// Code of the company custom parameter that holds the INN (Okdesk has no built-in INN
    /// field; each account chooses the code).
    #[arg(long, env = "OKDESK_INN_PARAMETER_CODE", default_value = "inn")]
    pub okdesk_inn_parameter_code: String,
    /// Seconds between polls of the open issues of registered contacts (catches what no
    /// webhook reported); 0 disables.
    #[arg(long, env = "OKDESK_POLL_INTERVAL_SECS", default_value_t = 180)]
    pub okdesk_poll_interval_secs: u64,

    /// The flags every service shares (database, NATS, logs, HTTP limits).
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Only the shared runtime flags: the bridge's own fields hold raw secrets until
/// [`Settings::from_config`] wraps them.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// Everything `serve` and `check` need, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT`.
    pub port: u16,
    /// `OKDESK_API_URL` without a trailing `/`.
    pub api_url: String,
    /// `OKDESK_API_TOKEN`.
    pub api_token: Secret,
    /// `OKDESK_WEBHOOK_TOKEN`.
    pub webhook_token: Secret,
    /// `OKDESK_WEBHOOK_SECRET`, when set.
    pub webhook_secret: Option<Secret>,
    /// `OKDESK_INN_PARAMETER_CODE`.
    pub inn_parameter_code: String,
    /// `OKDESK_POLL_INTERVAL_SECS`; `None` = no poll.
    pub poll_interval: Option<Duration>,
    /// The flags every service shares.
    pub runtime: RuntimeArgs,
}

impl Settings {
    /// Checks every value, in the order of `--help`; the first problem wins.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        let api_url = required_str(&c.okdesk_api_url, "OKDESK_API_URL")?;
        if !api_url.starts_with("https://") && !api_url.starts_with("http://") {
            return Err(ConfigError::Invalid {
                name: "OKDESK_API_URL",
                reason: format!(
                    "`{api_url}` must be an absolute URL, e.g. https://example.okdesk.ru/api/v1"
                ),
            });
        }
        let code = c.okdesk_inn_parameter_code.trim();
        if code.is_empty() {
            return Err(ConfigError::Missing("OKDESK_INN_PARAMETER_CODE"));
        }
        Ok(Self {
            port: c.port,
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_token: secret(&c.okdesk_api_token, "OKDESK_API_TOKEN")?,
            webhook_token: long_secret(
                &c.okdesk_webhook_token,
                "OKDESK_WEBHOOK_TOKEN",
                MIN_WEBHOOK_TOKEN_CHARS,
            )?,
            webhook_secret: optional_secret(&c.okdesk_webhook_secret, "OKDESK_WEBHOOK_SECRET")?,
            inn_parameter_code: code.to_owned(),
            poll_interval: (c.okdesk_poll_interval_secs > 0)
                .then(|| Duration::from_secs(c.okdesk_poll_interval_secs)),
            runtime: c.runtime.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut args = vec!["okdesk-bridge".to_owned()];
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
        ("OKDESK_API_URL", "https://demo.okdesk.ru/api/v1/"),
        ("OKDESK_API_TOKEN", "0a1b2c3d4e5f6a7b8c9d"),
        ("OKDESK_WEBHOOK_TOKEN", "wh-4f0e9a7d2c61b8e3"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .collect();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn the_old_bots_okdesk_values_are_enough() {
        let s = parse(FULL).expect("valid");
        assert_eq!(s.api_url, "https://demo.okdesk.ru/api/v1");
        assert_eq!(s.inn_parameter_code, "inn");
        assert_eq!(s.poll_interval, Some(Duration::from_secs(180)));
        assert!(s.webhook_secret.is_none());
        let debug = format!("{s:?}");
        for secret in ["0a1b2c3d4e5f6a7b8c9d", "wh-4f0e9a7d2c61b8e3"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse(&with(&[("OKDESK_API_TOKEN", "your_okdesk_token")])).unwrap_err();
        assert!(e.to_string().starts_with("OKDESK_API_TOKEN"), "{e}");
        let e = parse(&with(&[("OKDESK_WEBHOOK_TOKEN", "short")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OKDESK_WEBHOOK_TOKEN must be at least 16 characters long"
        );
        let e = parse(&with(&[("OKDESK_API_URL", "demo.okdesk.ru")])).unwrap_err();
        assert!(e.to_string().starts_with("OKDESK_API_URL"), "{e}");
        let s = parse(&with(&[("OKDESK_POLL_INTERVAL_SECS", "0")])).unwrap();
        assert_eq!(s.poll_interval, None);
    }
}
