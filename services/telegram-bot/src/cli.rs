//! The command line: the runtime's standard commands (`serve | migrate | check | dlq |
//! healthcheck`, flattened in) and this service's own `set-webhook | delete-webhook |
//! webhook-info`; and what `check` asks Telegram.

use clap::Subcommand;
use frankenstein::types::{ChatMember, ChatType};
use service_kit::Runtime;
use service_kit::cli::{CheckLine, CliError, LogOutput, Service, StandardCommand, run_standard};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Settings};
use crate::telegram::Telegram;
use crate::{MIGRATOR, SERVICE, store};

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The runtime's commands: serve (the default), migrate, check, dlq, healthcheck.
    #[command(flatten)]
    Standard(StandardCommand),
    /// This service's own commands.
    #[command(flatten)]
    Own(OwnCommand),
}

/// The commands only telegram-bot has; they need BOT_TOKEN (and WEBHOOK_* for set-webhook),
/// not the database.
#[derive(Debug, Clone, Subcommand)]
pub enum OwnCommand {
    /// Register WEBHOOK_URL + WEBHOOK_PATH with Telegram (setWebhook with WEBHOOK_SECRET as
    /// secret_token). `serve` in webhook mode does this itself at start.
    SetWebhook,
    /// Remove the webhook (deleteWebhook; pending updates are kept), e.g. to go back to long
    /// polling. `serve` in polling mode does this itself at start.
    DeleteWebhook,
    /// Show what Telegram knows of the webhook (getWebhookInfo): URL, pending updates, the
    /// last delivery error.
    WebhookInfo,
}

/// Runs `command` (`None` serves).
///
/// Errors: see [`CliError`] (bad configuration → exit 2, failure → exit 1).
pub async fn run(command: Option<Command>, config: &Config) -> Result<(), CliError> {
    match command {
        None => run_standard::<TelegramBot>(None, config).await,
        Some(Command::Standard(c)) => run_standard::<TelegramBot>(Some(c), config).await,
        Some(Command::Own(own)) => Ok(run_own(own, config).await?),
    }
}

/// Where `command`'s log lines go: stdout for `serve`, stderr for one-shot commands whose
/// result is printed on stdout.
pub fn log_output(command: Option<&Command>) -> LogOutput {
    match command {
        None => LogOutput::Stdout,
        Some(Command::Standard(c)) => StandardCommand::log_output(Some(c)),
        Some(Command::Own(_)) => LogOutput::Stderr,
    }
}

async fn run_own(own: OwnCommand, config: &Config) -> Result<(), CliError> {
    let settings = Settings::from_config(config)?;
    let http = service_kit::http_client::build(SERVICE, settings.runtime.upstream_timeout())
        .map_err(anyhow::Error::from)?;
    let tg = crate::telegram_client(&settings, &http)?;
    match own {
        OwnCommand::SetWebhook => {
            let Some(w) = settings.webhook() else {
                return Err(CliError::Failed(anyhow::anyhow!(
                    "set-webhook needs WEBHOOK_ENABLED=true, WEBHOOK_URL and WEBHOOK_SECRET"
                )));
            };
            tg.set_webhook(&w.public_url, w.secret.expose())
                .await
                .map_err(|e| anyhow::anyhow!("setWebhook failed: {e}"))?;
            println!("webhook set: {}", w.public_url);
        }
        OwnCommand::DeleteWebhook => {
            tg.delete_webhook()
                .await
                .map_err(|e| anyhow::anyhow!("deleteWebhook failed: {e}"))?;
            println!("webhook deleted; the bot can long-poll now");
        }
        OwnCommand::WebhookInfo => {
            let info = tg
                .webhook_info()
                .await
                .map_err(|e| anyhow::anyhow!("getWebhookInfo failed: {e}"))?;
            if info.url.is_empty() {
                println!("no webhook set (long polling)");
            } else {
                println!("url: {}", info.url);
            }
            println!("pending updates: {}", info.pending_update_count);
            if let Some(m) = info.last_error_message {
                println!(
                    "last error: {m} (unix time {})",
                    info.last_error_date.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// telegram-bot as the shared command line sees it.
pub struct TelegramBot;

impl Service for TelegramBot {
    type Config = Config;
    type Settings = Settings;
    const NAME: &'static str = SERVICE;
    const SCHEMA: &'static str = store::SCHEMA;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn runtime(config: &Config) -> &service_kit::RuntimeArgs {
        &config.runtime
    }

    fn port(config: &Config) -> u16 {
        config.port
    }

    fn settings(config: &Config) -> Result<Settings, service_kit::ConfigError> {
        Settings::from_config(config)
    }

    async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
        crate::build(settings).await?.run_until(shutdown).await
    }

    async fn check(settings: Settings, rt: Runtime) -> anyhow::Result<Vec<CheckLine>> {
        let tg = crate::telegram_client(&settings, &rt.http)?;
        let report = check_telegram(&settings, &tg).await;
        Ok(vec![
            CheckLine::new("BOT_TOKEN", report.token),
            CheckLine::new("BOT_GROUP_ID", report.group),
        ])
    }
}

/// The Telegram half of `telegram-bot check`.
#[derive(Debug)]
pub struct CheckReport {
    /// getMe: the bot's @username and id, or why the token fails.
    pub token: Result<String, String>,
    /// getChat + getChatMember: the group is a forum and the bot an admin allowed to manage
    /// topics, or what is missing.
    pub group: Result<String, String>,
}

/// Asks Telegram whether the token works and the bot can manage topics in the group.
pub async fn check_telegram(settings: &Settings, tg: &Telegram) -> CheckReport {
    let me = tg.get_me().await;
    let token = match &me {
        Ok(u) => Ok(format!(
            "bot @{}, id {}",
            u.username.as_deref().unwrap_or("?"),
            u.id
        )),
        Err(e) if e.code() == Some(401) || e.code() == Some(404) => Err(format!(
            "{e} — the token is wrong or revoked: copy it again from @BotFather"
        )),
        Err(e) => Err(format!("{e} — check TELEGRAM_API_URL and the network")),
    };
    let Ok(me) = me else {
        return CheckReport {
            token,
            group: Err("not checked: the token does not work".into()),
        };
    };
    let group = match tg.get_chat(settings.group_id).await {
        Err(e) => Err(format!(
            "{e} — check BOT_GROUP_ID (the -100… id) and that the bot was added to the group"
        )),
        Ok(chat) if chat.type_field != ChatType::Supergroup || chat.is_forum != Some(true) => {
            Err(format!(
                "«{}» is not a supergroup with topics: enable Topics in the group settings",
                chat.title.unwrap_or_default()
            ))
        }
        Ok(chat) => {
            let title = chat.title.unwrap_or_default();
            match tg.get_chat_member(settings.group_id, me.id as i64).await {
                Err(e) => Err(format!("getChatMember failed: {e}")),
                Ok(ChatMember::Creator(_)) => Ok(format!("«{title}»: the bot owns the group")),
                Ok(ChatMember::Administrator(a)) if a.can_manage_topics == Some(true) => Ok(
                    format!("«{title}»: the bot is an administrator allowed to manage topics"),
                ),
                Ok(ChatMember::Administrator(_)) => Err(format!(
                    "«{title}»: the bot is an administrator without the right to manage topics: grant «Manage topics»"
                )),
                Ok(_) => Err(format!(
                    "«{title}»: the bot is not an administrator: make it one with «Manage topics»"
                )),
            }
        }
    };
    CheckReport { token, group }
}
