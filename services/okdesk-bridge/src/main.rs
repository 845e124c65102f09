//! `okdesk-bridge` binary: parse the command line, hand it to the shared `cli::main`.

use clap::Parser;
use okdesk_bridge::cli::{self, Command, OkdeskBridge};
use service_kit::cli::StandardCommand;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let okdesk_bridge::config::Cli { command, config } = okdesk_bridge::config::Cli::parse();
    let output = StandardCommand::log_output(command.as_ref().map(|Command::Standard(c)| c));
    service_kit::cli::main_logging_to::<OkdeskBridge, _, _>(&config, output, || {
        cli::run(command, &config)
    })
    .await
}
