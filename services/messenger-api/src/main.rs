//! `messenger-api` binary: parse the command line and hand it to the shared `cli::main`
//! (the runtime's standard commands and this service's own `admin`/`invite`).

use clap::Parser;
use messenger_api::cli::{self, Messenger};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let messenger_api::config::Cli { command, config } = messenger_api::config::Cli::parse();
    let output = cli::log_output(command.as_ref());
    service_kit::cli::main_logging_to::<Messenger, _, _>(&config, output, || {
        cli::run(command, &config)
    })
    .await
}
