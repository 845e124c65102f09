//! VK API errors and how to react to them.

use std::time::Duration;

/// A failed VK API call.
#[derive(Debug, thiserror::Error)]
pub enum VkError {
    /// VK's own error envelope (HTTP 200): `{"error":{"error_code","error_msg"}}`.
    /// Codes: <https://dev.vk.com/ru/reference/errors>.
    #[error("VK API error {code}: {message}")]
    Api {
        /// VK `error_code` (e.g. 6 too many requests, 901 no permission to message).
        code: i64,
        /// VK `error_msg`: what went wrong, in words.
        message: String,
    },
    /// A non-2xx HTTP status (VK's front proxies, or a 429).
    #[error("VK answered HTTP {status}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The wait `Retry-After` asked for (delay-seconds or an HTTP-date), when given.
        retry_after: Option<Duration>,
    },
    /// Connection failed or timed out.
    #[error("VK unreachable: {0}")]
    Transport(String),
    /// The body was not what the method documents.
    #[error("unexpected VK response: {0}")]
    Decode(String),
    /// An upload server (the `upload_url` of `photos.getMessagesUploadServer` /
    /// `docs.getMessagesUploadServer`) refused the file: a non-2xx status, an error answer
    /// (`{"error":"…"}` for documents) or an empty `photo` (`"[]"`) for photos
    /// (<https://dev.vk.com/ru/api/upload/overview>).
    #[error("VK upload failed (HTTP {status}): {message}")]
    Upload {
        /// The HTTP status the upload server answered (200 when it answered an error body).
        status: u16,
        /// What went wrong, without the upload URL (it carries signing keys).
        message: String,
    },
}

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again soon (code 6 too many requests, 10 internal error, 5xx, 429, timeouts; an
    /// upload server answering 5xx or 429).
    RetrySoon,
    /// Flood control (code 9): the same message must not be repeated at once; wait long.
    RetryLater,
    /// Will never succeed (5 authorization failed, 901 no permission to message this user,
    /// 7, 15, 100, 902, 914 …; a file an upload server refused): dead-letter with the reason.
    Final,
}

impl VkError {
    /// How to react, per VK's error table.
    pub fn class(&self) -> ErrorClass {
        match self {
            VkError::Api {
                code: 6 | 10 | 1, ..
            } => ErrorClass::RetrySoon,
            VkError::Api { code: 9, .. } => ErrorClass::RetryLater,
            VkError::Api { .. } => ErrorClass::Final,
            VkError::Http { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::RetrySoon
            }
            VkError::Http { .. } => ErrorClass::Final,
            VkError::Transport(_) => ErrorClass::RetrySoon,
            VkError::Decode(_) => ErrorClass::RetrySoon,
            // Like `Http`: the upload host being down or throttling is worth another try; a
            // file it refused (200 with an error body, 4xx) will be refused again.
            VkError::Upload { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::RetrySoon
            }
            VkError::Upload { .. } => ErrorClass::Final,
        }
    }

    /// The wait the upstream asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VkError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The VK error code, for API errors.
    pub fn code(&self) -> Option<i64> {
        match self {
            VkError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}
