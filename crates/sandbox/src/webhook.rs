//! Chatwoot's outgoing webhooks, delivered like `WebhookJob` -> `Webhooks::Trigger`
//! (<https://github.com/chatwoot/chatwoot/blob/develop/lib/webhooks/trigger.rb>): one `POST` of the
//! JSON payload with `Content-Type: application/json`, a 5 s timeout, no retry (account and API
//! inbox webhooks are delivered exactly once; see chatwoot/chatwoot#15920), in the background so the
//! API answer does not wait for it.
//!
//! Signing (Chatwoot v4.11.2+, chatwoot/chatwoot#13573 and #13892): every delivery carries
//! `X-Chatwoot-Delivery: <uuid>`; when the webhook has a secret it also carries
//! `X-Chatwoot-Timestamp: <unix seconds>` and
//! `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::Shared;

/// `Webhooks::Trigger` gives up after this long (`WEBHOOK_TIMEOUT`, default 5 s).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// One finished webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    /// The URL the webhook was posted to.
    pub url: String,
    /// e.g. `message_created`.
    pub event: String,
    /// The message the event is about.
    pub message_id: Option<i64>,
    /// The `X-Chatwoot-Delivery` header sent.
    pub delivery_id: String,
    /// The receiver's HTTP status; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout …).
    pub error: Option<String>,
    /// The exact body sent (the signed bytes).
    pub body: String,
}

/// `"sha256=" + hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`.
pub(crate) fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends `payload` to `url` in a spawned task and records the outcome.
pub(crate) fn deliver(
    shared: Arc<Shared>,
    url: String,
    secret: Option<String>,
    event: &str,
    message_id: Option<i64>,
    payload: Value,
) {
    let event = event.to_owned();
    tokio::spawn(async move {
        let body = payload.to_string();
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let mut request = shared
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("X-Chatwoot-Delivery", &delivery_id);
        if let Some(secret) = &secret {
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
            request = request
                .header("X-Chatwoot-Timestamp", &timestamp)
                .header("X-Chatwoot-Signature", signature(secret, &timestamp, &body));
        }
        let sent = tokio::select! {
            sent = request.body(body.clone()).send() => sent,
            () = shared.shutdown.cancelled() => return,
        };
        let (status, error) = match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(error.to_string())),
        };
        tracing::info!(%url, %event, ?message_id, ?status, ?error, "chatwoot webhook delivered");
        let delivery = WebhookDelivery {
            url,
            event,
            message_id,
            delivery_id,
            status,
            error,
            body,
        };
        shared.mutate(|s| s.deliveries.push(delivery));
    });
}
