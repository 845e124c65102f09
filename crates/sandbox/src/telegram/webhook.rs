//! Webhook delivery like the server's `WebhookActor`: while a webhook is set, the oldest queued
//! update is POSTed to it (`Content-Type: application/json`, body = the `Update`,
//! `X-Telegram-Bot-Api-Secret-Token` when a secret was set). A 2xx answer removes it from the
//! queue; anything else keeps it at the head, records `last_error_message` (`Wrong response from
//! the webhook: 500 Internal Server Error`, `Connection refused`, …) and retries after a backoff
//! of 50 ms doubling to 1 s. One task per sandbox, ended with it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header;

use super::{TelegramWebhookDelivery, now};
use crate::Shared;

/// First retry delay after a failed delivery.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(1);

/// One delivery to make.
struct Job {
    url: String,
    secret_token: Option<String>,
    seq: u64,
    update_id: i64,
    body: String,
}

fn next_job(shared: &Shared) -> Option<Job> {
    let state = shared.read();
    let t = &state.telegram;
    let webhook = t.webhook.as_ref()?;
    let head = t.queue.front()?;
    Some(Job {
        url: webhook.url.clone(),
        secret_token: webhook.secret_token.clone(),
        seq: head.seq,
        update_id: head.update_id,
        body: head.update.to_string(),
    })
}

pub(super) fn spawn(shared: Arc<Shared>) {
    tokio::spawn(async move { run(&shared).await });
}

async fn run(shared: &Shared) {
    let mut wake = shared.telegram_wake.subscribe();
    let mut backoff = FIRST_RETRY;
    loop {
        // Mark the current version seen *before* looking, so no push can slip between.
        wake.borrow_and_update();
        let Some(job) = next_job(shared) else {
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return },
                () = shared.shutdown.cancelled() => return,
            }
            continue;
        };
        let mut request = shared
            .http
            .post(&job.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(job.body);
        if let Some(secret) = &job.secret_token {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let sent = tokio::select! {
            sent = request.send() => sent,
            () = shared.shutdown.cancelled() => return,
        };
        let (status, error) = match sent {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16()), None)
            }
            Ok(response) => {
                let status = response.status();
                let reason = status.canonical_reason().unwrap_or_default();
                (
                    Some(status.as_u16()),
                    Some(format!(
                        "Wrong response from the webhook: {} {reason}",
                        status.as_u16()
                    )),
                )
            }
            Err(error) if error.is_timeout() => (None, Some("Timeout expired".to_owned())),
            Err(error) if error.is_connect() => (None, Some("Connection refused".to_owned())),
            Err(error) => (None, Some(error.to_string())),
        };
        tracing::info!(url = %job.url, update_id = job.update_id, ?status, ?error, "telegram webhook delivery");
        let delivered = error.is_none();
        shared.mutate(|s| {
            let t = &mut s.telegram;
            t.deliveries.push(TelegramWebhookDelivery {
                update_id: job.update_id,
                status,
            });
            match error {
                None => t.queue.retain(|q| q.seq != job.seq),
                Some(message) => t.last_webhook_error = Some((now(), message)),
            }
        });
        if delivered {
            backoff = FIRST_RETRY;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_RETRY);
    }
}
