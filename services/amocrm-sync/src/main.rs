//! `amocrm-sync` binary: parse the command line and hand it to the shared `cli::main`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::config::load_dotenv();
    let cli = amocrm_sync::config::Cli::parse();
    // One-shot commands print their result on stdout, so they log to stderr.
    let output = amocrm_sync::cli::log_output(cli.command.as_ref());
    let run = || amocrm_sync::cli::run(cli.command, &cli.config);
    service_kit::cli::main_logging_to::<amocrm_sync::cli::AmoSync, _, _>(&cli.config, output, run)
        .await
}
