//! Durable consumers of telegram-bot: customers' messages into their topics ([`to_topic`],
//! through the helpdesk first when it is on), operators' messages back to the customers
//! ([`to_customer`]), and with `OKDESK_ENABLED` okdesk-bridge's events to the people they
//! concern ([`notify`]). Each module declares its [`spec`](to_topic::spec) (durable name,
//! filter, ordering key) beside its handler.
//!
//! How a Bot API failure is handled ([`tg_failure`]):
//!
//! | failure | reaction |
//! |---|---|
//! | 429 (after [`FLOOD_RETRIES`](crate::telegram::FLOOD_RETRIES) waits in the client) | retried after `retry_after`, never dead-lettered |
//! | 5xx, no answer | retried with the consumer's backoff, then dead letter |
//! | bot removed from the group, no right to manage topics | operator notice once; waits (`TELEGRAM_FIX_RETRY_SECS`) until fixed, never dead-lettered |
//! | other 4xx | dead letter with Telegram's description |

pub mod notify;
pub mod to_customer;
pub mod to_topic;

use service_kit::consumer::HandleError;

use crate::AppState;
use crate::notices::{self, Kind};
use crate::telegram::TgError;

pub(crate) fn tg_failure(what: &str, e: TgError) -> HandleError {
    if let Some(after) = e.retry_after() {
        HandleError::Unavailable {
            reason: format!("{what}: {e}"),
            after,
        }
    } else if e.is_retriable() {
        HandleError::retry(format!("{what}: {e}"))
    } else {
        HandleError::Fatal(format!("{what}: {e}"))
    }
}

/// A failure of a call to the operators' group: the two that need a person raise their
/// notice and wait; the rest as [`tg_failure`].
pub(crate) async fn group_failure(state: &AppState, what: &str, e: TgError) -> HandleError {
    let kind = if e.is_missing_rights() {
        Some(Kind::NoTopicRights)
    } else if e.is_removed_from_group() {
        Some(Kind::RemovedFromGroup)
    } else {
        None
    };
    match kind {
        Some(kind) => {
            notices::raise(state, kind).await;
            HandleError::Unavailable {
                reason: format!("{what}: {e} (waiting for an operator to fix the group)"),
                after: state.settings.fix_retry,
            }
        }
        None => tg_failure(what, e),
    }
}

pub(crate) use service_kit::consumer::db_failure;

/// Whether `env` came from this bot's updates (key `tg:<bot_id>:…`): two bots on one NATS
/// prefix would otherwise relay each other's customers with the wrong token. Others are
/// skipped (and logged).
pub(crate) fn of_this_bot<P>(state: &AppState, env: &domain::Envelope<P>) -> bool {
    let ours = env
        .idempotency_key
        .as_str()
        .starts_with(&format!("tg:{}:", state.settings.bot_id));
    if !ours {
        tracing::warn!(key = %env.idempotency_key.as_str(), "an update of another bot on this NATS prefix; skipped (give each bot its own NATS_SUBJECT_PREFIX)");
    }
    ours
}

/// A numeric id of the normalized message (they are strings there).
pub(crate) fn id(what: &str, v: &str) -> Result<i64, HandleError> {
    v.parse()
        .map_err(|_| HandleError::Fatal(format!("{what} `{v}` is not a number")))
}

/// What message `reply_to` of `chat_id` is in the other chat — its copy, or the original it
/// is a copy of — so that a reply stays a reply on the other side. `None` when it was never
/// relayed (or there is no reply).
pub(crate) async fn counterpart(
    state: &AppState,
    chat_id: i64,
    reply_to: Option<&str>,
) -> Result<Option<i32>, HandleError> {
    let Some(reply_to) = reply_to.and_then(|r| r.parse::<i64>().ok()) else {
        return Ok(None);
    };
    let store = &state.store;
    let id = match store.link(chat_id, reply_to).await.map_err(db_failure)? {
        Some(link) => link.target_message_ids.first().copied(),
        None => store
            .source_of_copy(chat_id, reply_to)
            .await
            .map_err(db_failure)?,
    };
    Ok(id.and_then(|id| i32::try_from(id).ok()))
}

/// Why a relayed text did not go out.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Telegram refused or did not answer.
    Tg(TgError),
    /// The progress of a split text could not be recorded.
    Db(sqlx::Error),
}

