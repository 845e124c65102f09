//! Durable consumers of vk-connector: VK messages → Chatwoot, agent replies → VK.

pub mod relay;
pub mod sender;

use chatwoot_api::ChatwootError;
use service_kit::consumer::HandleError;
use vk_api::{ErrorClass, VkError};

/// Chatwoot failures: 429/5xx/unreachable are retried (honouring `Retry-After`), other 4xx
/// are final.
pub(crate) fn chatwoot_failure(what: &str, e: ChatwootError) -> HandleError {
    if e.is_retriable() {
        HandleError::Retry {
            reason: format!("{what}: {e}"),
            after: e.retry_after(),
        }
    } else {
        HandleError::Fatal(format!("{what}: {e}"))
    }
}

/// VK failures per VK's error table: 6/10/5xx/429 soon, 9 (flood control) not at once,
/// 5/901/… final.
pub(crate) fn vk_failure(what: &str, e: VkError) -> HandleError {
    match e.class() {
        ErrorClass::RetrySoon => HandleError::Retry {
            reason: format!("{what}: {e}"),
            after: e.retry_after(),
        },
        ErrorClass::RetryLater => HandleError::Retry {
            reason: format!("{what}: {e}"),
            after: Some(std::time::Duration::from_secs(60)),
        },
        ErrorClass::Final => HandleError::Fatal(format!("{what}: {e}")),
    }
}

/// Postgres failures are always worth retrying.
pub(crate) fn db_failure(e: sqlx::Error) -> HandleError {
    HandleError::retry(format!("database: {e}"))
}
