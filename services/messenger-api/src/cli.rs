//! The command line: the runtime's standard commands (`serve | migrate | check | dlq list|replay
//! | healthcheck`, flattened in) and this service's own, `admin create` and `invite create`;
//! and [`Messenger`], what the runtime's command line needs to know about this service.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use service_kit::cli::{CheckLine, CliError, LogOutput, Service, StandardCommand, run_standard};
use service_kit::{ConfigError, Runtime, RuntimeArgs};
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::password::Passwords;
use crate::auth::tokens::random_code;
use crate::config::{Argon2Settings, Config, Settings};
use crate::phone::Phone;
use crate::store::Store;
use crate::{App, MIGRATOR, SERVICE, store};

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The runtime's commands: serve (the default), migrate, check, dlq, healthcheck.
    #[command(flatten)]
    Standard(StandardCommand),
    /// This service's own commands.
    #[command(flatten)]
    Own(OwnCommand),
}

/// The commands only messenger-api has.
#[derive(Debug, Subcommand)]
pub enum OwnCommand {
    /// Administrator accounts.
    Admin {
        /// `create`.
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Invite codes for registration.
    Invite {
        /// `create`.
        #[command(subcommand)]
        action: InviteAction,
    },
}

/// `messenger-api admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an administrator (or make an existing user one). Without --password-stdin a
    /// password is generated and printed once.
    Create {
        /// Phone number in E.164, e.g. +79991234567.
        #[arg(long)]
        phone: String,
        /// Name shown to other users.
        #[arg(long, default_value = "Administrator")]
        display_name: String,
        /// Read the password from the first line of standard input (typed, or piped).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `messenger-api invite …`.
#[derive(Debug, Subcommand)]
pub enum InviteAction {
    /// Create invite codes and print them, one per line.
    Create {
        /// How many registrations one code allows.
        #[arg(long, default_value_t = 1)]
        max_uses: i32,
        /// Hours until the code expires.
        #[arg(long, default_value_t = 72)]
        expires_in_hours: i64,
        /// How many codes to create.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

/// messenger-api as the runtime's command line sees it.
pub struct Messenger;

impl Service for Messenger {
    type Config = Config;
    type Settings = Settings;
    const NAME: &'static str = SERVICE;
    const SCHEMA: &'static str = store::SCHEMA;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn runtime(config: &Config) -> &RuntimeArgs {
        &config.runtime
    }

    fn port(config: &Config) -> u16 {
        config.port
    }

    fn settings(config: &Config) -> Result<Settings, ConfigError> {
        Settings::from_config(config)
    }

    async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
        App::build(settings).await?.run_until(shutdown).await
    }

    /// The files directory, and the JWT secret (its presence and length were checked with the
    /// settings; the line says which variable it came from).
    async fn check(settings: Settings, _rt: Runtime) -> anyhow::Result<Vec<CheckLine>> {
        Ok(vec![
            CheckLine::new(
                "MESSENGER_FILES_DIR",
                files_dir_writable(&settings.files_dir).await,
            ),
            CheckLine::new(
                settings.jwt_secret_var,
                Ok(format!(
                    "set, {} characters (at least {})",
                    settings.jwt.secret.expose().chars().count(),
                    crate::config::MIN_JWT_SECRET_CHARS
                )),
            ),
        ])
    }
}

/// `Ok` when `dir` is a directory this process can create files in (a probe file is written
/// and removed); `Err` says what is wrong.
async fn files_dir_writable(dir: &Path) -> Result<String, String> {
    let shown = dir.display();
    match tokio::fs::metadata(dir).await {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{shown} is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{shown} does not exist; create it (a volume in production) or set MESSENGER_FILES_DIR"
            ));
        }
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let probe = dir.join(format!(".check-{}", Uuid::new_v4().simple()));
    match tokio::fs::write(&probe, b"check").await {
        Ok(()) => {
            let _ = tokio::fs::remove_file(&probe).await;
            Ok(format!("{shown} is writable"))
        }
        Err(e) => Err(format!("{shown} is not writable: {e}")),
    }
}

