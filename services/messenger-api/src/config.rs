//! Configuration of messenger-api: flags or environment variables (a `.env` file is read when
//! present). `messenger-api --help` lists them all.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use service_kit::config::{ConfigError, long_secret};
use service_kit::{RuntimeArgs, Secret};

use crate::cli::Command;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "messenger-api",
    version,
    about = "The own messenger: accounts, chats, messages, voice messages, admin, and the \
             real-time hub /hubs/chat that SignalR clients connect to.",
    after_help = "Without a command it serves. Jwt__Secret (alias JWT_SECRET) is required to \
                  serve: at least 32 characters, never logged. The first admin is made with \
                  `messenger-api admin create --phone +7…`, invite codes with \
                  `messenger-api invite create`."
)]
pub struct Cli {
    /// What to do; `None` serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Every setting.
    #[command(flatten)]
    pub config: Config,
}

/// The shortest accepted JWT secret, in characters.
pub const MIN_JWT_SECRET_CHARS: usize = 32;

/// Every setting; the secret is checked by [`Settings::from_config`].
#[derive(Clone, clap::Args)]
pub struct Config {
    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 8085)]
    pub port: u16,

    /// HS256 key of the access tokens (at least 32 characters). The name of the original ASP.NET
    /// deployment; JWT_SECRET is accepted too. Never logged.
    #[arg(
        long = "jwt-secret-aspnet",
        env = "Jwt__Secret",
        hide_env_values = true
    )]
    pub jwt_secret_aspnet: Option<String>,
    /// HS256 key of the access tokens (at least 32 characters); alias of Jwt__Secret. Never logged.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// `iss` of issued tokens, checked on every request.
    #[arg(long, env = "JWT_ISSUER", default_value = "messenger-api")]
    pub jwt_issuer: String,
    /// `aud` of issued tokens, checked on every request.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "messenger-clients")]
    pub jwt_audience: String,
    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in days.
    #[arg(long, env = "REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: u64,

    /// Directory of uploaded voice messages (a volume in production).
    #[arg(long, env = "MESSENGER_FILES_DIR", default_value = "data/files")]
    pub files_dir: PathBuf,
    /// Largest accepted voice message, in bytes.
    #[arg(long, env = "MESSENGER_MAX_AUDIO_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_audio_bytes: usize,
    /// Largest number of members of a group chat.
    #[arg(long, env = "MESSENGER_MAX_GROUP_MEMBERS", default_value_t = 20_000)]
    pub max_group_members: usize,
    /// Members one request may add to a group (400 above). A group gets its members when it
    /// is created, so this also bounds the size of a new group.
    #[arg(
        long,
        env = "MESSENGER_GROUP_MEMBERS_PER_REQUEST",
        default_value_t = 1_000
    )]
    pub group_members_per_request: u32,
    /// Members one user may add to groups per hour, all groups together (429 with Retry-After
    /// above; the allowance refills evenly over the hour). At least the per-request limit.
    #[arg(
        long,
        env = "MESSENGER_GROUP_MEMBERS_PER_HOUR",
        default_value_t = 5_000
    )]
    pub group_members_per_hour: u32,
    /// Messages (text and voice, REST and the hub's SendMessage together) one user may send per
    /// minute on average (429 with Retry-After above; the hub answers an error completion).
    #[arg(long, env = "MESSENGER_SEND_RATE_PER_MINUTE", default_value_t = 60)]
    pub send_rate_per_minute: u32,
    /// Messages one user may send in a row before MESSENGER_SEND_RATE_PER_MINUTE paces them.
    #[arg(long, env = "MESSENGER_SEND_BURST", default_value_t = 20)]
    pub send_burst: u32,

    /// Login attempts allowed per phone number per minute.
    #[arg(long, env = "LOGIN_RATE_PER_PHONE_PER_MINUTE", default_value_t = 5)]
    pub login_rate_per_phone: u32,
    /// Login attempts allowed per client IP per minute (X-Real-IP when the peer is a local
    /// proxy such as nginx).
    #[arg(long, env = "LOGIN_RATE_PER_IP_PER_MINUTE", default_value_t = 30)]
    pub login_rate_per_ip: u32,
    /// Registration attempts allowed per client IP per minute.
    #[arg(long, env = "REGISTER_RATE_PER_IP_PER_MINUTE", default_value_t = 10)]
    pub register_rate_per_ip: u32,
    /// Password hashes and checks (argon2id) running at once; 0: twice the cores.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Seconds between keep-alive pings the hub sends when nothing else was sent.
    #[arg(long, env = "HUB_KEEPALIVE_SECS", default_value_t = 15)]
    pub hub_keepalive_secs: u64,
    /// Seconds without any message from a client after which the hub drops it.
    #[arg(long, env = "HUB_CLIENT_TIMEOUT_SECS", default_value_t = 30)]
    pub hub_client_timeout_secs: u64,
    /// Messages queued for one connection before it counts as too slow and is disconnected.
    #[arg(long, env = "HUB_QUEUE_CAPACITY", default_value_t = 256)]
    pub hub_queue_capacity: usize,
    /// Seconds one write to a hub client may take; a client that stops reading (its TCP
    /// window full) is disconnected after that.
    #[arg(long, env = "HUB_SEND_TIMEOUT_SECS", default_value_t = 5)]
    pub hub_send_timeout_secs: u64,
    /// Presence (UserConnected/UserDisconnected) goes to private-chat partners and to members
    /// of groups up to this size; larger groups get none (one login would wake thousands).
    #[arg(long, env = "HUB_PRESENCE_MAX_GROUP", default_value_t = 100)]
    pub hub_presence_max_group: i64,

    /// Origins allowed to call the API from a browser (comma separated); empty: no CORS.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,

    /// Argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = 19_456, hide = true)]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (OWASP: 2).
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = 2, hide = true)]
    pub argon2_iterations: u32,

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

