//! The command line every service shares: `serve | migrate | check | dlq list | dlq replay <id>
//! | healthcheck`, and [`main`], which owns telemetry start and exit codes.
//!
//! A service implements [`Service`] and flattens [`StandardCommand`] into its own clap
//! subcommand enum (`#[command(flatten)] Standard(StandardCommand)`), adding its own commands
//! beside it. Exit codes: 0 success, 1 failure (or a failed check), 2 bad configuration — one
//! line on stderr naming the variable.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, RuntimeArgs};
use crate::dead_letter::DeadLetters;
use crate::runtime::Runtime;
pub use crate::telemetry::LogOutput;

/// The commands every service has.
#[derive(Debug, Clone, Subcommand)]
pub enum StandardCommand {
    /// Run the HTTP server and the workers (the default).
    Serve,
    /// Run the database migrations of the service's schema and exit.
    Migrate,
    /// Check Postgres, NATS and the upstream credentials, one line each; exit 1 if one fails.
    Check,
    /// Inspect and replay dead letters.
    Dlq {
        /// `list` or `replay <id>`.
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Ask the running service's /ready on 127.0.0.1:PORT; exit 0 when it is ready. For the
    /// container healthcheck, so images need no curl.
    Healthcheck {
        /// Path to ask.
        #[arg(long, default_value = "/ready")]
        path: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
}

/// `<service> dlq …`: inspect and replay the service's dead letters.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// List dead letters, newest first.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Include the ones already replayed.
        #[arg(long)]
        all: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish a dead letter again to its subject and mark it replayed (once; a replayed one
    /// again only with --force).
    Replay {
        /// The dead letter's id (from `dlq list`).
        id: i64,
        /// Replay it even though it was replayed before.
        #[arg(long)]
        force: bool,
    },
}

/// One line of `check`: what was checked, and `Ok(what it found)` or `Err(why it fails and
/// what to do)`.
#[derive(Debug, Clone)]
pub struct CheckLine {
    /// What was checked, usually the variable: `VK_ACCESS_TOKEN`, `postgres`.
    pub name: String,
    /// What was found, or why it failed.
    pub result: Result<String, String>,
}

impl CheckLine {
    /// A line from a name and a result.
    pub fn new(name: impl Into<String>, result: Result<String, String>) -> Self {
        Self {
            name: name.into(),
            result,
        }
    }
}

/// Why a command did not succeed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration: exit 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command failed: exit 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// A check failed; its lines were printed already: exit 1.
    #[error("check failed")]
    CheckFailed,
}

/// What a service tells the shared command line about itself.
pub trait Service {
    /// Its clap settings struct (the service's own flags plus the flattened [`RuntimeArgs`]).
    type Config;
    /// Its validated settings.
    type Settings: Send;
    /// Name in logs, metrics, `/health`.
    const NAME: &'static str;
    /// Postgres schema.
    const SCHEMA: &'static str;
    /// The schema's migrations.
    fn migrator() -> &'static Migrator;
    /// The shared flags inside `config`.
    fn runtime(config: &Self::Config) -> &RuntimeArgs;
    /// The HTTP port `config` says (for `healthcheck`).
    fn port(config: &Self::Config) -> u16;
    /// Validates `config`; the error names the variable.
    fn settings(config: &Self::Config) -> Result<Self::Settings, ConfigError>;
    /// Builds and runs the service until `shutdown` is cancelled.
    fn serve(
        settings: Self::Settings,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The service's own `check` lines (upstream tokens …); Postgres and NATS are checked
    /// before, and `rt` is connected to them (without migrating).
    fn check(
        settings: Self::Settings,
        rt: Runtime,
    ) -> impl Future<Output = anyhow::Result<Vec<CheckLine>>> + Send;
}

impl StandardCommand {
    /// Where this command's log lines go: stdout for `serve` (None), stderr for the others,
    /// whose own output is on stdout.
    pub fn log_output(command: Option<&Self>) -> LogOutput {
        match command {
            None | Some(Self::Serve) => LogOutput::Stdout,
            Some(_) => LogOutput::Stderr,
        }
    }
}

/// Starts telemetry (logs on stdout), runs `command`, and turns the outcome into the exit
/// code; the one `main` every binary calls. See [`main_logging_to`].
pub async fn main<S, F, Fut>(config: &S::Config, command: F) -> ExitCode
where
    S: Service,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    main_logging_to::<S, F, Fut>(config, LogOutput::Stdout, command).await
}

/// [`main`] with the log lines on `output`: a one-shot command whose result is printed on
/// stdout logs to stderr ([`StandardCommand::log_output`]).
pub async fn main_logging_to<S, F, Fut>(
    config: &S::Config,
    output: LogOutput,
    command: F,
) -> ExitCode
where
    S: Service,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    let name = S::NAME;
    let _telemetry = match crate::telemetry::init_to(name, S::runtime(config), output) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            return ExitCode::from(2);
        }
    };
    match command().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Config(e)) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
        Err(CliError::CheckFailed) => ExitCode::FAILURE,
        Err(CliError::Failed(e)) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one of the standard commands (`None` serves).
