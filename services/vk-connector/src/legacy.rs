//! Conversations another VK ⇄ Chatwoot gateway made: recognising the VK dialogue of a
//! conversation vk-connector did not create, so that agents' replies in it keep reaching VK
//! after a move from the old gateway (the webhook route does it for one conversation,
//! `vk-connector import-conversations` for every open one of the inbox).
//!
//! What is recognised, first match wins, and only in the VK inbox (see
//! `docs/vk-chatwoot.md#moving-from-another-gateway`):
//!
//! | where | convention | seen in |
//! |---|---|---|
//! | conversation `custom_attributes` | `vk_peer_id`, else `vk_user_id` | sergeevgit1/chatwoot-messenger-gateway (`{channel:'vk', vk_peer_id, vk_user_id}`) |
//! | conversation `additional_attributes` | `vk_peer_id` (vk-connector's own, a lost mapping), `vk_user_id` | this project; NestJS gateways |
//! | contact `custom_attributes` | `vk_peer_id`, `vk_user_id`, `vk_id` | Axel123456489/chatwoot-messenger-gateway (`vk_peer_id`, `vk_user_id`); NestJS gateways (`vk_id`) |
//! | contact inbox `source_id` | `123`, `vk:123`, `vk_123`, `vk_123_<timestamp>` | denis567denis/vk-chatwoot, pavlikru/chatwoot-vk-gateway (plain id); this project (`vk:`); NestJS (`vk_`) |
//! | contact `identifier` | the same four forms | superhub-host/chatwoot-vk, rainedot/chatwoot-vk (plain id; their `source_id` is a UUID); Axel123456489 (`vk:`) |
//! | contact `email` | `vk_123@vk.com` | NestJS gateways |
//!
//! A UUID `source_id` (the default of an API-channel contact inbox) is never read as an id.
//! The peer id of a private dialogue is the user's id, which is what the old gateways replied
//! to (`messages.send` with `peer_id` or `user_id` = that id).

use serde_json::Value;
use vk_api::callback::CHAT_PEER_OFFSET;

use crate::AppState;

/// The largest peer id accepted: group chats are `2000000000 + chat id`; anything beyond a
/// generous chat id range is not a VK id.
const MAX_PEER_ID: i64 = CHAT_PEER_OFFSET + 1_000_000_000;

/// What a Chatwoot conversation tells about its customer: the conversation's own attributes,
/// its contact inbox and its contact (`meta.sender` in webhooks and conversation JSON, or
/// `GET /contacts/{id}`). Every field may be missing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Clues<'a> {
    /// The conversation's `custom_attributes` (an object).
    pub conversation_custom: Option<&'a Value>,
    /// The conversation's `additional_attributes` (an object).
    pub conversation_additional: Option<&'a Value>,
    /// The contact's `custom_attributes`.
    pub contact_custom: Option<&'a Value>,
    /// The contact's `additional_attributes`.
    pub contact_additional: Option<&'a Value>,
    /// The contact inbox's `source_id`.
    pub source_id: Option<&'a str>,
    /// The contact's `identifier`.
    pub identifier: Option<&'a str>,
    /// The contact's `email`.
    pub email: Option<&'a str>,
}

/// A recognised dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recognised {
    /// The VK `peer_id` to reply to.
    pub peer_id: i64,
    /// Which convention gave it, for the log (`conversation custom_attributes.vk_peer_id`, …).
    pub convention: &'static str,
}

