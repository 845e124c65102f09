//! amocrm-sync on the shared command line: the standard commands (`serve | migrate | check |
//! dlq | healthcheck`, see [`service_kit::cli`]), what `check` adds for amoCRM, and this
//! service's own `oauth-url`.

use std::time::Duration;

use service_kit::cli::{CheckLine, CliError, LogOutput, Service, StandardCommand, run_standard};
use service_kit::{ConfigError, Runtime, RuntimeArgs};
use tokio_util::sync::CancellationToken;

use crate::config::{Command, Config, ConsentMode, Settings};
use crate::store::Store;
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
        Some(Command::OauthUrl {
            mode,
            valid_minutes,
        }) => oauth_url(config, mode, valid_minutes).await,
    }
}

/// Where `command`'s log lines go: stdout for `serve`, stderr for the one-shot commands whose
/// result is printed on stdout (`oauth-url` prints the link there).
pub fn log_output(command: Option<&Command>) -> LogOutput {
    match command {
        None => LogOutput::Stdout,
        Some(Command::Standard(c)) => StandardCommand::log_output(Some(c)),
        Some(Command::OauthUrl { .. }) => LogOutput::Stderr,
    }
}

/// `oauth-url`: migrates schema `amocrm`, stores a new state and prints the consent link on
/// stdout (and, on stderr, until when it works).
async fn oauth_url(config: &Config, mode: ConsentMode, valid_minutes: u32) -> Result<(), CliError> {
    let settings = Settings::from_config(config)?;
    let pool = service_kit::db::connect_and_migrate(
        &settings.runtime.database_url,
        store::SCHEMA,
        2,
        &MIGRATOR,
    )
    .await?;
    let store = Store::new(pool);
    let valid_for = Duration::from_secs(u64::from(valid_minutes) * 60);
    let link = crate::oauth::consent_link(&store, &settings, mode, valid_for).await?;
    store.pool().close().await;
    println!("{}", link.url);
    let until = link
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    eprintln!(
        "Open it as an administrator of {}, choose the account and press \"Allow\". The link \
         works once, until {until}.",
        settings.domain
    );
    Ok(())
}
