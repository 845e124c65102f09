//! The HTTP error of okdesk-bridge: the caller learns what it can act on, the log the rest.
//! A 5xx body is a fixed text and the request id; its cause reaches only the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::http_error::{HttpError, PlainShape};

/// Errors at the webhook route.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unknown webhook token in the path.
    #[error("not found")]
    NotFound,
    /// `OKDESK_WEBHOOK_SECRET` is set and the delivery does not carry it.
    #[error("the webhook secret is missing or wrong")]
    Unauthorized,
    /// Not an Okdesk webhook body; says what was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// NATS did not take the event: 503, so Okdesk delivers again.
    #[error("event bus unavailable")]
    BusDown(#[source] service_kit::bus::PublishError),
    /// The database failed: 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound => HttpError::client(StatusCode::NOT_FOUND, e.to_string()),
            ApiError::Unauthorized => HttpError::client(StatusCode::UNAUTHORIZED, e.to_string()),
            ApiError::BadRequest(m) => HttpError::client(StatusCode::BAD_REQUEST, m),
            ApiError::BusDown(e) => HttpError::server(
                StatusCode::SERVICE_UNAVAILABLE,
                anyhow::Error::new(e).context("event bus unavailable; Okdesk will retry"),
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
