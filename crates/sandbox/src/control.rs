//! The control API under `/_sandbox/` — what the demo scripts use instead of the Rust methods on
//! [`Sandbox`](crate::Sandbox). All JSON:
//!
//! | route | does |
//! |---|---|
//! | `GET /_sandbox/vk/sent` | messages VK accepted ([`VkSentMessage`](crate::VkSentMessage)[]) |
//! | `POST /_sandbox/vk/users` `{"id":1,"first_name":"Ivan","last_name":"Petrov"}` | name for `users.get` |
//! | `POST /_sandbox/vk/blocked` `{"peer_id":1}` | `messages.send` to it answers 901 |
//! | `POST /_sandbox/vk/long_poll_event` `{"type":"message_new","event_id":"…","v":"5.199","object":{…},"group_id":1}` | queue a Bots Long Poll event (`secret` dropped) |
//! | `GET /_sandbox/chatwoot/contacts` | contacts as the API renders them |
//! | `GET /_sandbox/chatwoot/conversations` | conversations as the API renders them |
//! | `GET /_sandbox/chatwoot/conversations/{id}/messages` | its messages, oldest first |
//! | `GET /_sandbox/chatwoot/received?after=ID&limit=N` | messages of every conversation with an id above `after` (default 0), oldest first, at most `limit` (default and maximum 10 000): `[{"id","conversation_id","message_type","content","received_at_us"}]`, `received_at_us` = when the request that created it arrived, unix microseconds (for latency benchmarks) |
//! | `POST /_sandbox/chatwoot/conversations/{id}/agent_reply` `{"content":"…","private":false}` | agent reply, fires the webhook; answers `{"id":…}` |
//! | `GET /_sandbox/chatwoot/webhooks` | webhook deliveries ([`WebhookDelivery`](crate::WebhookDelivery)[]) |
//! | `POST /_sandbox/telegram/updates` `{"message":{…}}` (an Update without `update_id`, see [`telegram::private_message`](crate::telegram::private_message)) | queue it as [`Sandbox::telegram_push_update`](crate::Sandbox::telegram_push_update) does; answers `{"update_id":N,"chat_id":…,"message_id":…}` |
//! | `GET /_sandbox/telegram/chats/{chat_id}/messages` | the chat's messages (Bot API `Message`s), oldest first |
//! | `GET /_sandbox/telegram/topics` | the group's forum topics ([`TelegramTopic`](crate::TelegramTopic)[]) |
//! | `POST /_sandbox/telegram/blocked` `{"user_id":N}` | the user blocks the bot (sending to them answers 403) |
//! | `GET /_sandbox/telegram/webhooks` | webhook delivery attempts ([`TelegramWebhookDelivery`](crate::TelegramWebhookDelivery)[]) |
//! | `POST /_sandbox/telegram/updates/bulk` `[{"message":{…}},…]` (at most 64 MiB) | queues each in order as `POST /_sandbox/telegram/updates` does (for benchmarks); answers `{"pushed":N,"first_update_id":…,"last_update_id":…}`; nothing is queued when one of them is not an update object |
//! | `GET /_sandbox/telegram/stats` | counts, without listing anything (for benchmarks): `{"topics":N,"bot_messages":N,"group_messages":N,"chats":N,"users":N}` — live forum topics, the bot's non-service messages in the group, all messages stored in the group, chats and users known (the update queue's length is `pending_update_count` of the fake's `getWebhookInfo`) |
//! | `GET /_sandbox/telegram/watch?from_chat=A&to_chat=B&count=N&seconds=S&prefix=P` | held open until the bot sent `N` more messages (not service messages; with `prefix`, only texts starting with it) into the chats with ids `A..=B` (e.g. private chats = user ids), or `S` seconds (default 60, at most 600) passed; answers them in the order seen: `[{"chat_id","message_id","text","seen_at_us"}]`, `seen_at_us` = when the watcher saw it stored (woken by the change itself), unix microseconds (for latency benchmarks); messages already there when the request came are not listed |
//! | `GET /_sandbox/okdesk/companies` | companies as `GET /companies/list` renders them |
//! | `POST /_sandbox/okdesk/companies` `{"name":"Ромашка","inn":"7707083893"}` | add a company with that INN attribute; answers `{"id":…}` |
//! | `GET /_sandbox/okdesk/contacts` | contacts as the API renders them |
//! | `GET /_sandbox/okdesk/issues` | issues as `GET /issues/{id}` renders them |
//! | `GET /_sandbox/okdesk/issues/{id}/comments` | its comments, oldest first |
//! | `POST /_sandbox/okdesk/issues/{id}/comments` `{"text":"…","public":true}` | an engineer's comment in the UI (`public` defaults to true), fires `new_comment`; answers `{"id":…}` |
//! | `POST /_sandbox/okdesk/issues/{id}/status` `{"code":"in_progress"}` | an engineer changes the status in the UI, fires `new_ticket_status`; answers the issue |
//! | `POST /_sandbox/okdesk/webhook` `{"url":"http://…"\|null}` | where Okdesk posts webhooks |
//! | `GET /_sandbox/okdesk/webhooks` | webhook delivery attempts ([`OkdeskWebhookDelivery`](crate::OkdeskWebhookDelivery)[]) |
//! | `POST /_sandbox/okdesk/deny_company_search` `{"deny":true}` | the API key acts as a contact person's key: companies methods answer 403 |
//! | `POST /_sandbox/fail` `{"target":"vk"\|"chatwoot"\|"amocrm"\|"telegram"\|"okdesk","count":N,"failure":{"status":503}\|{"too_many_requests":5}\|"timeout"\|{"vk_error":6}}` | inject failures |
//! | `GET /_sandbox/requests` | every request to any fake ([`RecordedRequest`](crate::RecordedRequest)[]) |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Failure, Shared, Target};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/vk/sent", get(vk_sent))
        .route("/vk/users", post(vk_user))
        .route("/vk/blocked", post(vk_block))
        .route("/vk/long_poll_event", post(vk_long_poll_event))
        .route("/chatwoot/contacts", get(contacts))
        .route("/chatwoot/conversations", get(conversations))
        .route("/chatwoot/conversations/{id}/messages", get(messages))
        .route("/chatwoot/received", get(received))
        .route(
            "/chatwoot/conversations/{id}/agent_reply",
            post(agent_reply),
        )
        .route("/chatwoot/webhooks", get(webhooks))
        .route("/telegram/updates", post(telegram_update))
        .route("/telegram/chats/{chat_id}/messages", get(telegram_messages))
        .route("/telegram/topics", get(telegram_topics))
        .route("/telegram/blocked", post(telegram_block))
        .route("/telegram/webhooks", get(telegram_webhooks))
        .merge(telegram_bench_routes())
        .merge(telegram_watch_routes())
        .merge(crate::okdesk::control_router())
        .route("/fail", post(fail))
        .route("/requests", get(requests))
}

