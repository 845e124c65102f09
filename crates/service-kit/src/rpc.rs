//! Request/reply over core NATS (`rpc.<target>.<noun>.<verb>`) for look-ups a person waits for
//! (a company by INN, the list of their issues): nothing is stored, an answer comes within a
//! timeout or not at all.
//!
//! Bodies are plain JSON (the request type, and the handler's answer, usually a
//! [`domain::RpcReply`]); the W3C `traceparent` travels in a header as on the streams.
//! Responders subscribe in queue group `rpc`, so several replicas share the requests.

use std::future::Future;
use std::time::Duration;

use domain::Subject;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Nobody serves the subject (the responding service is down).
    #[error("no service answers {0}")]
    NoResponders(String),
    /// NATS refused or failed the request.
    #[error("request failed: {0}")]
    Transport(String),
    /// The answer is not the expected JSON.
    #[error("answer does not decode: {0}")]
    Decode(String),
}

/// Sends `request` to `subject` (with the bus's prefix) and waits up to `timeout` for the
/// answer.
///
/// Errors: see [`RpcError`].
pub async fn request<Req: Serialize, Resp: DeserializeOwned>(
    bus: &Bus,
    subject: &Subject,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, RpcError> {
    let wire = bus.wire_subject(subject);
    let body = serde_json::to_vec(request).map_err(|e| RpcError::Decode(e.to_string()))?;
    let mut headers = async_nats::HeaderMap::new();
    if let Some(tp) = crate::telemetry::current_traceparent() {
        headers.insert("traceparent", tp.as_str());
    }
    let req = async_nats::Request::new()
        .payload(body.into())
        .headers(headers)
        .timeout(Some(timeout));
    let answer = bus
        .client()
        .send_request(wire.clone(), req)
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::TimedOut => RpcError::Timeout(timeout),
            async_nats::RequestErrorKind::NoResponders => RpcError::NoResponders(wire.clone()),
            _ => RpcError::Transport(e.to_string()),
        })?;
    serde_json::from_slice(&answer.payload).map_err(|e| RpcError::Decode(e.to_string()))
}

/// Answers requests on `subject` (queue group `rpc`) with `handler` until `stop`; each request
/// is handled in a task of its own, and the ones in hand finish before this returns.
/// A request that does not decode as `Req` is answered with `invalid(reason)`.
///
/// Errors: the subscription could not be made.
pub async fn serve<Req, Resp, F, Fut>(
    bus: Bus,
    subject: Subject,
    stop: CancellationToken,
    invalid: fn(String) -> Resp,
    handler: F,
) -> anyhow::Result<()>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let wire = bus.wire_subject(&subject);
    let mut sub = bus
        .client()
        .queue_subscribe(wire.clone(), "rpc".to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to {wire}: {e}"))?;
    tracing::info!(subject = %wire, "answering requests");
    let tasks = TaskTracker::new();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            m = sub.next() => match m {
                Some(m) => m,
                None => break,
            },
        };
        let Some(reply) = msg.reply.clone() else {
            tracing::debug!(subject = %wire, "request without a reply subject; ignored");
            continue;
        };
        let (client, handler, wire) = (bus.client().clone(), handler.clone(), wire.clone());
        tasks.spawn(async move {
            let answer = match serde_json::from_slice::<Req>(&msg.payload) {
                Ok(req) => handler(req).await,
                Err(e) => invalid(format!("request does not decode: {e}")),
            };
            let body = match serde_json::to_vec(&answer) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(subject = %wire, error = %e, "answer does not encode");
                    return;
                }
            };
            if let Err(e) = client.publish(reply, body.into()).await {
                tracing::warn!(subject = %wire, error = %e, "could not send the answer");
            }
        });
    }
    let _ = sub.unsubscribe().await;
    tasks.close();
    tasks.wait().await;
    Ok(())
}
