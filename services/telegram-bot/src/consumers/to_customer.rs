//! `events.telegram.topic_message.*` → the customer of the topic.
//!
//! - An operator's text is sent with `sendMessage` (split at 4096 UTF-16 units), anything
//!   else copied with `copyMessage`; an edit is mirrored on the copy.
//! - `/ban`, `/unban` and `/close` (also `/ban@botname`) act on the topic's customer and are
//!   answered in the topic; they are not sent to the customer.
//! - A customer who blocked the bot (403) is marked, the operators are told once in the topic,
//!   and the message is dead-lettered (replayable with `telegram-bot dlq replay` once the
//!   customer writes again).
//! - Topics the bot did not open (not in `telegram.topics`) are left alone.
//! - What is sent is recorded in `telegram.message_links`; that record is retried in place
//!   ([`record_sent`]), so a Postgres restart does not repeat the message: only a kill
//!   between Telegram's answer and the write can.
//!
//! Ordered per topic ([`Event::ordering_key`]: `conversation:<group>:<thread>`).

use domain::{Envelope, Event, InboundMessage, Source, Subject};
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{
    SendError, command, counterpart, db_failure, group_failure, id, mirror_edit, record_sent,
    send_text_once, tg_failure,
};
use crate::store::Topic;
use crate::texts::{self, Lang};

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "telegram-relay-to-customer";

/// `events.telegram.topic_message.*`, in order per topic.
pub fn spec() -> ConsumerSpec<Event> {
    ConsumerSpec::new(
        DURABLE,
        Subject::event(Source::Telegram, "topic_message.*"),
        |env| env.payload.ordering_key(),
    )
}

/// Handles one envelope.
pub async fn handle(state: AppState, env: Envelope<Event>) -> Result<(), HandleError> {
    if !crate::consumers::of_this_bot(&state, &env) {
        return Ok(());
    }
    match &env.payload {
        Event::TopicMessageReceived(m) => received(&state, m).await,
        Event::TopicMessageEdited(m) => edited(&state, m).await,
        other => {
            tracing::debug!(r#type = other.type_name(), "not for the customer relay");
            Ok(())
        }
    }
}

async fn topic_of(state: &AppState, m: &InboundMessage) -> Result<Option<Topic>, HandleError> {
    let group = id("group id", &m.conversation.id)?;
    let thread = id(
        "thread id",
        m.conversation.thread_id.as_deref().unwrap_or_default(),
    )?;
    state
        .store
        .topic_of_thread(group, thread)
        .await
        .map_err(db_failure)
}

async fn received(state: &AppState, m: &InboundMessage) -> Result<(), HandleError> {
    let group = id("group id", &m.conversation.id)?;
    let message_id = id("message id", &m.message_id)?;
    let store = &state.store;
    if store
        .link(group, message_id)
        .await
        .map_err(db_failure)?
        .is_some_and(|l| l.kind != "partial")
    {
        tracing::info!(message_id, "relayed already");
        return Ok(());
    }
    let Some(topic) = topic_of(state, m).await? else {
        tracing::debug!(thread = ?m.conversation.thread_id, "a topic this bot did not open; ignored");
        return Ok(());
    };
    let thread = i32::try_from(topic.thread_id).ok();
    let op_lang = Lang::of(m.sender.language.as_deref());
    let cmd = if m.attachments.is_empty() {
        command(m.text.as_deref())
    } else {
        None
    };
    if let Some(cmd @ ("ban" | "unban" | "close")) = cmd.as_deref() {
        let answer = match cmd {
            "ban" => {
                store
                    .set_flags(topic.user_id, None, Some(true))
                    .await
                    .map_err(db_failure)?;
                texts::banned(op_lang)
            }
            "unban" => {
                store
                    .set_flags(topic.user_id, None, Some(false))
                    .await
                    .map_err(db_failure)?;
                texts::unbanned(op_lang)
            }
            _ => texts::closed(op_lang),
        };
        if let Err(e) = state
            .telegram
            .send_text(group, thread, answer, &[], None)
            .await
        {
            return Err(group_failure(state, "answer a command", e).await);
        }
        if cmd == "close" {
            // Marked first: the customer's next message, relayed concurrently, must see it
            // closed once Telegram does, or it would not reopen the topic.
            // Retried in place as well: the answer is out, and a retry would repeat it.
            record_sent("closed flag", || {
                store.set_flags(topic.user_id, Some(true), None)
            })
            .await
            .map_err(db_failure)?;
            if let Err(e) = state
                .telegram
                .close_topic(group, thread.unwrap_or_default())
                .await
                && !e.is_thread_gone()
            {
                return Err(group_failure(state, "closeForumTopic", e).await);
            }
        }
        record_sent("command link", || {
            store.save_link(group, message_id, group, &[], "command")
        })
        .await
        .map_err(db_failure)?;
        tracing::info!(
            user_id = topic.user_id,
            command = cmd,
            "operator command applied"
        );
        return Ok(());
    }
    let user = topic.user_id;
    let reply = counterpart(state, group, m.reply_to.as_deref()).await?;
    let sent = match (&m.text, m.attachments.is_empty()) {
        (Some(text), true) => {
            match send_text_once(
                state,
                (group, message_id),
                user,
                None,
                text,
                &m.formatting,
                reply,
            )
            .await
            {
                Ok(ids) => Ok((ids, "text")),
                Err(SendError::Tg(e)) => Err(e),
                Err(SendError::Db(e)) => return Err(db_failure(e)),
            }
        }
        _ => state
            .telegram
            .copy_message(user, None, group, message_id as i32, reply)
            .await
            .map(|id| (vec![i64::from(id)], "media")),
    };
    let (ids, kind) = match sent {
        Ok(r) => r,
        Err(e) if e.is_blocked_by_user() => {
            if store.mark_blocked(user).await.map_err(db_failure)? {
                let notice = texts::customer_blocked_bot(op_lang);
                if let Err(e) = state
                    .telegram
                    .send_text(group, thread, notice, &[], None)
                    .await
                {
                    tracing::warn!(error = %e, "could not tell the operators about the block; will try with the next reply");
                    store
                        .unmark_blocked_notice(user)
                        .await
                        .map_err(db_failure)?;
                }
            }
            metrics::counter!("telegram_relayed_total", "direction" => "to_customer", "outcome" => "blocked").increment(1);
            return Err(HandleError::Fatal(format!(
                "customer {user} blocked the bot: {e}"
            )));
        }
        Err(e) => return Err(tg_failure("relay to customer", e)),
    };
    let sent = &ids;
    record_sent("message link", || {
        store.save_link(group, message_id, user, sent, kind)
    })
    .await
    .map_err(db_failure)?;
    tracing::info!(user_id = user, message_id, customer_message_ids = ?ids, "operator message relayed to the customer");
    metrics::counter!("telegram_relayed_total", "direction" => "to_customer", "outcome" => "relayed").increment(1);
    Ok(())
}

async fn edited(state: &AppState, m: &InboundMessage) -> Result<(), HandleError> {
    let group = id("group id", &m.conversation.id)?;
    let message_id = id("message id", &m.message_id)?;
    let Some(r) = mirror_edit(state, group, m).await? else {
        return Ok(());
    };
    match r {
        Ok(()) => {
            tracing::info!(message_id, "operator edit mirrored to the customer");
            Ok(())
        }
        Err(e) if e.is_message_gone() || e.is_blocked_by_user() => {
            tracing::info!(message_id, error = %e, "edit not mirrored");
            Ok(())
        }
        Err(e) => Err(tg_failure("mirror edit", e)),
    }
}
