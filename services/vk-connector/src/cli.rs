//! The command line: the runtime's standard commands (`serve | migrate | check | dlq |
//! healthcheck`), vk-connector's own `setup` and `import-conversations`, and what `check` asks
//! VK and Chatwoot.

use clap::Subcommand;
use service_kit::Runtime;
use service_kit::cli::{CheckLine, CliError, Service, StandardCommand};
use service_kit::telemetry::LogOutput;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Settings};
use crate::{MIGRATOR, SERVICE, store};

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The commands every service has.
    #[command(flatten)]
    Standard(StandardCommand),
    /// This service's own commands.
    #[command(flatten)]
    Own(OwnCommand),
}

/// The commands only vk-connector has.
#[derive(Debug, Clone, Subcommand)]
pub enum OwnCommand {
    /// Register this connector with VK and Chatwoot in one go, safe to re-run: the VK callback
    /// server at {URL}/vk/callback/{VK_CALLBACK_ID} with VK_SECRET, its event types and API
    /// version (or the Long Poll settings with VK_LONG_POLL=true), the Chatwoot API inbox
    /// (found by CHATWOOT_INBOX_ID or CHATWOOT_INBOX_NAME, else created) and its
    /// message_created webhook to {URL}/chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK}. Missing
    /// secrets are generated; the values to keep are printed as .env lines. Needs
    /// VK_GROUP_ID, VK_ACCESS_TOKEN, CHATWOOT_BASE_URL, CHATWOOT_API_ACCESS_TOKEN and
    /// CHATWOOT_ACCOUNT_ID; not the database.
    Setup {
        /// Public base URL of this connector, as VK and Chatwoot reach it
        /// (https://vk.example.com).
        #[arg(long)]
        url: String,
        /// Read what is configured and print the calls that would change it, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Map every open conversation of the inbox that another VK gateway created (its contact's
    /// identifier, custom attributes or contact-inbox source_id name the VK user) to its VK
    /// dialogue, so agents' replies in them reach VK. Conversations already mapped are left
    /// alone. Needs the database and Chatwoot.
    ImportConversations {
        /// Print what would be mapped without storing it.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs the parsed command (`None` serves).
///
/// Errors: see [`CliError`] (bad configuration → exit 2, failure → exit 1).
pub async fn run(command: Option<Command>, config: &Config) -> Result<(), CliError> {
    match command {
        None => service_kit::cli::run_standard::<VkConnector>(None, config).await,
        Some(Command::Standard(c)) => {
            service_kit::cli::run_standard::<VkConnector>(Some(c), config).await
        }
        Some(Command::Own(own)) => run_own(own, config).await,
    }
}

/// Where `command`'s log lines go: stdout for `serve`, stderr for the one-shot commands whose
/// result is printed on stdout.
pub fn log_output(command: Option<&Command>) -> LogOutput {
    match command {
        None => LogOutput::Stdout,
        Some(Command::Standard(c)) => StandardCommand::log_output(Some(c)),
        Some(Command::Own(_)) => LogOutput::Stderr,
    }
}

async fn run_own(own: OwnCommand, config: &Config) -> Result<(), CliError> {
    let http = service_kit::http_client::build(SERVICE, config.runtime.upstream_timeout())
        .map_err(anyhow::Error::from)?;
    match own {
        OwnCommand::Setup { url, dry_run } => {
            let input = crate::setup::SetupInput::from_config(config, &url, dry_run)?;
            let (vk, chatwoot) = clients_of(config, &http);
            let report = crate::setup::run(&vk, &chatwoot, &input).await?;
            print!("{}", report.output);
        }
        OwnCommand::ImportConversations { dry_run } => {
            let settings = Settings::from_config(config)?;
            let chatwoot = crate::chatwoot_client(&settings, &http);
            let inbox_id = crate::resolve_inbox(&chatwoot, &settings.chatwoot.inbox)
                .await
                .map_err(anyhow::Error::from)?;
            let pool = service_kit::db::connect_and_migrate(
                &settings.runtime.database_url,
                store::SCHEMA,
                2,
                &MIGRATOR,
            )
            .await?;
            let store = store::Store::new(pool);
            let report = crate::legacy::import(&store, &chatwoot, inbox_id, dry_run, |line| {
                println!("{line}")
            })
            .await?;
            println!("{}", report.summary(dry_run));
        }
    }
    Ok(())
}

/// The VK and Chatwoot clients of a configuration that need not pass [`Settings`] (for
/// `setup`, before the secrets it hands out exist); [`crate::setup::SetupInput::from_config`]
/// has checked the values used.
fn clients_of(
    config: &Config,
    http: &reqwest::Client,
) -> (vk_api::VkClient, chatwoot_api::ChatwootClient) {
    let vk = vk_api::VkClient::new(
        http.clone(),
        &config.vk_api_url,
        config.vk_access_token.as_deref().unwrap_or_default().trim(),
        &config.vk_api_version,
    );
    let chatwoot = chatwoot_api::ChatwootClient::new(
        http.clone(),
        config
            .chatwoot_base_url
            .as_deref()
            .unwrap_or_default()
            .trim(),
        config
            .chatwoot_api_access_token
            .as_deref()
            .unwrap_or_default()
            .trim(),
        config.chatwoot_account_id.unwrap_or_default(),
    );
    (vk, chatwoot)
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
        let chatwoot_ok = report.chatwoot.is_ok();
        let mut lines = vec![
            CheckLine::new("VK_ACCESS_TOKEN", report.vk),
            CheckLine::new("CHATWOOT_API_ACCESS_TOKEN", report.chatwoot),
        ];
        if chatwoot_ok {
            let chatwoot = crate::chatwoot_client(&settings, &rt.http);
            let inbox = match crate::resolve_inbox(&chatwoot, &settings.chatwoot.inbox).await {
                Ok(id) => Ok(format!("inbox {id}")),
                Err(e) => Err(format!("{e:#}")),
            };
            let name = match settings.chatwoot.inbox {
                crate::config::InboxRef::Id(_) => "CHATWOOT_INBOX_ID",
                crate::config::InboxRef::Name(_) => "CHATWOOT_INBOX_NAME",
            };
            lines.push(CheckLine::new(name, inbox));
        }
        Ok(lines)
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
    let vk = crate::vk_client(settings, http);
    let chatwoot = crate::chatwoot_client(settings, http);
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
