//! `POST /vk/callback/{VK_CALLBACK_ID}`: VK Callback API events
//! (<https://dev.vk.com/ru/api/callback/getting-started>).
//!
//! VK expects the bare text `ok` (no JSON, no BOM, no newline) within a few seconds and
//! retries otherwise; for `confirmation` it expects the confirmation string. We answer `ok`
//! only after JetStream acknowledged the normalized event, and 503 when NATS is down so that
//! VK retries.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use vk_api::callback::CallbackEvent;

use crate::AppState;
use crate::error::ApiError;
use crate::ingest::{IngestError, Ingested, ingest};
use service_kit::secure_eq;

fn text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Handles one callback; see the module docs for the answers.
#[tracing::instrument(skip_all, fields(event_type, event_id))]
pub async fn handle(
    State(state): State<AppState>,
    Path(callback_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let vk = &state.settings.vk;
    let Some(cb) = vk.callback.as_ref() else {
        return Err(ApiError::NotFound);
    };
    if !secure_eq(callback_id.as_bytes(), cb.callback_id.expose().as_bytes()) {
        return Err(ApiError::NotFound);
    }
    let event: CallbackEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a VK callback event: {e}")))?;
    let span = tracing::Span::current();
    span.record("event_type", event.kind.as_str());
    span.record("event_id", event.event_id.as_deref().unwrap_or(""));
    if event.group_id != vk.group_id {
        metrics::counter!("vk_callbacks_total", "type" => event.kind.clone(), "outcome" => "wrong_group").increment(1);
        return Err(ApiError::Forbidden(format!(
            "group_id {} is not the configured community",
            event.group_id
        )));
    }
    // VK sends the secret with every event once one is set, confirmation included (SDKs
    // check it there too); an absent secret on confirmation is tolerated because the
    // confirmation string is not a secret worth protecting and some setups add the secret
    // only after confirming.
    let secret_ok = match event.secret.as_deref() {
        Some(s) => secure_eq(s.as_bytes(), cb.secret.expose().as_bytes()),
        None => event.kind == "confirmation",
    };
    if !secret_ok {
        metrics::counter!("vk_callbacks_total", "type" => event.kind.clone(), "outcome" => "bad_secret").increment(1);
        return Err(ApiError::Unauthorized("secret is missing or wrong".into()));
    }
    match event.kind.as_str() {
        "confirmation" => {
            tracing::info!(group_id = event.group_id, "answering VK confirmation");
            metrics::counter!("vk_callbacks_total", "type" => "confirmation", "outcome" => "ok")
                .increment(1);
            Ok(text(cb.confirmation.expose().to_owned()))
        }
        _ => match ingest(&state, &event).await {
            Ok(Ingested::Published { .. }) => Ok(text("ok".into())),
            Ok(Ingested::Skipped(reason)) => {
                tracing::debug!(reason, "VK event not relayed");
                Ok(text("ok".into()))
            }
            Err(IngestError::Malformed(m)) => Err(ApiError::BadRequest(m)),
            Err(IngestError::Bus(e)) => Err(ApiError::BusDown(e)),
        },
    }
}
