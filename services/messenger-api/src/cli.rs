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
    let _telemetry = match service_kit::telemetry::init(SERVICE, &cli.config.runtime) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{SERVICE}: {e:#}");
            return ExitCode::from(2);
        }
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

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (8 to 128 characters, shown as you type): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
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
