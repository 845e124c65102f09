//! VK Bots Long Poll worker (<https://dev.vk.com/ru/api/bots-long-poll/getting-started>), for
//! hosts VK's Callback API cannot reach. Each update goes through the same [`ingest`] as a
//! callback.
//!
//! **Position.** `ts` advances only after every update of a response is on JetStream (or kept
//! as a dead letter), so a NATS outage re-reads the response later (duplicates are dropped by
//! `Nats-Msg-Id`). Once advanced it is saved in `vk.long_poll_state` (per community), and a
//! start continues from the saved `ts` rather than from the one `groups.getLongPollServer`
//! returns, so what VK queued during a restart or rollout is read, not skipped. Without a saved
//! position (first start) the server's `ts` is the start. One replica should run Long Poll.
//!
//! **Failures, as VK documents them** (`{"failed": N}`):
//! * `1` — the history is outdated or partly lost: continue with the `ts` of the answer, same
//!   key (events in between are lost upstream; logged). An answer without `ts` is taken as 3.
//! * `2` — the key expired: `groups.getLongPollServer` again for a new key, **keeping** `ts`.
//! * `3` — key and `ts` lost: `groups.getLongPollServer` again and take its `ts` (events in
//!   between are lost upstream; logged loudly).
//! * anything else: a new key, keeping `ts`.
//!
//! An update that is not an event this build reads is kept as a dead letter
//! ([`reingest`](crate::consumers::reingest)) and the worker goes on.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;
use vk_api::LongPollServer;
use vk_api::callback::CallbackEvent;

use crate::AppState;
use crate::consumers::reingest;
use crate::ingest::{IngestError, ingest};

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// What `failed` asks for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// `failed: 1` with a `ts`: continue from it with the same key.
    TakeTs,
    /// `failed: 2` (and unknown codes): a new key, the same `ts`.
    NewKey,
    /// `failed: 3` (or 1 without `ts`): a new key and the server's `ts`.
    NewKeyAndTs,
}

/// The reaction VK documents for `failed` (`has_ts`: the answer carries a `ts`).
pub fn recovery(failed: i64, has_ts: bool) -> Recovery {
    match failed {
        1 if has_ts => Recovery::TakeTs,
        1 | 3 => Recovery::NewKeyAndTs,
        _ => Recovery::NewKey,
    }
}

/// Polls until `shutdown`; `wait` is how long one request may wait for events. Never fails:
/// VK, NATS and Postgres errors are logged and retried with backoff.
pub async fn run(
    state: AppState,
    wait: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let group_id = state.settings.vk.group_id;
    let mut delays = backoff();
    // Where the last run stopped. Without it a start would skip what VK queued meanwhile, so
    // a database that does not answer is waited for.
    let saved = loop {
        match state.store.long_poll_ts(group_id).await {
            Ok(ts) => break ts,
            Err(e) => {
                let d = delays.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "reading the saved long poll position failed");
                if pause(&shutdown, d).await {
                    return Ok(());
                }
            }
        }
    };
    delays = backoff();
    let mut position = Position {
        ts: saved.clone(),
        saved,
    };
    let mut server: Option<LongPollServer> = None;
    tracing::info!(group_id, resume_from = ?position.ts, "VK long poll started");
    while !shutdown.is_cancelled() {
        let srv = match server.clone() {
            Some(s) => s,
            None => match state.vk.long_poll_server(group_id).await {
                Ok(s) => {
                    if position.ts.is_none() {
                        position.ts = Some(s.ts.clone());
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
        // Every event up to `ts` is published (or `ts` is where a `failed` answer or a new
        // server put us): that is where a restart continues.
        position.save(&state, group_id).await;
        let current_ts = position.ts.clone().unwrap_or_else(|| srv.ts.clone());
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
        if let Some(failed) = update.failed {
            match recovery(failed, update.ts.is_some()) {
                Recovery::TakeTs => {
                    tracing::warn!(
                        from = %current_ts,
                        to = ?update.ts,
                        "long poll history outdated or partly lost (failed: 1); events in between are lost, continuing from the new ts"
                    );
                    position.ts = update.ts;
                }
                Recovery::NewKey => {
                    tracing::info!(
                        failed,
                        "long poll key expired (failed: {failed}); fetching a new key, keeping ts"
                    );
                    server = None;
                }
                Recovery::NewKeyAndTs => {
                    tracing::error!(
                        failed,
                        from = %current_ts,
                        "long poll key and ts lost (failed: {failed}); continuing from the server's ts, events in between may be missing"
                    );
                    server = None;
                    position.ts = None;
                }
            }
            continue;
        }
        let mut batch_ok = true;
        for raw in update.updates {
            let event: CallbackEvent = match serde_json::from_value(raw.clone()) {
                Ok(e) => e,
                Err(e) => {
                    let reason =
                        format!("long poll update is not a VK event this build reads: {e}");
                    if keep(&state, raw, &reason).await {
                        continue;
                    }
                    batch_ok = false;
                    break;
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
                    if !keep(&state, raw, &m).await {
                        batch_ok = false;
                        break;
                    }
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
                position.ts = update.ts;
            }
            delays = backoff();
        } else {
            let d = delays.next().unwrap_or(Duration::from_secs(30));
            if pause(&shutdown, d).await {
                break;
            }
        }
    }
    // What the last response moved to, when its save failed until now.
    position.save(&state, group_id).await;
    tracing::info!("VK long poll stopped");
    Ok(())
}

/// The `ts` to poll with and the one last saved.
struct Position {
    /// `None` until a server's `ts` is taken (first start, after `failed: 3`).
    ts: Option<String>,
    saved: Option<String>,
}

impl Position {
    /// Saves `ts` when it moved since the last save. A failed save is logged and tried again
    /// on the next round: meanwhile a restart re-reads a little, which `Nats-Msg-Id` and the
    /// relay's processed keys absorb.
    async fn save(&mut self, state: &AppState, group_id: i64) {
        let Some(ts) = self.ts.as_deref() else {
            return;
        };
        if self.saved.as_deref() == Some(ts) {
            return;
        }
        match state.store.save_long_poll_ts(group_id, ts).await {
            Ok(()) => self.saved = Some(ts.to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, ts, "saving the long poll position failed; trying again after the next poll")
            }
        }
    }
}

/// Keeps an update that does not fit as a dead letter; `false` when the database did not take
/// it either (then the batch is read again later).
async fn keep(state: &AppState, raw: serde_json::Value, reason: &str) -> bool {
    match reingest::keep_vk_event(state, reingest::origin::VK_LONG_POLL, raw, reason).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot keep an unreadable long poll update; the batch will be read again"
            );
            false
        }
    }
}

/// Sleeps `d` unless shut down first; `true` when shutting down.
async fn pause(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_codes_get_the_reaction_vk_documents() {
        assert_eq!(recovery(1, true), Recovery::TakeTs);
        assert_eq!(recovery(1, false), Recovery::NewKeyAndTs);
        assert_eq!(recovery(2, false), Recovery::NewKey);
        assert_eq!(recovery(2, true), Recovery::NewKey);
        assert_eq!(recovery(3, false), Recovery::NewKeyAndTs);
        assert_eq!(recovery(4, false), Recovery::NewKey);
    }
}
