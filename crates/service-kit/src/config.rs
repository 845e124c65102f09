//! Runtime configuration shared by every service, read from flags or the environment.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Flags every service has. Flatten it into the service's own clap struct:
/// `#[command(flatten)] pub runtime: RuntimeArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Postgres connection URL, e.g. postgres://vk:…@postgres:5432/gateway. The service works
    /// only in its own schema.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Maximum Postgres connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// NATS server URL (JetStream enabled).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
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
        }
    }

    /// [`Self::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
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

/// Loads `.env` from the working directory when there is one (values already in the
/// environment win). Call before parsing the config.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

#[cfg(test)]
mod tests {
    use super::*;

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
