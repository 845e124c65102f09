//! `vk-connector` binary: parse the command line, start telemetry, run the command.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let cli = vk_connector::config::Cli::parse();
    vk_connector::cli::run(cli).await
}
