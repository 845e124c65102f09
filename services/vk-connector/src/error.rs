//! The HTTP error of vk-connector: the caller learns what it can act on, the log the rest.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    /// NATS did not take the event: the upstream should retry.
    #[error("event bus unavailable")]
    BusDown(#[source] service_kit::bus::PublishError),
    /// Anything else: 500, detail only in the log.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BusDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match &self {
            ApiError::BusDown(e) => {
                tracing::error!(error = %e, "event bus unavailable; asking the upstream to retry")
            }
            ApiError::Unexpected(e) => tracing::error!(error = format!("{e:#}"), "request failed"),
            other => tracing::info!(status = status.as_u16(), reason = %other, "request refused"),
        }
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}
