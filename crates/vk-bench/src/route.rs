//! What vk-connector's `POST /vk/callback/{id}` does to a `message_new`, step by step, up to
//! (and without) the JetStream publish: the ceiling binary answers `ok` after it, and the
//! backlog publisher publishes exactly these envelopes.
//!
//! A copy of `services/vk-connector/src/http/callback.rs` and `ingest.rs` (their logic,
//! not their wiring, which is `AppState`-bound), normalizing with the service's own
//! [`vk_connector::normalize::inbound`]. Keep it in step with them when they change.

use async_nats::HeaderMap;
use domain::{Envelope, Event, Subject};
use serde_json::Value;
use vk_api::callback::CallbackEvent;

/// What the route checks a callback against (the service's `VK_*` settings).
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// `VK_GROUP_ID`.
    pub group_id: i64,
    /// `VK_SECRET`.
    pub secret: String,
    /// `VK_CONFIRMATION`.
    pub confirmation: String,
    /// `VK_CALLBACK_ID`.
    pub callback_id: String,
}

/// Why a callback is refused, with the status the service answers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// 404: unknown callback id.
    #[error("not found")]
    NotFound,
    /// 400: not JSON, or no numeric `group_id`.
    #[error("{0}")]
    BadRequest(String),
    /// 403: another community.
    #[error("{0}")]
    Forbidden(String),
    /// 401: secret missing or wrong.
    #[error("secret is missing or wrong")]
    Unauthorized,
}

/// What the route answers when nothing is refused.
#[derive(Debug)]
pub enum Accepted {
    /// `confirmation`: the confirmation string.
    Confirmation(String),
    /// Relayed: the envelope the service would publish, serialised as it is published.
    Publish(WireMessage),
    /// Answered `ok`, nothing published (other event types, the community's own messages).
    Skipped(&'static str),
}

/// An envelope as it goes on the wire: what `service_kit::bus::Bus::publish` hands to
/// JetStream.
#[derive(Debug)]
pub struct WireMessage {
    /// The subject with the bus prefix.
    pub subject: String,
    /// `Nats-Msg-Id` (the idempotency key) and `traceparent` when tracing is on.
    pub headers: HeaderMap,
    /// The serialised envelope.
    pub body: Vec<u8>,
}

/// The route's checks, in its order: callback id, JSON, group and secret read from the bare
/// JSON, then the typed event.
///
/// Errors: see [`Refused`].
pub fn handle(
    settings: &CallbackSettings,
    prefix: &str,
    callback_id: &str,
    body: &[u8],
) -> Result<Accepted, Refused> {
    if !service_kit::secure_eq(callback_id.as_bytes(), settings.callback_id.as_bytes()) {
        return Err(Refused::NotFound);
    }
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| Refused::BadRequest(format!("body is not a VK callback event: {e}")))?;
    let kind = raw.get("type").and_then(Value::as_str).unwrap_or_default();
    let span = tracing::Span::current();
    span.record("event_type", kind);
    span.record(
        "event_id",
        raw.get("event_id").and_then(Value::as_str).unwrap_or(""),
    );
    let Some(group_id) = raw.get("group_id").and_then(Value::as_i64) else {
        return Err(Refused::BadRequest(
            "body is not a VK callback event: no numeric group_id".into(),
        ));
    };
    if group_id != settings.group_id {
        metrics::counter!("vk_callbacks_total", "type" => kind.to_owned(), "outcome" => "wrong_group").increment(1);
        return Err(Refused::Forbidden(format!(
            "group_id {group_id} is not the configured community"
        )));
    }
    let secret_ok = match raw.get("secret") {
        Some(Value::String(s)) => service_kit::secure_eq(s.as_bytes(), settings.secret.as_bytes()),
        Some(_) => false,
        None => kind == "confirmation",
    };
    if !secret_ok {
        metrics::counter!("vk_callbacks_total", "type" => kind.to_owned(), "outcome" => "bad_secret").increment(1);
        return Err(Refused::Unauthorized);
    }
    // The service keeps an event that does not fit as a dead letter and answers `ok`.
    let event: CallbackEvent = match serde_json::from_value(raw.clone()) {
        Ok(e) => e,
        Err(_) => return Ok(Accepted::Skipped("kept as a dead letter by the service")),
    };
    if event.kind == "confirmation" {
        return Ok(Accepted::Confirmation(settings.confirmation.clone()));
    }
    let accepted = match envelope(settings.group_id, &event) {
        Ok(Some(env)) => Accepted::Publish(wire(prefix, &env)),
        Ok(None) => Accepted::Skipped("not relayed"),
        Err(_) => Accepted::Skipped("kept as a dead letter by the service"),
    };
    let label = match accepted {
        Accepted::Publish(_) => "published",
        _ => "ignored",
    };
    metrics::counter!("vk_events_total", "type" => event.kind.clone(), "outcome" => label)
        .increment(1);
    Ok(accepted)
}

