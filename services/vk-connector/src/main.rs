//! `vk-connector` binary: parse the command line, hand it to the shared `cli::main`.

use clap::Parser;
use service_kit::cli::StandardCommand;
use vk_connector::cli::{self, Command, VkConnector};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let vk_connector::config::Cli { command, config } = vk_connector::config::Cli::parse();
    let output = StandardCommand::log_output(command.as_ref().map(|Command::Standard(c)| c));
    service_kit::cli::main_logging_to::<VkConnector, _, _>(&config, output, || {
        cli::run(command, &config)
    })
    .await
}
