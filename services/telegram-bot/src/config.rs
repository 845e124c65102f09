//! Configuration of telegram-bot: flags or environment variables (a `.env` file is read when
//! present). `telegram-bot --help` lists them all. The names of the old aiogram support bot
//! (`BOT_TOKEN`, `BOT_GROUP_ID`, `BOT_EMOJI_ID`, `BOT_DEV_ID`, `WEBHOOK_*`) are kept, so its
//! `.env` can be copied across.

use std::time::Duration;

use clap::Parser;
use service_kit::config::{optional_secret, secret};
use service_kit::{ConfigError, RuntimeArgs, Secret};

use crate::cli::Command;

/// Longest long-poll timeout accepted, in seconds. Telegram holds a getUpdates request up to
/// the timeout asked for; 50 s stays under the idle timeouts of common NATs and proxies.
pub const MAX_POLL_TIMEOUT_SECS: u64 = 50;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "telegram-bot",
    version,
    about = "Telegram support bot: every customer gets a forum topic in the operators' group; \
             messages, media and edits are relayed both ways.",
    after_help = "Without a command it serves: long polling by default, webhook with \
                  WEBHOOK_ENABLED=true. A missing or placeholder secret stops the service at start."
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
    /// HTTP port (health, metrics, and the webhook route in webhook mode).
    #[arg(long, env = "PORT", default_value_t = 8082)]
    pub port: u16,

    /// The bot's token from @BotFather, `<bot id>:<secret>`. It is part of every Bot API URL
    /// and never logged.
    #[arg(long, env = "BOT_TOKEN", hide_env_values = true)]
    pub bot_token: Option<String>,
    /// Id of the operators' supergroup with topics enabled, e.g. -1001234567890. The bot must
    /// be an administrator there with the right to manage topics.
    #[arg(long, env = "BOT_GROUP_ID", allow_hyphen_values = true)]
    pub bot_group_id: Option<String>,
    /// Custom emoji id used as the icon of every customer topic (getForumTopicIconStickers);
    /// empty for Telegram's default icon.
    #[arg(long, env = "BOT_EMOJI_ID")]
    pub bot_emoji_id: Option<String>,
    /// Telegram user id that gets operator notices (bot removed from the group, no right to
    /// manage topics …), each once; empty for none.
    #[arg(long, env = "BOT_DEV_ID")]
    pub bot_dev_id: Option<String>,
    /// Bot API base URL; requests go to {TELEGRAM_API_URL}/bot{BOT_TOKEN}/{method}. Tests and
    /// the demo point it at the sandbox; a local Bot API server works too.
    #[arg(
        long,
        env = "TELEGRAM_API_URL",
        default_value = "https://api.telegram.org"
    )]
    pub telegram_api_url: String,

    /// Receive updates through a webhook instead of long polling (needs a public HTTPS URL).
    #[arg(long, env = "WEBHOOK_ENABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_enabled: bool,
    /// Public base URL Telegram posts updates to, e.g. https://tg.example.com (webhook mode).
    #[arg(long, env = "WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Path of the webhook route, appended to WEBHOOK_URL.
    #[arg(long, env = "WEBHOOK_PATH", default_value = "/telegram/webhook")]
    pub webhook_path: String,
    /// `secret_token` given to setWebhook; Telegram sends it back in
    /// X-Telegram-Bot-Api-Secret-Token and other callers get 401. 1–256 characters of
    /// A-Z a-z 0-9 _ - (openssl rand -hex 32). Required in webhook mode; never logged.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Seconds one getUpdates long poll is held by Telegram when nothing happens (1–50).
    #[arg(long, env = "TELEGRAM_POLL_TIMEOUT_SECS", default_value_t = 25)]
    pub telegram_poll_timeout_secs: u64,
    /// Messages per second the bot sends in all (Telegram allows about 30); 0 = no limit.
    #[arg(long, env = "TELEGRAM_RATE_PER_SEC", default_value_t = 30)]
    pub telegram_rate_per_sec: u32,
    /// Messages per second to one private chat (Telegram allows about 1); 0 = no limit.
    #[arg(long, env = "TELEGRAM_CHAT_RATE_PER_SEC", default_value_t = 1)]
    pub telegram_chat_rate_per_sec: u32,
    /// Messages per minute to one group (Telegram allows about 20); 0 = no limit.
    #[arg(long, env = "TELEGRAM_GROUP_RATE_PER_MIN", default_value_t = 20)]
    pub telegram_group_rate_per_min: u32,

    /// Seconds between attempts while a person must fix the group first (the bot removed from
    /// it, or without the right to manage topics); the messages wait, in order, meanwhile.
    #[arg(long, env = "TELEGRAM_FIX_RETRY_SECS", default_value_t = 30)]
    pub telegram_fix_retry_secs: u64,

    /// Turn on the Okdesk helpdesk in private chats: registration, issues, comments and
    /// notifications, through okdesk-bridge on NATS. Off: the bot is the support relay alone.
    #[arg(long, env = "OKDESK_ENABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub okdesk_enabled: bool,
    /// Seconds the bot waits for okdesk-bridge to answer a look-up (company by INN, the list
    /// of issues, one issue) before telling the person Okdesk is not answering (1–60).
    #[arg(long, env = "OKDESK_RPC_TIMEOUT_SECS", default_value_t = 8)]
    pub okdesk_rpc_timeout_secs: u64,

    /// The flags every service shares (database, NATS, logs, HTTP limits).
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Only the shared runtime flags: the bot's own fields hold raw secrets until
/// [`Settings::from_config`] wraps them.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// How updates arrive.
#[derive(Debug, Clone)]
pub enum Mode {
    /// getUpdates long polling with this timeout (the default).
    Polling {
        /// `TELEGRAM_POLL_TIMEOUT_SECS`.
        timeout: Duration,
    },
    /// Telegram posts to `WEBHOOK_URL + WEBHOOK_PATH`.
    Webhook(WebhookSettings),
}

