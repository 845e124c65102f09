//! The OAuth token refresher: keeps the account's pair alive when no traffic uses it (a
//! refresh token unused for three months expires, and then someone must authorize the
//! integration again).
//!
//! It refreshes when the access token enters `AMOCRM_TOKEN_REFRESH_MARGIN_SECS` and looks at
//! the row again at least hourly. Every replica runs it; the row lock of [`Tokens::refresh`]
//! makes them refresh one at a time, and the second finds a fresh pair.

use tokio_util::sync::CancellationToken;

use crate::oauth::Tokens;

/// Worker name in logs.
pub const NAME: &str = "token refresher";

/// Runs until `stop` is cancelled. Never fails: a failed refresh is logged and tried again
/// in a minute.
///
/// Errors: none today (the signature is the one every worker has).
pub async fn run(tokens: Tokens, stop: CancellationToken) -> anyhow::Result<()> {
    while !stop.is_cancelled() {
        // A refresh in progress is finished, not dropped: it is one short transaction around
        // one token request.
        let wait = tokens.keep_alive().await;
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    Ok(())
}
