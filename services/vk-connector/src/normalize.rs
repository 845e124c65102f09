//! VK message objects → the normalized [`domain::InboundMessage`], and outbound text shaping
//! (attachments as links, splitting at VK's length limit, stable `random_id`s).

use domain::{
    Attachment, AttachmentKind, ConversationKind, ConversationRef, InboundMessage, Sender,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use vk_api::callback::{CHAT_PEER_OFFSET, Message, MessageAttachment};

/// Normalizes a `message_new` message. `sender_name` is the cached `users.get` name when
/// known (the relay fills it in later otherwise).
pub fn inbound(msg: &Message) -> InboundMessage {
    let message_id = if msg.id != 0 {
        msg.id.to_string()
    } else {
        format!("c{}", msg.conversation_message_id.unwrap_or_default())
    };
    InboundMessage {
        message_id,
        sender: Sender {
            id: msg.from_id.to_string(),
            display_name: None,
            username: None,
            language: None,
        },
        conversation: ConversationRef {
            id: msg.peer_id.to_string(),
            kind: if msg.peer_id >= CHAT_PEER_OFFSET {
                ConversationKind::Group
            } else {
                ConversationKind::Private
            },
            thread_id: None,
        },
        text: Some(msg.text.clone()).filter(|t| !t.is_empty()),
        attachments: msg.attachments.iter().map(attachment).collect(),
        reply_to: msg.reply_message.as_ref().map(|r| {
            if r.id != 0 {
                r.id.to_string()
            } else {
                format!("c{}", r.conversation_message_id.unwrap_or_default())
            }
        }),
        sent_at: OffsetDateTime::from_unix_timestamp(msg.date)
            .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        formatting: Vec::new(),
    }
}

fn s(v: Option<&serde_json::Value>, key: &str) -> Option<String> {
    v?.get(key)?.as_str().map(str::to_owned)
}

fn i(v: Option<&serde_json::Value>, key: &str) -> Option<i64> {
    v?.get(key)?.as_i64()
}

/// One VK attachment (<https://dev.vk.com/ru/reference/objects/attachments-message>) as a
/// link-bearing [`Attachment`]; unknown types keep their VK type name.
pub fn attachment(a: &MessageAttachment) -> Attachment {
    let o = a.object();
    let owner_item = |prefix: &str| {
        Some(format!(
            "https://vk.com/{prefix}{}_{}",
            i(o, "owner_id")?,
            i(o, "id")?
        ))
    };
    let (kind, url, mime, name, size) = match a.kind.as_str() {
        "photo" => {
            let url = o
                .and_then(|p| p.get("orig_photo"))
                .and_then(|p| p.get("url"))
                .and_then(|u| u.as_str())
                .map(str::to_owned)
                .or_else(|| largest_size(o?.get("sizes")?));
            (
                AttachmentKind::Image,
                url,
                Some("image/jpeg".to_owned()),
                None,
                None,
            )
        }
        "doc" => (
            AttachmentKind::File,
            s(o, "url"),
            None,
            s(o, "title"),
            i(o, "size").map(|n| n as u64),
        ),
        "audio_message" => (
            AttachmentKind::Voice,
            s(o, "link_mp3").or_else(|| s(o, "link_ogg")),
            Some("audio/mpeg".to_owned()),
            None,
            None,
        ),
        "video" => (
            AttachmentKind::Video,
            owner_item("video"),
            None,
            s(o, "title"),
            None,
        ),
        "audio" => (
            AttachmentKind::Audio,
            s(o, "url").filter(|u| !u.is_empty()),
            None,
            Some(format!(
                "{} — {}",
                s(o, "artist").unwrap_or_default(),
                s(o, "title").unwrap_or_default()
            )),
            None,
        ),
        "sticker" => (
            AttachmentKind::Sticker,
            o.and_then(|st| st.get("images")).and_then(|imgs| {
                imgs.as_array()?
                    .last()?
                    .get("url")?
                    .as_str()
                    .map(str::to_owned)
            }),
            None,
            None,
            None,
        ),
        "link" => (AttachmentKind::Link, s(o, "url"), None, s(o, "title"), None),
        "wall" => (
            AttachmentKind::Link,
            owner_item_wall(o),
            None,
            Some("wall post".into()),
            None,
        ),
        other => (
            AttachmentKind::Other,
            None,
            None,
            Some(other.to_owned()),
            None,
        ),
    };
    // A video's page cannot be carried as a file; its largest preview frame can
    // (<https://dev.vk.com/ru/reference/objects/video>: `image[]`, then `first_frame[]`).
    let preview_url = (a.kind == "video")
        .then(|| {
            o.and_then(|v| v.get("image"))
                .and_then(largest_size)
                .or_else(|| o.and_then(|v| v.get("first_frame")).and_then(largest_size))
        })
        .flatten();
    Attachment {
        kind,
        url,
        mime,
        name,
        size,
        preview_url,
    }
}

fn owner_item_wall(o: Option<&serde_json::Value>) -> Option<String> {
    let owner = i(o, "owner_id").or_else(|| i(o, "from_id"))?;
    Some(format!("https://vk.com/wall{owner}_{}", i(o, "id")?))
}

fn largest_size(sizes: &serde_json::Value) -> Option<String> {
    sizes
        .as_array()?
        .iter()
        .max_by_key(|s| {
            // The numbers are the sender's: a negative or huge side must not overflow the area
            // (a panic with overflow checks, a wrong pick without).
            let side = |k: &str| s.get(k).and_then(|v| v.as_i64()).unwrap_or(0).max(0);
            side("width").saturating_mul(side("height"))
        })?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

/// `📎 <kind>[ «name»]: <url>` (or without the URL when VK gave none).
pub fn attachment_line(a: &Attachment) -> String {
    let kind = serde_json::to_value(a.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "file".into());
    let mut line = format!("📎 {kind}");
    if let Some(n) = &a.name {
        line.push_str(&format!(" «{n}»"));
    }
    if let Some(u) = &a.url {
        line.push_str(": ");
        line.push_str(u);
    }
    line
}

/// `text`, then each of `lines` on a line of its own (the attachments not carried as files).
pub fn with_lines(text: &str, lines: &[String]) -> String {
    let mut out = text.to_owned();
    for line in lines {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// Splits `text` into pieces of at most `max_chars` characters, preferring to break after a
/// newline, then after a space, and only then inside a word.
pub fn split_text(text: &str, max_chars: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max_chars {
        let cut_byte = rest
            .char_indices()
            .nth(max_chars)
            .map(|(b, _)| b)
            .unwrap_or(rest.len());
        let window = &rest[..cut_byte];
        let cut = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|&b| b > 0)
            .map(|b| b + 1)
            .unwrap_or(cut_byte);
        parts.push(rest[..cut].trim_end().to_owned());
        rest = &rest[cut..];
    }
    if !rest.trim().is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// VK `random_id` for part `part` of a Chatwoot message: a positive 31-bit number derived from
/// the message's identity, so a redelivery or a reconciliation resend reuses it and VK sends
/// the message once.
pub fn random_id(account_id: i64, message_id: i64, part: usize) -> i32 {
    let digest = Sha256::digest(format!("chatwoot:{account_id}:{message_id}:{part}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    n.max(1) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_limit_and_word_boundaries() {
        let text = "слово ".repeat(1000); // 6000 chars
        let parts = split_text(&text, 4096);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.chars().count() <= 4096));
        assert!(parts[0].ends_with("слово"));
        assert_eq!(parts.concat().replace(' ', ""), text.replace(' ', ""));
        let word = "я".repeat(5000);
        let parts = split_text(&word, 4096);
        assert_eq!(parts[0].chars().count(), 4096);
        assert_eq!(parts[1].chars().count(), 904);
        assert_eq!(split_text("short", 4096), vec!["short".to_owned()]);
    }

    #[test]
    fn random_id_is_stable_positive_and_distinct() {
        assert_eq!(random_id(1, 42, 0), random_id(1, 42, 0));
        assert_ne!(random_id(1, 42, 0), random_id(1, 42, 1));
        assert_ne!(random_id(1, 42, 0), random_id(2, 42, 0));
        assert!(random_id(1, 42, 0) > 0);
    }
}
