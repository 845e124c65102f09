//! `events.vk.message.received` → Chatwoot: find or create the contact (named from VK's
//! `users.get`, cached), its contact inbox, reuse the open conversation or create one, and
//! post the message as `incoming`, the customer's files as Chatwoot attachments
//! ([`crate::media`]; a file that cannot be carried becomes a link line). Idempotent on the envelope's key (`vk.inbound_processed`).
//!
//! Ordered per VK conversation ([`Event::ordering_key`]: `conversation:<peer_id>`): one
//! dialogue's messages reach Chatwoot in the order VK sent them, other dialogues flow on
//! meanwhile.
//!
//! Two relays (two replicas overlapping at a takeover, or one user's private and group chats)
//! must not make two conversations of one dialogue, nor two contacts of one user:
//! * the conversation is found or created under advisory locks of the dialogue and of its
//!   contact ([`Store::lock_dialogue`](crate::store::Store::lock_dialogue)): the relay that
//!   waited finds the mapping the other made, and a dialogue never takes a conversation another
//!   dialogue of the same contact has just made;
//! * the contact is unique in Chatwoot by its identifier `vk:<user id>`: a 422 on creation means
//!   another relay made it a moment ago, and it is looked up.
//!
//! A crash between Chatwoot accepting the message and the processed mark must not post it
//! twice: the message carries the key as its Chatwoot `source_id`, an attempt is recorded
//! (`vk.relay_attempts`) before the post, and a handling that finds an unfinished earlier
//! attempt first looks for the message among the conversation's latest messages.

use chatwoot_api::{
    CONTACTS_PER_PAGE, ChatwootClient, ChatwootError, Contact, MESSAGES_PER_PAGE, MessageType,
    Upload,
};
use domain::{Attachment, Envelope, Event, InboundMessage, Source, Subject};
use serde_json::json;
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{chatwoot_failure, db_failure};
use crate::media::{self, MediaError};
use crate::normalize;

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "vk-connector-relay";

/// `events.vk.message.received`, in order per VK conversation.
pub fn spec() -> ConsumerSpec<Event> {
    ConsumerSpec::new(
        DURABLE,
        Subject::event(Source::Vk, Event::MESSAGE_RECEIVED),
        |env| env.payload.ordering_key(),
    )
}

/// Handles one envelope.
pub async fn handle(state: AppState, env: Envelope<Event>) -> Result<(), HandleError> {
    let Event::MessageReceived(msg) = env.payload else {
        // The consumer's filter delivers only message.received; anything else is not ours.
        tracing::debug!(
            kind = env.payload.type_name(),
            "not a received message; skipped"
        );
        return Ok(());
    };
    let key = env.idempotency_key.as_str();
    if state.store.inbound_done(key).await.map_err(db_failure)? {
        tracing::info!(key, "already in Chatwoot; skipping redelivery");
        return Ok(());
    }
    let peer_id: i64 = msg.conversation.id.parse().map_err(|_| {
        HandleError::Fatal(format!("peer id `{}` is not a number", msg.conversation.id))
    })?;
    let from_id: i64 = msg.sender.id.parse().map_err(|_| {
        HandleError::Fatal(format!("sender id `{}` is not a number", msg.sender.id))
    })?;
    let conversation_id = conversation(&state, peer_id, from_id, &msg).await?;
    // Recorded before the post: if this attempt dies after Chatwoot accepted the message, the
    // next one knows to look for it.
    let earlier = state
        .store
        .start_relay_attempt(key, conversation_id)
        .await
        .map_err(db_failure)?;
    let already = match &earlier {
        Some(earlier) => {
            tracing::debug!(
                peer_id,
                attempts_before = earlier.attempts,
                earlier_conversation_id = earlier.chatwoot_conversation_id,
                "an earlier attempt did not finish; looking for its post first"
            );
            let since = earlier.first_started_unix - LOOKUP_MARGIN_SECS;
            match posted_earlier(&state.chatwoot, conversation_id, key, since).await {
                Ok(found) => found,
                Err(e) if e.status() == Some(404) => {
                    return Err(conversation_gone(&state, peer_id, conversation_id).await);
                }
                Err(e) => return Err(chatwoot_failure("looking for an earlier post", e)),
            }
        }
        None => None,
    };
    let message_id = match already {
        Some(id) => {
            tracing::info!(
                peer_id,
                chatwoot_conversation_id = conversation_id,
                chatwoot_message_id = id,
                "an earlier attempt had posted this VK message; not posting it again"
            );
            id
        }
        None => match post(
            &state,
            conversation_id,
            key,
            &msg,
            earlier.as_ref().map_or(0, |e| e.attempts),
        )
        .await
        {
            Ok(id) => id,
            Err(PostError::Gone) => {
                return Err(conversation_gone(&state, peer_id, conversation_id).await);
            }
            Err(PostError::Failed(e)) => return Err(e),
        },
    };
    state
        .store
        .mark_relayed(key, message_id, peer_id)
        .await
        .map_err(db_failure)?;
    if already.is_none() {
        tracing::info!(
            peer_id,
            chatwoot_conversation_id = conversation_id,
            chatwoot_message_id = message_id,
            retried = earlier.is_some(),
            "VK message posted to Chatwoot"
        );
        metrics::counter!("relayed_to_chatwoot_total").increment(1);
    }
    Ok(())
}

