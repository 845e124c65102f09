//! Configuration of vk-connector: flags or environment variables (a `.env` file is read when
//! present). `vk-connector --help` lists them all.

use std::time::Duration;

use clap::Parser;
use service_kit::config::{
    duration_secs, long_secret, optional_secret, positive, required_str, secret,
};
use service_kit::{ConfigError, RuntimeArgs, Secret};

use crate::cli::Command;

/// Shortest accepted `VK_CALLBACK_ID` and `CHATWOOT_WEBHOOK_ID_VK`, in characters: the path
/// segment is the route's only credential besides VK's `secret` (and the optional Chatwoot
/// signature), so it must not be guessable (`openssl rand -hex 16` gives 32).
pub const MIN_PATH_SECRET_CHARS: usize = 16;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "vk-connector",
    version,
    about = "VK community ⇄ Chatwoot connector: VK Callback API messages become Chatwoot \
             conversations, agents' replies go back to VK.",
    after_help = "Without a command it serves. Secrets are read from the environment only \
                  when they are set; a missing or placeholder secret stops the service at start."
)]
pub struct Cli {
    /// What to do; `None` serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Every setting.
    #[command(flatten)]
    pub config: Config,
}

/// Every setting; VK and Chatwoot values are checked by [`Settings::from_config`].
#[derive(Clone, clap::Args)]
pub struct Config {
    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 8081)]
    pub port: u16,

    /// Id of the VK community (positive number).
    #[arg(long, env = "VK_GROUP_ID")]
    pub vk_group_id: Option<i64>,
    /// Community access token with the `messages` right. Never logged.
    #[arg(long, env = "VK_ACCESS_TOKEN", hide_env_values = true)]
    pub vk_access_token: Option<String>,
    /// Secret key set in the community's Callback API settings; every callback must carry
    /// it. Never logged.
    #[arg(long, env = "VK_SECRET", hide_env_values = true)]
    pub vk_secret: Option<String>,
    /// String VK expects back for the `confirmation` event (Callback API settings page).
    #[arg(long, env = "VK_CONFIRMATION", hide_env_values = true)]
    pub vk_confirmation: Option<String>,
    /// VK API version used for calls and expected in callbacks.
    #[arg(long, env = "VK_API_VERSION", default_value = "5.199")]
    pub vk_api_version: String,
    /// Unguessable path segment of the callback URL: POST /vk/callback/{VK_CALLBACK_ID}, at
    /// least 16 characters (openssl rand -hex 16). Never logged.
    #[arg(long, env = "VK_CALLBACK_ID", hide_env_values = true)]
    pub vk_callback_id: Option<String>,
    /// VK API base URL; tests point it at the sandbox.
    #[arg(long, env = "VK_API_URL", default_value = "https://api.vk.com/method")]
    pub vk_api_url: String,
    /// Receive VK events through the Bots Long Poll API instead of (or besides) the Callback
    /// API: for hosts VK cannot reach. Then VK_SECRET, VK_CONFIRMATION and VK_CALLBACK_ID may
    /// be left unset (the callback route answers 404).
    #[arg(long, env = "VK_LONG_POLL", default_value_t = false, action = clap::ArgAction::Set)]
    pub vk_long_poll: bool,
    /// Seconds one long poll request waits for events (VK allows up to 90).
    #[arg(long, env = "VK_LONG_POLL_WAIT_SECS", default_value_t = 25)]
    pub vk_long_poll_wait_secs: u64,

    /// Chatwoot base URL, e.g. `https://chatwoot.example.com`.
    #[arg(long, env = "CHATWOOT_BASE_URL")]
    pub chatwoot_base_url: Option<String>,
    /// Access token of the agent or bot the connector acts as. Never logged.
    #[arg(long, env = "CHATWOOT_API_ACCESS_TOKEN", hide_env_values = true)]
    pub chatwoot_api_access_token: Option<String>,
    /// Chatwoot account id.
    #[arg(long, env = "CHATWOOT_ACCOUNT_ID")]
    pub chatwoot_account_id: Option<i64>,
    /// Id of the Chatwoot inbox (an API channel inbox) VK conversations live in. May be left
    /// out: the inbox named CHATWOOT_INBOX_NAME is looked up at start (`setup` creates it).
    #[arg(long, env = "CHATWOOT_INBOX_ID")]
    pub chatwoot_inbox_id: Option<i64>,
    /// Name of the inbox to use when CHATWOOT_INBOX_ID is not set (and the one `setup` creates).
    #[arg(long, env = "CHATWOOT_INBOX_NAME", default_value = "VK")]
    pub chatwoot_inbox_name: String,
    /// Unguessable path segment of the webhook URL: POST /chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK},
    /// at least 16 characters (openssl rand -hex 16). Never logged.
    #[arg(long, env = "CHATWOOT_WEBHOOK_ID_VK", hide_env_values = true)]
    pub chatwoot_webhook_id_vk: Option<String>,
    /// Webhook secret (Chatwoot ≥ 4.11 signs webhooks): when set, X-Chatwoot-Signature is
    /// required and verified. Older Chatwoot signs nothing: leave it empty.
    #[arg(long, env = "CHATWOOT_WEBHOOK_SECRET", hide_env_values = true)]
    pub chatwoot_webhook_secret: Option<String>,
    /// Ids of Chatwoot agent bots whose outgoing messages are relayed too (comma separated).
    #[arg(long, env = "CHATWOOT_ALLOWED_AGENT_BOTS", value_delimiter = ',')]
    pub chatwoot_allowed_agent_bots: Vec<i64>,

    /// Seconds between reconciliation sweeps (undelivered agent replies); 0 = none but the
    /// one at start and those a failed webhook wakes (within seconds).
    #[arg(long, env = "RECONCILE_INTERVAL_SECS", default_value_t = 300)]
    pub reconcile_interval_secs: u64,
    /// How far back the sweep looks, in seconds.
    #[arg(long, env = "RECONCILE_LOOKBACK_SECS", default_value_t = 86_400)]
    pub reconcile_lookback_secs: u64,

    /// Largest photo, document or voice message carried as a file, in bytes, each way; a
    /// larger one is sent as a link (and logged).
    #[arg(long, env = "MEDIA_MAX_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub media_max_bytes: u64,
    /// Seconds one file download or upload may take.
    #[arg(long, env = "MEDIA_TIMEOUT_SECS", default_value_t = 60)]
    pub media_timeout_secs: u64,

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

