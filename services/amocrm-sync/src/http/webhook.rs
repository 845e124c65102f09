//! The two webhook routes.
//!
//! * `POST /api/webhooks/amo/{AMOCRM_WEBHOOK_TOKEN}` — what amoCRM itself sends: a PHP-style
//!   form (<https://www.amocrm.ru/developers/content/crm_platform/webhooks-format>; a JSON body
//!   is read too). amoCRM signs nothing, so the unguessable token in the URL is the credential:
//!   a wrong token is 404. `account[subdomain]` must be `AMOCRM_DOMAIN`'s, else 403.
//! * `POST /api/webhooks/amo` — the JSON format of the earlier deployment, served only with
//!   `AMOCRM_LEGACY_JSON_WEBHOOK=true` (404 otherwise). `X-Signature` = hex HMAC-SHA256 of
//!   `"{X-Client-UUID}|{X-Account-ID}"` keyed with `AMOCRM_CLIENT_SECRET`, verified in constant
//!   time; missing or wrong → 401. The signature covers neither the body nor a time, so the body
//!   must name the configured account (`account.subdomain`, and `account.id` = `X-Account-ID`
//!   when given), else 403.
//!
//! Both answer only after JetStream stored every event (503 when NATS is down, so the sender
//! retries), with `{"status":"success","message":"Processed N events","events_processed":N,
//! "timestamp":"…","errors":null}`. More than `AMOCRM_MAX_ENTRIES_PER_WEBHOOK` entries: 413, and
//! nothing is published. An entry whose `updated_at` is more than an hour ahead is refused: 400
//! naming it, the good entries processed all the same.
//!
//! What else is answered differently on the two routes, and why: amoCRM counts every answer
//! outside 100–299 (or slower than 2 s) as failed, delivers the hook again, and disables it when
//! more than 100 answers of the last 2 hours failed and the last one did too («Обработка ответа
//! от хука» on the page above). A delivery amoCRM made cannot get better by being sent again,
//! so on the form route a body that cannot be read at all, or entries that cannot be read, are
//! answered 200 and the body is kept as a dead letter with the reason (`amocrm-sync dlq list`);
//! one bad entry type must not switch off the webhook and lose every later change. The JSON
//! route keeps answering them 400: its senders are scripts of the earlier deployment, which
//! read the errors, and its weak signature must not let anyone fill the dead-letter table.

use std::time::Instant;

use amocrm_api::webhook::{self, WebhookBody};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::ingest::{IngestError, ingest};

fn count(format: &'static str, outcome: &'static str) {
    metrics::counter!("amocrm_webhooks_total", "format" => format, "outcome" => outcome)
        .increment(1);
}

/// Which route a body came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// amoCRM's own webhook, `/api/webhooks/amo/{token}`.
    Amo,
    /// The earlier deployment's JSON webhook, `/api/webhooks/amo`.
    Legacy,
}

/// The `subject` of a webhook body kept as a dead letter. It is no NATS subject: such a dead
/// letter is replayed by posting its `payload.body` to the webhook URL again (docs/amocrm.md).
pub const DEAD_LETTER_SUBJECT: &str = "webhook.amocrm.form";

/// amoCRM's form webhook (or JSON to the same URL).
#[tracing::instrument(skip_all, fields(format))]
pub async fn form(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if !service_kit::secure_eq(&token, state.settings.webhook_token.expose()) {
        count("form", "bad_token");
        return Err(ApiError::NotFound);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type.starts_with("application/json");
    let format = if is_json { "json" } else { "form" };
    tracing::Span::current().record("format", format);
    let parsed = if is_json {
        webhook::parse_json(&body)
    } else {
        webhook::parse_form(&body)
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            count(format, "malformed");
            let reason = e.to_string();
            keep_body(&state, content_type, &body, &reason).await?;
            tracing::warn!(error = %reason, "an amoCRM webhook body could not be read; kept as a dead letter");
            return Ok(answer(StatusCode::OK, "error", 0, &[reason]));
        }
    };
    // amoCRM always names the account; a body without it is not from amoCRM.
    match parsed.account().subdomain {
        Some(sub) if sub.eq_ignore_ascii_case(&state.settings.subdomain) => {}
        other => {
            count(format, "wrong_account");
            return Err(ApiError::Forbidden(format!(
                "account[subdomain] {} is not the configured account",
                other.as_deref().unwrap_or("is missing and")
            )));
        }
    }
    let raw = Raw {
        content_type,
        body: &body,
    };
    process(&state, &parsed, format, Route::Amo, Some(raw), started).await
}

