//! `POST /vk/callback/{VK_CALLBACK_ID}`: VK Callback API events
//! (<https://dev.vk.com/ru/api/callback/getting-started>).
//!
//! VK expects the bare text `ok` (no JSON, no BOM, no newline) within a few seconds and
//! retries otherwise; for `confirmation` it expects the confirmation string. We answer `ok`
//! only after JetStream acknowledged the normalized event, and 503 when NATS is down so that
//! VK retries.
//!
//! A wrong path id is 404, another community 403, a missing or wrong `secret` 401, a body that
//! is not JSON 400 (nothing in it can be trusted). An event that passed those checks but does
//! not fit the structs (a `message_new` whose `object` has another shape) is answered `ok` and
//! kept as a dead letter with the reason ([`reingest`]): VK re-sends what is not answered `ok`
//! and, after repeated errors, stops sending to the server, losing everything after it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use vk_api::callback::CallbackEvent;

use crate::AppState;
use crate::consumers::reingest;
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
    // Authenticate on the bare JSON first (`group_id`, `secret`, `type`), so that an event VK
    // really sent but whose shape this build does not read is kept rather than refused.
    let raw: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a VK callback event: {e}")))?;
    let kind = raw.get("type").and_then(Value::as_str).unwrap_or_default();
    let span = tracing::Span::current();
    span.record("event_type", kind);
    span.record(
        "event_id",
        raw.get("event_id").and_then(Value::as_str).unwrap_or(""),
    );
    let Some(group_id) = raw.get("group_id").and_then(Value::as_i64) else {
        return Err(ApiError::BadRequest(
            "body is not a VK callback event: no numeric group_id".into(),
        ));
    };
    if group_id != vk.group_id {
        metrics::counter!("vk_callbacks_total", "type" => kind.to_owned(), "outcome" => "wrong_group").increment(1);
        return Err(ApiError::Forbidden(format!(
            "group_id {group_id} is not the configured community"
        )));
    }
    // VK sends the secret with every event once one is set, confirmation included (SDKs
    // check it there too); an absent secret on confirmation is tolerated because the
    // confirmation string is not a secret worth protecting and some setups add the secret
    // only after confirming.
    let secret_ok = match raw.get("secret") {
        Some(Value::String(s)) => secure_eq(s.as_bytes(), cb.secret.expose().as_bytes()),
        Some(_) => false,
        None => kind == "confirmation",
    };
    if !secret_ok {
        metrics::counter!("vk_callbacks_total", "type" => kind.to_owned(), "outcome" => "bad_secret").increment(1);
        return Err(ApiError::Unauthorized("secret is missing or wrong".into()));
    }
    let event: CallbackEvent = match serde_json::from_value(raw.clone()) {
        Ok(e) => e,
        Err(e) => {
            return keep(
                &state,
                raw,
                &format!("not a VK callback event this build reads: {e}"),
            )
            .await;
        }
    };
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
            Err(IngestError::Malformed(m)) => keep(&state, raw, &m).await,
            Err(IngestError::Bus(e)) => Err(ApiError::BusDown(e)),
        },
    }
}

/// An authenticated event that does not fit: stored as a dead letter and answered `ok`, so VK
/// neither re-sends it nor, after repeated errors, stops sending to the server. When the
/// database does not take it either, 500: VK delivers it again later.
async fn keep(state: &AppState, raw: Value, reason: &str) -> Result<Response, ApiError> {
    let kind = raw
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    reingest::keep_vk_event(state, reingest::origin::VK_CALLBACK, raw, reason).await?;
    metrics::counter!("vk_callbacks_total", "type" => kind, "outcome" => "dead_lettered")
        .increment(1);
    Ok(text("ok".into()))
}