/// The VK dialogue `clues` name, by the conventions in the module docs, in their order.
pub fn recognise(clues: &Clues<'_>) -> Option<Recognised> {
    let found = |peer_id, convention| {
        Some(Recognised {
            peer_id,
            convention,
        })
    };
    let attr = |obj: Option<&Value>, key: &str| obj.and_then(|o| o.get(key)).and_then(id_value);
    if let Some(p) = attr(clues.conversation_custom, "vk_peer_id") {
        return found(p, "conversation custom_attributes.vk_peer_id");
    }
    if let Some(p) = attr(clues.conversation_custom, "vk_user_id") {
        return found(p, "conversation custom_attributes.vk_user_id");
    }
    if let Some(p) = attr(clues.conversation_additional, "vk_peer_id") {
        return found(p, "conversation additional_attributes.vk_peer_id");
    }
    if let Some(p) = attr(clues.conversation_additional, "vk_user_id") {
        return found(p, "conversation additional_attributes.vk_user_id");
    }
    for (key, convention) in [
        ("vk_peer_id", "contact custom_attributes.vk_peer_id"),
        ("vk_user_id", "contact custom_attributes.vk_user_id"),
        ("vk_id", "contact custom_attributes.vk_id"),
    ] {
        if let Some(p) = attr(clues.contact_custom, key) {
            return found(p, convention);
        }
    }
    if let Some(p) = attr(clues.contact_additional, "vk_user_id") {
        return found(p, "contact additional_attributes.vk_user_id");
    }
    if let Some(p) = clues.source_id.and_then(id_text) {
        return found(p, "contact inbox source_id");
    }
    if let Some(p) = clues.identifier.and_then(id_text) {
        return found(p, "contact identifier");
    }
    if let Some(p) = clues
        .email
        .and_then(|e| {
            e.trim()
                .to_ascii_lowercase()
                .strip_suffix("@vk.com")
                .map(str::to_owned)
        })
        .and_then(|local| local.strip_prefix("vk_").and_then(plain_id))
    {
        return found(p, "contact email vk_<id>@vk.com");
    }
    None
}

/// The clues of a conversation object as Chatwoot renders it in webhooks (`conversation` of
/// `message_created`, `Conversation#webhook_data`) and in `GET /conversations`
/// (`custom_attributes`, `additional_attributes`, `contact_inbox.source_id`, `meta.sender` with
/// the contact's `identifier`, `email`, `custom_attributes`, `additional_attributes`).
pub fn clues_of(conversation: &Value) -> Clues<'_> {
    let sender = conversation.get("meta").and_then(|m| m.get("sender"));
    Clues {
        conversation_custom: conversation.get("custom_attributes"),
        conversation_additional: conversation.get("additional_attributes"),
        contact_custom: sender.and_then(|s| s.get("custom_attributes")),
        contact_additional: sender.and_then(|s| s.get("additional_attributes")),
        source_id: str_of(conversation.get("contact_inbox"), "source_id"),
        identifier: str_of(sender, "identifier"),
        email: str_of(sender, "email"),
    }
}

fn str_of<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v.and_then(|v| v.get(key)).and_then(Value::as_str)
}

/// The contact of a conversation object: `meta.sender.id`, else `contact_inbox.contact_id`.
pub fn contact_id_of(conversation: &Value) -> Option<i64> {
    conversation
        .get("meta")
        .and_then(|m| m.get("sender"))
        .and_then(|s| s.get("id"))
        .and_then(Value::as_i64)
        .or_else(|| {
            conversation
                .get("contact_inbox")
                .and_then(|c| c.get("contact_id"))
                .and_then(Value::as_i64)
        })
}

/// What became of one conversation of another gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// Not in the VK inbox, or nothing in it names a VK user.
    NotRecognised,
    /// Recognised: replies go to `peer_id`, whatever became of the mapping.
    Recognised {
        /// The VK dialogue.
        peer_id: i64,
        /// Which convention named it.
        convention: &'static str,
        /// Whether the mapping was stored.
        mapping: Mapping,
    },
}

/// What became of the mapping of a recognised conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Stored now.
    Stored,
    /// A dry run: it would be stored.
    WouldStore,
    /// The dialogue already has a conversation of its own (the customer's VK messages go
    /// there); not stored.
    Taken,
    /// The conversation names no contact id (`meta.sender.id`, `contact_inbox.contact_id`);
    /// not stored.
    NoContact,
}

