//! Housekeeping: once a minute, the login, registration, send and group-member limiters forget
//! the keys whose limits have recovered, so that their memory stays bounded by recent callers.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ratelimit::{LoginLimits, UserLimits};

/// How often the limiters are trimmed.
pub const EVERY: Duration = Duration::from_secs(60);

/// Trims `login` and `users` every [`EVERY`] until `stop`.
pub async fn run(
    login: LoginLimits,
    users: UserLimits,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {
                login.retain_recent();
                users.retain_recent();
            }
        }
    }
}
