//! The HTTP error of amocrm-sync: the caller learns what it can act on, the log the rest.
//!
//! Answers go through the shared core ([`HttpError`]), which logs once inside the request's
//! span. Bodies keep the shape the existing amoCRM clients read ([`AmoShape`]):
//! `{"status":"error","message":"…","events_processed":0,"timestamp":"…","errors":["…"]}`.
//! A 5xx says a fixed text and the request id, never what failed inside.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use service_kit::http_error::{ErrorShape, HttpError};

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
    /// A webhook with more entries than `AMOCRM_MAX_ENTRIES_PER_WEBHOOK` (413); names the limit.
    #[error("{0}")]
    TooLarge(String),
    /// amoCRM did not answer the OAuth exchange usefully (502; its answer only in the log).
    #[error("{0}")]
    BadGateway(String),
    /// NATS did not take the events: 503, so that amoCRM retries.
    #[error("event bus unavailable")]
    BusDown(#[source] service_kit::bus::PublishError),
    /// Anything else: 500, detail only in the log.
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound => HttpError::client(StatusCode::NOT_FOUND, "not found"),
            ApiError::Unauthorized(m) => HttpError::client(StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => HttpError::client(StatusCode::FORBIDDEN, m),
            ApiError::BadRequest(m) => HttpError::client(StatusCode::BAD_REQUEST, m),
            ApiError::TooLarge(m) => HttpError::client(StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::BadGateway(m) => {
                HttpError::server(StatusCode::BAD_GATEWAY, anyhow::anyhow!(m))
            }
            ApiError::BusDown(e) => HttpError::server(
                StatusCode::SERVICE_UNAVAILABLE,
                anyhow::Error::new(e).context("event bus unavailable; asking amoCRM to retry"),
            ),
            ApiError::Unexpected(e) => HttpError::server(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response_with::<AmoShape>()
    }
}

/// The existing deployment's error body. 4xx: exactly
/// `{"status":"error","message":m,"events_processed":0,"timestamp":"…","errors":[m]}`; 5xx: the
/// same keys with a fixed `message`, plus `"request_id"` to quote to the operator.
pub struct AmoShape;

/// The text of a 502: amoCRM itself failed, and the caller (an admin on the OAuth redirect)
/// can try again.
pub const BAD_GATEWAY_TEXT: &str = "amoCRM did not answer usefully; try again";

impl ErrorShape for AmoShape {
    fn body(
        status: StatusCode,
        message: &str,
        _details: Option<&Value>,
        request_id: &str,
    ) -> Value {
        let message = if status == StatusCode::BAD_GATEWAY {
            BAD_GATEWAY_TEXT
        } else {
            message
        };
        let mut body = json!({
            "status": "error",
            "message": message,
            "events_processed": 0,
            "timestamp": service_kit::http::now_rfc3339(),
            "errors": [message],
        });
        if status.is_server_error() && !request_id.is_empty() {
            body["request_id"] = json!(request_id);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ApiError) -> (u16, Value) {
        let r =
            service_kit::http_error::with_request_id("req-7".into(), async { e.into_response() })
                .await;
        let status = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn a_4xx_keeps_the_old_shape_exactly() {
        let (status, body) = answer(ApiError::BadRequest("code is missing".into())).await;
        assert_eq!(status, 400);
        let mut keys: Vec<&str> = body
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "errors",
                "events_processed",
                "message",
                "status",
                "timestamp"
            ]
        );
        assert_eq!(body["status"], "error");
        assert_eq!(body["message"], "code is missing");
        assert_eq!(body["errors"], json!(["code is missing"]));
        assert_eq!(body["events_processed"], 0);
    }

    #[tokio::test]
    async fn a_5xx_says_a_fixed_text_and_the_request_id() {
        let e = ApiError::Unexpected(anyhow::anyhow!(
            "error returned from database: relation \"amocrm.oauth_tokens\" does not exist"
        ));
        let (status, body) = answer(e).await;
        assert_eq!(status, 500);
        assert_eq!(body["message"], "internal error");
        assert_eq!(body["request_id"], "req-7");
        assert!(!body.to_string().contains("relation"), "{body}");
        let (status, body) = answer(ApiError::BadGateway(
            "amoCRM answered HTTP 500: oops".into(),
        ))
        .await;
        assert_eq!(status, 502);
        assert_eq!(body["message"], BAD_GATEWAY_TEXT);
        assert!(!body.to_string().contains("oops"), "{body}");
    }
}
