//! The ingress half shared by both webhook routes: every entry of a verified body becomes one
//! normalized envelope on JetStream (`events.amocrm.lead.*`, `events.amocrm.contact.*`),
//! published [`PUBLISH_CONCURRENCY`] at a time and all acknowledged before the route answers.
//!
//! A body with more than `AMOCRM_MAX_ENTRIES_PER_WEBHOOK` entries is refused whole, before
//! anything is published. An entry whose `updated_at` is more than [`MAX_FUTURE`] ahead of our
//! clock is refused: the store keeps the newest `updated_at`, so one forged date would pin the
//! row against every real change until that date.

use std::future::Future;
use std::time::Duration;

use amocrm_api::webhook::{Action, EntityKind, Entry, EntryError, WebhookBody};
use domain::{Deletion, Envelope, Event, IdempotencyKey, Source};
use futures::StreamExt;
use service_kit::bus::PublishError;
use time::OffsetDateTime;

use crate::AppState;
use crate::normalize;

/// Envelopes of one webhook on their way to JetStream at once.
pub const PUBLISH_CONCURRENCY: usize = 16;

/// How far ahead of our clock an entry's `updated_at` may be.
pub const MAX_FUTURE: Duration = Duration::from_secs(3600);

/// What a body came to.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Events stored by JetStream (duplicates included: they are stored once).
    pub published: usize,
    /// Of those, how many JetStream had seen inside its duplicate window.
    pub duplicates: usize,
    /// Entries that could not be read, with where they are and why.
    pub unreadable: Vec<EntryError>,
    /// Entries refused because their `updated_at` is more than [`MAX_FUTURE`] ahead.
    pub future: Vec<EntryError>,
}

impl Ingested {
    /// Every refused entry, the future-dated first, as `leads[add][1]: …` lines.
    pub fn error_lines(&self) -> Vec<String> {
        self.future
            .iter()
            .chain(&self.unreadable)
            .map(ToString::to_string)
            .collect()
    }
}

/// Why a body was not (wholly) published.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// More entries than `AMOCRM_MAX_ENTRIES_PER_WEBHOOK`; nothing was published.
    #[error(
        "{count} entries; at most {limit} per webhook (AMOCRM_MAX_ENTRIES_PER_WEBHOOK); nothing was processed"
    )]
    TooManyEntries {
        /// Lead and contact entries in the body.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// JetStream did not take every event (the ones it took are deduplicated on redelivery).
    #[error(transparent)]
    Bus(#[from] PublishError),
}

/// Why one entry is not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The entry cannot be read (no id, a field that is not a number …).
    Unreadable(EntryError),
    /// Its `updated_at` is more than [`MAX_FUTURE`] ahead of `received_at`.
    Future(EntryError),
}

impl From<EntryError> for Refusal {
    fn from(e: EntryError) -> Self {
        Refusal::Unreadable(e)
    }
}

/// `Err` naming the entry when `updated_at` (unix seconds) is more than [`MAX_FUTURE`] after
/// `now`.
pub fn check_not_future(
    entry: &Entry<'_>,
    updated_at: Option<i64>,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let Some(at) = updated_at else {
        return Ok(());
    };
    let limit = now
        .unix_timestamp()
        .saturating_add(MAX_FUTURE.as_secs() as i64);
    if at <= limit {
        return Ok(());
    }
    let shown = OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(|t| format!("{at} ({t})"))
        .unwrap_or_else(|| at.to_string());
    Err(Refusal::Future(EntryError {
        position: entry.position(),
        reason: format!(
            "updated_at {shown} is more than {} minutes in the future; refused",
            MAX_FUTURE.as_secs() / 60
        ),
    }))
}