/// The JSON webhook of the earlier deployment (only with `AMOCRM_LEGACY_JSON_WEBHOOK=true`).
#[tracing::instrument(skip_all, fields(account_id))]
pub async fn json(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if !state.settings.legacy_json_webhook {
        count("json", "disabled");
        return Err(ApiError::NotFound);
    }
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(client_uuid), Some(account_id), Some(signature)) =
        (h("x-client-uuid"), h("x-account-id"), h("x-signature"))
    else {
        count("json", "bad_signature");
        return Err(ApiError::Unauthorized(
            "X-Client-UUID, X-Account-ID and X-Signature are required".into(),
        ));
    };
    tracing::Span::current().record("account_id", account_id);
    if !signature_ok(
        state.settings.client_secret.expose(),
        client_uuid,
        account_id,
        signature,
    ) {
        count("json", "bad_signature");
        return Err(ApiError::Unauthorized("invalid signature".into()));
    }
    let parsed = webhook::parse_json(&body).map_err(|e| {
        count("json", "malformed");
        ApiError::BadRequest(e.to_string())
    })?;
    // The signature says nothing about the body, so the body itself must be about our account.
    let account = parsed.account();
    let refused = match (&account.subdomain, account.id) {
        (Some(sub), _) if !sub.eq_ignore_ascii_case(&state.settings.subdomain) => Some(format!(
            "account.subdomain {sub} is not the configured account"
        )),
        (None, _) => {
            Some("account.subdomain is missing; it must name the configured account".into())
        }
        (Some(_), Some(id)) if id.to_string() != account_id => Some(format!(
            "account.id {id} is not the X-Account-ID of the request"
        )),
        _ => None,
    };
    if let Some(message) = refused {
        count("json", "wrong_account");
        return Err(ApiError::Forbidden(message));
    }
    process(&state, &parsed, "json", Route::Legacy, None, started).await
}

