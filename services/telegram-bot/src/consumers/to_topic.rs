//! `events.telegram.message.*` → the customer's forum topic in `BOT_GROUP_ID`.
//!
//! - The first message of a customer opens their topic (`createForumTopic`, named after them,
//!   icon `BOT_EMOJI_ID`) headed by a card; a topic closed with `/close` is reopened; one
//!   deleted by hand (`message thread not found`) is created again.
//! - A text is sent with `sendMessage` (split at 4096 UTF-16 units, formatting kept);
//!   anything else (photo, voice, video, file, sticker, contact, location …) is copied with
//!   `copyMessage`. `/start` is answered with the greeting instead.
//! - An edit is mirrored with `editMessageText` / `editMessageCaption` on the copy.
//! - Banned customers' messages are dropped. A message relayed already (same update twice,
//!   a redelivery) is not relayed again: `telegram.message_links` says so. That record, like
//!   every one written after a send, is retried in place ([`record_sent`]), so a Postgres
//!   restart does not repeat the message: only a kill between Telegram's answer and the
//!   write can.
//! - With `OKDESK_ENABLED` a message goes to the helpdesk first ([`crate::helpdesk`]): a
//!   dialog's answer, a helpdesk command or a menu button is its, and is not relayed; `/start`
//!   gets the greeting with the menu. The presses of its inline buttons
//!   (`message.button_pressed`) come through here too, in the chat's order.
//!
//! Ordered per customer chat ([`Event::ordering_key`]: `conversation:<chat id>`).

use domain::{Envelope, Event, InboundMessage, Source, Subject};
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{
    SendError, command, counterpart, db_failure, group_failure, id, mirror_edit, record_sent,
    send_text_once, tg_failure,
};
use crate::helpdesk::{self, Outcome};
use crate::store::Topic;
use crate::texts::{self, Customer, Lang};

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "telegram-relay-to-topic";

/// `events.telegram.message.*`, in order per customer chat.
pub fn spec() -> ConsumerSpec<Event> {
    ConsumerSpec::new(
        DURABLE,
        Subject::event(Source::Telegram, "message.*"),
        |env| env.payload.ordering_key(),
    )
}

