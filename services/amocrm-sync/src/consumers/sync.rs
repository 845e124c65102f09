//! `events.amocrm.>` → schema `amocrm`.
//!
//! Ordered by entity ([`Event::ordering_key`]: `lead:<id>`, `contact:<id>`): the events of one
//! lead or contact are stored one after another, in stream order, while other entities flow
//! on, up to `AMOCRM_CONSUMER_CONCURRENCY` at once. The store's ordered upserts stay as the
//! second line (a replica taking over replays from the ack floor).
//!
//! A lead event is first completed from API v4 (`GET /api/v4/leads/{id}?with=contacts`, then
//! the linked contacts not stored yet) when a token is stored and `AMOCRM_FETCH_LEADS` is on;
//! when amoCRM cannot be asked the webhook's own data is stored. Writes are ordered and
//! idempotent (see [`crate::store`]). Postgres being unreachable is
//! [`HandleError::Unavailable`]: the event waits (`AMOCRM_DB_RETRY_SECS`) and is never
//! dead-lettered for it; other failures are retried on `AMOCRM_RETRY_DELAYS_SECS` and then
//! dead-lettered.

use std::time::Instant;

use domain::{Envelope, Event, Lead, Source, Subject};
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::config::Settings;
use crate::normalize;
use crate::store::Applied;

/// Durable name, shared by all replicas (one holds it at a time).
pub const DURABLE: &str = "amocrm-sync-store";

/// `events.amocrm.>`, keyed by entity; attempts and delays from `AMOCRM_RETRY_DELAYS_SECS`
/// (attempts = delays + 1), handlers at once from `AMOCRM_CONSUMER_CONCURRENCY`.
pub fn spec(settings: &Settings) -> ConsumerSpec<Event> {
    let mut spec = ConsumerSpec::new(
        DURABLE,
        Subject::event(Source::Amocrm, ">"),
        |env: &Envelope<Event>| env.payload.ordering_key(),
    );
    let delays = &settings.retry_delays;
    spec.max_attempts = u32::try_from(delays.len()).map_or(u32::MAX, |n| n.saturating_add(1));
    if !delays.is_empty() {
        spec.backoff = delays.clone();
    }
    spec.concurrency = Some(settings.consumer_concurrency);
    spec
}

/// Handles one envelope.
pub async fn handle(state: AppState, env: Envelope<Event>) -> Result<(), HandleError> {
    let started = Instant::now();
    let kind = env.payload.type_name();
    let store = &state.store;
    let applied = match env.payload {
        Event::LeadCreated(lead) | Event::LeadUpdated(lead) | Event::LeadStatusChanged(lead) => {
            let lead = complete(&state, lead).await;
            store.apply_lead(&lead).await
        }
        Event::LeadDeleted(d) => store.delete_lead(&d).await,
        Event::ContactCreated(c) | Event::ContactUpdated(c) => store.apply_contact(&c).await,
        Event::ContactDeleted(d) => store.delete_contact(&d).await,
        other => {
            tracing::debug!(kind = other.type_name(), "not an amoCRM record; skipped");
            return Ok(());
        }
    }
    .map_err(|e| db_failure(&state, e))?;
    tracing::info!(kind, outcome = applied.label(), key = %env.idempotency_key, "amoCRM event stored");
    metrics::counter!("amocrm_stored_total", "type" => kind, "outcome" => applied.label())
        .increment(1);
    metrics::histogram!("amocrm_event_processing_seconds", "type" => kind)
        .record(started.elapsed().as_secs_f64());
    if applied == Applied::Stale {
        tracing::debug!(kind, "an older fact than the stored one; ignored");
    }
    Ok(())
}

/// The lead as API v4 has it, when it can be asked; else as the webhook said.
async fn complete(state: &AppState, lead: Lead) -> Lead {
    if !state.settings.fetch_leads {
        return lead;
    }
    let token = match state.tokens.access_token().await {
        Ok(Some(t)) => t,
        Ok(None) => return lead,
        Err(e) => {
            tracing::warn!(lead_id = lead.id, error = %e, "no usable amoCRM token; storing the webhook's data");
            return lead;
        }
    };
    let fetched = match state.amo.lead(&token, lead.id).await {
        Err(e) if e.status() == Some(401) => match state.tokens.refresh(true).await {
            Ok(t) => state.amo.lead(&t, lead.id).await,
            Err(te) => {
                tracing::warn!(lead_id = lead.id, error = %te, "token refused and refresh failed");
                Err(e)
            }
        },
        other => other,
    };
    let raw = match fetched {
        Ok(Some(raw)) => raw,
        Ok(None) => return lead, // deleted meanwhile, or not visible to the token's user
        Err(e) => {
            tracing::warn!(lead_id = lead.id, error = %e, "amoCRM API v4 unavailable; storing the webhook's data");
            return lead;
        }
    };
    let received = lead.updated_at;
    let mut full = normalize::lead(&raw, &state.settings.mapping, received);
    // API v4 leaves the fields out when none is set; the webhook's "previous stage" is not in it.
    full.custom_fields.get_or_insert_with(Vec::new);
    full.previous_status_id = lead.previous_status_id;
    if full.updated_at < lead.updated_at {
        // The API answered from before this change (replication lag): the webhook is newer.
        return lead;
    }
    fetch_contacts(state, &token, &full).await;
    full
}

/// Stores the lead's contacts that are not stored yet (best effort).
async fn fetch_contacts(state: &AppState, token: &str, lead: &Lead) {
    let ids: Vec<i64> = lead.contacts.iter().map(|c| c.id).collect();
    if ids.is_empty() {
        return;
    }
    let unknown = match state.store.unknown_contacts(&ids).await {
        Ok(u) => u,
        Err(_) => return,
    };
    for id in unknown.into_iter().take(10) {
        match state.amo.contact(token, id).await {
            Ok(Some(raw)) => {
                let c = normalize::contact(&raw, &state.settings.mapping, lead.updated_at);
                if let Err(e) = state.store.apply_contact(&c).await {
                    tracing::warn!(contact_id = id, error = %e, "storing a fetched contact failed");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(contact_id = id, error = %e, "fetching a contact failed");
                return;
            }
        }
    }
}

/// Postgres unreachable → wait without using up attempts; anything else → retry, then dead
/// letter.
fn db_failure(state: &AppState, e: sqlx::Error) -> HandleError {
    if service_kit::consumer::db_unavailable(&e) {
        HandleError::Unavailable {
            reason: format!("database unavailable: {e}"),
            after: state.settings.db_retry,
        }
    } else {
        HandleError::retry(format!("database: {e}"))
    }
}
