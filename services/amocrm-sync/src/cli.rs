//! amocrm-sync on the shared command line: the standard commands (`serve | migrate | check |
//! dlq | healthcheck`, see [`service_kit::cli`]) and what `check` adds for amoCRM.

use service_kit::cli::{CheckLine, CliError, Service, run_standard};
use service_kit::{ConfigError, Runtime, RuntimeArgs};
use tokio_util::sync::CancellationToken;

use crate::config::{Command, Config, Settings};
use crate::{AppState, MIGRATOR, SERVICE, store};

/// amocrm-sync as a [`Service`].
pub struct AmoSync;

impl Service for AmoSync {
    type Config = Config;
    type Settings = Settings;
    const NAME: &'static str = SERVICE;
    const SCHEMA: &'static str = store::SCHEMA;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn runtime(config: &Config) -> &RuntimeArgs {
        &config.runtime
    }

    fn port(config: &Config) -> u16 {
        config.port
    }

    fn settings(config: &Config) -> Result<Settings, ConfigError> {
        Settings::from_config(config)
    }

    async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
        crate::build(settings).await?.run_until(shutdown).await
    }

    /// The account the webhooks must come from, the API base URL, and the stored token tried
    /// against amoCRM (`GET /api/v4/account`, refreshed first when due).
    async fn check(settings: Settings, rt: Runtime) -> anyhow::Result<Vec<CheckLine>> {
        let mut lines = vec![
            CheckLine::new(
                "AMOCRM_DOMAIN",
                Ok(format!(
                    "{}; webhooks must say account[subdomain]={}",
                    settings.domain, settings.subdomain
                )),
            ),
            CheckLine::new("AMOCRM_BASE_URL", Ok(settings.base_url.clone())),
        ];
        let state = AppState::new(&rt, settings);
        let token = state.tokens.check().await.map_err(|e| format!("{e:#}"));
        lines.push(CheckLine::new("OAuth token", token));
        Ok(lines)
    }
}

/// Runs the parsed command (`None` serves).
///
/// Errors: see [`CliError`]; `cli::main` turns them into exit codes.
pub async fn run(command: Option<Command>, config: &Config) -> Result<(), CliError> {
    match command {
        None => run_standard::<AmoSync>(None, config).await,
        Some(Command::Standard(c)) => run_standard::<AmoSync>(Some(c), config).await,
    }
}