/// JWT settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `Jwt__Secret` or `JWT_SECRET`: the HS256 key, at least 32 characters.
    pub secret: Secret,
    /// `JWT_ISSUER`: `iss` of issued tokens, checked on every request.
    pub issuer: String,
    /// `JWT_AUDIENCE`: `aud` of issued tokens, checked on every request.
    pub audience: String,
    /// `ACCESS_TOKEN_TTL_SECS`: lifetime of an access token.
    pub access_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_DAYS`: lifetime of a refresh token.
    pub refresh_ttl: Duration,
}

/// Hub settings.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `HUB_KEEPALIVE_SECS`: idle time after which the hub sends a ping.
    pub keepalive: Duration,
    /// `HUB_CLIENT_TIMEOUT_SECS`: silence from a client after which it is dropped.
    pub client_timeout: Duration,
    /// `HUB_QUEUE_CAPACITY`: frames queued per connection before it counts as too slow.
    pub queue_capacity: usize,
    /// `HUB_SEND_TIMEOUT_SECS`: longest one write to a client may take before it is dropped.
    pub send_timeout: Duration,
    /// `HUB_PRESENCE_MAX_GROUP`: largest group whose members get presence events.
    pub presence_max_group: i64,
}

/// Per-user limits on sending and on adding group members (each replica counts its own).
#[derive(Debug, Clone, Copy)]
pub struct UserLimitSettings {
    /// `MESSENGER_GROUP_MEMBERS_PER_REQUEST`: members one request may add to a group.
    pub group_members_per_request: u32,
    /// `MESSENGER_GROUP_MEMBERS_PER_HOUR`: members one user may add to groups per hour.
    pub group_members_per_hour: u32,
    /// `MESSENGER_SEND_RATE_PER_MINUTE`: messages one user may send per minute on average.
    pub send_rate_per_minute: u32,
    /// `MESSENGER_SEND_BURST`: messages one user may send in a row.
    pub send_burst: u32,
}

/// Everything `serve` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT`: the HTTP port.
    pub port: u16,
    /// Access and refresh token settings.
    pub jwt: JwtSettings,
    /// The variable the JWT secret came from (`Jwt__Secret` or `JWT_SECRET`), for `check`.
    pub jwt_secret_var: &'static str,
    /// `MESSENGER_FILES_DIR`: where voice messages are stored.
    pub files_dir: PathBuf,
    /// `MESSENGER_MAX_AUDIO_BYTES`: largest accepted voice message, in bytes.
    pub max_audio_bytes: usize,
    /// `MESSENGER_MAX_GROUP_MEMBERS`: largest number of members of a group chat.
    pub max_group_members: usize,
    /// Per-user send and group-member limits.
    pub user_limits: UserLimitSettings,
    /// `LOGIN_RATE_PER_PHONE_PER_MINUTE`: login attempts per phone number per minute.
    pub login_rate_per_phone: u32,
    /// `LOGIN_RATE_PER_IP_PER_MINUTE`: login attempts per client IP per minute.
    pub login_rate_per_ip: u32,
    /// `REGISTER_RATE_PER_IP_PER_MINUTE`: registration attempts per client IP per minute.
    pub register_rate_per_ip: u32,
    /// `PASSWORD_HASH_CONCURRENCY`: argon2id runs at once (0: twice the cores).
    pub password_hash_concurrency: usize,
    /// Real-time hub settings.
    pub hub: HubSettings,
    /// `CORS_ALLOWED_ORIGINS`: browser origins allowed to call the API; empty = no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Password hashing cost.
    pub argon2: Argon2Settings,
    /// The flags every service shares.
    pub runtime: RuntimeArgs,
}

