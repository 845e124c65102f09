//! The helpdesk's side of the okdesk-bridge contract (`crates/domain` helpdesk.rs): look-ups a
//! person waits for over request/reply, with `OKDESK_RPC_TIMEOUT_SECS`, and the commands
//! published to JetStream.
//!
//! | subject | request | answer |
//! |---|---|---|
//! | `rpc.okdesk.company.find_by_inn` | [`FindCompanyByInn`] | `RpcReply<Option<Company>>` |
//! | `rpc.okdesk.issue.list` | [`IssueListRequest`] | `RpcReply<Vec<Issue>>` |
//! | `rpc.okdesk.issue.get` | [`IssueGetRequest`] | `RpcReply<Issue>` (`not_found` when not theirs) |
//! | `cmd.okdesk.contact.register` / `issue.create` / `comment.create` | [`Command`] | events on `events.okdesk.>` |

use domain::{
    Command, Company, Envelope, FindCompanyByInn, IdempotencyKey, Issue, IssueGetRequest,
    IssueListRequest, Requester, RpcErrorKind, RpcReply, Source, Subject,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use service_kit::consumer::HandleError;
use service_kit::rpc::{self, RpcError};
use time::OffsetDateTime;

use crate::AppState;

/// How many issues "my issues" shows.
pub const LIST_LIMIT: u32 = 10;

/// The answer to a look-up, as the person's reply needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The answer.
    Found(T),
    /// No such thing (or not theirs).
    NotFound,
    /// Okdesk refused (e.g. a contact-person API key may not search companies).
    Refused,
    /// No answer in time, nobody answering, or Okdesk down: "try later".
    Down,
}

/// `system` of every [`Requester`] this service sends.
pub const SYSTEM: &str = "telegram";

/// The person `user_id` of this bot, as the bridge sees them.
pub fn requester(state: &AppState, user_id: i64) -> Requester {
    Requester {
        system: SYSTEM.to_owned(),
        bot_id: state.settings.bot_id,
        user_id,
    }
}

async fn ask<Req: Serialize, T: DeserializeOwned>(
    state: &AppState,
    noun_verb: &str,
    req: &Req,
) -> Lookup<T> {
    let timeout = state
        .settings
        .helpdesk
        .map(|h| h.rpc_timeout)
        .unwrap_or(std::time::Duration::from_secs(8));
    let subject = Subject::rpc(Source::Okdesk, noun_verb);
    let outcome = match rpc::request::<Req, RpcReply<T>>(&state.bus, &subject, req, timeout).await {
        Ok(RpcReply::Ok(v)) => return Lookup::Found(v),
        Ok(RpcReply::Error { kind, message }) => {
            tracing::warn!(%subject, ?kind, message, "okdesk-bridge answered with an error");
            match kind {
                RpcErrorKind::NotFound => Lookup::NotFound,
                RpcErrorKind::Forbidden => Lookup::Refused,
                RpcErrorKind::Unavailable | RpcErrorKind::Invalid => Lookup::Down,
            }
        }
        Err(e @ (RpcError::Timeout(_) | RpcError::NoResponders(_))) => {
            tracing::warn!(%subject, error = %e, "okdesk-bridge does not answer");
            Lookup::Down
        }
        Err(e) => {
            tracing::error!(%subject, error = %e, "look-up failed");
            Lookup::Down
        }
    };
    metrics::counter!("telegram_helpdesk_lookups_failed_total", "subject" => noun_verb.to_owned())
        .increment(1);
    outcome
}

/// The company whose INN is `inn`; `Found(None)` when there is none.
pub async fn company_by_inn(state: &AppState, inn: &str) -> Lookup<Option<Company>> {
    ask(
        state,
        "company.find_by_inn",
        &FindCompanyByInn {
            inn: inn.to_owned(),
        },
    )
    .await
}

/// The newest issues of `contact_id` (at most [`LIST_LIMIT`]).
pub async fn issues(state: &AppState, contact_id: i64) -> Lookup<Vec<Issue>> {
    ask(
        state,
        "issue.list",
        &IssueListRequest {
            contact_id,
            limit: LIST_LIMIT,
        },
    )
    .await
}

/// Issue `issue_id`, when it is `contact_id`'s.
pub async fn issue(state: &AppState, contact_id: i64, issue_id: i64) -> Lookup<Issue> {
    ask(
        state,
        "issue.get",
        &IssueGetRequest {
            issue_id,
            contact_id,
        },
    )
    .await
}

/// Publishes `command` under `key` (its `Nats-Msg-Id`: a redelivery of the same message
/// publishes the same key, which JetStream stores once) and waits for the ack.
///
/// Errors: JetStream did not take it (retried by the consumer).
pub async fn publish(
    state: &AppState,
    key: IdempotencyKey,
    command: Command,
) -> Result<(), HandleError> {
    let env = Envelope::new(Source::Telegram, OffsetDateTime::now_utc(), key, command);
    let published = state
        .bus
        .publish(&env)
        .await
        .map_err(|e| HandleError::retry(format!("publishing {}: {e}", env.subject())))?;
    tracing::info!(subject = %env.subject(), key = %env.idempotency_key, duplicate = published.duplicate, "helpdesk command published");
    metrics::counter!("telegram_helpdesk_commands_total", "type" => env.payload.type_name())
        .increment(1);
    Ok(())
}

/// The idempotency key of what message `message_id` of `chat_id` asked for (`issue`,
/// `comment`): `tg:<bot>:<chat>:<message>:<what>`.
pub fn message_key(state: &AppState, chat_id: i64, message_id: i64, what: &str) -> IdempotencyKey {
    IdempotencyKey::from_parts(&[
        "tg",
        &state.settings.bot_id.to_string(),
        &chat_id.to_string(),
        &message_id.to_string(),
        what,
    ])
}

/// The idempotency key of registration number `n` of `user_id`:
/// `tg:<bot>:<user>:register:<n>`.
pub fn registration_key(state: &AppState, user_id: i64, n: i32) -> IdempotencyKey {
    IdempotencyKey::from_parts(&[
        "tg",
        &state.settings.bot_id.to_string(),
        &user_id.to_string(),
        "register",
        &n.to_string(),
    ])
}
