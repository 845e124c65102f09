//! What can go wrong talking to amoCRM.

use std::time::Duration;

/// An amoCRM call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AmoError {
    /// amoCRM answered with an error status. OAuth errors carry amoCRM's problem JSON:
    /// `{"hint":"Refresh token has been revoked","title":"Некорректный запрос",
    /// "type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":400,
    /// "detail":"В запросе отсутствует ряд параметров или параметры невалидны"}`.
    #[error("amoCRM answered HTTP {status}: {detail}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// `hint`/`detail`/`title` of the problem JSON, or the start of the body.
        detail: String,
        /// The `Retry-After` header (delay-seconds or an HTTP date), when it was given.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, timeout, TLS.
    #[error("amoCRM unreachable: {0}")]
    Transport(String),
    /// An answer that is not what the API documents.
    #[error("unexpected answer from amoCRM: {0}")]
    Decode(String),
}

impl AmoError {
    /// 429 and 5xx, and no answer at all: worth trying again.
    pub fn is_retriable(&self) -> bool {
        match self {
            AmoError::Status { status, .. } => *status == 429 || *status >= 500,
            AmoError::Transport(_) => true,
            AmoError::Decode(_) => false,
        }
    }

    /// The HTTP status, when amoCRM answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AmoError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `Retry-After` of a 429/503.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AmoError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<reqwest::Error> for AmoError {
    fn from(e: reqwest::Error) -> Self {
        // Without the URL: it may carry an account name, never a token (tokens go in headers
        // and bodies), but it adds nothing an operator needs.
        AmoError::Transport(e.without_url().to_string())
    }
}
