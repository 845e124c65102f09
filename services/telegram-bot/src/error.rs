//! The HTTP error of telegram-bot: the caller learns what it can act on, the log the rest.
//! A 5xx body is a fixed text and the request id; its cause (NATS) reaches only the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::http_error::{HttpError, PlainShape};

/// Errors at the webhook route.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong `X-Telegram-Bot-Api-Secret-Token`.
    #[error("X-Telegram-Bot-Api-Secret-Token is missing or wrong")]
    Unauthorized,
    /// The body is not a Telegram update; says what was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// NATS did not take the update: 503, so Telegram delivers it again.
    #[error("event bus unavailable")]
    BusDown(#[source] service_kit::bus::PublishError),
    /// The database failed: 500, detail only in the log.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => HttpError::client(StatusCode::UNAUTHORIZED, e.to_string()),
            ApiError::BadRequest(m) => HttpError::client(StatusCode::BAD_REQUEST, m),
            ApiError::BusDown(e) => HttpError::server(
                StatusCode::SERVICE_UNAVAILABLE,
                anyhow::Error::new(e).context("event bus unavailable; Telegram will retry"),
            ),
            ApiError::Unexpected(e) => HttpError::server(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response_with::<PlainShape>()
    }
}
