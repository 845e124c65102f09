//! `amocrm-sync` binary: parse the command line, start telemetry, run the command.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let cli = amocrm_sync::config::Cli::parse();
    amocrm_sync::cli::run(cli).await
}
