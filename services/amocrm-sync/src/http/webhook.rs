//! The two webhook routes.
//!
//! * `POST /api/webhooks/amo/{AMOCRM_WEBHOOK_TOKEN}` — what amoCRM itself sends: a PHP-style
//!   form (<https://www.amocrm.ru/developers/content/crm_platform/webhooks-format>; a JSON body
//!   is read too). amoCRM signs nothing, so the unguessable token in the URL is the credential:
//!   a wrong token is 404. `account[subdomain]` must be `AMOCRM_DOMAIN`'s, else 403.
//! * `POST /api/webhooks/amo` — the JSON format of the existing deployment, authenticated by
//!   `X-Signature` = hex HMAC-SHA256 of `"{X-Client-UUID}|{X-Account-ID}"` keyed with
//!   `AMOCRM_CLIENT_SECRET`, verified in constant time; missing or wrong → 401.
//!
//! Both answer only after JetStream stored every event (503 when NATS is down, so amoCRM
//! retries), with `{"status":"success","message":"Processed N events","events_processed":N,
//! "timestamp":"…","errors":null}`. A body with bad entries is answered 400 with `errors`
//! naming each; its good entries are processed all the same.

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
use crate::ingest::ingest;

fn count(format: &'static str, outcome: &'static str) {
    metrics::counter!("amocrm_webhooks_total", "format" => format, "outcome" => outcome)
        .increment(1);
}

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
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let format = if is_json { "json" } else { "form" };
    tracing::Span::current().record("format", format);
    let parsed = if is_json {
        webhook::parse_json(&body)
    } else {
        webhook::parse_form(&body)
    };
    let parsed = parsed.map_err(|e| {
        count(format, "malformed");
        ApiError::BadRequest(e.to_string())
    })?;
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
    process(&state, &parsed, format, started).await
}

/// The JSON webhook of the existing deployment.
#[tracing::instrument(skip_all, fields(account_id))]
pub async fn json(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
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
    if let Some(sub) = parsed.account().subdomain
        && !sub.eq_ignore_ascii_case(&state.settings.subdomain)
    {
        count("json", "wrong_account");
        return Err(ApiError::Forbidden(format!(
            "account[subdomain] {sub} is not the configured account"
        )));
    }
    process(&state, &parsed, "json", started).await
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

async fn process(
    state: &AppState,
    body: &WebhookBody,
    format: &'static str,
    started: Instant,
) -> Result<Response, ApiError> {
    let ingested = ingest(state, body, format).await.map_err(|e| {
        count(format, "bus_down");
        ApiError::BusDown(e)
    })?;
    let n = ingested.published;
    let errors: Vec<String> = ingested.errors.iter().map(ToString::to_string).collect();
    metrics::histogram!("amocrm_webhook_seconds", "format" => format)
        .record(started.elapsed().as_secs_f64());
    let (code, status, outcome) = match (errors.is_empty(), n) {
        (true, _) => (StatusCode::OK, "success", "accepted"),
        (false, 0) => (StatusCode::BAD_REQUEST, "error", "malformed"),
        (false, _) => (StatusCode::BAD_REQUEST, "partial_success", "partial"),
    };
    count(format, outcome);
    if errors.is_empty() {
        tracing::info!(
            events = n,
            duplicates = ingested.duplicates,
            "amoCRM webhook accepted"
        );
    } else {
        tracing::info!(events = n, ?errors, "amoCRM webhook accepted in part");
    }
    Ok((
        code,
        Json(json!({
            "status": status,
            "message": format!("Processed {n} events"),
            "events_processed": n,
            "timestamp": service_kit::http::now_rfc3339(),
            "errors": if errors.is_empty() { None } else { Some(errors) },
        })),
    )
        .into_response())
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
