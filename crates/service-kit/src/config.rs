//! Runtime configuration shared by every service, read from flags or the environment.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Flags every service has. Flatten it into the service's own clap struct:
/// `#[command(flatten)] pub runtime: RuntimeArgs`.
///
/// `Debug` prints the URLs with their password replaced by `[redacted]` ([`redact_url`]).
#[derive(Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Postgres connection URL, e.g. postgres://vk:…@postgres:5432/gateway. The service works
    /// only in its own schema.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Maximum Postgres connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// NATS server URL (JetStream enabled), with the service's own NATS user:
    /// nats://vk:…@nats:4222 (deploy/nats/auth.conf). Never logged with its password.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
    pub nats_url: String,
    /// Prefix put before every subject and stream name (`<prefix>.events.>`, stream
    /// `<PREFIX>_EVENTS`), so that several gateways or test runs can share one NATS.
    /// Empty in production.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "")]
    pub nats_subject_prefix: String,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Log format: `json` (one line per event) or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `info,vk_connector=debug` (tracing EnvFilter syntax).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// OTLP/HTTP endpoint for traces, e.g. http://otel-collector:4318; none = no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// Longest time one HTTP request may take, in seconds (then 503).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 15)]
    pub request_timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest time one call to an upstream API (VK, Chatwoot, amoCRM …) may take, in seconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECS", default_value_t = 10)]
    pub upstream_timeout_secs: u64,
    /// Handlers each durable consumer runs at once (never two of one conversation). One
    /// consumer can be set apart with CONSUMER_CONCURRENCY_<DURABLE>, e.g.
    /// CONSUMER_CONCURRENCY_VK_CONNECTOR_RELAY=64.
    #[arg(long, env = "CONSUMER_CONCURRENCY", default_value_t = crate::consumer::DEFAULT_CONCURRENCY)]
    pub consumer_concurrency: usize,
}

impl RuntimeArgs {
    /// Defaults for tests and tools: everything but the database URL.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            database_max_connections: 5,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_subject_prefix: String::new(),
            host: "127.0.0.1".into(),
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            otel_exporter_otlp_endpoint: None,
            request_timeout_secs: 15,
            max_body_bytes: 1024 * 1024,
            upstream_timeout_secs: 10,
            consumer_concurrency: crate::consumer::DEFAULT_CONCURRENCY,
        }
    }

    /// [`Self::upstream_timeout_secs`] as a duration.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream_timeout_secs.max(1))
    }

    /// [`Self::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

impl fmt::Debug for RuntimeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field, so that a new one cannot slip past unnoticed: the destructuring fails to
        // compile until it is listed here.
        let Self {
            database_url,
            database_max_connections,
            nats_url,
            nats_subject_prefix,
            host,
            log_format,
            log_level,
            otel_exporter_otlp_endpoint,
            request_timeout_secs,
            max_body_bytes,
            upstream_timeout_secs,
            consumer_concurrency,
        } = self;
        f.debug_struct("RuntimeArgs")
            .field("database_url", &redact_url(database_url))
            .field("database_max_connections", database_max_connections)
            .field("nats_url", &redact_url(nats_url))
            .field("nats_subject_prefix", nats_subject_prefix)
            .field("host", host)
            .field("log_format", log_format)
            .field("log_level", log_level)
            .field(
                "otel_exporter_otlp_endpoint",
                &otel_exporter_otlp_endpoint.as_deref().map(redact_url),
            )
            .field("request_timeout_secs", request_timeout_secs)
            .field("max_body_bytes", max_body_bytes)
            .field("upstream_timeout_secs", upstream_timeout_secs)
            .field("consumer_concurrency", consumer_concurrency)
            .finish()
    }
}

/// `url` with its password replaced by `[redacted]`, for logs and `Debug`: the password of the
/// user part (`postgres://vk:[redacted]@postgres:5432/gateway`) and the value of a `password`
/// query parameter (`?password=[redacted]`, which libpq and sqlx also read). A user without a
/// password (`nats://token@host`, a NATS token) is redacted whole. Anything else is kept, so
/// the host and database still show.
pub fn redact_url(url: &str) -> String {
    const REDACTED: &str = "[redacted]";
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The user part ends at the last `@` before the query (a password may hold `/` or `@`),
    // else at the last `@` at all (it may hold `?` or `#`). Too much redacted beats too little.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let at = rest[..query_start].rfind('@').or_else(|| rest.rfind('@'));
    let (userinfo, tail) = match at {
        Some(at) => {
            let (userinfo, tail) = rest.split_at(at);
            let userinfo = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:{REDACTED}"),
                // `nats://<token>@host`: the user part is the credential
                None if scheme.starts_with("nats") || scheme.starts_with("tls") => {
                    REDACTED.to_owned()
                }
                None => userinfo.to_owned(),
            };
            (userinfo, tail)
        }
        None => (String::new(), rest),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, frag)) => (q, Some(frag)),
                None => (query, None),
            };
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            match fragment {
                Some(frag) => format!("{path}?{query}#{frag}"),
                None => format!("{path}?{query}"),
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{userinfo}{tail}")
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, stamped with the service name.
    Json,
    /// Compact human-readable lines, for a terminal.
    Pretty,
}