/// Validated VK settings.
#[derive(Debug, Clone)]
pub struct VkSettings {
    /// `VK_GROUP_ID`: the community id (positive).
    pub group_id: i64,
    /// `VK_ACCESS_TOKEN`: the community access token.
    pub access_token: Secret,
    /// `VK_API_VERSION`, e.g. `5.199`.
    pub api_version: String,
    /// `VK_API_URL`: the API base URL, e.g. `https://api.vk.com/method`.
    pub api_url: String,
    /// The Callback API route; None when only Long Poll is used.
    pub callback: Option<CallbackSettings>,
    /// Long Poll wait per request; None when Long Poll is off.
    pub long_poll: Option<Duration>,
}

/// What the Callback API route needs.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// `VK_SECRET`: the `secret` every callback must carry.
    pub secret: Secret,
    /// `VK_CONFIRMATION`: the answer to the `confirmation` event.
    pub confirmation: Secret,
    /// `VK_CALLBACK_ID`: the path segment of `POST /vk/callback/{id}`.
    pub callback_id: Secret,
}

/// Validated Chatwoot settings.
#[derive(Debug, Clone)]
pub struct ChatwootSettings {
    /// `CHATWOOT_BASE_URL`, e.g. `https://chatwoot.example.com`.
    pub base_url: String,
    /// `CHATWOOT_API_ACCESS_TOKEN`: the agent's or bot's token.
    pub api_token: Secret,
    /// `CHATWOOT_ACCOUNT_ID` (positive).
    pub account_id: i64,
    /// The inbox VK conversations live in: `CHATWOOT_INBOX_ID` when set, else looked up by name.
    pub inbox: InboxRef,
    /// `CHATWOOT_WEBHOOK_ID_VK`: the path segment of `POST /chatwoot/webhook/{id}`.
    pub webhook_id: Secret,
    /// `CHATWOOT_WEBHOOK_SECRET`; `None` when unset or empty (signatures are then not checked).
    pub webhook_secret: Option<Secret>,
    /// `CHATWOOT_ALLOWED_AGENT_BOTS`: agent bot ids whose outgoing messages are relayed too.
    pub allowed_agent_bots: Vec<i64>,
}

