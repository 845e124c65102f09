//! Webhook mode: `setWebhook(WEBHOOK_URL + WEBHOOK_PATH, secret_token, allowed_updates)` at
//! start, retried with backoff until Telegram accepts it (the route serves meanwhile).

use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::workers::{Backoff, pause};

/// Registers the webhook, then ends.
///
/// Errors: none; failures are logged and retried until `stop`.
pub async fn register(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let Some(w) = state.settings.webhook() else {
        return Ok(());
    };
    let mut backoff = Backoff::default();
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = state.telegram.set_webhook(&w.public_url, w.secret.expose()) => r,
        };
        match r {
            Ok(()) => {
                tracing::info!(url = %w.public_url, "webhook registered with Telegram");
                return Ok(());
            }
            Err(e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff.next());
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), url = %w.public_url, "setWebhook failed");
                if !pause(&stop, wait).await {
                    return Ok(());
                }
            }
        }
    }
}