/// A credential from the environment. `Debug` and `Display` print `[redacted]`; the value
/// is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret was refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The variable (named) is not set, or is empty.
    #[error("{0} is not set; set it in the environment or in .env")]
    Missing(&'static str),
    /// The variable (named) holds a placeholder such as `change_me`.
    #[error("{0} still holds a placeholder value; set the real secret")]
    Placeholder(&'static str),
}

impl Secret {
    /// Wraps a value without checking it (tests, values built in code).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The variable `name` as a secret, refusing a missing, empty or placeholder value
    /// (`your_…`, `change_me`, `changeme`, `<…>`, `xxx…`). The error names the variable and
    /// never the value.
    pub fn require(value: Option<&str>, name: &'static str) -> Result<Self, SecretError> {
        let value = value.map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Err(SecretError::Missing(name));
        }
        if is_placeholder(value) {
            return Err(SecretError::Placeholder(name));
        }
        Ok(Self(value.to_owned()))
    }

    /// The raw value, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn is_placeholder(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    v.starts_with("your_")
        || v.starts_with("your-")
        || v == "change_me"
        || v == "changeme"
        || v.starts_with("change_me")
        || (v.starts_with('<') && v.ends_with('>'))
        || (v.len() >= 3 && v.chars().all(|c| c == 'x'))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A setting is missing or wrong; the message names the variable and never a secret's value.
/// `cli::main` prints it as one line and exits with code 2.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A secret is missing or a placeholder.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The named variable is not set (or empty).
    #[error("{0} is not set")]
    Missing(&'static str),
    /// The named number is zero or negative.
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    /// The named secret is shorter than it must be.
    #[error("{name} must be at least {min} characters long")]
    TooShort {
        /// The variable.
        name: &'static str,
        /// The shortest accepted length, in characters.
        min: usize,
    },
    /// The named variable holds something unusable; `reason` says what is expected.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// The value of an optional setting that `serve` needs.
///
/// Errors: [`ConfigError::Missing`] naming `name`.
pub fn required<T: Clone>(value: &Option<T>, name: &'static str) -> Result<T, ConfigError> {
    value.clone().ok_or(ConfigError::Missing(name))
}

/// A non-empty string setting (blank counts as unset).
///
/// Errors: [`ConfigError::Missing`] naming `name`.
pub fn required_str(value: &Option<String>, name: &'static str) -> Result<String, ConfigError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(ConfigError::Missing(name))
}

/// A positive id or count that `serve` needs.
///
/// Errors: missing, or zero/negative ([`ConfigError::NotPositive`]).
pub fn positive(value: Option<i64>, name: &'static str) -> Result<i64, ConfigError> {
    let v = value.ok_or(ConfigError::Missing(name))?;
    if v <= 0 {
        return Err(ConfigError::NotPositive(name));
    }
    Ok(v)
}

/// A secret that must be set and not a placeholder ([`Secret::require`]).
pub fn secret(value: &Option<String>, name: &'static str) -> Result<Secret, ConfigError> {
    Ok(Secret::require(value.as_deref(), name)?)
}

/// A secret that may be left unset or empty (`None`), but is no placeholder when set.
pub fn optional_secret(
    value: &Option<String>,
    name: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => Ok(Some(Secret::require(Some(v), name)?)),
    }
}

/// A secret of at least `min` characters: unguessable path segments such as webhook tokens.
pub fn long_secret(
    value: &Option<String>,
    name: &'static str,
    min: usize,
) -> Result<Secret, ConfigError> {
    let s = secret(value, name)?;
    if s.expose().chars().count() < min {
        return Err(ConfigError::TooShort { name, min });
    }
    Ok(s)
}

/// Seconds as a duration; zero is refused when `allow_zero` is false.
///
/// Errors: [`ConfigError::NotPositive`] for a refused zero.
pub fn duration_secs(
    secs: u64,
    name: &'static str,
    allow_zero: bool,
) -> Result<Duration, ConfigError> {
    if secs == 0 && !allow_zero {
        return Err(ConfigError::NotPositive(name));
    }
    Ok(Duration::from_secs(secs))
}

/// Loads `.env` from the working directory when there is one (values already in the
/// environment win). Call before parsing the config.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_name_the_variable() {
        assert_eq!(
            required_str(&Some("  ".into()), "X"),
            Err(ConfigError::Missing("X"))
        );
        assert_eq!(positive(Some(0), "ID"), Err(ConfigError::NotPositive("ID")));
        assert_eq!(positive(Some(7), "ID"), Ok(7));
        assert_eq!(
            long_secret(&Some("short".into()), "TOKEN", 16)
                .unwrap_err()
                .to_string(),
            "TOKEN must be at least 16 characters long"
        );
        assert!(
            optional_secret(&Some(String::new()), "S")
                .expect("empty is unset")
                .is_none()
        );
        assert_eq!(
            optional_secret(&Some("change_me".into()), "S"),
            Err(ConfigError::Secret(SecretError::Placeholder("S")))
        );
        assert_eq!(
            duration_secs(0, "T", false),
            Err(ConfigError::NotPositive("T"))
        );
    }

    #[test]
    fn debug_of_runtime_args_hides_the_passwords_in_urls() {
        let mut args = RuntimeArgs::for_database(
            "postgres://vk:pgS3cretPw@postgres:5432/gateway?sslmode=disable&password=qS3cretPw",
        );
        args.nats_url = "nats://vk:natsS3cretPw@nats:4222".into();
        args.otel_exporter_otlp_endpoint = Some("https://otel:otelS3cretPw@collector:4318".into());
        let debug = format!("{args:?}");
        for secret in ["pgS3cretPw", "qS3cretPw", "natsS3cretPw", "otelS3cretPw"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(
            debug.contains(
                "postgres://vk:[redacted]@postgres:5432/gateway?sslmode=disable&password=[redacted]"
            ),
            "{debug}"
        );
        assert!(debug.contains("nats://vk:[redacted]@nats:4222"), "{debug}");
        assert!(debug.contains("request_timeout_secs: 15"), "{debug}");
    }

    #[test]
    fn redact_url_keeps_everything_but_the_password() {
        for (url, shown) in [
            (
                "postgres://vk@postgres/gateway",
                "postgres://vk@postgres/gateway",
            ),
            ("postgres://postgres/gateway", "postgres://postgres/gateway"),
            (
                "postgres://vk:p%40ss@h1:5432,h2:5433/db",
                "postgres://vk:[redacted]@h1:5432,h2:5433/db",
            ),
            // an `@` inside the password: the host starts after the last one
            (
                "postgres://vk:a@b@host/db",
                "postgres://vk:[redacted]@host/db",
            ),
            (
                "postgres://vk:a/b?c@host/db",
                "postgres://vk:[redacted]@host/db",
            ),
            (
                "postgres://vk:a#b@host/db",
                "postgres://vk:[redacted]@host/db",
            ),
            (
                "postgres://vk:a/b@host/db",
                "postgres://vk:[redacted]@host/db",
            ),
            (
                "nats://s3cr3ttoken@nats:4222",
                "nats://[redacted]@nats:4222",
            ),
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            (
                "http://collector:4318/v1?x=1#f",
                "http://collector:4318/v1?x=1#f",
            ),
            (
                "postgres:///db?host=/run&PASSWORD=x#frag",
                "postgres:///db?host=/run&PASSWORD=[redacted]#frag",
            ),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn placeholders_and_missing_values_are_refused_by_name() {
        assert_eq!(
            Secret::require(None, "VK_SECRET"),
            Err(SecretError::Missing("VK_SECRET"))
        );
        assert_eq!(
            Secret::require(Some("  "), "VK_SECRET"),
            Err(SecretError::Missing("VK_SECRET"))
        );
        for p in ["your_vk_token", "change_me", "CHANGEME", "<token>", "xxxx"] {
            let err = Secret::require(Some(p), "VK_ACCESS_TOKEN").unwrap_err();
            assert_eq!(err, SecretError::Placeholder("VK_ACCESS_TOKEN"));
            assert!(!err.to_string().contains(p));
        }
        let s = Secret::require(Some("vk1.a.real"), "VK_ACCESS_TOKEN").expect("accepted");
        assert_eq!(s.expose(), "vk1.a.real");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }
}
