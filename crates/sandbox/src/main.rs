//! `sandbox` — serves the VK, Chatwoot, amoCRM, Telegram and Okdesk fakes for the local demo until
//! Ctrl-C / SIGTERM.

use std::net::SocketAddr;

use clap::Parser;
use sandbox::{Sandbox, SandboxOptions};

/// Fake VK API, Chatwoot Application API, amoCRM, Telegram Bot API and Okdesk API for local demos
/// and tests.
///
/// Point the services at it: VK_API_URL={url}/vk/method, CHATWOOT_BASE_URL={url}/chatwoot,
/// AMOCRM_BASE_URL={url}/amocrm (with AMOCRM_DOMAIN=sandbox.amocrm.ru and the client id/secret of
/// `sandbox::amocrm`), TELEGRAM_API_URL={url}/telegram (with BOT_TOKEN = --telegram-bot-token and
/// BOT_GROUP_ID = --telegram-group-id), OKDESK_API_URL={url}/okdesk/api/v1 (with OKDESK_API_TOKEN =
/// --okdesk-api-token and OKDESK_INN_PARAMETER_CODE = --okdesk-inn-parameter-code).
/// The control API is under {url}/_sandbox/ (see the crate docs). Request logs go to stderr;
/// RUST_LOG sets the level (default info).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Where the Chatwoot fake POSTs `message_created` webhooks (e.g. the connector's
    /// /chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK}). Unset: no webhooks.
    #[arg(long, env = "SANDBOX_CHATWOOT_WEBHOOK_URL")]
    chatwoot_webhook_url: Option<String>,
    /// Sign webhooks with this secret (X-Chatwoot-Signature / X-Chatwoot-Timestamp), as Chatwoot
    /// does; match the connector's CHATWOOT_WEBHOOK_SECRET. Unset: unsigned.
    #[arg(long, env = "SANDBOX_CHATWOOT_WEBHOOK_SECRET", hide_env_values = true)]
    chatwoot_webhook_secret: Option<String>,
    /// The access_token the VK fake accepts (the connector's VK_ACCESS_TOKEN).
    #[arg(
        long,
        env = "SANDBOX_VK_ACCESS_TOKEN",
        default_value = "vk-test-token",
        hide_env_values = true
    )]
    vk_access_token: String,
    /// The community groups.getById describes (the connector's VK_GROUP_ID).
    #[arg(long, env = "SANDBOX_VK_GROUP_ID", default_value_t = 1)]
    vk_group_id: i64,
    /// The api_access_token the Chatwoot fake accepts (the connector's CHATWOOT_API_ACCESS_TOKEN).
    #[arg(
        long,
        env = "SANDBOX_CHATWOOT_API_TOKEN",
        default_value = "cw-test-token",
        hide_env_values = true
    )]
    chatwoot_api_token: String,
    /// The one Chatwoot account id (CHATWOOT_ACCOUNT_ID).
    #[arg(long, env = "SANDBOX_CHATWOOT_ACCOUNT_ID", default_value_t = 1)]
    chatwoot_account_id: i64,
    /// The one Chatwoot inbox id, an API channel inbox (CHATWOOT_INBOX_ID).
    #[arg(long, env = "SANDBOX_CHATWOOT_INBOX_ID", default_value_t = 1)]
    chatwoot_inbox_id: i64,
    /// The bot token the Telegram fake accepts, `<bot_id>:<secret>` (the bot's BOT_TOKEN).
    #[arg(
        long,
        env = "SANDBOX_TELEGRAM_BOT_TOKEN",
        default_value = sandbox::telegram::DEFAULT_BOT_TOKEN,
        hide_env_values = true
    )]
    telegram_bot_token: String,
    /// The support group's chat id, a forum supergroup where the bot is an administrator (the
    /// bot's BOT_GROUP_ID).
    #[arg(
        long,
        env = "SANDBOX_TELEGRAM_GROUP_ID",
        default_value_t = sandbox::telegram::DEFAULT_GROUP_ID,
        allow_negative_numbers = true
    )]
    telegram_group_id: i64,
    /// The api_token the Okdesk fake accepts (the bridge's OKDESK_API_TOKEN).
    #[arg(
        long,
        env = "SANDBOX_OKDESK_API_TOKEN",
        default_value = "okdesk-test-token",
        hide_env_values = true
    )]
    okdesk_api_token: String,
    /// The code of the companies' INN attribute (the bridge's OKDESK_INN_PARAMETER_CODE).
    #[arg(long, env = "SANDBOX_OKDESK_INN_PARAMETER_CODE", default_value = "inn")]
    okdesk_inn_parameter_code: String,
    /// Where the Okdesk fake POSTs webhooks (the bridge's /okdesk/webhook/{OKDESK_WEBHOOK_TOKEN}).
    /// Unset: no webhooks.
    #[arg(long, env = "SANDBOX_OKDESK_WEBHOOK_URL", hide_env_values = true)]
    okdesk_webhook_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .pretty()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let opts = SandboxOptions {
        vk_access_token: args.vk_access_token,
        chatwoot_api_token: args.chatwoot_api_token,
        chatwoot_account_id: args.chatwoot_account_id,
        chatwoot_inbox_id: args.chatwoot_inbox_id,
        telegram_bot_token: args.telegram_bot_token,
        telegram_group_id: args.telegram_group_id,
        okdesk_api_token: args.okdesk_api_token,
        okdesk_inn_parameter_code: args.okdesk_inn_parameter_code,
    };
    let sandbox = Sandbox::start_on(args.listen, opts).await?;
    sandbox.set_vk_group(args.vk_group_id, sandbox::vk::DEFAULT_GROUP.1);
    sandbox.set_chatwoot_webhook(args.chatwoot_webhook_url, args.chatwoot_webhook_secret);
    sandbox.okdesk_set_webhook(args.okdesk_webhook_url);
    tracing::info!(
        vk_api_url = %sandbox.vk_api_url(),
        chatwoot_url = %sandbox.chatwoot_url(),
        telegram_api_url = %sandbox.telegram_api_url(),
        okdesk_api_url = %sandbox.okdesk_api_url(),
        control = %format!("{}/_sandbox", sandbox.url()),
        "sandbox ready"
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    drop(sandbox);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