/// Runs one of this service's own commands; the exit code is 0 on success, 1 on failure, 2
/// when the log filter is wrong.
///
/// A command's standard output is its result (invite codes, the generated password), so its
/// logs go to stderr — which is why these do not go through `service_kit::cli::main`, whose
/// logs go to stdout.
/// Runs `command` (`None` serves): the runtime's standard commands or this service's own.
///
/// Errors: see [`CliError`] (exit 2 for configuration, 1 for failures).
pub async fn run(command: Option<Command>, config: &Config) -> Result<(), CliError> {
    match command {
        None => run_standard::<Messenger>(None, config).await,
        Some(Command::Standard(c)) => run_standard::<Messenger>(Some(c), config).await,
        Some(Command::Own(OwnCommand::Admin {
            action:
                AdminAction::Create {
                    phone,
                    display_name,
                    password_stdin,
                },
        })) => Ok(admin_create(config, &phone, &display_name, password_stdin).await?),
        Some(Command::Own(OwnCommand::Invite {
            action:
                InviteAction::Create {
                    max_uses,
                    expires_in_hours,
                    count,
                },
        })) => Ok(invite_create(config, max_uses, expires_in_hours, count).await?),
    }
}

/// Where `command`'s log lines go: stdout for `serve`, stderr for the one-shot commands whose
/// result is printed on stdout.
pub fn log_output(command: Option<&Command>) -> LogOutput {
    match command {
        None => LogOutput::Stdout,
        Some(Command::Standard(c)) => StandardCommand::log_output(Some(c)),
        Some(Command::Own(_)) => LogOutput::Stderr,
    }
}

async fn migrate(config: &Config) -> anyhow::Result<Store> {
    let rt = &config.runtime;
    let pool =
        service_kit::db::connect_and_migrate(&rt.database_url, store::SCHEMA, 2, &MIGRATOR).await?;
    Ok(Store::new(pool))
}

/// `admin create`: a new administrator, or an existing user made one.
async fn admin_create(
    config: &Config,
    phone: &str,
    display_name: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let phone = Phone::parse(phone)?;
    let name = display_name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 64,
        "--display-name must be 1 to 64 characters"
    );
    let store = migrate(config).await?;
    if let Some(existing) = store.user_by_phone(phone.as_str()).await? {
        store.set_role(existing.id, "Admin").await?;
        println!(
            "{} ({}) already exists and is now an administrator; the password is unchanged",
            existing.phone, existing.id
        );
        return Ok(());
    }
    let (password, generated) = if password_stdin {
        (read_password()?, false)
    } else {
        (random_code(16)?, true)
    };
    anyhow::ensure!(
        (8..=128).contains(&password.chars().count()),
        "the password must be 8 to 128 characters"
    );
    let passwords = Passwords::new(Argon2Settings {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
    });
    let hash =
        tokio::task::spawn_blocking(move || passwords.hash(&password).map(|h| (h, password)))
            .await??;
    let (hash, password) = hash;
    let user = store
        .create_user(Uuid::now_v7(), phone.as_str(), name, &hash, "Admin")
        .await?
        .context("a user with this phone was created meanwhile; run the command again")?;
    println!("administrator {} created: id {}", user.phone, user.id);
    if generated {
        // Printed once, never stored or logged.
        println!("password: {password}");
        println!("(shown only now; log in and keep it in a password manager)");
    }
    Ok(())
}

/// Logs of a command: plain lines on stderr, `LOG_LEVEL` applied.
/// The first line of stdin. On a terminal the typing is not echoed (`stty -echo`, restored
/// afterwards, also when reading fails).
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let _echo_off = if stdin.is_terminal() {
        eprint!("password (8 to 128 characters, not shown): ");
        std::io::stderr().flush().ok();
        EchoOff::new()
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(_echo_off);
    if std::io::stdin().is_terminal() {
        eprintln!();
    }
    read.context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Terminal echo switched off while it lives (via `stty`, which acts on the terminal that is
/// its inherited standard input).
struct EchoOff;

impl EchoOff {
    fn new() -> Option<Self> {
        let ok = std::process::Command::new("stty")
            .arg("-echo")
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
}

/// `invite create`: prints the codes, one per line.
async fn invite_create(
    config: &Config,
    max_uses: i32,
    expires_in_hours: i64,
    count: u32,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&count), "--count must be 1 to 1000");
    let store = migrate(config).await?;
    for _ in 0..count {
        let invite =
            crate::http::admin::create_invite_code(&store, max_uses, expires_in_hours, None)
                .await
                .map_err(crate::error::ApiError::into_anyhow)?;
        println!("{}", invite.code);
        let expires = invite
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        eprintln!(
            "  (up to {} registrations, until {expires})",
            invite.max_uses
        );
    }
    Ok(())
}
