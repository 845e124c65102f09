//! VK Bots Long Poll worker (<https://dev.vk.com/ru/api/bots-long-poll/getting-started>), for
//! hosts VK's Callback API cannot reach. Each update goes through the same [`ingest`] as a
//! callback; `ts` advances only after every update of a batch is on JetStream, so a NATS
//! outage re-reads the batch later (duplicates are dropped by `Nats-Msg-Id`).
//!
//! `failed: 1` → continue with the returned `ts`; `failed: 2` → new key, same `ts`;
//! `failed: 3` → new key and `ts` (events in between are lost upstream; logged loudly).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;
use vk_api::LongPollServer;
use vk_api::callback::CallbackEvent;

use crate::AppState;
use crate::ingest::{IngestError, ingest};

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Polls until `shutdown`; `wait` is how long one request may wait for events. Never fails:
/// VK and NATS errors are logged and retried with backoff.
pub async fn run(
    state: AppState,
    wait: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let group_id = state.settings.vk.group_id;
    let mut server: Option<LongPollServer> = None;
    let mut ts: Option<String> = None;
    let mut delays = backoff();
    tracing::info!(group_id, "VK long poll started");
    while !shutdown.is_cancelled() {
        let srv = match server.clone() {
            Some(s) => s,
            None => match state.vk.long_poll_server(group_id).await {
                Ok(s) => {
                    if ts.is_none() {
                        ts = Some(s.ts.clone());
                    }
                    server = Some(s.clone());
                    s
                }
                Err(e) => {
                    let d = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "groups.getLongPollServer failed");
                    if pause(&shutdown, d).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let current_ts = ts.clone().unwrap_or_else(|| srv.ts.clone());
        let answer = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = state.vk.long_poll(&srv, &current_ts, wait) => a,
        };
        let update = match answer {
            Ok(u) => u,
            Err(e) => {
                let d = delays.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "long poll request failed");
                if pause(&shutdown, d).await {
                    break;
                }
                continue;
            }
        };
        match update.failed {
            Some(1) => {
                tracing::warn!("long poll history lost (failed: 1); continuing from the new ts");
                ts = update.ts;
                continue;
            }
            Some(2) => {
                tracing::info!("long poll key expired (failed: 2); fetching a new key");
                server = None;
                continue;
            }
            Some(3) => {
                tracing::error!(
                    "long poll key and ts lost (failed: 3); events in between may be missing"
                );
                server = None;
                ts = None;
                continue;
            }
            Some(other) => {
                tracing::warn!(
                    failed = other,
                    "unknown long poll failure; fetching a new key"
                );
                server = None;
                continue;
            }
            None => {}
        }
        let mut batch_ok = true;
        for raw in update.updates {
            let event: CallbackEvent = match serde_json::from_value(raw) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "long poll update is not a VK event; skipped");
                    continue;
                }
            };
            if event.group_id != group_id {
                tracing::warn!(
                    group_id = event.group_id,
                    "long poll update of another community; skipped"
                );
                continue;
            }
            match ingest(&state, &event).await {
                Ok(_) => {}
                Err(IngestError::Malformed(m)) => {
                    tracing::warn!(event_id = ?event.event_id, reason = %m, "malformed long poll update; skipped");
                }
                Err(IngestError::Bus(e)) => {
                    tracing::error!(error = %e, "event bus unavailable; the batch will be read again");
                    batch_ok = false;
                    break;
                }
            }
        }
        if batch_ok {
            if update.ts.is_some() {
                ts = update.ts;
            }
            delays = backoff();
        } else {
            let d = delays.next().unwrap_or(Duration::from_secs(30));
            if pause(&shutdown, d).await {
                break;
            }
        }
    }
    tracing::info!("VK long poll stopped");
    Ok(())
}

/// Sleeps `d` unless shut down first; `true` when shutting down.
async fn pause(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