/// Sends message `source` (chat, message id) as text into `target` (and topic `thread`),
/// split at 4096 UTF-16 units. Each part sent of a text in several parts is recorded (kind
/// `partial`), so that a retry after a failure in the middle resumes after the parts that
/// went out instead of sending them again. Returns every part's message id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_text_once(
    state: &AppState,
    source: (i64, i64),
    target: i64,
    thread: Option<i32>,
    text: &str,
    spans: &[domain::TextSpan],
    reply: Option<i32>,
) -> Result<Vec<i64>, SendError> {
    let parts = crate::telegram::split_text(text, spans, crate::telegram::MAX_TEXT_UNITS);
    let mut ids = if parts.len() > 1 {
        state
            .store
            .partial(source.0, source.1, target)
            .await
            .map_err(SendError::Db)?
    } else {
        Vec::new()
    };
    if !ids.is_empty() {
        tracing::info!(sent = ids.len(), of = parts.len(), "resuming a split text");
    }
    for (i, (part, part_spans)) in parts.iter().enumerate().skip(ids.len()) {
        let r = if i == 0 { reply } else { None };
        let id = state
            .telegram
            .send_part(target, thread, part, part_spans, r)
            .await
            .map_err(SendError::Tg)?;
        ids.push(i64::from(id));
        if i + 1 < parts.len() {
            state
                .store
                .save_link(source.0, source.1, target, &ids, "partial")
                .await
                .map_err(SendError::Db)?;
        }
    }
    Ok(ids)
}

/// Mirrors the edit `m` of message `m.message_id` in `chat_id` on its copy: editMessageText
/// for a text, editMessageCaption for media (a split text: its first part). `Ok(None)` when
/// there is nothing to edit (never relayed, or handled without a copy); `Ok(Some(r))` with
/// Telegram's answer otherwise, for the caller to judge.
pub(crate) async fn mirror_edit(
    state: &AppState,
    chat_id: i64,
    m: &domain::InboundMessage,
) -> Result<Option<Result<(), TgError>>, HandleError> {
    let message_id = id("message id", &m.message_id)?;
    let Some(link) = state
        .store
        .link(chat_id, message_id)
        .await
        .map_err(db_failure)?
    else {
        tracing::info!(
            chat_id,
            message_id,
            "edit of a message that was not relayed; ignored"
        );
        return Ok(None);
    };
    let Some(&target) = link.target_message_ids.first() else {
        return Ok(None);
    };
    let text = m.text.as_deref().unwrap_or_default();
    let tg = &state.telegram;
    Ok(match link.kind.as_str() {
        "text" | "partial" => Some(
            tg.edit_text(link.target_chat_id, target as i32, text, &m.formatting)
                .await,
        ),
        "media" => Some(
            tg.edit_caption(link.target_chat_id, target as i32, text, &m.formatting)
                .await,
        ),
        _ => None,
    })
}

/// The bot command a text starts with, without `/` and `@botname`: `/ban@support_bot x` →
/// `ban`.
pub(crate) fn command(text: Option<&str>) -> Option<String> {
    let first = text?.split_whitespace().next()?;
    let name = first.strip_prefix('/')?;
    let name = name.split('@').next().unwrap_or(name);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_with_and_without_the_bot_name() {
        assert_eq!(command(Some("/ban")).as_deref(), Some("ban"));
        assert_eq!(
            command(Some("  /Close@support_bot now")).as_deref(),
            Some("close")
        );
        assert_eq!(command(Some("ban")), None);
        assert_eq!(command(Some("/")), None);
        assert_eq!(command(None), None);
    }

    #[test]
    fn telegram_failures_map_to_the_documented_reaction() {
        let api = |code, d: &str, ra| TgError::Api {
            code,
            description: d.into(),
            retry_after: ra,
        };
        assert!(matches!(
            tg_failure("x", api(429, "Too Many Requests: retry after 3", Some(3))),
            HandleError::Unavailable { after, .. } if after == std::time::Duration::from_secs(3)
        ));
        assert!(matches!(
            tg_failure("x", api(502, "Bad Gateway", None)),
            HandleError::Retry { .. }
        ));
        assert!(matches!(
            tg_failure("x", api(400, "Bad Request: chat not found", None)),
            HandleError::Fatal(r) if r.contains("chat not found")
        ));
    }
}
