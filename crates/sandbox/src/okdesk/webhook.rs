//! Webhook delivery: the oldest queued event is POSTed (`Content-Type: application/json`, no
//! signature — Okdesk signs nothing, the URL's token is the credential). A 2xx answer removes
//! it; anything else, or no answer, keeps it at the head and retries after 50 ms doubling to
//! 1 s, up to [`WEBHOOK_ATTEMPTS`](super::WEBHOOK_ATTEMPTS) tries, then drops it. Events are
//! delivered one at a time, in order. One task per sandbox, ended with it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header;

use super::{OkdeskWebhookDelivery, WEBHOOK_ATTEMPTS, WebhookJob};
use crate::Shared;

const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// Wakes the sender after something was queued.
pub(super) fn wake(shared: &Shared) {
    shared.okdesk_wake.send_modify(|v| *v += 1);
}

pub(crate) fn spawn(shared: Arc<Shared>) {
    tokio::spawn(async move { run(&shared).await });
}

fn head(shared: &Shared) -> Option<WebhookJob> {
    shared.read().okdesk.queue.front().cloned()
}

async fn run(shared: &Shared) {
    let mut wake = shared.okdesk_wake.subscribe();
    let mut backoff = FIRST_RETRY;
    loop {
        wake.borrow_and_update();
        let Some(job) = head(shared) else {
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return },
                () = shared.shutdown.cancelled() => return,
            }
            continue;
        };
        let request = shared
            .http
            .post(&job.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(job.body.clone());
        let sent = tokio::select! {
            sent = request.send() => sent,
            () = shared.shutdown.cancelled() => return,
        };
        let (status, error) = match sent {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
            Ok(r) => (
                Some(r.status().as_u16()),
                Some(format!("HTTP {}", r.status())),
            ),
            Err(e) if e.is_timeout() => (None, Some("timeout".to_owned())),
            Err(e) if e.is_connect() => (None, Some("connection refused".to_owned())),
            Err(e) => (None, Some(e.without_url().to_string())),
        };
        let attempt = job.attempts + 1;
        tracing::info!(url = %job.url, event = %job.event_type, issue_id = job.issue_id, attempt, ?status, ?error, "okdesk webhook delivery");
        let delivered = error.is_none();
        shared.mutate(|s| {
            let st = &mut s.okdesk;
            st.deliveries.push(OkdeskWebhookDelivery {
                url: job.url.clone(),
                event_type: job.event_type.clone(),
                issue_id: job.issue_id,
                attempt,
                status,
                error,
                body: job.body.clone(),
            });
            if delivered || attempt >= WEBHOOK_ATTEMPTS {
                st.queue.pop_front();
            } else if let Some(front) = st.queue.front_mut() {
                front.attempts = attempt;
            }
        });
        if delivered || attempt >= WEBHOOK_ATTEMPTS {
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