/// The envelope of one entry, or why the entry is refused.
pub fn envelope(
    state: &AppState,
    entry: &Entry<'_>,
    received_at: OffsetDateTime,
) -> Result<Envelope<Event>, Refusal> {
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
            check_not_future(entry, raw.updated_at, received_at)?;
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
            check_not_future(entry, raw.updated_at, received_at)?;
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

/// Runs the (not yet started) futures, at most `limit` at once, and returns their outputs in
/// their order once all of them are done.
pub async fn bounded<Fut: Future>(futures: Vec<Fut>, limit: usize) -> Vec<Fut::Output> {
    futures::stream::iter(futures)
        .buffered(limit.max(1))
        .collect()
        .await
}

/// Publishes every good entry of `body`, [`PUBLISH_CONCURRENCY`] at a time.
///
/// Errors: [`IngestError::TooManyEntries`] before anything is published;
/// [`IngestError::Bus`] when JetStream did not take all of them (the route answers 503 and
/// amoCRM delivers again; the ones already stored are deduplicated by their `Nats-Msg-Id`).
pub async fn ingest(
    state: &AppState,
    body: &WebhookBody,
    format: &'static str,
) -> Result<Ingested, IngestError> {
    let received_at = OffsetDateTime::now_utc();
    let (entries, errors) = body.entries();
    let limit = state.settings.max_entries_per_webhook;
    if entries.len() > limit {
        return Err(IngestError::TooManyEntries {
            count: entries.len(),
            limit,
        });
    }
    let skipped = body.skipped();
    if !skipped.is_empty() {
        tracing::debug!(?skipped, "webhook sections not handled");
    }
    let mut out = Ingested {
        unreadable: errors,
        ..Ingested::default()
    };
    let mut envelopes = Vec::with_capacity(entries.len());
    for entry in &entries {
        match envelope(state, entry, received_at) {
            Ok(env) => envelopes.push(env),
            Err(Refusal::Unreadable(e)) => out.unreadable.push(e),
            Err(Refusal::Future(e)) => out.future.push(e),
        }
    }
    // Built here, started by `bounded`: a future does nothing until it is polled.
    let publishes: Vec<_> = envelopes.iter().map(|env| state.bus.publish(env)).collect();
    let results = bounded(publishes, PUBLISH_CONCURRENCY).await;
    for (env, result) in envelopes.iter().zip(results) {
        let published = result?;
        out.published += 1;
        out.duplicates += usize::from(published.duplicate);
        metrics::counter!("amocrm_events_total", "type" => env.payload.type_name(), "format" => format)
            .increment(1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn at_most_the_limit_run_at_once_and_results_keep_their_order() {
        let items: Vec<usize> = (0..100).collect();
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = items
            .iter()
            .map(|i| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(running, Ordering::SeqCst);
                    // Items finish out of order, so the order of results is not the finishing
                    // order.
                    tokio::time::sleep(Duration::from_millis((100 - *i as u64) % 7)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    *i * 2
                }
            })
            .collect();
        let results = bounded(jobs, PUBLISH_CONCURRENCY).await;
        assert_eq!(results, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), PUBLISH_CONCURRENCY);
    }

    #[test]
    fn an_update_more_than_an_hour_ahead_is_refused_with_its_position() {
        let body =
            amocrm_api::webhook::parse_json(br#"{"leads":{"update":[{"id":1,"updated_at":1}]}}"#)
                .expect("parses");
        let (entries, _) = body.entries();
        let now = OffsetDateTime::from_unix_timestamp(1_795_348_800).expect("a time");
        let at = now.unix_timestamp();
        assert!(check_not_future(&entries[0], Some(at + 3600), now).is_ok());
        assert!(check_not_future(&entries[0], None, now).is_ok());
        assert!(check_not_future(&entries[0], Some(i64::MIN), now).is_ok());
        let Err(Refusal::Future(e)) = check_not_future(&entries[0], Some(at + 3601), now) else {
            panic!("a date 1 h 1 s ahead is refused");
        };
        assert_eq!(e.position, "leads[update][0]");
        assert!(e.reason.contains("2026-11-22T13:00:01Z"), "{}", e.reason);
        assert!(e.reason.contains("in the future"), "{}", e.reason);
        assert!(check_not_future(&entries[0], Some(i64::MAX), now).is_err());
    }
}