/// `X-Signature` = hex(HMAC-SHA256(client_secret, "{client_uuid}|{account_id}")), compared with
/// the MAC's own constant-time check.
pub fn signature_ok(secret: &str, client_uuid: &str, account_id: &str, signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(client_uuid.as_bytes());
    mac.update(b"|");
    mac.update(account_id.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// The hex signature the JSON route expects (clients and tests use it).
pub fn sign(secret: &str, client_uuid: &str, account_id: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("{client_uuid}|{account_id}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The body as it came, for a dead letter.
#[derive(Clone, Copy)]
struct Raw<'a> {
    content_type: &'a str,
    body: &'a [u8],
}

/// The dead letter's `msg_id`: the same body delivered again is kept once.
pub fn dead_letter_msg_id(body: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "amocrm:webhook:form:{}",
        hex::encode(&sha2::Sha256::digest(body)[..16])
    )
}

/// Keeps an amoCRM delivery as a dead letter (once per body), payload
/// `{"route":"/api/webhooks/amo/{token}","content_type":"…","body":"<the body as sent>"}`
/// (`"body_hex"` instead when it is not UTF-8).
///
/// Errors: Postgres failed; the route answers 500, so amoCRM delivers it again.
async fn keep_body(
    state: &AppState,
    content_type: &str,
    body: &[u8],
    reason: &str,
) -> Result<(), ApiError> {
    let msg_id = dead_letter_msg_id(body);
    let pending = state
        .store
        .dead_letter_pending(&msg_id)
        .await
        .map_err(|e| {
            ApiError::Unexpected(anyhow::Error::new(e).context("looking up a dead letter"))
        })?;
    if pending {
        return Ok(());
    }
    let mut payload = json!({
        "route": "/api/webhooks/amo/{token}",
        "content_type": content_type,
    });
    match std::str::from_utf8(body) {
        Ok(text) => payload["body"] = json!(text),
        Err(_) => payload["body_hex"] = json!(hex::encode(body)),
    }
    let payload = serde_json::to_vec(&payload).map_err(|e| ApiError::Unexpected(e.into()))?;
    state
        .dead_letters
        .insert(DEAD_LETTER_SUBJECT, &msg_id, &payload, reason, 1)
        .await?;
    Ok(())
}

fn answer(code: StatusCode, status: &str, n: usize, errors: &[String]) -> Response {
    (
        code,
        Json(json!({
            "status": status,
            "message": format!("Processed {n} events"),
            "events_processed": n,
            "timestamp": service_kit::http::now_rfc3339(),
            "errors": if errors.is_empty() { None } else { Some(errors) },
        })),
    )
        .into_response()
}

async fn process(
    state: &AppState,
    body: &WebhookBody,
    format: &'static str,
    route: Route,
    raw: Option<Raw<'_>>,
    started: Instant,
) -> Result<Response, ApiError> {
    let ingested = match ingest(state, body, format).await {
        Ok(i) => i,
        Err(e @ IngestError::TooManyEntries { .. }) => {
            count(format, "too_many_entries");
            return Err(ApiError::TooLarge(e.to_string()));
        }
        Err(IngestError::Bus(e)) => {
            count(format, "bus_down");
            return Err(ApiError::BusDown(e));
        }
    };
    let n = ingested.published;
    let errors = ingested.error_lines();
    // On amoCRM's route unreadable entries are kept, not sent back (see the module docs).
    let kept = route == Route::Amo && !ingested.unreadable.is_empty();
    if kept && let Some(raw) = raw {
        let reasons: Vec<String> = ingested
            .unreadable
            .iter()
            .map(ToString::to_string)
            .collect();
        keep_body(state, raw.content_type, raw.body, &reasons.join("; ")).await?;
    }
    metrics::histogram!("amocrm_webhook_seconds", "format" => format)
        .record(started.elapsed().as_secs_f64());
    let refused = !ingested.future.is_empty() || (route == Route::Legacy && !errors.is_empty());
    let code = if refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (status, outcome) = match (errors.is_empty(), n) {
        (true, _) => ("success", "accepted"),
        (false, 0) => ("error", if kept { "dead_letter" } else { "malformed" }),
        (false, _) => ("partial_success", "partial"),
    };
    count(format, outcome);
    if errors.is_empty() {
        tracing::info!(
            events = n,
            duplicates = ingested.duplicates,
            "amoCRM webhook accepted"
        );
    } else {
        tracing::warn!(events = n, ?errors, kept, "amoCRM webhook accepted in part");
    }
    Ok(answer(code, status, n, &errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_of_uuid_and_account() {
        let sig = sign("secret", "3f0c…uuid", "29085431");
        assert_eq!(sig.len(), 64);
        assert!(signature_ok("secret", "3f0c…uuid", "29085431", &sig));
        assert!(signature_ok(
            "secret",
            "3f0c…uuid",
            "29085431",
            &sig.to_uppercase()
        ));
        assert!(!signature_ok("other", "3f0c…uuid", "29085431", &sig));
        assert!(!signature_ok("secret", "3f0c…uuid", "29085432", &sig));
        assert!(!signature_ok("secret", "3f0c…uuid", "29085431", "zz"));
    }
}