/// How the Chatwoot inbox is named in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxRef {
    /// `CHATWOOT_INBOX_ID` (positive).
    Id(i64),
    /// `CHATWOOT_INBOX_NAME`, used when no id is set: resolved at start
    /// ([`crate::resolve_inbox`]).
    Name(String),
}

/// Limits on files carried each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSettings {
    /// `MEDIA_MAX_BYTES`: the largest file carried as a file, in bytes.
    pub max_bytes: u64,
    /// `MEDIA_TIMEOUT_SECS`: how long one download or upload may take.
    pub timeout: Duration,
}

/// Everything `serve` and `check` need, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT`: the HTTP port.
    pub port: u16,
    /// VK settings.
    pub vk: VkSettings,
    /// Chatwoot settings.
    pub chatwoot: ChatwootSettings,
    /// File size limit and timeout.
    pub media: MediaSettings,
    /// `RECONCILE_INTERVAL_SECS`: time between reconciliation sweeps; zero = only the one at start and those a failed webhook wakes.
    pub reconcile_interval: Duration,
    /// `RECONCILE_LOOKBACK_SECS`: how far back a sweep looks.
    pub reconcile_lookback: Duration,
    /// The flags every service shares.
    pub runtime: RuntimeArgs,
}

impl Settings {
    /// Checks every value `serve` needs, in the order of `--help`; the first problem wins.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        let group_id = positive(c.vk_group_id, "VK_GROUP_ID")?;
        let access_token = secret(&c.vk_access_token, "VK_ACCESS_TOKEN")?;
        // With Long Poll the callback is optional: configured only when its id is set.
        let callback = if c.vk_long_poll
            && c.vk_callback_id
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
        {
            None
        } else {
            Some(CallbackSettings {
                secret: secret(&c.vk_secret, "VK_SECRET")?,
                confirmation: secret(&c.vk_confirmation, "VK_CONFIRMATION")?,
                callback_id: long_secret(
                    &c.vk_callback_id,
                    "VK_CALLBACK_ID",
                    MIN_PATH_SECRET_CHARS,
                )?,
            })
        };
        let vk = VkSettings {
            group_id,
            access_token,
            api_version: c.vk_api_version.clone(),
            api_url: c.vk_api_url.clone(),
            callback,
            long_poll: c
                .vk_long_poll
                .then(|| Duration::from_secs(c.vk_long_poll_wait_secs.clamp(1, 90))),
        };
        let chatwoot = ChatwootSettings {
            base_url: required_str(&c.chatwoot_base_url, "CHATWOOT_BASE_URL")?,
            api_token: secret(&c.chatwoot_api_access_token, "CHATWOOT_API_ACCESS_TOKEN")?,
            account_id: positive(c.chatwoot_account_id, "CHATWOOT_ACCOUNT_ID")?,
            inbox: match c.chatwoot_inbox_id {
                Some(_) => InboxRef::Id(positive(c.chatwoot_inbox_id, "CHATWOOT_INBOX_ID")?),
                None => InboxRef::Name(required_str(
                    &Some(c.chatwoot_inbox_name.clone()),
                    "CHATWOOT_INBOX_NAME",
                )?),
            },
            webhook_id: long_secret(
                &c.chatwoot_webhook_id_vk,
                "CHATWOOT_WEBHOOK_ID_VK",
                MIN_PATH_SECRET_CHARS,
            )?,
            webhook_secret: optional_secret(&c.chatwoot_webhook_secret, "CHATWOOT_WEBHOOK_SECRET")?,
            allowed_agent_bots: c.chatwoot_allowed_agent_bots.clone(),
        };
        Ok(Self {
            port: c.port,
            vk,
            chatwoot,
            media: MediaSettings {
                max_bytes: match c.media_max_bytes {
                    0 => return Err(ConfigError::NotPositive("MEDIA_MAX_BYTES")),
                    n => n,
                },
                timeout: duration_secs(c.media_timeout_secs, "MEDIA_TIMEOUT_SECS", false)?,
            },
            reconcile_interval: Duration::from_secs(c.reconcile_interval_secs),
            reconcile_lookback: Duration::from_secs(c.reconcile_lookback_secs),
            runtime: c.runtime.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut args = vec!["vk-connector".to_owned()];
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
        ("VK_GROUP_ID", "1"),
        ("VK_ACCESS_TOKEN", "vk1.a.token"),
        ("VK_SECRET", "s3cr3t"),
        ("VK_CONFIRMATION", "abc123"),
        ("VK_CALLBACK_ID", "cb-4f0e9a7d2c61b8e3"),
        ("CHATWOOT_BASE_URL", "https://cw.example.com"),
        ("CHATWOOT_API_ACCESS_TOKEN", "cwtoken"),
        ("CHATWOOT_ACCOUNT_ID", "1"),
        ("CHATWOOT_INBOX_ID", "2"),
        ("CHATWOOT_WEBHOOK_ID_VK", "hook-8d3b1f6a0e52c947"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        FULL.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut v = without(name);
        v.push((name, value));
        v
    }

    #[test]
    fn a_complete_config_is_accepted_and_debug_hides_secrets() {
        let s = parse(FULL).expect("valid");
        assert!(s.vk.callback.is_some());
        assert!(s.vk.long_poll.is_none());
        let debug = format!("{s:?}");
        for secret in ["vk1.a.token", "s3cr3t", "cwtoken"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
    }

    #[test]
    fn missing_or_placeholder_secrets_are_named() {
        let e = parse(&without("VK_ACCESS_TOKEN")).unwrap_err().to_string();
        assert_eq!(
            e,
            "VK_ACCESS_TOKEN is not set; set it in the environment or in .env"
        );
        let e = parse(&with("CHATWOOT_API_ACCESS_TOKEN", "your_chatwoot_token")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CHATWOOT_API_ACCESS_TOKEN still holds a placeholder value; set the real secret"
        );
        let e = parse(&with("VK_SECRET", "change_me"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("VK_SECRET "), "{e}");
        let e = parse(&with("CHATWOOT_INBOX_ID", "0"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "CHATWOOT_INBOX_ID must be positive");
        let e = parse(&with("VK_GROUP_ID", "-5")).unwrap_err().to_string();
        assert_eq!(e, "VK_GROUP_ID must be positive");
    }

    #[test]
    fn the_inbox_is_found_by_name_when_no_id_is_set() {
        let s = parse(FULL).expect("valid");
        assert_eq!(s.chatwoot.inbox, InboxRef::Id(2));
        let s = parse(&without("CHATWOOT_INBOX_ID")).expect("valid without the id");
        assert_eq!(s.chatwoot.inbox, InboxRef::Name("VK".into()));
        let mut env = without("CHATWOOT_INBOX_ID");
        env.push(("CHATWOOT_INBOX_NAME", "ВКонтакте"));
        assert_eq!(
            parse(&env).expect("valid").chatwoot.inbox,
            InboxRef::Name("ВКонтакте".into())
        );
        let mut blank = without("CHATWOOT_INBOX_ID");
        blank.push(("CHATWOOT_INBOX_NAME", " "));
        assert!(parse(&blank).is_err(), "a blank name is refused");
        assert_eq!(s.media.max_bytes, 20 * 1024 * 1024);
        for name in ["MEDIA_MAX_BYTES", "MEDIA_TIMEOUT_SECS"] {
            let e = parse(&with(name, "0")).unwrap_err().to_string();
            assert_eq!(e, format!("{name} must be positive"));
        }
        assert_eq!(s.media.timeout, Duration::from_secs(60));
    }

    #[test]
    fn path_secrets_must_be_at_least_16_characters() {
        for name in ["VK_CALLBACK_ID", "CHATWOOT_WEBHOOK_ID_VK"] {
            let e = parse(&with(name, "cb-7f3a")).unwrap_err().to_string();
            assert_eq!(e, format!("{name} must be at least 16 characters long"));
            assert!(!e.contains("cb-7f3a"), "the value leaked: {e}");
            // 15 characters refused, 16 accepted.
            assert!(parse(&with(name, "0123456789abcde")).is_err(), "{name}");
            assert!(parse(&with(name, "0123456789abcdef")).is_ok(), "{name}");
            // A placeholder is still named as one, however long.
            let e = parse(&with(name, "change_me_please_now")).unwrap_err();
            assert!(e.to_string().contains("placeholder"), "{name}: {e}");
        }
        // With Long Poll and no callback id, the callback route is off and nothing is checked;
        // a short id that is set is refused all the same.
        let mut env = with("VK_CALLBACK_ID", "short");
        env.push(("VK_LONG_POLL", "true"));
        assert_eq!(
            parse(&env).unwrap_err().to_string(),
            "VK_CALLBACK_ID must be at least 16 characters long"
        );
    }

    #[test]
    fn long_poll_makes_the_callback_optional() {
        let mut env: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| !matches!(*k, "VK_SECRET" | "VK_CONFIRMATION" | "VK_CALLBACK_ID"))
            .collect();
        assert!(
            parse(&env).is_err(),
            "callback settings required without Long Poll"
        );
        env.push(("VK_LONG_POLL", "true"));
        let s = parse(&env).expect("valid with Long Poll");
        assert!(s.vk.callback.is_none());
        assert_eq!(s.vk.long_poll, Some(Duration::from_secs(25)));
    }

    #[test]
    fn debug_of_settings_shows_no_secret_value() {
        // issue 9 item 14: every secret set, the database password in DATABASE_URL too
        const SECRETS: &[(&str, &str)] = &[
            ("VK_ACCESS_TOKEN", "vk1.a.dbgAccessToken0123456789"),
            ("VK_SECRET", "dbgVkSecret0123456789abcdef"),
            ("VK_CONFIRMATION", "dbgConfirmation0123456789"),
            ("VK_CALLBACK_ID", "dbgCallbackId0123456789abcdef"),
            ("CHATWOOT_API_ACCESS_TOKEN", "dbgChatwootToken0123456789"),
            ("CHATWOOT_WEBHOOK_ID_VK", "dbgWebhookId0123456789abcdef"),
            ("CHATWOOT_WEBHOOK_SECRET", "dbgWebhookSecret0123456789"),
        ];
        let mut env: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "DATABASE_URL" && !SECRETS.iter().any(|(s, _)| s == k))
            .collect();
        env.extend_from_slice(SECRETS);
        env.push((
            "DATABASE_URL",
            "postgres://vk:dbgDbPassword0123@postgres:5432/gateway",
        ));
        let s = parse(&env).expect("valid");
        // The raw flags too (`Cli`/`Config` Debug), before they are wrapped in `Secret`.
        let args = std::iter::once("vk-connector".to_owned()).chain(
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
        assert!(debug.contains("postgres://vk:[redacted]@postgres:5432/gateway"));
    }
}
