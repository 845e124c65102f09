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
use domain::{Envelope, Event, IdempotencyKey, Source};
use vk_api::callback::{CallbackEvent, MessageNew};

use crate::AppState;
use crate::error::ApiError;
use crate::http::secure_eq;
use crate::normalize;

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
    if !secure_eq(callback_id.as_bytes(), vk.callback_id.expose().as_bytes()) {
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
        Some(s) => secure_eq(s.as_bytes(), vk.secret.expose().as_bytes()),
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
            Ok(text(vk.confirmation.expose().to_owned()))
        }
        "message_new" => {
            let object: MessageNew = serde_json::from_value(event.object.clone()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "message_new object is not the API ≥ 5.103 shape {{message, client_info}}: {e}"
                ))
            })?;
            if object.message.from_id <= 0 || object.message.out == Some(1) {
                tracing::debug!("message_new from the community itself; not relayed");
                return Ok(text("ok".into()));
            }
            let key = match event.event_id.as_deref().filter(|s| !s.is_empty()) {
                Some(id) => IdempotencyKey::vk_event(vk.group_id, id),
                // Very old API versions had no event_id: the message identity is as good.
                None => IdempotencyKey::from_parts(&[
                    "vk",
                    &vk.group_id.to_string(),
                    "msg",
                    &object.message.peer_id.to_string(),
                    &object.message.id.to_string(),
                ]),
            };
            let msg = normalize::inbound(&object.message);
            let env = Envelope::new(Source::Vk, msg.sent_at, key, Event::MessageReceived(msg));
            let published = state.bus.publish(&env).await.map_err(ApiError::BusDown)?;
            tracing::info!(
                peer_id = object.message.peer_id,
                vk_message_id = object.message.id,
                duplicate = published.duplicate,
                "VK message accepted"
            );
            metrics::counter!("vk_callbacks_total", "type" => "message_new", "outcome" => if published.duplicate { "duplicate" } else { "published" }).increment(1);
            Ok(text("ok".into()))
        }
        // message_reply is VK echoing what the community itself sent (our own sends included).
        other => {
            tracing::debug!(event_type = other, "VK event not relayed");
            metrics::counter!("vk_callbacks_total", "type" => other.to_owned(), "outcome" => "ignored").increment(1);
            Ok(text("ok".into()))
        }
    }
}
