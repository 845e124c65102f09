//! Chatwoot account webhooks: the `message_created` payload and the optional signature.
//!
//! Chatwoot posts `{"event":"message_created", …Message#webhook_data…}` once, with a 5 s
//! timeout and no retry (`lib/webhooks/trigger.rb` in chatwoot/chatwoot). At the top level
//! `message_type` is a string (`"outgoing"`); inside `conversation.messages` it is a number.
//! Incoming messages (including the ones an integration posted itself) and private notes are
//! delivered too, so a relay must filter them.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::MessageType;

/// Any webhook: `event` names it, the rest depends on it.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    /// The event name: `message_created`, `message_updated`, `conversation_created` …
    pub event: String,
    /// The rest of the payload, depending on `event`.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// `message_created` (and `message_updated`) payload: the message's webhook data.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagePayload {
    /// The message id.
    pub id: i64,
    /// The message text; `None` for attachment-only messages.
    #[serde(default)]
    pub content: Option<String>,
    /// `"incoming"|"outgoing"|"activity"|"template"` here; may be missing in old versions.
    #[serde(default)]
    pub message_type: serde_json::Value,
    /// A private note, visible to agents only; never to be sent to the customer.
    #[serde(default)]
    pub private: bool,
    /// Chatwoot `content_type`: `text`, `input_select`, `cards`, `form` …
    #[serde(default)]
    pub content_type: Option<String>,
    /// The message's id in the channel it came from or went to, when the channel gave one.
    #[serde(default)]
    pub source_id: Option<String>,
    /// `{"id","name","type":"user"|"contact"|"agent_bot"…}`.
    #[serde(default)]
    pub sender: Option<WebhookSender>,
    /// The conversation the message is in.
    #[serde(default)]
    pub conversation: Option<WebhookConversation>,
    /// The Chatwoot account (`{"id"}`).
    #[serde(default)]
    pub account: Option<IdOnly>,
    /// The inbox the conversation belongs to (`{"id"}`).
    #[serde(default)]
    pub inbox: Option<IdOnly>,
    /// `[{"id","file_type":"image"|"audio"|"video"|"file"…,"data_url","extension"…}]`.
    #[serde(default)]
    pub attachments: Vec<WebhookAttachment>,
}

/// Who wrote the message.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSender {
    /// The sender's id among Chatwoot users, contacts or agent bots (per `kind`).
    #[serde(default)]
    pub id: Option<i64>,
    /// The sender's display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `user` (an agent), `contact`, `agent_bot`; absent in some versions.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// The conversation part of the payload (`id` is the conversation's display id, the one
/// the API's `/conversations/{id}` takes).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConversation {
    /// The conversation's display id (per account).
    pub id: i64,
    /// The inbox the conversation belongs to.
    #[serde(default)]
    pub inbox_id: Option<i64>,
    /// `open`, `resolved`, `pending` or `snoozed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Messages Chatwoot included with the conversation, as raw JSON (`message_type` is
    /// numeric here).
    #[serde(default)]
    pub messages: Vec<serde_json::Value>,
}

/// `{"id": N}`.
#[derive(Debug, Clone, Deserialize)]
pub struct IdOnly {
    /// The id.
    pub id: i64,
}

/// A message attachment.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookAttachment {
    /// `image`, `audio`, `video`, `file`, `location` …
    #[serde(default)]
    pub file_type: Option<String>,
    /// URL the file can be downloaded from.
    #[serde(default)]
    pub data_url: Option<String>,
    /// The file's extension, as Chatwoot gives it.
    #[serde(default)]
    pub extension: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub file_size: Option<u64>,
}

impl MessagePayload {
    /// The message type from the top-level string, or else from the numeric one in
    /// `conversation.messages` for the same id.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_json(&self.message_type).or_else(|| {
            self.conversation
                .as_ref()?
                .messages
                .iter()
                .find(|m| m.get("id").and_then(|v| v.as_i64()) == Some(self.id))
                .and_then(|m| MessageType::from_json(m.get("message_type")?))
        })
    }
}