enum PostError {
    /// The conversation is gone in Chatwoot (404).
    Gone,
    /// Anything else, as the consumer should take it.
    Failed(HandleError),
}

/// Posts the message as `incoming` with the key as `source_id`: the customer's photos,
/// documents, voice messages, stickers and video previews as Chatwoot attachments (multipart
/// `attachments[]`), the rest (links, wall posts, files that could not be carried) as link
/// lines in the text. Chatwoot refusing the files (a 4xx other than 404: too large for it, a
/// type it rejects) posts the message again with every file as a link, so the text is never
/// lost. A file whose server keeps failing holds the message back for
/// [`media::MEDIA_HANDLINGS`] handlings (`attempts_before` came before this one), then goes as a
/// link. Returns the Chatwoot message id.
async fn post(
    state: &AppState,
    conversation_id: i64,
    key: &str,
    msg: &InboundMessage,
    attempts_before: i32,
) -> Result<i64, PostError> {
    let mut files = Vec::new();
    let mut lines = Vec::new();
    for a in &msg.attachments {
        let Some(url) = media::vk_file_url(a) else {
            lines.push(normalize::attachment_line(a));
            continue;
        };
        let fetched = media::fetch(&state.media_http, state.settings.media, a, url)
            .await
            .map_err(|e| e.or_skip_after(attempts_before));
        match fetched {
            Ok(file) => {
                // A video's preview goes as the file; the video itself stays a link.
                if a.kind == domain::AttachmentKind::Video {
                    lines.push(normalize::attachment_line(a));
                }
                files.push((a, file));
            }
            Err(MediaError::Skip(reason)) => {
                tracing::warn!(
                    kind = ?a.kind,
                    reason = %reason,
                    "a VK attachment is posted to Chatwoot as a link"
                );
                metrics::counter!("media_fallbacks_total", "direction" => "to_chatwoot")
                    .increment(1);
                lines.push(normalize::attachment_line(a));
            }
            Err(MediaError::Retry { reason, after }) => {
                return Err(PostError::Failed(HandleError::Retry {
                    reason: format!("downloading a VK attachment: {reason}"),
                    after,
                }));
            }
        }
    }
    let content = content_of(msg.text.as_deref(), &lines, !files.is_empty());
    let attrs = json!({ "external_id": key });
    let failed = |what: &str, e: ChatwootError| {
        if e.status() == Some(404) {
            PostError::Gone
        } else {
            PostError::Failed(chatwoot_failure(what, e))
        }
    };
    if !files.is_empty() {
        let count = files.len();
        let (carried, uploads): (Vec<&Attachment>, Vec<Upload>) = files
            .into_iter()
            .map(|(a, f)| {
                let upload = Upload {
                    file_name: f.file_name,
                    mime: f.mime,
                    bytes: f.bytes,
                };
                (a, upload)
            })
            .unzip();
        let posted = state
            .media_chatwoot
            .create_message_with_attachments(
                conversation_id,
                &content,
                MessageType::Incoming,
                attrs.clone(),
                Some(key),
                uploads,
            )
            .await;
        let refused = |e: &ChatwootError| {
            e.status()
                .is_some_and(|s| (400..500).contains(&s) && s != 404 && s != 429)
        };
        match posted {
            Ok(m) => {
                metrics::counter!("media_carried_total", "direction" => "to_chatwoot")
                    .increment(count as u64);
                return Ok(m.id);
            }
            Err(e) if e.status() == Some(404) => return Err(PostError::Gone),
            // Refused for good, or still failing on the last handling that may wait: links.
            Err(e) if refused(&e) || attempts_before + 1 >= media::MEDIA_HANDLINGS => {
                tracing::warn!(
                    error = %e,
                    files = count,
                    "Chatwoot did not take the attachments; posting them as links"
                );
                metrics::counter!("media_fallbacks_total", "direction" => "to_chatwoot")
                    .increment(count as u64);
                lines.extend(carried.into_iter().map(normalize::attachment_line));
            }
            // A timeout or a 5xx may come while Chatwoot still stores the files: the next
            // handling first looks the message up by its source_id, so it waits long enough
            // for a post that did land to be visible.
            Err(e) => {
                let wait = e
                    .retry_after()
                    .unwrap_or_default()
                    .max(MULTIPART_RETRY_PAUSE);
                return Err(PostError::Failed(HandleError::Retry {
                    reason: format!("posting the message with its files: {e}"),
                    after: Some(wait),
                }));
            }
        }
    }
    let content = content_of(msg.text.as_deref(), &lines, false);
    state
        .chatwoot
        .create_message(
            conversation_id,
            &content,
            MessageType::Incoming,
            attrs,
            Some(key),
        )
        .await
        .map(|m| m.id)
        .map_err(|e| failed("posting the message", e))
}

