//! `vk-connector` binary: parse the command line, hand it to the shared `cli::main`.

use clap::Parser;
use vk_connector::cli::{self, VkConnector};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let vk_connector::config::Cli { command, config } = vk_connector::config::Cli::parse();
    let output = cli::log_output(command.as_ref());
    service_kit::cli::main_logging_to::<VkConnector, _, _>(&config, output, || {
        cli::run(command, &config)
    })
    .await
}