/// Handles one envelope.
pub async fn handle(state: AppState, env: Envelope<Event>) -> Result<(), HandleError> {
    if !crate::consumers::of_this_bot(&state, &env) {
        return Ok(());
    }
    match &env.payload {
        Event::MessageReceived(m) => received(&state, m).await,
        Event::MessageEdited(m) => edited(&state, m).await,
        Event::ButtonPressed(b) if state.settings.helpdesk.is_some() => {
            helpdesk::on_button(&state, b).await
        }
        other => {
            tracing::debug!(r#type = other.type_name(), "not for the topic relay");
            Ok(())
        }
    }
}

async fn received(state: &AppState, m: &InboundMessage) -> Result<(), HandleError> {
    let chat_id = id("chat id", &m.conversation.id)?;
    let user_id = id("user id", &m.sender.id)?;
    let message_id = id("message id", &m.message_id)?;
    let store = &state.store;
    if store
        .link(chat_id, message_id)
        .await
        .map_err(db_failure)?
        .is_some_and(|l| l.kind != "partial")
    {
        tracing::info!(chat_id, message_id, "relayed already");
        return Ok(());
    }
    let lang = Lang::of(m.sender.language.as_deref());
    let helpdesk_on = state.settings.helpdesk.is_some();
    if !helpdesk_on
        && m.attachments.is_empty()
        && command(m.text.as_deref()).as_deref() == Some("start")
    {
        let ids = match state
            .telegram
            .send_text(chat_id, None, texts::greeting(lang), &[], None)
            .await
        {
            Ok(ids) => ids,
            Err(e) if e.is_blocked_by_user() => Vec::new(),
            Err(e) => return Err(tg_failure("sendMessage (greeting)", e)),
        };
        let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
        let sent = &ids;
        record_sent("greeting link", || {
            store.save_link(chat_id, message_id, chat_id, sent, "command")
        })
        .await
        .map_err(db_failure)?;
        return Ok(());
    }
    let topic = store.topic_of_user(user_id).await.map_err(db_failure)?;
    if topic.as_ref().is_some_and(|t| t.banned) {
        // Recorded, so that a redelivery after /unban does not relay it after all.
        // Nothing was sent: a failed write is simply handled again.
        store
            .save_link(chat_id, message_id, state.settings.group_id, &[], "banned")
            .await
            .map_err(db_failure)?;
        tracing::info!(user_id, message_id, "customer is banned; not relayed");
        metrics::counter!("telegram_relayed_total", "direction" => "to_topic", "outcome" => "banned").increment(1);
        return Ok(());
    }
    if helpdesk_on && helpdesk::on_message(state, m).await? == Outcome::Handled {
        return Ok(());
    }
    let thread = match topic {
        None => open_topic(state, m, user_id, false).await?,
        Some(t) => {
            if t.blocked || t.language.as_deref() != m.sender.language.as_deref() {
                store
                    .customer_seen(user_id, m.sender.language.as_deref())
                    .await
                    .map_err(db_failure)?;
            }
            reopen_if_closed(state, m, user_id, &t).await?
        }
    };
    let reply = counterpart(state, chat_id, m.reply_to.as_deref()).await?;
    let (ids, kind) = match relay(state, m, chat_id, message_id, thread, reply).await {
        Err(SendError::Tg(e)) if e.is_thread_gone() => {
            tracing::warn!(
                user_id,
                thread,
                "the customer's topic was deleted; creating a new one"
            );
            // Parts of a split text sent into the deleted topic are gone with it.
            store
                .drop_partial(chat_id, message_id)
                .await
                .map_err(db_failure)?;
            let thread = open_topic(state, m, user_id, true).await?;
            match relay(state, m, chat_id, message_id, thread, reply).await {
                Ok(r) => r,
                Err(SendError::Tg(e)) => {
                    return Err(group_failure(state, "relay to topic", e).await);
                }
                Err(SendError::Db(e)) => return Err(db_failure(e)),
            }
        }
        Err(SendError::Tg(e)) => return Err(group_failure(state, "relay to topic", e).await),
        Err(SendError::Db(e)) => return Err(db_failure(e)),
        Ok(r) => r,
    };
    let sent = &ids;
    record_sent("message link", || {
        store.save_link(chat_id, message_id, state.settings.group_id, sent, kind)
    })
    .await
    .map_err(db_failure)?;
    // The group works: a notice about it may be sent again next time it does not.
    crate::notices::resolved(state, crate::notices::Kind::RemovedFromGroup).await;
    crate::notices::resolved(state, crate::notices::Kind::NoTopicRights).await;
    tracing::info!(user_id, message_id, thread, group_message_ids = ?ids, "customer message relayed to the topic");
    metrics::counter!("telegram_relayed_total", "direction" => "to_topic", "outcome" => "relayed")
        .increment(1);
    Ok(())
}

/// Sends `m` into topic `thread` (answering `reply` there): a text with sendMessage (a split
/// one resumable, [`send_text_once`]), anything else with copyMessage.
async fn relay(
    state: &AppState,
    m: &InboundMessage,
    chat_id: i64,
    message_id: i64,
    thread: i64,
    reply: Option<i32>,
) -> Result<(Vec<i64>, &'static str), SendError> {
    let group = state.settings.group_id;
    let thread = i32::try_from(thread).ok();
    match (&m.text, m.attachments.is_empty()) {
        (Some(text), true) => {
            let ids = send_text_once(
                state,
                (chat_id, message_id),
                group,
                thread,
                text,
                &m.formatting,
                reply,
            )
            .await?;
            Ok((ids, "text"))
        }
        _ => {
            let id = state
                .telegram
                .copy_message(group, thread, chat_id, message_id as i32, reply)
                .await
                .map_err(SendError::Tg)?;
            Ok((vec![i64::from(id)], "media"))
        }
    }
}

/// Creates the customer's topic with its card; returns its thread id.
async fn open_topic(
    state: &AppState,
    m: &InboundMessage,
    user_id: i64,
    recreated: bool,
) -> Result<i64, HandleError> {
    let group = state.settings.group_id;
    let name = m.sender.display_name.clone().unwrap_or_default();
    let customer = Customer {
        id: user_id,
        name: &name,
        username: m.sender.username.as_deref(),
        language: m.sender.language.as_deref(),
    };
    let topic_name = texts::topic_name(&customer);
    let thread = match state
        .telegram
        .create_topic(group, &topic_name, state.settings.emoji_id.as_deref())
        .await
    {
        Ok(t) => i64::from(t),
        Err(e) => return Err(group_failure(state, "createForumTopic", e).await),
    };
    crate::notices::resolved(state, crate::notices::Kind::NoTopicRights).await;
    crate::notices::resolved(state, crate::notices::Kind::RemovedFromGroup).await;
    // The topic exists now: recording it is retried here, with the thread id in hand, so a
    // database hiccup does not make the message's retry open a second topic.
    let language = m.sender.language.as_deref();
    record_sent("new topic", || {
        state
            .store
            .save_topic(user_id, group, thread, &topic_name, language)
    })
    .await
    .map_err(db_failure)?;
    tracing::info!(user_id, thread, recreated, "topic opened for a customer");
    metrics::counter!("telegram_topics_created_total").increment(1);
    let (card, spans) = texts::card(&customer);
    let thread32 = i32::try_from(thread).ok();
    if recreated
        && let Err(e) = state
            .telegram
            .send_text(group, thread32, texts::topic_recreated(Lang::Ru), &[], None)
            .await
    {
        tracing::warn!(error = %e, thread, "could not say the topic was recreated");
    }
    if let Err(e) = state
        .telegram
        .send_text(group, thread32, &card, &spans, None)
        .await
    {
        // The topic is there and recorded; the relay goes on without its card.
        tracing::warn!(error = %e, thread, "could not post the customer card");
    }
    Ok(thread)
}

/// A topic closed with `/close` opens again on the customer's next message.
async fn reopen_if_closed(
    state: &AppState,
    m: &InboundMessage,
    user_id: i64,
    t: &Topic,
) -> Result<i64, HandleError> {
    if !t.closed {
        return Ok(t.thread_id);
    }
    let group = state.settings.group_id;
    match state
        .telegram
        .reopen_topic(group, i32::try_from(t.thread_id).unwrap_or_default())
        .await
    {
        Ok(()) => {
            state
                .store
                .set_flags(user_id, Some(false), None)
                .await
                .map_err(db_failure)?;
            tracing::info!(user_id, thread = t.thread_id, "topic reopened");
            Ok(t.thread_id)
        }
        Err(e) if e.is_thread_gone() => open_topic(state, m, user_id, true).await,
        Err(e) => Err(group_failure(state, "reopenForumTopic", e).await),
    }
}

async fn edited(state: &AppState, m: &InboundMessage) -> Result<(), HandleError> {
    let chat_id = id("chat id", &m.conversation.id)?;
    let message_id = id("message id", &m.message_id)?;
    let Some(r) = mirror_edit(state, chat_id, m).await? else {
        return Ok(());
    };
    match r {
        Ok(()) => {
            tracing::info!(chat_id, message_id, "customer edit mirrored in the topic");
            Ok(())
        }
        Err(e) if e.is_message_gone() => {
            tracing::info!(chat_id, message_id, "the copy is gone; edit not mirrored");
            Ok(())
        }
        Err(e) => Err(group_failure(state, "mirror edit", e).await),
    }
}