/// Recognises the VK dialogue of an unmapped conversation (a JSON object, see [`clues_of`]) in
/// the inbox `inbox_id`, and stores the mapping (unless `dry_run`) so that the relay posts the
/// customer's next messages into it too.
///
/// Errors: the database failing.
pub async fn adopt(
    state_store: &crate::store::Store,
    inbox_id: i64,
    conversation_id: i64,
    conversation_inbox_id: Option<i64>,
    conversation: &Value,
    dry_run: bool,
) -> sqlx::Result<Adopted> {
    if conversation_inbox_id != Some(inbox_id) {
        return Ok(Adopted::NotRecognised);
    }
    let clues = clues_of(conversation);
    let Some(found) = recognise(&clues) else {
        return Ok(Adopted::NotRecognised);
    };
    let mapping = match contact_id_of(conversation) {
        None => Mapping::NoContact,
        Some(_) if dry_run => match state_store.conversation_for_peer(found.peer_id).await? {
            Some(_) => Mapping::Taken,
            None => Mapping::WouldStore,
        },
        Some(contact_id) => {
            if state_store
                .adopt_conversation(found.peer_id, conversation_id, contact_id, clues.source_id)
                .await?
            {
                Mapping::Stored
            } else {
                Mapping::Taken
            }
        }
    };
    Ok(Adopted::Recognised {
        peer_id: found.peer_id,
        convention: found.convention,
        mapping,
    })
}

/// [`adopt`] for the webhook route: the VK peer of an agent's reply in a conversation
/// vk-connector did not create, or `None`. Logs what it recognised.
///
/// Errors: the database failing.
pub async fn peer_of_unmapped(
    state: &AppState,
    conversation_id: i64,
    conversation_inbox_id: Option<i64>,
    conversation: &Value,
) -> sqlx::Result<Option<i64>> {
    let Some(inbox_id) = state.inbox_id() else {
        return Ok(None);
    };
    match adopt(
        &state.store,
        inbox_id,
        conversation_id,
        conversation_inbox_id,
        conversation,
        false,
    )
    .await?
    {
        Adopted::NotRecognised => Ok(None),
        Adopted::Recognised {
            peer_id,
            convention,
            mapping,
        } => {
            if mapping == Mapping::Stored {
                tracing::info!(
                    chatwoot_conversation_id = conversation_id,
                    peer_id,
                    convention,
                    "a conversation of another gateway is mapped to its VK dialogue"
                );
                metrics::counter!("legacy_conversations_mapped_total").increment(1);
            } else {
                tracing::debug!(
                    chatwoot_conversation_id = conversation_id,
                    peer_id,
                    convention,
                    ?mapping,
                    "a reply in a conversation of another gateway, not mapped"
                );
            }
            Ok(Some(peer_id))
        }
    }
}

/// What `import-conversations` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Open conversations of the inbox read.
    pub seen: usize,
    /// Newly mapped (or, dry, that would be).
    pub mapped: usize,
    /// Mapped before (by vk-connector or an earlier import).
    pub already: usize,
    /// Recognised, but their VK dialogue already has another conversation: replies in them
    /// still reach VK through the webhook, the dialogue's messages go to the other one.
    pub taken: Vec<i64>,
    /// Recognised, but naming no contact id: replies reach VK, nothing is stored.
    pub no_contact: Vec<i64>,
    /// Conversations nothing in which names a VK user.
    pub unrecognised: Vec<i64>,
}

impl ImportReport {
    /// One line for the end of the command's output.
    pub fn summary(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would map" } else { "mapped" };
        let mut s = format!(
            "{} open conversations: {verb} {}, {} mapped before, {} not recognised",
            self.seen,
            self.mapped,
            self.already,
            self.unrecognised.len()
        );
        if !self.unrecognised.is_empty() {
            let ids: Vec<String> = self.unrecognised.iter().map(i64::to_string).collect();
            s.push_str(&format!(" (ids {})", ids.join(", ")));
        }
        if !self.no_contact.is_empty() {
            let ids: Vec<String> = self.no_contact.iter().map(i64::to_string).collect();
            s.push_str(&format!(
                "; {} without a contact id (ids {})",
                self.no_contact.len(),
                ids.join(", ")
            ));
        }
        if !self.taken.is_empty() {
            let ids: Vec<String> = self.taken.iter().map(i64::to_string).collect();
            s.push_str(&format!(
                "; {} whose VK dialogue has a newer conversation (ids {})",
                self.taken.len(),
                ids.join(", ")
            ));
        }
        s
    }
}