/// The least pause before the next handling after a post with files failed in a way that may
/// have stored it (timeout, 5xx).
const MULTIPART_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// The text of the Chatwoot message: the customer's text, then one line per attachment that is
/// not carried as a file; `[empty message]` when there is nothing at all.
fn content_of(text: Option<&str>, lines: &[String], has_files: bool) -> String {
    let out = normalize::with_lines(text.unwrap_or_default(), lines);
    if out.is_empty() && !has_files {
        return "[empty message]".to_owned();
    }
    out
}

/// How much earlier than the first attempt the lookup still reads: Chatwoot's clock and
/// Postgres' may differ.
const LOOKUP_MARGIN_SECS: i64 = 300;

/// At most this many pages of [`MESSAGES_PER_PAGE`] are read looking for an earlier post.
const LOOKUP_MAX_PAGES: usize = 10;

/// The id of the Chatwoot message an earlier attempt posted for `key`, if it is among the
/// conversation's messages created since `since_unix` (newest first, at most
/// [`LOOKUP_MAX_PAGES`] pages). Matched by `source_id` or, for a Chatwoot that dropped it, the
/// `external_id` content attribute.
async fn posted_earlier(
    chatwoot: &ChatwootClient,
    conversation_id: i64,
    key: &str,
    since_unix: i64,
) -> Result<Option<i64>, chatwoot_api::ChatwootError> {
    let mut before = None;
    for _ in 0..LOOKUP_MAX_PAGES {
        let page = chatwoot.messages_before(conversation_id, before).await?;
        if let Some(m) = page.iter().rev().find(|m| {
            m.source_id.as_deref() == Some(key)
                || m.content_attributes
                    .as_ref()
                    .and_then(|a| a.get("external_id"))
                    .and_then(serde_json::Value::as_str)
                    == Some(key)
        }) {
            return Ok(Some(m.id));
        }
        // Oldest first: the page's first message is where the next page ends.
        let Some(oldest) = page.first() else { break };
        if page.len() < MESSAGES_PER_PAGE || oldest.created_unix().is_some_and(|t| t < since_unix) {
            break;
        }
        before = Some(oldest.id);
    }
    Ok(None)
}

