//! The outbox sweep: every [`EVERY`], publishes the events whose poster could not (NATS was
//! down) or did not get to it ([`crate::messaging::OUTBOX_MIN_AGE`]).

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::messaging::{OUTBOX_MIN_AGE, flush_outbox_older_than};

/// How often the outbox of unpublished events is retried.
pub const EVERY: Duration = Duration::from_secs(10);

/// Sweeps until `stop`. A failed pass (Postgres or NATS down) is retried at the next tick.
pub async fn run(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Err(e) = flush_outbox_older_than(&state, OUTBOX_MIN_AGE).await {
            tracing::debug!(error = format!("{e:#}"), "outbox not flushed yet");
        }
    }
}
