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
use crate::admin::ContactDetails;
use crate::client::object_or_empty;

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

/// The conversation part of the payload, `Conversation#webhook_data` =
/// `Conversations::EventDataPresenter#push_data`
/// (`app/presenters/conversations/event_data_presenter.rb`); `id` is the conversation's display
/// id, the one the API's `/conversations/{id}` takes.
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
    /// The contact inbox the conversation runs through (the raw record: `source_id` is the
    /// contact's id in the channel, e.g. `vk:<user id>`); `None` also when it has another
    /// shape: a hint, never a reason to refuse the payload.
    #[serde(default, deserialize_with = "crate::client::lenient")]
    pub contact_inbox: Option<WebhookContactInbox>,
    /// `meta`: the contact (default when it has another shape).
    #[serde(default, deserialize_with = "crate::client::lenient")]
    pub meta: WebhookConversationMeta,
    /// Attributes given at creation (an object; `{}` when absent or `null`).
    #[serde(
        default = "crate::client::empty_object",
        deserialize_with = "object_or_empty"
    )]
    pub additional_attributes: serde_json::Value,
    /// The conversation's custom attributes (an object; `{}` when absent or `null`).
    #[serde(
        default = "crate::client::empty_object",
        deserialize_with = "object_or_empty"
    )]
    pub custom_attributes: serde_json::Value,
}

/// `conversation.contact_inbox` of a webhook: the `ContactInbox` record as JSON.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookContactInbox {
    /// The contact's id in the inbox's channel.
    #[serde(default)]
    pub source_id: Option<String>,
    /// The inbox.
    #[serde(default)]
    pub inbox_id: Option<i64>,
}

/// `conversation.meta` of a webhook.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookConversationMeta {
    /// The contact (`Contact#push_event_data`: `id, name, identifier, email, phone_number,
    /// custom_attributes, additional_attributes, thumbnail, type`).
    #[serde(default)]
    pub sender: Option<ContactDetails>,
}

/// `{"id": N}`.
#[derive(Debug, Clone, Deserialize)]
pub struct IdOnly {
    /// The id.
    pub id: i64,
}

