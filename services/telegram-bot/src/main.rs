//! `telegram-bot` binary: parse the command line, hand it to the shared `cli::main`.

use clap::Parser;
use telegram_bot::cli::{self, TelegramBot};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let telegram_bot::config::Cli { command, config } = telegram_bot::config::Cli::parse();
    let output = cli::log_output(command.as_ref());
    service_kit::cli::main_logging_to::<TelegramBot, _, _>(&config, output, || {
        cli::run(command, &config)
    })
    .await
}
