//! The command line: the runtime's standard commands (`serve | migrate | check | dlq |
//! healthcheck`) — vk-connector has none of its own — and what `check` asks VK and Chatwoot.

use clap::Subcommand;
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
    service_kit::cli::run_standard::<VkConnector>(standard, config).await
}

/// vk-connector as the shared command line sees it.
pub struct VkConnector;

impl Service for VkConnector {
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
        let report = check_upstreams(&settings, &rt.http).await;
        Ok(vec![
            CheckLine::new("VK_ACCESS_TOKEN", report.vk),
            CheckLine::new("CHATWOOT_API_ACCESS_TOKEN", report.chatwoot),
        ])
    }
}

/// The upstream half of `vk-connector check`: one line per upstream, `Ok` with what the
/// token belongs to, `Err` with why it fails and what to do.
#[derive(Debug)]
pub struct CheckReport {
    /// VK: the community's name and id, or why `groups.getById` failed.
    pub vk: Result<String, String>,
    /// Chatwoot: who the token belongs to, or why `GET /api/v1/profile` failed.
    pub chatwoot: Result<String, String>,
}

impl CheckReport {
    /// Both tokens work.
    pub fn ok(&self) -> bool {
        self.vk.is_ok() && self.chatwoot.is_ok()
    }
}

/// Tries the VK token (`groups.getById` of `VK_GROUP_ID`) and the Chatwoot token
/// (`GET /api/v1/profile`) through `http` (the runtime's client).
pub async fn check_upstreams(settings: &Settings, http: &reqwest::Client) -> CheckReport {
    let vk = vk_api::VkClient::new(
        http.clone(),
        &settings.vk.api_url,
        settings.vk.access_token.expose(),
        &settings.vk.api_version,
    );
    let chatwoot = chatwoot_api::ChatwootClient::new(
        http.clone(),
        &settings.chatwoot.base_url,
        settings.chatwoot.api_token.expose(),
        settings.chatwoot.account_id,
    );
    let vk = match vk.group_by_id(settings.vk.group_id).await {
        Ok(g) => Ok(format!("community «{}», id {}", g.name, g.id)),
        Err(e) => {
            let hint = match e.code() {
                Some(5) => " — the token is wrong or revoked: issue a new community token",
                Some(15) | Some(27) => " — the token lacks rights for this method",
                Some(100) => " — check VK_GROUP_ID",
                _ => "",
            };
            Err(format!("{e}{hint}"))
        }
    };
    let chatwoot = match chatwoot.profile().await {
        Ok(p) => Ok(format!(
            "acting as «{}», id {}",
            p.name.unwrap_or_default(),
            p.id
        )),
        Err(e) => {
            let hint = match e.status() {
                Some(401) => " — the token is wrong: copy it from Profile settings → Access token",
                None => " — check CHATWOOT_BASE_URL",
                _ => "",
            };
            Err(format!("{e}{hint}"))
        }
    };
    CheckReport { vk, chatwoot }
}
