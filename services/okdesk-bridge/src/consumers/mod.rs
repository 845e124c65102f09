//! Durable consumers of okdesk-bridge, one per command: [`register`] (contacts), [`issues`]
//! (issue create), [`comments`] (comment create). Each module declares its spec beside its
//! handler. Okdesk failures: 429/5xx/timeouts are retried with backoff (then dead-lettered,
//! replayable with `okdesk-bridge dlq replay`); a 401 waits (the token must be fixed, nothing
//! is wrong with the message); other 4xx are dead-lettered with Okdesk's answer.

pub mod comments;
pub mod issues;
pub mod register;

use std::time::Duration;

use okdesk_api::OkdeskError;
use service_kit::consumer::HandleError;

use crate::announce::AnnounceError;

pub(crate) fn okdesk_failure(what: &str, e: OkdeskError) -> HandleError {
    if e.is_unauthorized() {
        HandleError::Unavailable {
            reason: format!("{what}: {e} (fix OKDESK_API_TOKEN)"),
            after: Duration::from_secs(30),
        }
    } else if e.is_retriable() {
        HandleError::Retry {
            reason: format!("{what}: {e}"),
            after: e.retry_after(),
        }
    } else {
        HandleError::Fatal(format!("{what}: {e}"))
    }
}

pub(crate) use service_kit::consumer::db_failure;

pub(crate) fn announce_failure(e: AnnounceError) -> HandleError {
    match e {
        AnnounceError::Store(e) => db_failure(e),
        AnnounceError::Bus(e) => HandleError::retry(format!("publishing: {e}")),
    }
}
