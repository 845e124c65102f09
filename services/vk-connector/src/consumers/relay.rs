//! `events.vk.message.received` → Chatwoot: find or create the contact (named from VK's
//! `users.get`, cached), its contact inbox, reuse the open conversation or create one, and
//! post the message as `incoming`. Idempotent on the envelope's key (`vk.inbound_processed`).
//!
//! Ordered per VK conversation ([`Event::ordering_key`]: `conversation:<peer_id>`): one
//! dialogue's messages reach Chatwoot in the order VK sent them, other dialogues flow on
//! meanwhile.

use chatwoot_api::MessageType;
use domain::{Envelope, Event, InboundMessage, Source, Subject};
use serde_json::json;
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{chatwoot_failure, db_failure};
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
    let content = normalize::chatwoot_content(&msg);
    let attrs = json!({ "external_id": key });
    let created = match state
        .chatwoot
        .create_message(conversation_id, &content, MessageType::Incoming, attrs)
        .await
    {
        Ok(m) => m,
        Err(e) if e.status() == Some(404) => {
            // The conversation was deleted in Chatwoot: forget it; the retry makes a new one.
            state
                .store
                .forget_conversation(peer_id)
                .await
                .map_err(db_failure)?;
            return Err(HandleError::Retry {
                reason: format!("conversation {conversation_id} is gone in Chatwoot"),
                after: Some(std::time::Duration::from_millis(100)),
            });
        }
        Err(e) => return Err(chatwoot_failure("posting the message", e)),
    };
    state
        .store
        .mark_inbound_done(key, created.id)
        .await
        .map_err(db_failure)?;
    state
        .store
        .touch_conversation(peer_id)
        .await
        .map_err(db_failure)?;
    tracing::info!(
        peer_id,
        chatwoot_conversation_id = conversation_id,
        chatwoot_message_id = created.id,
        "VK message posted to Chatwoot"
    );
    metrics::counter!("relayed_to_chatwoot_total").increment(1);
    Ok(())
}

/// The Chatwoot conversation of a VK dialogue: mapped, else an open one of the contact in our
/// inbox, else a new one.
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
    let (contact_id, source_id) = contact(state, from_id, msg).await?;
    let inbox_id = state.settings.chatwoot.inbox_id;
    let existing = state
        .chatwoot
        .contact_conversations(contact_id)
        .await
        .map_err(|e| chatwoot_failure("listing the contact's conversations", e))?
        .into_iter()
        .find(|c| c.inbox_id == Some(inbox_id) && c.status.as_deref() != Some("resolved"));
    let id = match existing {
        Some(c) => c.id,
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
    state
        .store
        .save_conversation(peer_id, id, contact_id)
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
    let inbox_id = state.settings.chatwoot.inbox_id;
    let found = state
        .chatwoot
        .search_contacts(&identifier)
        .await
        .map_err(|e| chatwoot_failure("searching the contact", e))?
        .into_iter()
        .find(|c| c.identifier.as_deref() == Some(identifier.as_str()));
    let contact_id = match found {
        Some(c) => c.id,
        None => {
            state
                .chatwoot
                .create_contact(
                    inbox_id,
                    &name,
                    &identifier,
                    json!({ "vk_user_id": from_id, "vk_profile": format!("https://vk.com/id{from_id}") }),
                )
                .await
                .map_err(|e| match e.status() {
                    // The identifier is taken: most likely the relay of another dialogue of
                    // the same user (a group chat and a private one) created the contact a
                    // moment ago. The next attempt finds it by searching.
                    Some(422) => HandleError::Retry {
                        reason: format!("creating the contact: {e}"),
                        after: Some(std::time::Duration::from_millis(200)),
                    },
                    _ => chatwoot_failure("creating the contact", e),
                })?
                .id
        }
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
