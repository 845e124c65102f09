//! The subcommands: `serve`, `migrate`, `check`, `dlq list|replay`.

use std::process::ExitCode;

use service_kit::bus::Bus;

use crate::config::{Cli, Command, Settings};
use crate::{App, AppState, MIGRATOR, SERVICE, store};

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
            check(settings).await
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

/// Prints the configuration summary and tries the stored token against amoCRM.
async fn check(settings: Settings) -> anyhow::Result<()> {
    println!(
        "AMOCRM_DOMAIN: {} (webhooks must say account[subdomain]={})",
        settings.domain, settings.subdomain
    );
    println!("AMOCRM_BASE_URL: {}", settings.base_url);
    let rt = settings.runtime.clone();
    let pool = service_kit::db::connect(&rt.database_url, store::SCHEMA, 2).await?;
    let bus = Bus::connect(&rt.nats_url, &rt.nats_subject_prefix, SERVICE).await?;
    let state = AppState::from_parts(settings, pool, bus)?;
    match state.tokens.check().await {
        Ok(what) => {
            println!("OAuth token: ok ({what})");
            Ok(())
        }
        Err(e) => {
            println!("OAuth token: FAILED — {e:#}");
            anyhow::bail!("the amoCRM token does not work")
        }
    }
}
