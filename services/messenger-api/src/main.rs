//! `messenger-api` binary: parse the command line, start telemetry, run the command.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let cli = messenger_api::config::Cli::parse();
    messenger_api::cli::run(cli).await
}
