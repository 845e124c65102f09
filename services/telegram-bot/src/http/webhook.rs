//! `POST {WEBHOOK_PATH}`: Telegram's webhook ([setWebhook](https://core.telegram.org/bots/api#setwebhook)).
//!
//! - `X-Telegram-Bot-Api-Secret-Token` must equal `WEBHOOK_SECRET` (constant-time): else 401,
//!   and nothing is published.
//! - The body must be JSON: else 400 saying what was wrong. JSON that is not an
//!   [Update](https://core.telegram.org/bots/api#update) is kept as a dead letter and answered
//!   200 (Telegram would retry it and then drop it).
//! - A relayed update is answered `200` with an empty body only after JetStream acknowledged
//!   it; when NATS does not take it, 503, and Telegram delivers it again later. Ignored
//!   updates (other chats, bots, the General topic …) are answered 200 at once.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use service_kit::secure_eq;

use crate::AppState;
use crate::error::ApiError;
use crate::ingest::{IngestError, ingest};

/// The header Telegram puts the `secret_token` in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Handles one webhook delivery.
pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some(w) = state.settings.webhook() else {
        return Err(ApiError::Unauthorized);
    };
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !secure_eq(given, w.secret.expose().as_bytes()) {
        metrics::counter!("telegram_webhook_total", "outcome" => "bad_secret").increment(1);
        return Err(ApiError::Unauthorized);
    }
    let raw: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not JSON: {e}")))?;
    match ingest(&state, &raw).await {
        Ok(_) => Ok(StatusCode::OK),
        // Authenticated but unreadable: kept, and 200 so Telegram does not retry it for a day
        // and give up (then it would be lost); 500 when even the database does not take it.
        Err(IngestError::Malformed(m)) => {
            crate::ingest::keep_unreadable(&state, &raw, &m.0)
                .await
                .map_err(ApiError::Unexpected)?;
            Ok(StatusCode::OK)
        }
        Err(IngestError::Bus(e)) => Err(ApiError::BusDown(e)),
    }
}