/// Webhook mode.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_URL` + `WEBHOOK_PATH`: what setWebhook is given.
    pub public_url: String,
    /// `WEBHOOK_PATH`, starting with `/`: the route served.
    pub path: String,
    /// `WEBHOOK_SECRET`.
    pub secret: Secret,
}

/// Sending limits, per Telegram's FAQ ("My bot is hitting limits"); `None` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `TELEGRAM_RATE_PER_SEC`: all messages of the bot.
    pub per_second: Option<u32>,
    /// `TELEGRAM_CHAT_RATE_PER_SEC`: to one private chat.
    pub chat_per_second: Option<u32>,
    /// `TELEGRAM_GROUP_RATE_PER_MIN`: to one group.
    pub group_per_minute: Option<u32>,
}

/// The Okdesk helpdesk, when `OKDESK_ENABLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelpdeskSettings {
    /// `OKDESK_RPC_TIMEOUT_SECS`.
    pub rpc_timeout: Duration,
}

/// Everything `serve` and the commands need, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT`.
    pub port: u16,
    /// `BOT_TOKEN`.
    pub token: Secret,
    /// The bot's id: the digits before `:` in the token.
    pub bot_id: i64,
    /// `BOT_GROUP_ID` (negative).
    pub group_id: i64,
    /// `BOT_EMOJI_ID`, when set.
    pub emoji_id: Option<String>,
    /// `BOT_DEV_ID`, when set.
    pub dev_id: Option<i64>,
    /// `TELEGRAM_API_URL` without a trailing `/`.
    pub api_url: String,
    /// Polling or webhook.
    pub mode: Mode,
    /// Sending limits.
    pub limits: Limits,
    /// `TELEGRAM_FIX_RETRY_SECS` (at least 1 s).
    pub fix_retry: Duration,
    /// The helpdesk, when `OKDESK_ENABLED`; `None`: the support relay alone.
    pub helpdesk: Option<HelpdeskSettings>,
    /// The flags every service shares.
    pub runtime: RuntimeArgs,
}

