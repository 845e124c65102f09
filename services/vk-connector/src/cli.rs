//! The subcommands: `serve`, `migrate`, `check`, `dlq list|replay`.

use std::process::ExitCode;

use crate::config::{Cli, Command, Settings};
use crate::{App, MIGRATOR, SERVICE, store};

/// Runs the parsed command line; the exit code is 0 on success, 1 on failure, 2 on bad
/// configuration.
pub async fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    let _telemetry = match service_kit::telemetry::init(SERVICE, &cli.config.runtime) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{SERVICE}: {e:#}");
            return ExitCode::from(2);
        }
    };
    let settings = || {
        Settings::from_config(&cli.config).inspect_err(|e| {
            eprintln!("{SERVICE}: {e}");
        })
    };
    let result = match command {
        Command::Serve => {
            let Ok(settings) = settings() else {
                return ExitCode::from(2);
            };
            serve(settings).await
        }
        Command::Migrate => migrate(&cli.config.runtime).await,
        Command::Check => {
            let Ok(settings) = settings() else {
                return ExitCode::from(2);
            };
            return check(settings).await;
        }
        Command::Dlq { action } => {
            service_kit::cli::run_dlq(SERVICE, store::SCHEMA, &cli.config.runtime, action).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{SERVICE} failed");
            eprintln!("{SERVICE}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = service_kit::shutdown::on_signal();
    App::build(settings).await?.run_until(shutdown).await
}

async fn migrate(rt: &service_kit::RuntimeArgs) -> anyhow::Result<()> {
    service_kit::db::connect_and_migrate(&rt.database_url, store::SCHEMA, 2, &MIGRATOR).await?;
    println!("migrations of schema `{}` are up to date", store::SCHEMA);
    Ok(())
}

/// The outcome of `vk-connector check`: one line per upstream, `Ok` with what the token
/// belongs to, `Err` with why it fails and what to do.
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
/// (`GET /api/v1/profile`).
pub async fn check_upstreams(state_settings: &Settings) -> anyhow::Result<CheckReport> {
    let http = service_kit::http_client::build(SERVICE, std::time::Duration::from_secs(10))?;
    let settings = state_settings;
    let vk = vk_api::VkClient::new(
        http.clone(),
        &settings.vk.api_url,
        settings.vk.access_token.expose(),
        &settings.vk.api_version,
    );
    let chatwoot = chatwoot_api::ChatwootClient::new(
        http,
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
    Ok(CheckReport { vk, chatwoot })
}

async fn check(settings: Settings) -> ExitCode {
    let report = match check_upstreams(&settings).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{SERVICE}: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    for (name, r) in [
        ("VK_ACCESS_TOKEN", &report.vk),
        ("CHATWOOT_API_ACCESS_TOKEN", &report.chatwoot),
    ] {
        match r {
            Ok(what) => println!("{name}: ok ({what})"),
            Err(why) => println!("{name}: FAILED — {why}"),
        }
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