/// The inbox, or — Chatwoot was down when the service started and is still being asked
/// ([`crate::AppState::inbox`]) — a wait that does not count as a failed attempt.
fn inbox_of(state: &AppState) -> Result<i64, HandleError> {
    state.inbox_id().ok_or_else(|| HandleError::Unavailable {
        reason: "the Chatwoot inbox is not known yet (Chatwoot unreachable)".into(),
        after: std::time::Duration::from_secs(5),
    })
}

/// The conversation was deleted in Chatwoot: forget it; the retry makes a new one.
async fn conversation_gone(state: &AppState, peer_id: i64, conversation_id: i64) -> HandleError {
    if let Err(e) = state.store.forget_conversation(peer_id).await {
        return db_failure(e);
    }
    HandleError::Retry {
        reason: format!("conversation {conversation_id} is gone in Chatwoot"),
        after: Some(std::time::Duration::from_millis(100)),
    }
}

/// The Chatwoot conversation of a VK dialogue: mapped, else an open one of the contact in our
/// inbox made for this dialogue or by an agent and not used by another dialogue, else a new
/// one. Found or created under the dialogue's and the contact's lock, so two relays of one new
/// dialogue make one conversation, and two dialogues of one contact never share one.
async fn conversation(
    state: &AppState,
    peer_id: i64,
    from_id: i64,
    msg: &InboundMessage,
) -> Result<i64, HandleError> {
    if let Some(id) = state
        .store
        .conversation_for_peer(peer_id)
        .await
        .map_err(db_failure)?
    {
        return Ok(id);
    }
    // The contact is per user, not per dialogue: made before the lock (two relays converge
    // on Chatwoot's unique identifier), so the lock is held only for the conversation.
    let (contact_id, source_id) = contact(state, from_id, msg).await?;
    let mut lock = state
        .store
        .lock_dialogue(peer_id, contact_id)
        .await
        .map_err(db_failure)?;
    if let Some(id) = lock.conversation().await.map_err(db_failure)? {
        // Made by the relay this one waited for.
        return Ok(id);
    }
    let inbox_id = inbox_of(state)?;
    let open = state
        .chatwoot
        .contact_conversations(contact_id)
        .await
        .map_err(|e| chatwoot_failure("listing the contact's conversations", e))?
        .into_iter()
        .filter(|c| c.inbox_id == Some(inbox_id) && c.status.as_deref() != Some("resolved"));
    // Ours for this dialogue (mapping lost, e.g. a restored database) first; then one an agent
    // started (no `vk_peer_id`) that no other dialogue uses; never another dialogue's.
    let mut existing = None;
    for c in open {
        let made_for = c
            .additional_attributes
            .as_ref()
            .and_then(|a| a.get("vk_peer_id"))
            .and_then(serde_json::Value::as_i64);
        match made_for {
            Some(p) if p == peer_id => {
                existing = Some(c.id);
                break;
            }
            Some(_) => {}
            None => {
                if existing.is_none() && !lock.mapped_elsewhere(c.id).await.map_err(db_failure)? {
                    existing = Some(c.id);
                }
            }
        }
    }
    let id = match existing {
        Some(id) => id,
        None => {
            state
                .chatwoot
                .create_conversation(
                    &source_id,
                    inbox_id,
                    contact_id,
                    json!({ "vk_peer_id": peer_id }),
                )
                .await
                .map_err(|e| chatwoot_failure("creating the conversation", e))?
                .id
        }
    };
    lock.save_conversation(id, contact_id)
        .await
        .map_err(db_failure)?;
    Ok(id)
}