/// Argon2id cost.
#[derive(Debug, Clone, Copy)]
pub struct Argon2Settings {
    /// `ARGON2_MEMORY_KIB`: memory cost, in KiB.
    pub memory_kib: u32,
    /// `ARGON2_ITERATIONS`: time cost (passes).
    pub iterations: u32,
}

impl Settings {
    /// Checks every value `serve` needs; the first problem wins, named by its variable.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        // Jwt__Secret is the ASP.NET name; JWT_SECRET the alias. Either one, named in errors
        // by the one that was given.
        let (value, name) = match &c.jwt_secret_aspnet {
            Some(v) if !v.trim().is_empty() => (&c.jwt_secret_aspnet, "Jwt__Secret"),
            _ => (&c.jwt_secret, "JWT_SECRET"),
        };
        // HS256 wants a key of at least 256 bits; 32 characters are at least 32 bytes.
        let secret = long_secret(value, name, MIN_JWT_SECRET_CHARS)?;
        for (v, name) in [
            (c.access_token_ttl_secs, "ACCESS_TOKEN_TTL_SECS"),
            (c.refresh_token_ttl_days, "REFRESH_TOKEN_TTL_DAYS"),
            (c.hub_keepalive_secs, "HUB_KEEPALIVE_SECS"),
            (c.hub_client_timeout_secs, "HUB_CLIENT_TIMEOUT_SECS"),
            (c.hub_queue_capacity as u64, "HUB_QUEUE_CAPACITY"),
            (c.hub_send_timeout_secs, "HUB_SEND_TIMEOUT_SECS"),
            (
                c.login_rate_per_phone as u64,
                "LOGIN_RATE_PER_PHONE_PER_MINUTE",
            ),
            (c.login_rate_per_ip as u64, "LOGIN_RATE_PER_IP_PER_MINUTE"),
            (
                c.register_rate_per_ip as u64,
                "REGISTER_RATE_PER_IP_PER_MINUTE",
            ),
            (c.max_audio_bytes as u64, "MESSENGER_MAX_AUDIO_BYTES"),
            (
                c.group_members_per_request as u64,
                "MESSENGER_GROUP_MEMBERS_PER_REQUEST",
            ),
            (
                c.group_members_per_hour as u64,
                "MESSENGER_GROUP_MEMBERS_PER_HOUR",
            ),
            (
                c.send_rate_per_minute as u64,
                "MESSENGER_SEND_RATE_PER_MINUTE",
            ),
            (c.send_burst as u64, "MESSENGER_SEND_BURST"),
        ] {
            if v == 0 {
                return Err(ConfigError::NotPositive(name));
            }
        }
        // A request within its own limit must be able to pass the hourly one at all.
        if c.group_members_per_request > c.group_members_per_hour {
            return Err(ConfigError::Invalid {
                name: "MESSENGER_GROUP_MEMBERS_PER_REQUEST",
                reason: format!(
                    "must not exceed MESSENGER_GROUP_MEMBERS_PER_HOUR ({})",
                    c.group_members_per_hour
                ),
            });
        }
        Ok(Self {
            port: c.port,
            jwt_secret_var: name,
            jwt: JwtSettings {
                secret,
                issuer: c.jwt_issuer.clone(),
                audience: c.jwt_audience.clone(),
                access_ttl: Duration::from_secs(c.access_token_ttl_secs),
                refresh_ttl: Duration::from_secs(c.refresh_token_ttl_days * 86_400),
            },
            files_dir: c.files_dir.clone(),
            max_audio_bytes: c.max_audio_bytes,
            max_group_members: c.max_group_members,
            user_limits: UserLimitSettings {
                group_members_per_request: c.group_members_per_request,
                group_members_per_hour: c.group_members_per_hour,
                send_rate_per_minute: c.send_rate_per_minute,
                send_burst: c.send_burst,
            },
            login_rate_per_phone: c.login_rate_per_phone,
            login_rate_per_ip: c.login_rate_per_ip,
            register_rate_per_ip: c.register_rate_per_ip,
            password_hash_concurrency: c.password_hash_concurrency,
            hub: HubSettings {
                keepalive: Duration::from_secs(c.hub_keepalive_secs),
                client_timeout: Duration::from_secs(c.hub_client_timeout_secs),
                queue_capacity: c.hub_queue_capacity,
                send_timeout: Duration::from_secs(c.hub_send_timeout_secs),
                presence_max_group: c.hub_presence_max_group,
            },
            cors_allowed_origins: c
                .cors_allowed_origins
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            argon2: Argon2Settings {
                memory_kib: c.argon2_memory_kib,
                iterations: c.argon2_iterations,
            },
            runtime: c.runtime.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut all = vec![
            "messenger-api",
            "--database-url",
            "postgres://x@localhost/db",
        ];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).expect("flags parse");
        Settings::from_config(&cli.config)
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    #[test]
    fn the_secret_is_required_long_and_hidden() {
        let e = parse(&[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "JWT_SECRET is not set; set it in the environment or in .env"
        );
        let e = parse(&["--jwt-secret", "change_me"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("JWT_SECRET still holds a placeholder"), "{e}");
        let e = parse(&["--jwt-secret", "short"]).unwrap_err().to_string();
        assert_eq!(e, "JWT_SECRET must be at least 32 characters long");
        let e = parse(&["--jwt-secret-aspnet", "short"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "Jwt__Secret must be at least 32 characters long");
        let s = parse(&["--jwt-secret", SECRET]).expect("valid");
        assert!(!format!("{s:?}").contains(SECRET));
        assert_eq!(s.port, 8085);
        assert_eq!(s.hub.keepalive, Duration::from_secs(15));
        assert_eq!(s.hub.client_timeout, Duration::from_secs(30));
    }

    #[test]
    fn user_limits_have_defaults_and_are_checked() {
        let s = parse(&["--jwt-secret", SECRET]).expect("valid");
        assert_eq!(s.user_limits.group_members_per_request, 1_000);
        assert_eq!(s.user_limits.group_members_per_hour, 5_000);
        assert_eq!(s.user_limits.send_rate_per_minute, 60);
        assert_eq!(s.user_limits.send_burst, 20);
        let e = parse(&["--jwt-secret", SECRET, "--send-burst", "0"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "MESSENGER_SEND_BURST must be positive");
        let e = parse(&[
            "--jwt-secret",
            SECRET,
            "--group-members-per-request",
            "10",
            "--group-members-per-hour",
            "9",
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "MESSENGER_GROUP_MEMBERS_PER_REQUEST: must not exceed MESSENGER_GROUP_MEMBERS_PER_HOUR (9)"
        );
    }

    #[test]
    fn the_aspnet_name_wins_over_the_alias() {
        let s = parse(&["--jwt-secret-aspnet", SECRET, "--jwt-secret", "other"]).expect("valid");
        assert_eq!(s.jwt.secret.expose(), SECRET);
    }

    #[test]
    fn cors_origins_are_trimmed() {
        let s = parse(&[
            "--jwt-secret",
            SECRET,
            "--cors-allowed-origins",
            "https://a.example, https://b.example,",
        ])
        .expect("valid");
        assert_eq!(
            s.cors_allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn debug_of_settings_shows_no_secret_value() {
        // issue 9 item 14: the JWT key under both names, the database password in DATABASE_URL
        let aspnet = "dbgAspnetJwtSecret0123456789abcdef0123";
        let alias = "dbgAliasJwtSecret0123456789abcdef01234";
        let cli = Cli::try_parse_from([
            "messenger-api",
            "--database-url",
            "postgres://messenger:dbgDbPassword0123@postgres:5432/gateway",
            "--jwt-secret-aspnet",
            aspnet,
            "--jwt-secret",
            alias,
        ])
        .expect("flags parse");
        let s = Settings::from_config(&cli.config).expect("valid");
        let debug = format!("{s:?} {cli:?}");
        for value in [aspnet, alias, "dbgDbPassword0123"] {
            assert!(!debug.contains(value), "{value} leaked into Debug: {debug}");
        }
        assert!(debug.contains("postgres://messenger:[redacted]@postgres:5432/gateway"));
    }
}