async fn vk_sent(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read().vk.sent))
}

#[derive(Deserialize)]
struct VkUser {
    id: i64,
    first_name: String,
    last_name: String,
}

async fn vk_user(State(shared): State<Arc<Shared>>, Json(user): Json<VkUser>) -> StatusCode {
    shared.mutate(|s| {
        s.vk.users
            .insert(user.id, (user.first_name, user.last_name))
    });
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Blocked {
    peer_id: i64,
}

async fn vk_block(State(shared): State<Arc<Shared>>, Json(blocked): Json<Blocked>) -> StatusCode {
    shared.mutate(|s| s.vk.blocked.insert(blocked.peer_id));
    StatusCode::NO_CONTENT
}

async fn vk_long_poll_event(
    State(shared): State<Arc<Shared>>,
    Json(event): Json<Value>,
) -> StatusCode {
    crate::vk::long_poll::push_event(&shared, event);
    StatusCode::NO_CONTENT
}

async fn contacts(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.read();
    Json(
        state
            .cw
            .contacts
            .iter()
            .map(|c| state.cw.contact_json(c, true))
            .collect(),
    )
}

async fn conversations(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.read();
    Json(
        state
            .cw
            .conversations
            .iter()
            .map(|c| state.cw.conversation_json(c))
            .collect(),
    )
}

async fn messages(State(shared): State<Arc<Shared>>, Path(id): Path<i64>) -> Json<Value> {
    let state = shared.read();
    Json(
        state
            .cw
            .messages_of(id)
            .map(|m| state.cw.message_json(m))
            .collect(),
    )
}

#[derive(Deserialize)]
struct ReceivedQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<usize>,
}