/// `ingest::message_new` without the publish: vk-connector's own
/// [`vk_connector::ingest::envelope`] (`None` for other types and for the community's own
/// messages).
///
/// Errors: the object is not the API ≥ 5.103 shape.
pub fn envelope(group_id: i64, event: &CallbackEvent) -> Result<Option<Envelope<Event>>, String> {
    vk_connector::ingest::envelope(group_id, event).map_err(|e| e.to_string())
}

/// `Bus::publish` up to the network: trace context, prefixed subject, headers, JSON body.
pub fn wire(prefix: &str, envelope: &Envelope<Event>) -> WireMessage {
    let mut envelope = envelope.clone();
    if envelope.traceparent.is_none() {
        envelope.traceparent = service_kit::telemetry::current_traceparent();
    }
    let subject: Subject = envelope.subject();
    let subject = subject.with_prefix(prefix.trim_matches('.'));
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", envelope.idempotency_key.to_string().as_str());
    if let Some(tp) = envelope.traceparent.as_deref() {
        headers.insert("traceparent", tp);
    }
    WireMessage {
        subject,
        headers,
        body: envelope.to_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{Community, MessageNew as Body};

    fn settings() -> CallbackSettings {
        CallbackSettings {
            group_id: 9,
            secret: "sec".into(),
            confirmation: "conf".into(),
            callback_id: "cb".into(),
        }
    }

    fn body(secret: &str) -> String {
        Community {
            group_id: 9,
            secret: secret.into(),
        }
        .message_new(&Body {
            event_id: "ev1",
            user_id: 42,
            message_id: 7,
            conversation_message_id: 1,
            date: 1_700_000_000,
            text: "hi",
        })
    }

    #[test]
    fn a_message_new_becomes_the_envelope_the_service_publishes() {
        let Ok(Accepted::Publish(w)) = handle(&settings(), "bench", "cb", body("sec").as_bytes())
        else {
            panic!("accepted");
        };
        assert_eq!(w.subject, "bench.events.vk.message.received");
        assert_eq!(
            w.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some("vk:9:ev1")
        );
        let env = Envelope::<Event>::decode(&w.body).unwrap();
        let Event::MessageReceived(m) = env.payload else {
            panic!("message.received")
        };
        assert_eq!(
            (m.conversation.id.as_str(), m.text.as_deref()),
            ("42", Some("hi"))
        );
    }

    #[test]
    fn refusals_match_the_route() {
        let s = settings();
        let b = body("sec");
        assert_eq!(
            handle(&s, "", "nope", b.as_bytes()).unwrap_err(),
            Refused::NotFound
        );
        assert_eq!(
            handle(&s, "", "cb", body("bad").as_bytes()).unwrap_err(),
            Refused::Unauthorized
        );
        assert!(matches!(
            handle(&s, "", "cb", b"{").unwrap_err(),
            Refused::BadRequest(_)
        ));
    }
}
