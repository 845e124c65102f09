//! Durable consumers of vk-connector: VK messages → Chatwoot ([`relay`]), agent replies → VK
//! ([`sender`]), replayed inbound bodies that did not decode → the routes' code ([`reingest`]).
//! Each module declares its [`spec`](relay::spec) (durable name, filter, ordering key) beside
//! its handler.

pub mod reingest;
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

pub(crate) use service_kit::consumer::db_failure;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn api(code: i64) -> VkError {
        VkError::Api {
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn vk_errors_map_to_the_documented_reaction() {
        // 6 too many requests, 10 internal error: retried with the consumer's backoff.
        for code in [6, 10] {
            assert!(matches!(
                vk_failure("send", api(code)),
                HandleError::Retry { after: None, .. }
            ));
        }
        // 9 flood control: not repeated at once.
        assert!(matches!(
            vk_failure("send", api(9)),
            HandleError::Retry { after: Some(d), .. } if d >= Duration::from_secs(60)
        ));
        // 5 bad token, 901 no permission, 914 too long: final, dead letter with the reason.
        for code in [5, 901, 914] {
            match vk_failure("messages.send", api(code)) {
                HandleError::Fatal(reason) => {
                    assert!(reason.contains(&format!("VK API error {code}")), "{reason}")
                }
                other => panic!("{code} should be final, got {other:?}"),
            }
        }
        // HTTP 429 honours Retry-After; 503 retried; 403 final.
        let limited = VkError::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(matches!(
            vk_failure("send", limited),
            HandleError::Retry { after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            vk_failure(
                "send",
                VkError::Http {
                    status: 503,
                    retry_after: None
                }
            ),
            HandleError::Retry { .. }
        ));
        assert!(matches!(
            vk_failure(
                "send",
                VkError::Http {
                    status: 403,
                    retry_after: None
                }
            ),
            HandleError::Fatal(_)
        ));
    }

    #[test]
    fn an_unreachable_database_waits_and_other_database_errors_retry() {
        assert!(matches!(
            db_failure(sqlx::Error::PoolTimedOut),
            HandleError::Unavailable { .. }
        ));
        assert!(matches!(
            db_failure(sqlx::Error::RowNotFound),
            HandleError::Retry { after: None, .. }
        ));
    }

    #[test]
    fn chatwoot_errors_retry_on_429_and_5xx_only() {
        let status = |s: u16| ChatwootError::Status {
            status: s,
            body: "{}".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(matches!(
            chatwoot_failure("post", status(429)),
            HandleError::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            chatwoot_failure("post", status(502)),
            HandleError::Retry { .. }
        ));
        assert!(matches!(
            chatwoot_failure("post", status(422)),
            HandleError::Fatal(_)
        ));
        assert!(matches!(
            chatwoot_failure("post", ChatwootError::Transport("timeout".into())),
            HandleError::Retry { .. }
        ));
    }
}
