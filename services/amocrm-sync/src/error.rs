//! The HTTP error of amocrm-sync: the caller learns what it can act on, the log the rest.
//!
//! Bodies keep the shape the existing amoCRM clients read:
//! `{"status":"error","message":"…","events_processed":0,"timestamp":"…","errors":["…"]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Errors at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unknown webhook token in the path (the token is the credential).
    #[error("not found")]
    NotFound,
    /// Missing or wrong X-Signature / X-Client-UUID / X-Account-ID.
    #[error("{0}")]
    Unauthorized(String),
    /// A webhook of another amoCRM account.
    #[error("{0}")]
    Forbidden(String),
    /// Malformed body; says what was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// amoCRM did not answer the OAuth exchange usefully.
    #[error("{0}")]
    BadGateway(String),
    /// NATS did not take the events: the upstream should retry.
    #[error("event bus unavailable")]
    BusDown(#[source] service_kit::bus::PublishError),
    /// Anything else: 500, detail only in the log.
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::BusDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match &self {
            ApiError::BusDown(e) => {
                tracing::error!(error = %e, "event bus unavailable; asking amoCRM to retry")
            }
            ApiError::Unexpected(e) => tracing::error!(error = format!("{e:#}"), "request failed"),
            other => tracing::info!(status = status.as_u16(), reason = %other, "request refused"),
        }
        let message = self.to_string();
        (
            status,
            axum::Json(json!({
                "status": "error",
                "message": message,
                "events_processed": 0,
                "timestamp": service_kit::http::now_rfc3339(),
                "errors": [message],
            })),
        )
            .into_response()
    }
}