/// At most this many pages are read (a safety stop for a Chatwoot that keeps answering).
const IMPORT_MAX_PAGES: u32 = 10_000;

/// `import-conversations`: every open conversation of `inbox_id` (`GET /conversations?
/// inbox_id=&status=open&page=`, page by page) that is not mapped yet and that [`recognise`]
/// names is mapped ([`adopt`]). `progress` gets one line per page.
///
/// Errors: Chatwoot or the database failing (what was mapped before stays mapped: re-run).
pub async fn import(
    store: &crate::store::Store,
    chatwoot: &chatwoot_api::ChatwootClient,
    inbox_id: i64,
    dry_run: bool,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    for page in 1..=IMPORT_MAX_PAGES {
        let conversations = chatwoot
            .conversations_page_json(inbox_id, "open", page)
            .await
            .map_err(|e| anyhow::anyhow!("listing open conversations (page {page}): {e}"))?;
        if conversations.is_empty() {
            break;
        }
        let before = report.mapped;
        for c in &conversations {
            let Some(id) = c.get("id").and_then(Value::as_i64) else {
                continue;
            };
            report.seen += 1;
            if store.peer_for_conversation(id).await?.is_some() {
                report.already += 1;
                continue;
            }
            let conversation_inbox = c.get("inbox_id").and_then(Value::as_i64).or(Some(inbox_id));
            let c = with_contact_inbox(chatwoot, inbox_id, c).await?;
            match adopt(store, inbox_id, id, conversation_inbox, &c, dry_run).await? {
                Adopted::NotRecognised => report.unrecognised.push(id),
                Adopted::Recognised { mapping, .. } => match mapping {
                    Mapping::Stored | Mapping::WouldStore => report.mapped += 1,
                    Mapping::Taken => report.taken.push(id),
                    Mapping::NoContact => report.no_contact.push(id),
                },
            }
        }
        progress(&format!(
            "page {page}: {} conversations, {} {}",
            conversations.len(),
            report.mapped - before,
            if dry_run { "to map" } else { "mapped" }
        ));
    }
    Ok(report)
}

/// The conversation JSON of `GET /conversations` with `contact_inbox` filled in: webhooks
/// carry it, the list does not. Taken from the first message's conversation when the list has
/// it, else, when nothing else names the VK user, from the contact's inboxes
/// (`GET /contacts/{id}`, the one of `inbox_id`).
async fn with_contact_inbox(
    chatwoot: &chatwoot_api::ChatwootClient,
    inbox_id: i64,
    c: &Value,
) -> anyhow::Result<Value> {
    let mut c = c.clone();
    if c.get("contact_inbox").is_some_and(|ci| !ci.is_null()) {
        return Ok(c);
    }
    if let Some(ci) = c.pointer("/messages/0/conversation/contact_inbox").cloned() {
        c["contact_inbox"] = ci;
        return Ok(c);
    }
    if recognise(&clues_of(&c)).is_some() {
        return Ok(c);
    }
    let Some(contact_id) = contact_id_of(&c) else {
        return Ok(c);
    };
    let contact = chatwoot
        .contact(contact_id)
        .await
        .map_err(|e| anyhow::anyhow!("reading contact {contact_id}: {e}"))?;
    if let Some(ci) = contact
        .contact_inboxes
        .iter()
        .find(|ci| ci.inbox_id == inbox_id)
    {
        c["contact_inbox"] =
            serde_json::json!({"source_id": ci.source_id, "contact_id": contact_id});
    }
    Ok(c)
}