/// The Chatwoot contact and contact-inbox `source_id` of a VK user.
async fn contact(
    state: &AppState,
    from_id: i64,
    msg: &InboundMessage,
) -> Result<(i64, String), HandleError> {
    if let Some(link) = state.store.contact(from_id).await.map_err(db_failure)? {
        return Ok((link.chatwoot_contact_id, link.source_id));
    }
    let name = match msg.sender.display_name.clone() {
        Some(n) => n,
        None => user_name(state, from_id).await?,
    };
    let identifier = format!("vk:{from_id}");
    let source_id = format!("vk:{from_id}");
    let inbox_id = inbox_of(state)?;
    let found = contact_by_identifier(&state.chatwoot, &identifier)
        .await
        .map_err(|e| chatwoot_failure("searching the contact", e))?;
    let contact_id = match found {
        Some(c) => c.id,
        None => match state
            .chatwoot
            .create_contact(
                inbox_id,
                &name,
                &identifier,
                json!({ "vk_user_id": from_id, "vk_profile": format!("https://vk.com/id{from_id}") }),
            )
            .await
        {
            Ok(c) => c.id,
            // The identifier is taken: another relay (another replica, or another dialogue
            // of the same user) created the contact since our search. Use that one.
            Err(e) if e.status() == Some(422) => {
                match contact_by_identifier(&state.chatwoot, &identifier)
                    .await
                    .map_err(|e| chatwoot_failure("searching the contact", e))?
                {
                    Some(c) => {
                        tracing::info!(
                            from_id,
                            chatwoot_contact_id = c.id,
                            "the contact was created meanwhile; using it"
                        );
                        c.id
                    }
                    // Not the identifier, then: some other validation. Retried, and
                    // dead-lettered with Chatwoot's reason if it stays.
                    None => {
                        return Err(HandleError::Retry {
                            reason: format!("creating the contact: {e}"),
                            after: Some(std::time::Duration::from_millis(200)),
                        });
                    }
                }
            }
            Err(e) => return Err(chatwoot_failure("creating the contact", e)),
        },
    };
    match state
        .chatwoot
        .create_contact_inbox(contact_id, inbox_id, &source_id)
        .await
    {
        Ok(_) => {}
        // Already linked (422 on a duplicate source_id): that is what we wanted.
        Err(e) if e.status() == Some(422) => {}
        Err(e) => return Err(chatwoot_failure("creating the contact inbox", e)),
    }
    state
        .store
        .save_contact(from_id, contact_id, &source_id)
        .await
        .map_err(db_failure)?;
    Ok((contact_id, source_id))
}

/// At most this many search pages of [`CONTACTS_PER_PAGE`] are read for one identifier.
const CONTACT_SEARCH_MAX_PAGES: u32 = 5;

/// The contact whose identifier is exactly `identifier`. Chatwoot's search matches substrings
/// (`vk:1001` also finds `vk:10010`…), so the exact one may be on a later page: pages are read
/// until it is found or a page is not full (at most [`CONTACT_SEARCH_MAX_PAGES`]).
async fn contact_by_identifier(
    chatwoot: &ChatwootClient,
    identifier: &str,
) -> Result<Option<Contact>, chatwoot_api::ChatwootError> {
    for page in 1..=CONTACT_SEARCH_MAX_PAGES {
        let found = chatwoot.search_contacts_page(identifier, page).await?;
        let full = found.len() >= CONTACTS_PER_PAGE;
        if let Some(c) = found
            .into_iter()
            .find(|c| c.identifier.as_deref() == Some(identifier))
        {
            return Ok(Some(c));
        }
        if !full {
            break;
        }
    }
    Ok(None)
}

/// `users.get` name, cached in `vk.users`; falls back to "VK user <id>" when VK does not
/// answer (the message must not wait for a name).
async fn user_name(state: &AppState, user_id: i64) -> Result<String, HandleError> {
    if let Some(n) = state.store.user_name(user_id).await.map_err(db_failure)? {
        return Ok(n);
    }
    match state.vk.users_get(&[user_id]).await {
        Ok(users) => {
            if let Some(u) = users.into_iter().find(|u| u.id == user_id) {
                let name = u.full_name();
                state
                    .store
                    .save_user_name(user_id, &name)
                    .await
                    .map_err(db_failure)?;
                return Ok(name);
            }
            Ok(format!("VK user {user_id}"))
        }
        Err(e) => {
            tracing::warn!(user_id, error = %e, "users.get failed; naming the contact by id");
            Ok(format!("VK user {user_id}"))
        }
    }
}
