//! The subcommands: `serve`, `migrate`, `admin create`, `invite create`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use uuid::Uuid;

use crate::auth::password::Passwords;
use crate::auth::tokens::random_code;
use crate::config::{AdminAction, Argon2Settings, Cli, Command, Config, InviteAction, Settings};
use crate::phone::Phone;
use crate::store::Store;
use crate::{App, MIGRATOR, SERVICE, store};

/// Runs the parsed command line; the exit code is 0 on success, 1 on failure, 2 on bad
/// configuration.
pub async fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    // The server logs to stdout (JSON lines for the log collector); a command's standard output
    // is its result (invite codes, the generated password), so its logs go to stderr.
    let _telemetry = if matches!(command, Command::Serve) {
        match service_kit::telemetry::init(SERVICE, &cli.config.runtime) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("{SERVICE}: {e:#}");
                return ExitCode::from(2);
            }
        }
    } else {
        if let Err(e) = cli_logs(&cli.config.runtime.log_level) {
            eprintln!("{SERVICE}: {e:#}");
            return ExitCode::from(2);
        }
        None
    };
    let result = match command {
        Command::Serve => {
            let settings = match Settings::from_config(&cli.config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{SERVICE}: {e}");
                    return ExitCode::from(2);
                }
            };
            serve(settings).await
        }
        Command::Migrate => migrate(&cli.config).await.map(|_| {
            println!("migrations of schema `{}` are up to date", store::SCHEMA);
        }),
        Command::Admin {
            action:
                AdminAction::Create {
                    phone,
                    display_name,
                    password_stdin,
                },
        } => admin_create(&cli.config, &phone, &display_name, password_stdin).await,
        Command::Invite {
            action:
                InviteAction::Create {
                    max_uses,
                    expires_in_hours,
                    count,
                },
        } => invite_create(&cli.config, max_uses, expires_in_hours, count).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{SERVICE} failed");
            eprintln!("{SERVICE}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = service_kit::shutdown::on_signal();
    App::build(settings, shutdown).await?.run_until().await
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
fn cli_logs(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("LOG_LEVEL `{level}` is not a valid filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

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
                .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
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
