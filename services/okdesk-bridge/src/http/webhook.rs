//! `POST /okdesk/webhook/{OKDESK_WEBHOOK_TOKEN}`: Okdesk's webhooks
//! (<https://help.okdesk.ru/knowledge_base/articles/vebhuki-148>, shapes in docs/okdesk-api.md).
//!
//! - Okdesk signs nothing: the token in the path is the credential (constant-time compare; a
//!   wrong one is 404). When `OKDESK_WEBHOOK_SECRET` is set, the delivery must also carry it
//!   (header `X-Okdesk-Secret`, or query `secret`), else 401.
//! - `new_ticket` → the issue is watched (its status is the baseline); `new_ticket_status` →
//!   `events.okdesk.issue.status_changed`; one whose `old_status` is not the status last
//!   announced is checked against the API first (a late, older webhook announces nothing); `new_comment` → `events.okdesk.comment.created`
//!   when public. Every one goes through [`crate::announce`], so the same delivery twice (or
//!   the poll having seen it first) is one event.
//! - Other event types: 200, logged. A body that is not an Okdesk webhook: 400 saying why.
//! - Answered 200 only after JetStream stored the event; 503 when NATS is down (Okdesk
//!   retries), 500 when the database is.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use domain::{Issue, IssueStatus};
use okdesk_api::webhook::{StatusRef, WebhookIssue};
use okdesk_api::{EventKind, WebhookPayload};
use service_kit::secure_eq;

use crate::AppState;
use crate::announce::{self, AnnounceError, SeenComment};
use crate::error::ApiError;

/// The header an optional shared secret is read from.
pub const SECRET_HEADER: &str = "x-okdesk-secret";

/// Handles one webhook delivery.
pub async fn handle(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    if !secure_eq(
        token.as_bytes(),
        state.settings.webhook_token.expose().as_bytes(),
    ) {
        return Err(ApiError::NotFound);
    }
    if let Some(secret) = &state.settings.webhook_secret {
        let given = headers
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes().to_vec())
            .or_else(|| query.get("secret").map(|s| s.as_bytes().to_vec()))
            .unwrap_or_default();
        if !secure_eq(&given, secret.expose().as_bytes()) {
            metrics::counter!("okdesk_webhooks_total", "outcome" => "bad_secret").increment(1);
            return Err(ApiError::Unauthorized);
        }
    }
    let p = WebhookPayload::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let kind = p.kind();
    let outcome = process(&state, &p).await.map_err(|e| match e {
        AnnounceError::Bus(e) => ApiError::BusDown(e),
        AnnounceError::Store(e) => ApiError::Unexpected(anyhow::Error::new(e)),
    })?;
    tracing::info!(event_type = %p.event_type, issue_id = p.issue_id(), outcome, "Okdesk webhook");
    metrics::counter!("okdesk_webhooks_total", "event" => format!("{kind:?}"), "outcome" => outcome)
        .increment(1);
    Ok(StatusCode::OK)
}

fn status_of(s: &StatusRef) -> IssueStatus {
    announce::status_of(&s.code, s.name.as_deref())
}

fn issue_of(state: &AppState, w: &WebhookIssue, status: Option<&StatusRef>) -> Issue {
    Issue {
        id: w.id,
        title: w.title.clone().unwrap_or_default(),
        status: status
            .or(w.status.as_ref())
            .map_or_else(announce::opened, status_of),
        url: state.okdesk.issue_url(w.id),
        contact_id: w.contact_id,
        company_id: w.company_id,
        created_at: announce::time_of(w.created_at.as_deref()),
    }
}

/// What became of the delivery, for the log.
async fn process(state: &AppState, p: &WebhookPayload) -> Result<&'static str, AnnounceError> {
    let Some(w) = &p.issue else {
        return Ok("no issue");
    };
    match p.kind() {
        EventKind::NewTicket => {
            // Only watched from now on: an issue the bridge opened itself is announced, with
            // its requester, by the issues consumer (this webhook may come first); one opened
            // in Okdesk is not news to the person until its status or a comment changes.
            announce::watch(state, &issue_of(state, w, None)).await?;
            Ok("issue watched")
        }
        EventKind::NewTicketStatus => {
            let Some(new) = p.new_status.as_ref() else {
                return Ok("no new_status");
            };
            // Okdesk redelivers webhooks, late and out of order. A change from the status last
            // announced is taken as it comes; any other (an older one arriving late, or one
            // after a change we missed) is checked against the status the API gives now, so a
            // late old webhook announces nothing. Without an answer from the API it is left to
            // the poll, which compares with the API itself.
            let recorded = state.store.issue_status(w.id).await?;
            let in_order = match (&recorded, &p.old_status) {
                (Some(known), Some(old)) => *known == old.code,
                _ => true,
            };
            let issue = if in_order {
                issue_of(state, w, Some(new))
            } else {
                match state.okdesk.issue(w.id).await {
                    Ok(Some(current)) => announce::issue(state, &current),
                    Ok(None) => return Ok("status out of order, issue unknown to the API"),
                    Err(e) => {
                        tracing::warn!(issue_id = w.id, error = %e, "a status webhook out of order could not be checked with the API; left to the poll");
                        return Ok("status out of order, left to the poll");
                    }
                }
            };
            let changed =
                announce::status(state, &issue, p.old_status.as_ref().map(status_of), false)
                    .await?;
            Ok(if changed {
                "status announced"
            } else {
                "status known"
            })
        }
        EventKind::NewComment => {
            let Some(c) = &p.comment else {
                return Ok("no comment");
            };
            let Some(id) = c.id else {
                return Ok("comment without id");
            };
            let seen = SeenComment {
                id,
                html: c.content.clone(),
                public: c.is_public,
                author: p
                    .author
                    .as_ref()
                    .map(|a| a.display_name())
                    .filter(|n| !n.is_empty()),
                by_contact: p.author.as_ref().is_some_and(|a| a.is_contact()),
            };
            let issue = issue_of(state, w, None);
            Ok(if announce::comment(state, &issue, &seen).await? {
                "comment announced"
            } else if c.is_public {
                "comment known"
            } else {
                "private comment"
            })
        }
        EventKind::Other => Ok("event type not relayed"),
    }
}