/// An id attribute: a number, or a string of digits.
fn id_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|n| valid(*n)),
        Value::String(s) => plain_id(s.trim()),
        _ => None,
    }
}

/// `123`, `vk:123`, `vk_123`, `vk_123_<digits>` (a timestamp suffix).
fn id_text(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(id) = plain_id(s) {
        return Some(id);
    }
    if let Some(rest) = s.strip_prefix("vk:") {
        return plain_id(rest);
    }
    let rest = s.strip_prefix("vk_")?;
    match rest.split_once('_') {
        Some((id, ts)) if !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()) => plain_id(id),
        Some(_) => None,
        None => plain_id(rest),
    }
}

fn plain_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| valid(*n))
}

fn valid(id: i64) -> bool {
    (1..=MAX_PEER_ID).contains(&id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn by_source(source_id: &str) -> Option<i64> {
        recognise(&Clues {
            source_id: Some(source_id),
            ..Clues::default()
        })
        .map(|r| r.peer_id)
    }

    #[test]
    fn each_old_gateway_convention_is_recognised() {
        // denis567denis/vk-chatwoot, pavlikru/chatwoot-vk-gateway: the plain id.
        assert_eq!(by_source("12345"), Some(12345));
        // this project, Axel123456489: `vk:`; NestJS gateways: `vk_` with or without a timestamp.
        assert_eq!(by_source("vk:12345"), Some(12345));
        assert_eq!(by_source("vk_12345"), Some(12345));
        assert_eq!(by_source("vk_12345_1712345678901"), Some(12345));
        // superhub-host/chatwoot-vk: a UUID source_id, the id in the identifier.
        let r = recognise(&Clues {
            source_id: Some("4f8c2a1e-9b7d-4c3e-8f2a-1b6d9e0c7a55"),
            identifier: Some("777"),
            ..Clues::default()
        })
        .expect("identifier");
        assert_eq!((r.peer_id, r.convention), (777, "contact identifier"));
        // sergeevgit1: conversation custom attributes, the peer id before the user id.
        let custom = json!({"channel": "vk", "vk_peer_id": 2000000005, "vk_user_id": 42});
        let r = recognise(&Clues {
            conversation_custom: Some(&custom),
            source_id: Some("vk:42"),
            ..Clues::default()
        })
        .expect("custom");
        assert_eq!(r.peer_id, 2000000005);
        // Axel123456489: contact custom attributes, strings are fine.
        let contact = json!({"vk_user_id": "31"});
        assert_eq!(
            recognise(&Clues {
                contact_custom: Some(&contact),
                ..Clues::default()
            })
            .map(|r| r.peer_id),
            Some(31)
        );
        // NestJS: `vk_id`, and the synthetic e-mail.
        let contact = json!({"vk_id": 8, "vk_profile": "https://vk.com/id8"});
        assert_eq!(
            recognise(&Clues {
                contact_custom: Some(&contact),
                ..Clues::default()
            })
            .map(|r| r.peer_id),
            Some(8)
        );
        assert_eq!(
            recognise(&Clues {
                email: Some("VK_99@vk.com"),
                ..Clues::default()
            })
            .map(|r| r.peer_id),
            Some(99)
        );
    }

    #[test]
    fn nothing_else_is_taken_for_an_id() {
        for s in [
            "4f8c2a1e-9b7d-4c3e-8f2a-1b6d9e0c7a55",
            "0",
            "-5",
            "tg:12345",
            "vk:",
            "vk_12_x",
            "vk:12a",
            "99999999999999",
            "",
        ] {
            assert_eq!(by_source(s), None, "{s}");
        }
        assert_eq!(
            recognise(&Clues {
                email: Some("ivan@example.com"),
                identifier: Some("ivan"),
                ..Clues::default()
            }),
            None
        );
        let junk = json!({"vk_peer_id": null, "vk_user_id": "abc"});
        assert_eq!(
            recognise(&Clues {
                conversation_custom: Some(&junk),
                ..Clues::default()
            }),
            None
        );
    }
}
