//! The ingress half shared by both webhook routes: every entry of a verified body becomes one
//! normalized envelope on JetStream (`events.amocrm.lead.*`, `events.amocrm.contact.*`), all
//! published concurrently and all acknowledged before the route answers.

use amocrm_api::webhook::{Action, EntityKind, Entry, EntryError, WebhookBody};
use domain::{Deletion, Envelope, Event, IdempotencyKey, Source};
use service_kit::bus::PublishError;
use time::OffsetDateTime;

use crate::AppState;
use crate::normalize;

/// What a body came to.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Events stored by JetStream (duplicates included: they are stored once).
    pub published: usize,
    /// Of those, how many JetStream had seen inside its duplicate window.
    pub duplicates: usize,
    /// Entries refused, with where they are and why.
    pub errors: Vec<EntryError>,
}

/// The envelope of one entry, or why the entry is refused.
pub fn envelope(
    state: &AppState,
    entry: &Entry<'_>,
    received_at: OffsetDateTime,
) -> Result<Envelope<Event>, EntryError> {
    let s = &state.settings;
    let m = &s.mapping;
    // A deletion carries no time of its own; the same deletion twice is one fact. Any other
    // entry without `updated_at` is keyed by a digest of its content, so a different change of
    // the same entity is not dropped as a duplicate while a redelivery still is.
    let key = |id: i64, updated_at: Option<i64>, content: &dyn Fn() -> Vec<u8>| {
        let (entity, action) = (entry.kind.as_str(), entry.action.as_str());
        match updated_at {
            _ if entry.action == Action::Delete => {
                IdempotencyKey::amocrm_entity(&s.subdomain, entity, id, action, None)
            }
            Some(_) => IdempotencyKey::amocrm_entity(&s.subdomain, entity, id, action, updated_at),
            None => IdempotencyKey::amocrm_entity_digest(
                &s.subdomain,
                entity,
                id,
                action,
                &digest(&content()),
            ),
        }
    };
    let (event, key, at) = match entry.kind {
        EntityKind::Lead => {
            let raw = entry.lead()?;
            let k = key(raw.id, raw.updated_at, &|| {
                // Normalized at a fixed time: `received_at` stands in for the missing
                // `updated_at` and differs between redeliveries.
                serde_json::to_vec(&normalize::lead(&raw, m, OffsetDateTime::UNIX_EPOCH))
                    .unwrap_or_default()
            });
            if entry.action == Action::Delete {
                let d = deletion(raw.id, raw.account_id, raw.updated_at, received_at);
                let at = d.deleted_at;
                (Event::LeadDeleted(d), k, at)
            } else {
                let lead = normalize::lead(&raw, m, received_at);
                let at = lead.updated_at;
                let event = match entry.action {
                    Action::Add => Event::LeadCreated(lead),
                    Action::Status => Event::LeadStatusChanged(lead),
                    _ => Event::LeadUpdated(lead),
                };
                (event, k, at)
            }
        }
        EntityKind::Contact => {
            let raw = entry.contact()?;
            let k = key(raw.id, raw.updated_at, &|| {
                serde_json::to_vec(&normalize::contact(&raw, m, OffsetDateTime::UNIX_EPOCH))
                    .unwrap_or_default()
            });
            if entry.action == Action::Delete {
                let d = deletion(raw.id, raw.account_id, raw.updated_at, received_at);
                let at = d.deleted_at;
                (Event::ContactDeleted(d), k, at)
            } else {
                let contact = normalize::contact(&raw, m, received_at);
                let at = contact.updated_at;
                let event = match entry.action {
                    Action::Add => Event::ContactCreated(contact),
                    _ => Event::ContactUpdated(contact),
                };
                (event, k, at)
            }
        }
    };
    Ok(Envelope::new(Source::Amocrm, at, key, event))
}

/// The first 8 bytes of the SHA-256 of `content`, in hex.
fn digest(content: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(content)[..8])
}

fn deletion(
    id: i64,
    account_id: Option<i64>,
    updated_at: Option<i64>,
    received_at: OffsetDateTime,
) -> Deletion {
    Deletion {
        id,
        account_id,
        deleted_at: normalize::unix(updated_at).unwrap_or(received_at),
    }
}

/// Publishes every good entry of `body`; `Err` when JetStream did not take all of them (the
/// route answers 503 and amoCRM delivers again; the ones already stored are deduplicated by
/// their `Nats-Msg-Id`).
pub async fn ingest(
    state: &AppState,
    body: &WebhookBody,
    format: &'static str,
) -> Result<Ingested, PublishError> {
    let received_at = OffsetDateTime::now_utc();
    let (entries, mut errors) = body.entries();
    let skipped = body.skipped();
    if !skipped.is_empty() {
        tracing::debug!(?skipped, "webhook sections not handled");
    }
    let mut envelopes = Vec::with_capacity(entries.len());
    for entry in &entries {
        match envelope(state, entry, received_at) {
            Ok(env) => envelopes.push(env),
            Err(e) => errors.push(e),
        }
    }
    let results =
        futures::future::join_all(envelopes.iter().map(|env| state.bus.publish(env))).await;
    let mut out = Ingested {
        errors,
        ..Ingested::default()
    };
    for (env, result) in envelopes.iter().zip(results) {
        let published = result?;
        out.published += 1;
        out.duplicates += usize::from(published.duplicate);
        metrics::counter!("amocrm_events_total", "type" => env.payload.type_name(), "format" => format)
            .increment(1);
    }
    Ok(out)
}