/// A message attachment, `Attachment#push_event_data`
/// (<https://github.com/chatwoot/chatwoot/blob/develop/app/models/attachment.rb>): `id,
/// message_id, file_type, account_id` plus, for files, `extension, data_url, thumb_url,
/// file_size, width, height`.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookAttachment {
    /// The attachment's id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The message it belongs to.
    #[serde(default)]
    pub message_id: Option<i64>,
    /// `image`, `audio`, `video`, `file`, `location`, `fallback`, `share`, `story_mention`,
    /// `contact`, `ig_reel`.
    #[serde(default)]
    pub file_type: Option<String>,
    /// URL the file can be downloaded from: for uploads an absolute
    /// `…/rails/active_storage/blobs/redirect/…` that answers `302` to the storage URL (follow
    /// redirects, no token needed); for `location`/`fallback` the external URL.
    #[serde(default)]
    pub data_url: Option<String>,
    /// A 250 px wide preview for images; `""` for files without one.
    #[serde(default)]
    pub thumb_url: Option<String>,
    /// The `extension` column: `null` for files uploaded through the API.
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

    /// `message_created` for an agent reply with a file, shaped like `Message#webhook_data` with
    /// `Conversations::EventDataPresenter#push_data` and `Attachment#push_event_data`.
    const AGENT_REPLY_WITH_FILE: &str = r#"{
      "account": {"id": 1, "name": "Ромашка"},
      "additional_attributes": {},
      "content_attributes": {},
      "content_type": "text",
      "content": "Счёт во вложении",
      "conversation": {
        "additional_attributes": {"vk_peer_id": 745120398},
        "can_reply": true,
        "channel": "Channel::Api",
        "contact_inbox": {
          "id": 903, "contact_id": 512, "inbox_id": 7, "source_id": "vk:745120398",
          "created_at": "2025-01-15T09:04:06.912Z", "updated_at": "2025-01-15T09:04:06.912Z",
          "hmac_verified": false, "pubsub_token": "qZ7mW2xR9vT4kP1nL8sY3bC6"
        },
        "id": 128,
        "inbox_id": 7,
        "messages": [],
        "labels": [],
        "meta": {
          "sender": {
            "additional_attributes": {"city": "Тверь"},
            "custom_attributes": {"vk_id": 745120398},
            "email": "anna@example.com",
            "id": 512,
            "identifier": "vk:745120398",
            "name": "Анна",
            "phone_number": null,
            "thumbnail": "",
            "type": "contact"
          },
          "assignee": null, "team": null, "hmac_verified": false
        },
        "status": "open",
        "custom_attributes": {"legacy_ticket": "T-1"},
        "unread_count": 0
      },
      "created_at": "2025-01-15T09:08:15.641Z",
      "id": 30144,
      "inbox": {"id": 7, "name": "VK"},
      "message_type": "outgoing",
      "private": false,
      "sender": {"id": 3, "name": "Мария", "email": "m@example.com", "type": "user"},
      "source_id": null,
      "event": "message_created",
      "attachments": [{
        "id": 7741, "message_id": 30144, "file_type": "file", "account_id": 1,
        "extension": null,
        "data_url": "https://cw.example/rails/active_storage/blobs/redirect/eyJfcmFpbHMi--a1/invoice.pdf",
        "thumb_url": "", "file_size": 48213, "width": null, "height": null
      }]
    }"#;

    #[test]
    fn agent_reply_with_a_file_and_the_old_gateway_marks_parses() {
        let p: MessagePayload = serde_json::from_str(AGENT_REPLY_WITH_FILE).expect("parses");
        assert_eq!(p.message_type(), Some(MessageType::Outgoing));
        let a = &p.attachments[0];
        assert_eq!((a.id, a.message_id), (Some(7741), Some(30144)));
        assert_eq!(a.file_type.as_deref(), Some("file"));
        assert_eq!(a.file_size, Some(48213));
        assert_eq!(a.thumb_url.as_deref(), Some(""));
        assert_eq!(a.extension, None);
        assert!(
            a.data_url
                .as_deref()
                .is_some_and(|u| u.ends_with("/invoice.pdf"))
        );
        let c = p.conversation.expect("conversation");
        let ci = c.contact_inbox.expect("contact_inbox");
        assert_eq!(
            (ci.source_id.as_deref(), ci.inbox_id),
            (Some("vk:745120398"), Some(7))
        );
        let sender = c.meta.sender.expect("meta.sender");
        assert_eq!(sender.identifier.as_deref(), Some("vk:745120398"));
        assert_eq!(sender.email.as_deref(), Some("anna@example.com"));
        assert_eq!(
            sender.custom_attributes,
            serde_json::json!({"vk_id": 745120398})
        );
        assert_eq!(sender.additional_attributes["city"], "Тверь");
        assert_eq!(
            c.custom_attributes,
            serde_json::json!({"legacy_ticket": "T-1"})
        );
        assert_eq!(c.additional_attributes["vk_peer_id"], 745120398);
    }

    #[test]
    fn older_payloads_without_the_new_fields_still_parse() {
        let p: MessagePayload = serde_json::from_str(
            r#"{"id":5,"message_type":"outgoing","conversation":{"id":1,"custom_attributes":null},
                "attachments":[{"file_type":"image","data_url":"https://x/y.png"}]}"#,
        )
        .expect("parses");
        let c = p.conversation.expect("conversation");
        assert!(c.contact_inbox.is_none());
        assert!(c.meta.sender.is_none());
        assert_eq!(c.custom_attributes, serde_json::json!({}));
        assert_eq!(c.additional_attributes, serde_json::json!({}));
        assert_eq!(p.attachments[0].id, None);
        assert_eq!(p.attachments[0].thumb_url, None);
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

    #[test]
    fn hints_of_another_shape_never_refuse_the_payload() {
        let v = serde_json::json!({
            "id": 5,
            "inbox_id": 1,
            "meta": {"sender": {"name": "no id"}},
            "contact_inbox": "unexpected"
        });
        let c: WebhookConversation = serde_json::from_value(v).expect("parses");
        assert!(c.meta.sender.is_none());
        assert!(c.contact_inbox.is_none());
    }
}
