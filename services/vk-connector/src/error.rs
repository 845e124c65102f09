//! The HTTP error of vk-connector: the caller learns what it can act on, the log the rest.
//!
//! Answers go through [`HttpError`] (body `{"error": …, "request_id": …}`): a 4xx says what
//! was wrong; a 5xx says a fixed text and the request id, its cause (sqlx, NATS) reaching only
//! the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::http_error::{HttpError, PlainShape};

/// Errors at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unknown callback/webhook id in the path.
    #[error("not found")]
    NotFound,
    /// Missing or wrong secret/signature.
    #[error("{0}")]
    Unauthorized(String),
    /// A callback for a community we do not serve.
    #[error("{0}")]
    Forbidden(String),
    /// Malformed body; says what was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// NATS did not take the event: 503, so the upstream retries.
    #[error("event bus unavailable")]
    BusDown(#[source] service_kit::bus::PublishError),
    /// Anything else (the database …): 500, detail only in the log.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound => HttpError::client(StatusCode::NOT_FOUND, e.to_string()),
            ApiError::Unauthorized(m) => HttpError::client(StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => HttpError::client(StatusCode::FORBIDDEN, m),
            ApiError::BadRequest(m) => HttpError::client(StatusCode::BAD_REQUEST, m),
            ApiError::BusDown(e) => HttpError::server(
                StatusCode::SERVICE_UNAVAILABLE,
                anyhow::Error::new(e)
                    .context("event bus unavailable; asking the upstream to retry"),
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
