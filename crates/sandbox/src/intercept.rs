//! What happens to every request to a fake before the fake sees it: it is logged and recorded,
//! then an injected [`Failure`] (if one is queued for that fake) answers instead of the fake.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::{Failure, RecordedRequest, Shared, TIMEOUT_HANG, Target};

/// Largest request body the fakes read (both platforms allow far less for these endpoints).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Puts `router` behind the recording and failure-injection middleware for `target`.
pub(crate) fn wrap(
    router: Router<Arc<Shared>>,
    shared: Arc<Shared>,
    target: Target,
) -> Router<Arc<Shared>> {
    router.layer(middleware::from_fn_with_state((shared, target), intercept))
}

async fn intercept(
    State((shared, target)): State<(Arc<Shared>, Target)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    let recorded = RecordedRequest {
        target,
        method: parts.method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let failure = shared.mutate(|s| {
        s.requests.push(recorded);
        s.failures
            .get_mut(&target)
            .and_then(|queue| queue.pop_front())
    });

    let response = match failure {
        Some(failure) => {
            tracing::warn!(?target, method = %parts.method, path = uri.path(), ?failure, "injected failure");
            fail(&shared, target, failure, &parts.uri, &body).await
        }
        None => {
            next.run(Request::from_parts(parts.clone(), Body::from(body)))
                .await
        }
    };
    tracing::info!(
        ?target,
        method = %parts.method,
        path = uri.path(),
        status = response.status().as_u16(),
        "sandbox request"
    );
    response
}

async fn fail(
    shared: &Shared,
    target: Target,
    failure: Failure,
    uri: &axum::http::Uri,
    body: &Bytes,
) -> Response {
    match failure {
        Failure::Status(code) => {
            if target == Target::Telegram
                && let Some(response) = crate::telegram::injected_status(code)
            {
                return response;
            }
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            proxy_page(status)
        }
        Failure::TooManyRequests { retry_after_secs } if target == Target::Telegram => {
            crate::telegram::injected_too_many_requests(retry_after_secs)
        }
        Failure::TooManyRequests { .. } | Failure::Timeout => proxy_failure(shared, failure)
            .await
            .unwrap_or_else(|| proxy_page(StatusCode::INTERNAL_SERVER_ERROR)),
        Failure::VkError(code) => match target {
            Target::Vk if uri.path().contains("/longpoll/") => {
                match crate::vk::long_poll::injected_failure(shared, code) {
                    Some(answer) => axum::Json(answer).into_response(),
                    None => proxy_page(StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
            Target::Vk => {
                // Echo the parameters like VK does; the method is the last path segment.
                let method = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
                let params = crate::vk::Params::parse(uri.query(), body);
                crate::vk::error(code, crate::vk::error_message(code), &method, &params)
                    .into_response()
            }
            Target::Chatwoot | Target::Amocrm | Target::Okdesk => {
                proxy_page(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Target::Telegram => crate::telegram::injected_status(500)
                .unwrap_or_else(|| proxy_page(StatusCode::INTERNAL_SERVER_ERROR)),
        },
    }
}

/// The HTTP-level failures a reverse proxy in front of a platform produces: `Status` as its
/// page, `TooManyRequests` as 429 with `Retry-After`, `Timeout` as a hang of [`TIMEOUT_HANG`]
/// (or until the sandbox stops) and then 504. `None` for `VkError`, an API-level answer that
/// only the caller can shape.
pub(crate) async fn proxy_failure(shared: &Shared, failure: Failure) -> Option<Response> {
    Some(match failure {
        Failure::Status(code) => {
            proxy_page(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        Failure::TooManyRequests { retry_after_secs } => {
            let mut response = proxy_page(StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Failure::Timeout => {
            tokio::select! {
                () = tokio::time::sleep(TIMEOUT_HANG) => {}
                () = shared.shutdown.cancelled() => {}
            }
            proxy_page(StatusCode::GATEWAY_TIMEOUT)
        }
        Failure::VkError(_) => return None,
    })
}

/// What a reverse proxy in front of either platform answers on its own: a tiny HTML page.
pub(crate) fn proxy_page(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    (status, [(header::CONTENT_TYPE, "text/html")], html).into_response()
}
