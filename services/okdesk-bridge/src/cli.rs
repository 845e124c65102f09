//! The command line: the runtime's standard commands (`serve | migrate | check | dlq |
//! healthcheck`) — okdesk-bridge has none of its own — and what `check` asks Okdesk (what the
//! old bot's `test_api.py` did).

use clap::Subcommand;
use okdesk_api::{OkdeskClient, OkdeskError};
use service_kit::Runtime;
use service_kit::cli::{CheckLine, CliError, Service, StandardCommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Settings};
use crate::{MIGRATOR, SERVICE, store};

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The commands every service has.
    #[command(flatten)]
    Standard(StandardCommand),
}

/// Runs the parsed command (`None` serves).
///
/// Errors: see [`CliError`] (bad configuration → exit 2, failure → exit 1).
pub async fn run(command: Option<Command>, config: &Config) -> Result<(), CliError> {
    let standard = command.map(|Command::Standard(c)| c);
    service_kit::cli::run_standard::<OkdeskBridge>(standard, config).await
}

/// okdesk-bridge as the shared command line sees it.
pub struct OkdeskBridge;

impl Service for OkdeskBridge {
    type Config = Config;
    type Settings = Settings;
    const NAME: &'static str = SERVICE;
    const SCHEMA: &'static str = store::SCHEMA;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn runtime(config: &Config) -> &service_kit::RuntimeArgs {
        &config.runtime
    }

    fn port(config: &Config) -> u16 {
        config.port
    }

    fn settings(config: &Config) -> Result<Settings, service_kit::ConfigError> {
        Settings::from_config(config)
    }

    async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
        crate::build(settings).await?.run_until(shutdown).await
    }

    async fn check(settings: Settings, rt: Runtime) -> anyhow::Result<Vec<CheckLine>> {
        let okdesk = OkdeskClient::new(
            rt.http.clone(),
            &settings.api_url,
            settings.api_token.expose(),
        );
        let r = check_okdesk(&settings, &okdesk).await;
        Ok(vec![
            CheckLine::new("OKDESK_API_TOKEN", r.token),
            CheckLine::new("OKDESK_INN_PARAMETER_CODE", r.company_search),
        ])
    }
}

/// The Okdesk half of `okdesk-bridge check`.
#[derive(Debug)]
pub struct CheckReport {
    /// The API answers and the token is valid (the issue statuses can be read, so issues can be
    /// worked with).
    pub token: Result<String, String>,
    /// Company search by the INN parameter works for this key.
    pub company_search: Result<String, String>,
}

fn hint(e: &OkdeskError) -> &'static str {
    match e.status() {
        Some(401) => " — the token is wrong or revoked: copy it from Okdesk → Settings → API",
        Some(403) => " — the key lacks the right; use an employee's key",
        Some(404) => " — check OKDESK_API_URL (https://<account>.okdesk.ru/api/v1)",
        None if matches!(e, OkdeskError::Transport { .. }) => {
            " — check OKDESK_API_URL and the network"
        }
        _ => "",
    }
}

/// Asks Okdesk what `check` reports.
pub async fn check_okdesk(settings: &Settings, okdesk: &OkdeskClient) -> CheckReport {
    let token = match okdesk.statuses().await {
        Ok(s) => Ok(format!(
            "the API answers; {} issue statuses ({})",
            s.len(),
            s.iter()
                .map(|s| s.code.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => Err(format!("{e}{}", hint(&e))),
    };
    let company_search = if token.is_err() {
        Err("not checked: the token does not work".to_owned())
    } else {
        match okdesk
            .find_companies_by_inn(&settings.inn_parameter_code, "7707083893")
            .await
        {
            Ok(found) => Ok(format!(
                "company search by parameter `{}` works ({} found for a sample INN)",
                settings.inn_parameter_code,
                found.len()
            )),
            Err(e @ OkdeskError::CompanySearchNotAllowed { .. }) => Err(format!(
                "{e} — company search is not available to keys tied to contact persons"
            )),
            Err(e) => Err(format!(
                "{e}{} — check that the company parameter `{}` exists",
                hint(&e),
                settings.inn_parameter_code
            )),
        }
    };
    CheckReport {
        token,
        company_search,
    }
}