///
/// Errors: see [`CliError`].
pub async fn run_standard<S: Service>(
    command: Option<StandardCommand>,
    config: &S::Config,
) -> Result<(), CliError> {
    let rt = S::runtime(config);
    match command.unwrap_or(StandardCommand::Serve) {
        StandardCommand::Serve => {
            let settings = S::settings(config)?;
            let shutdown = crate::shutdown::on_signal();
            S::serve(settings, shutdown).await?;
        }
        StandardCommand::Migrate => {
            crate::db::connect_and_migrate(&rt.database_url, S::SCHEMA, 2, S::migrator()).await?;
            println!("migrations of schema `{}` are up to date", S::SCHEMA);
        }
        StandardCommand::Check => {
            let settings = S::settings(config)?;
            check::<S>(settings, rt).await?;
        }
        StandardCommand::Dlq { action } => run_dlq(S::NAME, S::SCHEMA, rt, action).await?,
        StandardCommand::Healthcheck { path, timeout_secs } => {
            healthcheck(S::port(config), &path, Duration::from_secs(timeout_secs)).await?
        }
    }
    Ok(())
}

async fn check<S: Service>(settings: S::Settings, args: &RuntimeArgs) -> Result<(), CliError> {
    let mut lines = Vec::new();
    let pool = crate::db::connect(&args.database_url, S::SCHEMA, 2).await;
    lines.push(CheckLine::new(
        "DATABASE_URL",
        pool.as_ref()
            .map(|_| "Postgres answers".to_owned())
            .map_err(|e| format!("{e:#}")),
    ));
    let bus = crate::bus::Bus::connect(&args.nats_url, &args.nats_subject_prefix, S::NAME).await;
    lines.push(CheckLine::new(
        "NATS_URL",
        bus.as_ref()
            .map(|b| {
                format!(
                    "JetStream streams {} and {} ready",
                    b.events_stream(),
                    b.commands_stream()
                )
            })
            .map_err(|e| format!("{e:#}")),
    ));
    if let (Ok(pool), Ok(bus)) = (pool, bus) {
        let rt = Runtime::from_parts(S::NAME, S::SCHEMA, args, pool, bus)?;
        lines.extend(S::check(settings, rt).await?);
    }
    let mut ok = true;
    for line in &lines {
        match &line.result {
            Ok(what) => println!("{}: ok ({what})", line.name),
            Err(why) => {
                ok = false;
                println!("{}: FAILED — {why}", line.name);
            }
        }
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::CheckFailed)
    }
}

async fn healthcheck(port: u16, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if status.is_success() {
        println!("{body}");
        Ok(())
    } else {
        anyhow::bail!("{url} answered {status}: {body}")
    }
}

/// Runs a `dlq` action against `<schema>.dead_letters`, printing to stdout.
///
/// Errors: Postgres unreachable, no such dead letter, or (replay) NATS unreachable.
pub async fn run_dlq(
    service: &str,
    schema: &str,
    rt: &RuntimeArgs,
    action: DlqAction,
) -> anyhow::Result<()> {
    let pool = crate::db::connect(&rt.database_url, schema, 2).await?;
    let dead = DeadLetters::new(pool, schema);
    match action {
        DlqAction::List { limit, all, json } => {
            let rows = dead.list(limit, !all).await?;
            if json {
                for r in &rows {
                    println!("{}", serde_json::to_string(r)?);
                }
            } else if rows.is_empty() {
                println!("no dead letters{}", if all { "" } else { " waiting" });
            } else {
                println!(
                    "{:>6}  {:<20}  {:<36}  {:<24}  {:>8}  reason",
                    "id", "created_at", "subject", "key", "attempts"
                );
                for r in &rows {
                    let created = r
                        .created_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    let replayed = if r.replayed_at.is_some() {
                        " (replayed)"
                    } else {
                        ""
                    };
                    println!(
                        "{:>6}  {created:<20}  {:<36}  {:<24}  {:>8}  {}{replayed}",
                        r.id,
                        r.subject,
                        r.ordering_key.as_deref().unwrap_or("-"),
                        r.attempts,
                        r.reason
                    );
                }
            }
        }
        DlqAction::Replay { id, force } => {
            let bus =
                crate::bus::Bus::connect(&rt.nats_url, &rt.nats_subject_prefix, service).await?;
            let dl = dead.replay_with(&bus, id, force).await?;
            println!("dead letter {} replayed to {}", dl.id, dl.subject);
        }
    }
    Ok(())
}
