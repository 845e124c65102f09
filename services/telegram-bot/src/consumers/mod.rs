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
//!
//! The Bot API has no idempotency key: what was sent is known only from the record written
//! after it (a message link, a `helpdesk_done` key). That write is retried in place by
//! [`record_sent`] while Postgres is unreachable, so a Postgres restart right after a send
//! does not make the consumer's retry send the message again.

pub mod notify;
pub mod to_customer;
pub mod to_topic;

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use service_kit::consumer::{HandleError, db_unavailable};

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

/// How long [`record_sent`] keeps retrying a record of a successful send: about a Postgres
/// restart. While it waits, the handling stays in progress, so the consumer (which waits for
/// its handlings before it gives up a lost lease) does not hand the message out again. Past
/// it the error goes back to the consumer, whose retry finds no record and sends the message
/// a second time.
pub(crate) const RECORD_PATIENCE: Duration = Duration::from_secs(60);

/// The first wait between tries of [`record_sent`]; it doubles (with jitter) up to
/// [`RECORD_MAX_DELAY`].
const RECORD_MIN_DELAY: Duration = Duration::from_millis(50);

/// The longest wait between two tries of [`record_sent`]: short, so that the write lands
/// within moments of Postgres coming back — before a stand-by replica, which checks the lease
/// every second, can take the consumer over and hand the message out again. A failed connect
/// costs little.
const RECORD_MAX_DELAY: Duration = Duration::from_millis(250);

/// Writes the record of something Telegram has just done (`what`, for the log), retrying
/// in place with exponential backoff (50 ms doubling to 250 ms) for up to [`RECORD_PATIENCE`]
/// while the error can pass ([`record_retriable`]). Any other error, or the last one once
/// the patience is spent, is returned at once, for [`db_failure`]. `write` must be
/// idempotent (the record's upsert): a try may have landed before its answer was lost.
pub(crate) async fn record_sent<T, F, Fut>(what: &str, write: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    // tokio's clock, so that paused time in the tests governs the deadline too.
    let deadline = tokio::time::Instant::now() + RECORD_PATIENCE;
    let mut failures = 0u32;
    let r = write
        .retry(
            ExponentialBuilder::new()
                .with_min_delay(RECORD_MIN_DELAY)
                .with_max_delay(RECORD_MAX_DELAY)
                .with_jitter()
                .without_max_times(),
        )
        .when(|e| record_retriable(e) && tokio::time::Instant::now() < deadline)
        .notify(|e, after| {
            failures += 1;
            if failures == 1 {
                tracing::warn!(what, error = %e, ?after, "recording a send failed; retrying until Postgres is back");
            }
        })
        .await;
    match &r {
        Ok(_) if failures > 0 => {
            tracing::info!(what, tries = failures + 1, "send recorded after retries");
        }
        Err(e) if failures > 0 => {
            tracing::warn!(what, tries = failures + 1, error = %e, "gave up recording a send; its retry may send it again");
        }
        _ => {}
    }
    r
}

/// Whether a failed record write may succeed when tried again: Postgres unreachable
/// ([`db_unavailable`]: connection, pool timeout, SQLSTATE 08xxx, 57P01–57P03 …), a
/// transaction rolled back by a conflict (40001 serialization failure, 40P01 deadlock), a
/// statement timeout (57014), a server read-only after a fail-over (25006) or short of
/// resources (class 53). A closed pool is not: the service is stopping and the pool is not
/// opened again.
fn record_retriable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolClosed => false,
        sqlx::Error::Database(db) => {
            db_unavailable(e)
                || db.code().is_some_and(|c| {
                    matches!(c.as_ref(), "40001" | "40P01" | "57014" | "25006")
                        || c.starts_with("53")
                })
        }
        _ => db_unavailable(e),
    }
}

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
            let (store, sent) = (&state.store, &ids);
            record_sent("part of a split text", || {
                store.save_link(source.0, source.1, target, sent, "partial")
            })
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

    /// A write that fails with `errors` in turn, then succeeds; counts its tries.
    fn flaky(
        tries: &std::cell::Cell<u32>,
        mut errors: Vec<sqlx::Error>,
    ) -> impl FnMut() -> std::future::Ready<Result<u32, sqlx::Error>> + '_ {
        errors.reverse();
        move || {
            tries.set(tries.get() + 1);
            std::future::ready(match errors.pop() {
                Some(e) => Err(e),
                None => Ok(tries.get()),
            })
        }
    }

    fn refused() -> sqlx::Error {
        sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_is_retried_in_place_while_postgres_is_unreachable() {
        let tries = std::cell::Cell::new(0);
        let r = record_sent(
            "test",
            flaky(&tries, vec![refused(), sqlx::Error::PoolTimedOut]),
        )
        .await;
        assert_eq!(r.ok(), Some(3));
        assert_eq!(tries.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_error_that_cannot_pass_is_returned_at_once() {
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("unexpected message".into()),
            sqlx::Error::PoolClosed,
        ] {
            let tries = std::cell::Cell::new(0);
            let start = tokio::time::Instant::now();
            let r = record_sent("test", flaky(&tries, vec![e])).await;
            assert!(r.is_err());
            assert_eq!(tries.get(), 1);
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_gives_up_once_the_patience_is_spent() {
        let tries = std::cell::Cell::new(0);
        let start = tokio::time::Instant::now();
        let r = record_sent("test", || {
            tries.set(tries.get() + 1);
            std::future::ready(Err::<(), _>(refused()))
        })
        .await;
        assert!(matches!(r, Err(sqlx::Error::Io(_))));
        let waited = start.elapsed();
        // The last wait may begin just before the deadline: at most one (jittered) wait more.
        assert!(waited >= RECORD_PATIENCE, "{waited:?}");
        assert!(
            waited <= RECORD_PATIENCE + 2 * RECORD_MAX_DELAY,
            "{waited:?}"
        );
        // 50 ms doubling to 250 ms, each wait up to twice that with jitter: 60 s / 250–500 ms.
        assert!((110..=250).contains(&tries.get()), "{}", tries.get());
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
