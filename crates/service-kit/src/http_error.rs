//! The one HTTP error core every service's error enum answers through.
//!
//! A service keeps its own error enum (what can go wrong at its edge) and turns each variant
//! into an [`HttpError`]: a status, the text the caller may read, and — for failures that are
//! ours — the internal error. [`HttpError::into_response_with`] logs it once, inside the
//! request's span, and answers with the service's body shape ([`ErrorShape`]). **5xx bodies
//! never carry internal detail**: the caller gets a fixed text and the request id to quote to
//! the operator, the log gets the rest.

use std::future::Future;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `next` with the request's `x-request-id` in scope, so errors can quote it
/// (installed by [`crate::http::finish`]).
pub async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// The request id of the request being handled, or `""` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `fut` as if it were handling a request with id `id` (tests, background work).
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The body of an error answer; a service picks its shape.
pub trait ErrorShape {
    /// Builds the JSON body. `message` is safe to show (for 5xx it is the fixed
    /// [`INTERNAL_TEXT`] or [`UNAVAILABLE_TEXT`]); `details` is per-field detail of a 4xx.
    fn body(status: StatusCode, message: &str, details: Option<&Value>, request_id: &str) -> Value;
}

/// The text of every 500 body.
pub const INTERNAL_TEXT: &str = "internal error";
/// The text of every 503 body.
pub const UNAVAILABLE_TEXT: &str = "service temporarily unavailable; try again";

/// `{"error": "…", "request_id": "…"}` (plus `"details"` when given): the default shape.
pub struct PlainShape;

impl ErrorShape for PlainShape {
    fn body(
        _status: StatusCode,
        message: &str,
        details: Option<&Value>,
        request_id: &str,
    ) -> Value {
        let mut body = json!({ "error": message });
        if let Some(d) = details {
            body["details"] = d.clone();
        }
        if !request_id.is_empty() {
            body["request_id"] = json!(request_id);
        }
        body
    }
}

/// One error at the HTTP edge, ready to answer.
#[derive(Debug)]
pub struct HttpError {
    /// The answer's status.
    pub status: StatusCode,
    /// What the caller may read (ignored for 5xx, which say a fixed text).
    pub message: String,
    /// Per-field detail for a 4xx (e.g. `{"phone": "must be E.164"}`).
    pub details: Option<Value>,
    /// The internal error behind a 5xx, logged and never sent.
    pub source: Option<anyhow::Error>,
}

impl HttpError {
    /// A 4xx the caller can act on.
    pub fn client(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: None,
            source: None,
        }
    }

    /// A 5xx caused by `source` (logged only).
    pub fn server(status: StatusCode, source: impl Into<anyhow::Error>) -> Self {
        Self {
            status,
            message: String::new(),
            details: None,
            source: Some(source.into()),
        }
    }

    /// Adds per-field detail.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Logs the error once (error level for 5xx with the internal text, info for 4xx) and
    /// answers with the shape `S`.
    pub fn into_response_with<S: ErrorShape>(self) -> Response {
        let request_id = current_request_id();
        let message = if self.status.is_server_error() {
            let text = match self.status {
                StatusCode::SERVICE_UNAVAILABLE => UNAVAILABLE_TEXT,
                _ => INTERNAL_TEXT,
            };
            match &self.source {
                Some(e) => tracing::error!(
                    status = self.status.as_u16(),
                    error = format!("{e:#}"),
                    "request failed"
                ),
                None => {
                    tracing::error!(status = self.status.as_u16(), error = %self.message, "request failed")
                }
            }
            text.to_owned()
        } else {
            tracing::info!(status = self.status.as_u16(), reason = %self.message, "request refused");
            self.message
        };
        let body = S::body(self.status, &message, self.details.as_ref(), &request_id);
        (self.status, axum::Json(body)).into_response()
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        self.into_response_with::<PlainShape>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn a_5xx_body_says_a_fixed_text_and_the_request_id_only() {
        let err = HttpError::server(
            StatusCode::INTERNAL_SERVER_ERROR,
            anyhow::anyhow!("error returned from database: relation \"vk.peers\" does not exist"),
        );
        let r = with_request_id("req-42".into(), async { err.into_response() }).await;
        assert_eq!(r.status(), 500);
        let body = body_of(r).await;
        assert_eq!(
            body,
            json!({"error": "internal error", "request_id": "req-42"})
        );
    }

    #[tokio::test]
    async fn a_4xx_says_what_was_wrong() {
        let r = HttpError::client(StatusCode::BAD_REQUEST, "object.message is missing")
            .with_details(json!({"object": "required"}))
            .into_response();
        assert_eq!(r.status(), 400);
        let body = body_of(r).await;
        assert_eq!(body["error"], "object.message is missing");
        assert_eq!(body["details"]["object"], "required");
    }
}