/// Why a signed webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is absent.
    #[error("X-Chatwoot-Signature or X-Chatwoot-Timestamp header is missing")]
    Missing,
    /// `X-Chatwoot-Timestamp` is not an integer.
    #[error("X-Chatwoot-Timestamp is not a unix time")]
    BadTimestamp,
    /// The timestamp is too far from now: (distance, allowed), in seconds. The distance is
    /// exact for any pair of `i64` (a caller-chosen timestamp cannot overflow it).
    #[error("X-Chatwoot-Timestamp is {0} s away from now (at most {1} s allowed)")]
    Stale(u64, i64),
    /// The signature is not hex, or not the HMAC of this body with this secret.
    #[error("X-Chatwoot-Signature does not match")]
    Mismatch,
}

/// Verifies `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`
/// in constant time, and that `X-Chatwoot-Timestamp` (unix seconds) is within `tolerance_s`
/// of `now_unix` (a negative tolerance accepts nothing).
pub fn verify_signature(
    secret: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // The timestamp is the caller's: `now - ts` overflows for ts near i64::MIN/MAX (a panic
    // with overflow checks, a wrapped small skew that passes without). `abs_diff` is the exact
    // distance as u64, which no pair of i64 overflows.
    let skew = now_unix.abs_diff(ts);
    let allowed = u64::try_from(tolerance_s).ok();
    if allowed.is_none_or(|allowed| skew > allowed) {
        return Err(SignatureError::Stale(skew, tolerance_s));
    }
    let hex_sig = signature
        .trim()
        .strip_prefix("sha256=")
        .unwrap_or(signature.trim());
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Mismatch)?;
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Chatwoot would send for `body` at `timestamp` (for tests and fakes).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_failures() {
        let body = br#"{"event":"message_created"}"#;
        let sig = sign(b"s3cret", 1_700_000_000, body);
        let ok = verify_signature(
            b"s3cret",
            Some(&sig),
            Some("1700000000"),
            body,
            1_700_000_010,
            300,
        );
        assert_eq!(ok, Ok(()));
        let tampered = verify_signature(
            b"s3cret",
            Some(&sig),
            Some("1700000000"),
            b"{}",
            1_700_000_010,
            300,
        );
        assert_eq!(tampered, Err(SignatureError::Mismatch));
        let wrong_key = verify_signature(
            b"other",
            Some(&sig),
            Some("1700000000"),
            body,
            1_700_000_010,
            300,
        );
        assert_eq!(wrong_key, Err(SignatureError::Mismatch));
        let stale = verify_signature(
            b"s3cret",
            Some(&sig),
            Some("1700000000"),
            body,
            1_700_001_000,
            300,
        );
        assert_eq!(stale, Err(SignatureError::Stale(1000, 300)));
        assert_eq!(
            verify_signature(b"s3cret", None, Some("1"), body, 1, 300),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        let body = br#"{"event":"message_created"}"#;
        let now = 1_700_000_000_i64;
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            // Signed with the real secret: only the time check may refuse it.
            let sig = sign(b"s3cret", ts, body);
            let got =
                verify_signature(b"s3cret", Some(&sig), Some(&ts.to_string()), body, now, 300);
            assert_eq!(
                got,
                Err(SignatureError::Stale(now.abs_diff(ts), 300)),
                "{ts}"
            );
        }
        // The clock at an extreme too: the distance is the full u64 range, still no panic.
        let sig = sign(b"s3cret", i64::MAX, body);
        assert_eq!(
            verify_signature(
                b"s3cret",
                Some(&sig),
                Some(&i64::MAX.to_string()),
                body,
                i64::MIN,
                300
            ),
            Err(SignatureError::Stale(u64::MAX, 300))
        );
        // A negative tolerance accepts nothing, even a timestamp of exactly now.
        let sig = sign(b"s3cret", now, body);
        assert_eq!(
            verify_signature(b"s3cret", Some(&sig), Some(&now.to_string()), body, now, -1),
            Err(SignatureError::Stale(0, -1))
        );
    }

    #[test]
    fn message_type_comes_from_either_form() {
        let top: MessagePayload = serde_json::from_str(
            r#"{"id":5,"message_type":"outgoing","conversation":{"id":1,"messages":[]}}"#,
        )
        .expect("parses");
        assert_eq!(top.message_type(), Some(MessageType::Outgoing));
        let nested: MessagePayload = serde_json::from_str(
            r#"{"id":5,"conversation":{"id":1,"messages":[{"id":5,"message_type":0}]}}"#,
        )
        .expect("parses");
        assert_eq!(nested.message_type(), Some(MessageType::Incoming));
    }
}