impl Settings {
    /// Checks every value, in the order of `--help`; the first problem wins. A message never
    /// quotes a secret's value.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        let token = secret(&c.bot_token, "BOT_TOKEN")?;
        let bot_id = bot_id_of(token.expose()).ok_or_else(|| ConfigError::Invalid {
            name: "BOT_TOKEN",
            reason: "not a bot token: expected <bot id>:<secret> as @BotFather gives it".into(),
        })?;
        let group_id = match c.bot_group_id.as_deref().map(str::trim) {
            None | Some("") => return Err(ConfigError::Missing("BOT_GROUP_ID")),
            Some(v) => v.parse::<i64>().ok().filter(|id| *id < 0).ok_or_else(|| {
                ConfigError::Invalid {
                    name: "BOT_GROUP_ID",
                    reason: format!(
                        "`{v}` is not a group id: a supergroup's id is negative, e.g. -1001234567890"
                    ),
                }
            })?,
        };
        let emoji_id = c
            .bot_emoji_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let dev_id = match c.bot_dev_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                ConfigError::Invalid {
                    name: "BOT_DEV_ID",
                    reason: format!("`{v}` is not a Telegram user id (a positive number)"),
                }
            })?),
        };
        let mode = if c.webhook_enabled {
            let base = match c.webhook_url.as_deref().map(str::trim) {
                None | Some("") => return Err(ConfigError::Missing("WEBHOOK_URL")),
                Some(u) => u.trim_end_matches('/').to_owned(),
            };
            if !base.starts_with("https://") && !base.starts_with("http://") {
                return Err(ConfigError::Invalid {
                    name: "WEBHOOK_URL",
                    reason: format!(
                        "`{base}` must be an absolute URL, e.g. https://tg.example.com"
                    ),
                });
            }
            let path = webhook_path(&c.webhook_path)?;
            // Old bots put the token in the path; here the path would reach logs and spans.
            if let Some((_, secret_part)) = token.expose().split_once(':')
                && path.contains(secret_part)
            {
                return Err(ConfigError::Invalid {
                    name: "WEBHOOK_PATH",
                    reason: "must not contain the bot token (WEBHOOK_SECRET authenticates \
                             Telegram); use e.g. /telegram/webhook"
                        .into(),
                });
            }
            let secret = secret(&c.webhook_secret, "WEBHOOK_SECRET")?;
            let s = secret.expose();
            if s.len() > 256
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::Invalid {
                    name: "WEBHOOK_SECRET",
                    reason: "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule for secret_token)"
                        .into(),
                });
            }
            Mode::Webhook(WebhookSettings {
                public_url: format!("{base}{path}"),
                path,
                secret,
            })
        } else {
            // Set but unused: still refused when it is a placeholder, so a typo is seen early.
            optional_secret(&c.webhook_secret, "WEBHOOK_SECRET")?;
            Mode::Polling {
                timeout: Duration::from_secs(
                    c.telegram_poll_timeout_secs.clamp(1, MAX_POLL_TIMEOUT_SECS),
                ),
            }
        };
        let nonzero = |n: u32| (n > 0).then_some(n);
        Ok(Self {
            port: c.port,
            token,
            bot_id,
            group_id,
            emoji_id,
            dev_id,
            api_url: c.telegram_api_url.trim_end_matches('/').to_owned(),
            mode,
            limits: Limits {
                per_second: nonzero(c.telegram_rate_per_sec),
                chat_per_second: nonzero(c.telegram_chat_rate_per_sec),
                group_per_minute: nonzero(c.telegram_group_rate_per_min),
            },
            fix_retry: Duration::from_secs(c.telegram_fix_retry_secs.max(1)),
            helpdesk: c.okdesk_enabled.then(|| HelpdeskSettings {
                rpc_timeout: Duration::from_secs(c.okdesk_rpc_timeout_secs.clamp(1, 60)),
            }),
            runtime: c.runtime.clone(),
        })
    }

    /// The webhook settings when in webhook mode.
    pub fn webhook(&self) -> Option<&WebhookSettings> {
        match &self.mode {
            Mode::Webhook(w) => Some(w),
            Mode::Polling { .. } => None,
        }
    }
}

/// The bot id of a token `<digits>:<35 or so characters>`; `None` when it is not that shape.
pub fn bot_id_of(token: &str) -> Option<i64> {
    let (id, rest) = token.split_once(':')?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return None;
    }
    id.parse::<i64>().ok().filter(|id| *id > 0)
}

