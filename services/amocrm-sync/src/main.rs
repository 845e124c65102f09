//! `amocrm-sync` binary: parse the command line and hand it to the shared `cli::main`.

use amocrm_sync::config::Command;
use clap::Parser;
use service_kit::cli::StandardCommand;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let cli = amocrm_sync::config::Cli::parse();
    let output = StandardCommand::log_output(cli.command.as_ref().map(|Command::Standard(c)| c));
    let run = || amocrm_sync::cli::run(cli.command, &cli.config);
    service_kit::cli::main_logging_to::<amocrm_sync::cli::AmoSync, _, _>(&cli.config, output, run)
        .await
}
