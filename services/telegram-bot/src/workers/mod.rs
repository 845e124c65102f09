//! Long-running loops of telegram-bot, started and stopped with the server: getUpdates long
//! polling ([`poll`], the default) or, in webhook mode, registering the webhook ([`webhook`]).

pub mod poll;
pub mod webhook;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exponential pause between failed attempts: 1 s doubling to 30 s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The next pause (and counts a failure).
    pub(crate) fn next(&mut self) -> Duration {
        let d = Duration::from_secs(1u64 << self.failures.min(5)).min(Duration::from_secs(30));
        self.failures += 1;
        d
    }

    /// Back to 1 s after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Sleeps `d`; `false` when `stop` was cancelled first.
pub(crate) async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