/// Most messages one `received` answer lists.
const RECEIVED_LIMIT: usize = 10_000;

async fn received(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ReceivedQuery>,
) -> Json<Value> {
    let state = shared.read();
    let messages = &state.cw.messages;
    // Stored in id order (ids are taken and messages pushed under one lock).
    let start = messages.partition_point(|m| m.id <= q.after);
    let limit = q.limit.unwrap_or(RECEIVED_LIMIT).min(RECEIVED_LIMIT);
    Json(
        messages[start..]
            .iter()
            .take(limit)
            .map(|m| {
                json!({
                    "id": m.id,
                    "conversation_id": m.conversation_id,
                    "message_type": m.message_type,
                    "content": m.content,
                    "received_at_us": i64::try_from(m.received_at.unix_timestamp_nanos() / 1000)
                        .unwrap_or(i64::MAX),
                })
            })
            .collect(),
    )
}

#[derive(Deserialize)]
struct AgentReply {
    content: String,
    #[serde(default)]
    private: bool,
}

async fn agent_reply(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Json(reply): Json<AgentReply>,
) -> Response {
    match crate::chatwoot::agent_reply(&shared, id, &reply.content, reply.private) {
        Some(message_id) => Json(json!({ "id": message_id })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no conversation {id}")})),
        )
            .into_response(),
    }
}

async fn webhooks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read().deliveries))
}

async fn telegram_update(State(shared): State<Arc<Shared>>, Json(update): Json<Value>) -> Response {
    match crate::telegram::try_push_update(&shared, update) {
        Ok(pushed) => Json(json!({
            "update_id": pushed.update_id, "chat_id": pushed.chat_id, "message_id": pushed.message_id,
        }))
        .into_response(),
        Err(problem) => (StatusCode::BAD_REQUEST, Json(json!({ "error": problem }))).into_response(),
    }
}

async fn telegram_messages(
    State(shared): State<Arc<Shared>>,
    Path(chat_id): Path<i64>,
) -> Json<Value> {
    let state = shared.read();
    Json(
        state
            .telegram
            .chats
            .get(&chat_id)
            .map(|log| log.messages.values().map(|m| m.message.clone()).collect())
            .unwrap_or_default(),
    )
}

async fn telegram_topics(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read().telegram.topics_list()))
}

#[derive(Deserialize)]
struct TelegramBlocked {
    user_id: i64,
}

async fn telegram_block(
    State(shared): State<Arc<Shared>>,
    Json(blocked): Json<TelegramBlocked>,
) -> StatusCode {
    crate::telegram::set_blocked(&shared, blocked.user_id, true);
    StatusCode::NO_CONTENT
}

async fn telegram_webhooks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read().telegram.deliveries))
}

/// The wire form of [`Failure`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FailureSpec {
    Status(u16),
    TooManyRequests(u64),
    Timeout,
    VkError(i64),
}

#[derive(Deserialize)]
struct Fail {
    target: Target,
    count: u32,
    failure: FailureSpec,
}

async fn fail(State(shared): State<Arc<Shared>>, Json(fail): Json<Fail>) -> StatusCode {
    let failure = match fail.failure {
        FailureSpec::Status(code) => Failure::Status(code),
        FailureSpec::TooManyRequests(retry_after_secs) => {
            Failure::TooManyRequests { retry_after_secs }
        }
        FailureSpec::Timeout => Failure::Timeout,
        FailureSpec::VkError(code) => Failure::VkError(code),
    };
    shared.fail_next(fail.target, fail.count, failure);
    StatusCode::NO_CONTENT
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read().requests))
}

// ---------------------------------------------------------------- benchmark routes
// `bench/telegram-bot.sh` pushes a backlog in one request and counts the relayed messages
// without listing them.

/// Largest body `POST /_sandbox/telegram/updates/bulk` takes.
const BULK_BODY_LIMIT: usize = 64 * 1024 * 1024;

fn telegram_bench_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/telegram/updates/bulk",
            post(telegram_updates_bulk)
                .layer(axum::extract::DefaultBodyLimit::max(BULK_BODY_LIMIT)),
        )
        .route("/telegram/stats", get(telegram_stats))
}