fn webhook_path(raw: &str) -> Result<String, ConfigError> {
    let p = raw.trim();
    if !p.starts_with('/') || p.len() < 2 || p.contains(char::is_whitespace) || p.contains('?') {
        return Err(ConfigError::Invalid {
            name: "WEBHOOK_PATH",
            reason: format!("`{p}` must be a path starting with /, e.g. /telegram/webhook"),
        });
    }
    Ok(p.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut args = vec!["telegram-bot".to_owned()];
        for (k, v) in env {
            args.push(format!(
                "--{}={v}",
                k.to_ascii_lowercase().replace('_', "-")
            ));
        }
        let cli = Cli::try_parse_from(args).expect("flags parse");
        Settings::from_config(&cli.config)
    }

    const TOKEN: &str = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    const FULL: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://x@localhost/db"),
        ("BOT_TOKEN", TOKEN),
        ("BOT_GROUP_ID", "-1001234567890"),
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
    fn the_old_bots_env_is_enough_and_polling_is_the_default() {
        let s = parse(&with(&[
            ("BOT_EMOJI_ID", "5312536423851630001"),
            ("BOT_DEV_ID", "42"),
        ]))
        .expect("valid");
        assert_eq!(s.bot_id, 7_000_000_001);
        assert_eq!(s.group_id, -1_001_234_567_890);
        assert_eq!(s.emoji_id.as_deref(), Some("5312536423851630001"));
        assert_eq!(s.dev_id, Some(42));
        assert!(matches!(s.mode, Mode::Polling { timeout } if timeout == Duration::from_secs(25)));
        assert_eq!(s.api_url, "https://api.telegram.org");
        assert_eq!(
            s.limits,
            Limits {
                per_second: Some(30),
                chat_per_second: Some(1),
                group_per_minute: Some(20)
            }
        );
        assert!(
            !format!("{s:?}").contains("AAHdqTcv"),
            "the token leaked into Debug"
        );
        // Empty optional values, as an .env copied across has them, mean "unset".
        let s = parse(&with(&[("BOT_EMOJI_ID", ""), ("BOT_DEV_ID", "")])).expect("valid");
        assert_eq!((s.emoji_id, s.dev_id), (None, None));
        assert_eq!(
            s.helpdesk, None,
            "the helpdesk is off unless OKDESK_ENABLED"
        );
    }

    #[test]
    fn okdesk_enabled_turns_the_helpdesk_on_with_a_bounded_timeout() {
        let s = parse(&with(&[("OKDESK_ENABLED", "true")])).expect("valid");
        assert_eq!(
            s.helpdesk,
            Some(HelpdeskSettings {
                rpc_timeout: Duration::from_secs(8)
            })
        );
        let s = parse(&with(&[
            ("OKDESK_ENABLED", "true"),
            ("OKDESK_RPC_TIMEOUT_SECS", "0"),
        ]))
        .expect("valid");
        assert_eq!(s.helpdesk.unwrap().rpc_timeout, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_are_named_without_quoting_secrets() {
        let e = parse(&with(&[("BOT_TOKEN", "your_bot_token")])).unwrap_err();
        assert!(e.to_string().contains("BOT_TOKEN"), "{e}");
        let e = parse(&with(&[("BOT_TOKEN", "notatoken-secretpart")])).unwrap_err();
        assert!(
            e.to_string().starts_with("BOT_TOKEN: not a bot token"),
            "{e}"
        );
        assert!(!e.to_string().contains("secretpart"));
        let e = parse(&with(&[("BOT_GROUP_ID", "1234")])).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        let v: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "BOT_GROUP_ID")
            .collect();
        assert_eq!(
            parse(&v).unwrap_err().to_string(),
            "BOT_GROUP_ID is not set"
        );
        let e = parse(&with(&[("BOT_DEV_ID", "abc")])).unwrap_err();
        assert!(e.to_string().contains("BOT_DEV_ID"), "{e}");
    }

    #[test]
    fn a_webhook_path_with_the_token_in_it_is_refused() {
        let e = parse(&with(&[
            ("WEBHOOK_ENABLED", "true"),
            ("WEBHOOK_URL", "https://tg.example.com"),
            ("WEBHOOK_SECRET", "c2VjcmV0LXRva2Vu_-9"),
            (
                "WEBHOOK_PATH",
                "/webhook/7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("WEBHOOK_PATH: must not contain the bot token"),
            "{e}"
        );
        assert!(!e.contains("AAHdqTcv"), "{e}");
    }

    #[test]
    fn webhook_mode_needs_a_url_and_a_valid_secret() {
        let e = parse(&with(&[("WEBHOOK_ENABLED", "true")])).unwrap_err();
        assert_eq!(e.to_string(), "WEBHOOK_URL is not set");
        let e = parse(&with(&[
            ("WEBHOOK_ENABLED", "true"),
            ("WEBHOOK_URL", "https://tg.example.com/"),
        ]))
        .unwrap_err();
        assert!(e.to_string().starts_with("WEBHOOK_SECRET"), "{e}");
        let e = parse(&with(&[
            ("WEBHOOK_ENABLED", "true"),
            ("WEBHOOK_URL", "https://tg.example.com"),
            ("WEBHOOK_SECRET", "has spaces!"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("A-Z a-z 0-9"), "{e}");
        assert!(!e.to_string().contains("has spaces"));
        let s = parse(&with(&[
            ("WEBHOOK_ENABLED", "true"),
            ("WEBHOOK_URL", "https://tg.example.com/"),
            ("WEBHOOK_SECRET", "c2VjcmV0LXRva2Vu_-9"),
        ]))
        .expect("valid");
        let w = s.webhook().expect("webhook mode");
        assert_eq!(w.public_url, "https://tg.example.com/telegram/webhook");
        assert_eq!(w.path, "/telegram/webhook");
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
    }
}
