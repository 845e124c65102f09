//! Benchmark tools for vk-connector, used by `bench/vk-connector.sh` (loopback only, bounded in
//! count and time). Not part of any image.
//!
//! * `vk-callback-ceiling` (binary): the callback route's work — verify, parse, normalize,
//!   envelope serialisation — answered `ok` **without** the JetStream publish, behind the same
//!   HTTP stack as the service; the ceiling the durable hand-off is compared with.
//! * `vk-bench` (binary): the load generator — the wrk script, the backlog publisher, the drain
//!   and end-to-end latency measurements against the sandbox Chatwoot; and, for
//!   `bench/telegram-bot.sh`, the end-to-end latency of telegram-bot's webhook → forum topic
//!   relay against the sandbox's fake Bot API (`tg-e2e`).
//!
//! The library holds what both share: VK `message_new` bodies ([`callback`]), the route's work
//! up to the publish ([`route`]), the sandbox's `received` list ([`sandbox`]), the Telegram
//! webhook updates and the sandbox's watch of the group ([`telegram`]) and percentiles
//! ([`stats`]).

#![warn(missing_docs)]

pub mod callback;
pub mod route;
pub mod sandbox;
pub mod stats;
pub mod telegram;

use std::time::{SystemTime, UNIX_EPOCH};

/// Now as unix microseconds (the wall clock: the sandbox stamps arrivals with the same one).
pub fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Refuses anything but loopback URLs: the benchmark loads only this machine.
///
/// Errors: `url` is not `http://127.…`, `http://localhost…` or `nats://127.…`.
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let ok = [
        "http://127.",
        "http://localhost",
        "nats://127.",
        "nats://localhost",
    ]
    .iter()
    .any(|p| url.starts_with(p));
    anyhow::ensure!(ok, "loopback targets only, not {url}");
    Ok(())
}
