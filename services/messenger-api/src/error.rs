//! The HTTP error of messenger-api: `{"error": "...", "details": …}` with the status the
//! client can act on. It answers through service-kit's [`HttpError`]: logged once there, and
//! a 5xx body is a fixed text and the request id (`{"error": "internal error", "requestId":
//! "…"}`), its detail only in the log.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use service_kit::http_error::{ErrorShape, HttpError, INTERNAL_TEXT, UNAVAILABLE_TEXT};

/// Errors at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input; `details` names the fields when there are several.
    #[error("{message}")]
    BadRequest {
        /// What is wrong, for the client (`error`).
        message: String,
        /// Per-field problems (`details`), when there are several.
        details: Option<Value>,
    },
    /// No valid access token (or wrong credentials on login).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed (not an admin, not the owner).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, or not visible to the caller: a chat the caller is not a member of is 404
    /// too, so that ids don't leak.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with what exists (phone taken, idempotency key reused).
    #[error("{0}")]
    Conflict(String),
    /// Body too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Not an accepted media type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Rate limited; retry after this many seconds.
    #[error("{reason}; try again in {retry_after_secs} s")]
    TooManyRequests {
        /// Which limit was reached, for the client (`too many attempts`, or the limit with
        /// its numbers).
        reason: String,
        /// Seconds to wait, also sent as `Retry-After`.
        retry_after_secs: u64,
    },
    /// A dependency is down (NATS for example).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: 500, detail only in the log.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with this message and no details.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            details: None,
        }
    }

    /// A 400 with this message and per-field `details`.
    pub fn invalid(message: impl Into<String>, details: Value) -> Self {
        Self::BadRequest {
            message: message.into(),
            details: Some(details),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told (the hub sends it as a completion's `error`): for a 5xx the
    /// fixed text, never the internal error.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Unexpected(_) => INTERNAL_TEXT.to_owned(),
            ApiError::Unavailable(_) => UNAVAILABLE_TEXT.to_owned(),
            other => other.to_string(),
        }
    }

    /// The message for a hub completion: [`Self::public_message`], with a 5xx logged once here
    /// (the hub has no HTTP edge to log it).
    pub fn into_hub_message(self) -> String {
        match &self {
            ApiError::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "hub invocation failed")
            }
            ApiError::Unavailable(e) => tracing::error!(error = %e, "hub invocation failed"),
            _ => {}
        }
        self.public_message()
    }

    /// The error with its full detail, for a command's operator (not for a client).
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            ApiError::Unexpected(e) => e,
            other => anyhow::anyhow!("{other}"),
        }
    }

    /// The shared error core's view of this error: status, the text a client may read, the
    /// per-field details of a 400, and the internal error behind a 5xx.
    pub fn into_http_error(self) -> HttpError {
        let status = self.status();
        match self {
            ApiError::BadRequest {
                message,
                details: Some(d),
            } => HttpError::client(status, message).with_details(d),
            ApiError::Unexpected(e) => HttpError::server(status, e),
            ApiError::Unavailable(why) => HttpError::server(status, anyhow::anyhow!(why)),
            other => HttpError::client(status, other.to_string()),
        }
    }
}

/// The body shape of messenger-api (the original deployment's): `{"error": "…"}`, plus
/// `"details"` for a 400 with per-field problems; a 5xx adds `"requestId"` for the caller to
/// quote to the operator.
pub struct MessengerShape;

impl ErrorShape for MessengerShape {
    fn body(status: StatusCode, message: &str, details: Option<&Value>, request_id: &str) -> Value {
        let mut body = json!({ "error": message });
        if let Some(d) = details {
            body["details"] = d.clone();
        }
        if status.is_server_error() && !request_id.is_empty() {
            body["requestId"] = json!(request_id);
        }
        body
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Unexpected(anyhow::Error::new(e).context("database"))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("request body too large".into())
            }
            other => ApiError::bad_request(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        // A malformed id cannot name anything that exists.
        tracing::debug!(reason = %r.body_text(), "path rejected");
        ApiError::bad_request(format!("invalid path parameter: {}", r.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let header = match &self {
            ApiError::Unauthorized(_) => {
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => HeaderValue::from_str(&retry_after_secs.to_string())
                .ok()
                .map(|v| (header::RETRY_AFTER, v)),
            _ => None,
        };
        let mut res = self
            .into_http_error()
            .into_response_with::<MessengerShape>();
        if let Some((name, value)) = header {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

/// `Json<T>` whose rejection is an [`ApiError`] (JSON error body instead of text).
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query<T>` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `Path<T>` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);