/// Why a bulk item would make [`crate::telegram::push_update`] panic, if it would.
fn bulk_item_problem(update: &Value) -> Option<&'static str> {
    let fields = update.as_object()?;
    for kind in ["message", "edited_message"] {
        if let Some(message) = fields.get(kind) {
            if message["chat"]["id"].as_i64().is_none() {
                return Some("a message needs chat.id");
            }
            if kind == "edited_message" && message["message_id"].as_i64().is_none() {
                return Some("an edited_message needs message_id");
            }
        }
    }
    None
}

async fn telegram_updates_bulk(
    State(shared): State<Arc<Shared>>,
    Json(updates): Json<Vec<Value>>,
) -> Response {
    for (i, update) in updates.iter().enumerate() {
        let problem = if update.is_object() {
            bulk_item_problem(update)
        } else {
            Some("an update is a JSON object")
        };
        if let Some(problem) = problem {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("update {i}: {problem}")})),
            )
                .into_response();
        }
    }
    let (mut first, mut last) = (None, None);
    for update in updates.iter().cloned() {
        let pushed = crate::telegram::push_update(&shared, update);
        first.get_or_insert(pushed.update_id);
        last = Some(pushed.update_id);
    }
    Json(json!({"pushed": updates.len(), "first_update_id": first, "last_update_id": last}))
        .into_response()
}

async fn telegram_stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.read();
    let t = &state.telegram;
    let group = t.chats.get(&t.group_id);
    let bot_messages = group.map_or(0, |log| {
        log.messages
            .values()
            .filter(|m| m.by_bot && !m.service)
            .count()
    });
    Json(json!({
        "topics": t.topics.values().filter(|topic| !topic.deleted).count(),
        "bot_messages": bot_messages,
        "group_messages": group.map_or(0, |log| log.messages.len()),
        "chats": t.chats.len(),
        "users": t.users.len(),
    }))
}

// ---------------------------------------------------------------- watch route
// `bench/okdesk-bridge.sh` times each notification the bot sends into a private chat: the
// messages are stored without a time, so one held request watches the chats, woken by every
// change of the state, and stamps each new bot message when it first sees it.

/// Longest a watch is held, in seconds.
const WATCH_MAX_SECS: u64 = 600;

fn telegram_watch_routes() -> Router<Arc<Shared>> {
    Router::new().route("/telegram/watch", get(telegram_watch))
}

#[derive(Deserialize)]
struct WatchQuery {
    from_chat: i64,
    to_chat: i64,
    count: usize,
    #[serde(default)]
    seconds: Option<u64>,
    /// Only messages whose text starts with it are counted and listed.
    #[serde(default)]
    prefix: Option<String>,
}

fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

async fn telegram_watch(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<WatchQuery>,
) -> Response {
    if q.from_chat > q.to_chat {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "from_chat must not be above to_chat"})),
        )
            .into_response();
    }
    let secs = q.seconds.unwrap_or(60).clamp(1, WATCH_MAX_SECS);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut changes = shared.changes.subscribe();
    changes.borrow_and_update();
    // The last message id of each watched chat when the watch began (or last looked at).
    let mut last: std::collections::BTreeMap<i64, i64> = shared
        .read()
        .telegram
        .chats
        .range(q.from_chat..=q.to_chat)
        .map(|(id, log)| (*id, log.messages.keys().next_back().copied().unwrap_or(0)))
        .collect();
    let mut seen: Vec<Value> = Vec::new();
    loop {
        {
            let state = shared.read();
            let now = unix_us();
            for (chat_id, log) in state.telegram.chats.range(q.from_chat..=q.to_chat) {
                let after = last.entry(*chat_id).or_insert(0);
                for (message_id, m) in log.messages.range(*after + 1..) {
                    let text = m.message["text"].as_str().unwrap_or_default();
                    let wanted = q.prefix.as_deref().is_none_or(|p| text.starts_with(p));
                    if m.by_bot && !m.service && wanted {
                        seen.push(json!({
                            "chat_id": chat_id,
                            "message_id": message_id,
                            "text": text,
                            "seen_at_us": now,
                        }));
                    }
                    *after = *message_id;
                }
            }
        }
        if seen.len() >= q.count {
            break;
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => match changed {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            },
            () = shared.shutdown.cancelled() => break,
        }
    }
    Json(Value::Array(seen)).into_response()
}
