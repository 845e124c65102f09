//! The VK Bots Long Poll API fake (<https://dev.vk.com/ru/api/bots-long-poll/getting-started>).
//!
//! * `groups.getLongPollServer?group_id=…` (a VK method, see [`crate::vk`]) answers
//!   `{"response":{"key":"<40 hex>","server":"{url}/vk/longpoll/{group_id}","ts":"<current ts>"}}`.
//!   Every call issues a new key; the previous one stops working.
//! * `GET|POST {server}?act=a_check&key=…&ts=…&wait=N` answers `{"ts":"<new ts>","updates":[…]}`
//!   with every event numbered above `ts`, as soon as there is one; otherwise it holds the request
//!   for up to `wait` seconds (at most [`MAX_WAIT_SECS`]; absent or invalid = 0) and answers
//!   `{"ts":"<the same ts>","updates":[]}`. A `ts` ahead of the current one just waits.
//! * Failures, as VK sends them (HTTP 200): `{"failed":2}` for a wrong, expired or missing key (or
//!   a key used on another group's server); `{"failed":1,"ts":N}` (`ts` a number) when `ts` is
//!   older than the [`HISTORY`] events kept, or is missing or not a number.
//!
//! Events are numbered from 1 in push order; the current `ts` is the number of the last event
//! (0 before any). Each update is the object the Callback API would post (`type`, `event_id`,
//! `v`, `object`, `group_id`) without `secret`.
//!
//! Sandbox choices where VK documents nothing: `act` other than `a_check` is HTTP 400; the key
//! is checked before `ts`; a poll waiting while its key is replaced or expired answers
//! `{"failed":2}` at once. An injected [`Failure::VkError`](crate::Failure::VkError) with code 1,
//! 2 or 3 answers `{"failed":code}` (with `ts` for 1); 2 and 3 also expire the key, as a real
//! `failed` does. Other codes are HTTP 500. [`Sandbox::vk_long_poll_fail_next`] does the same
//! for the long poll server alone (an injected `Failure` hits whichever VK request comes next,
//! API methods included).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{DEFAULT_GROUP, MethodResult, Params};
use crate::{Sandbox, Shared};

/// How many events the server keeps; polling with an older `ts` answers `{"failed":1,…}`.
pub const HISTORY: usize = 1000;

/// The longest `wait` honoured (VK's documented maximum); larger values are capped.
pub const MAX_WAIT_SECS: u64 = 90;

/// What the long poll server remembers.
#[derive(Debug, Default)]
pub(crate) struct LongPollState {
    /// The one valid key and the group it was issued for; `None` before the first
    /// `groups.getLongPollServer` and after [`expire_key`].
    session: Option<Session>,
    /// Number of the last event pushed (0: none yet).
    last_ts: u64,
    /// The newest [`HISTORY`] events with their numbers, oldest first.
    events: VecDeque<(u64, Value)>,
    /// Number of the newest event dropped from `events` (0: none dropped).
    dropped_through: u64,
    /// `a_check` requests the fake answered (injected failures excluded).
    pub(crate) answered: usize,
    /// `a_check` requests being held right now.
    pub(crate) waiting: usize,
    /// `failed` codes the next `a_check` requests answer, first first (see
    /// [`Sandbox::vk_long_poll_fail_next`]).
    queued_failures: VecDeque<i64>,
}

#[derive(Debug)]
struct Session {
    group_id: i64,
    key: String,
}

impl LongPollState {
    fn failed_1(&self) -> Value {
        json!({"failed": 1, "ts": self.last_ts})
    }

    /// The answer to a poll right now, or `None` when it has to wait for a newer event.
    fn answer(&self, group_id: Option<i64>, key: Option<&str>, ts: Option<u64>) -> Option<Value> {
        let key_ok = match (&self.session, group_id, key) {
            (Some(session), Some(group_id), Some(key)) => {
                session.group_id == group_id && session.key == key
            }
            _ => false,
        };
        if !key_ok {
            return Some(json!({"failed": 2}));
        }
        let Some(ts) = ts else {
            return Some(self.failed_1());
        };
        if ts < self.dropped_through {
            return Some(self.failed_1());
        }
        if ts >= self.last_ts {
            return None;
        }
        let updates: Vec<Value> = self
            .events
            .iter()
            .filter(|(number, _)| *number > ts)
            .map(|(_, event)| event.clone())
            .collect();
        Some(json!({"ts": self.last_ts.to_string(), "updates": updates}))
    }
}

/// Changes the long poll state, wakes [`Sandbox::wait_until`](crate::Sandbox::wait_until) and
/// every held poll.
fn change<R>(shared: &Shared, f: impl FnOnce(&mut LongPollState) -> R) -> R {
    let result = shared.mutate(|s| f(&mut s.vk.long_poll));
    shared.long_poll_wake.send_modify(|version| *version += 1);
    result
}

/// Adds an event to the history (without `secret`) and wakes the held polls.
pub(crate) fn push_event(shared: &Shared, mut event: Value) {
    if let Some(object) = event.as_object_mut() {
        object.remove("secret");
    }
    change(shared, |lp| {
        lp.last_ts += 1;
        lp.events.push_back((lp.last_ts, event));
        while lp.events.len() > HISTORY {
            if let Some((number, _)) = lp.events.pop_front() {
                lp.dropped_through = number;
            }
        }
    });
}

/// Invalidates the current key: polls with it answer `{"failed":2}`.
pub(crate) fn expire_key(shared: &Shared) {
    change(shared, |lp| lp.session = None);
}

/// 40 lowercase hex digits, like VK's keys.
fn new_key() -> String {
    let mut key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    key.truncate(40);
    key
}

/// `groups.getLongPollServer` — <https://dev.vk.com/en/method/groups.getLongPollServer>.
///
/// `group_id` is required and must be the token's community (the one
/// [`Sandbox::set_vk_group`](crate::Sandbox::set_vk_group) set, default 1); another community
/// answers error 15, as VK does when the token has no access to it. `server` is built from the
/// request's `Host`, so it is the address the client used.
pub(super) fn get_server(shared: &Shared, params: &Params, host: &str) -> MethodResult {
    let group_id = params
        .int("group_id")
        .map_err(|detail| (100, detail))?
        .ok_or_else(|| (100, "group_id is undefined".to_owned()))?;
    if group_id <= 0 {
        return Err((100, "group_id should be positive".into()));
    }
    let own_group = shared
        .read()
        .vk
        .group
        .as_ref()
        .map_or(DEFAULT_GROUP.0, |(id, _)| *id);
    if group_id != own_group {
        return Err((15, "Access denied: no access to call this method".into()));
    }
    let key = new_key();
    let ts = change(shared, |lp| {
        lp.session = Some(Session {
            group_id,
            key: key.clone(),
        });
        lp.last_ts
    });
    Ok(json!({
        "key": key,
        "server": format!("http://{host}/vk/longpoll/{group_id}"),
        "ts": ts.to_string(),
    }))
}

/// Counts a held poll while it lives (also when the client hangs up).
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn start(shared: &'a Shared) -> Self {
        shared.mutate(|s| s.vk.long_poll.waiting += 1);
        Waiting(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.mutate(|s| s.vk.long_poll.waiting -= 1);
    }
}

/// `{url}/vk/longpoll/{group_id}?act=a_check&key=…&ts=…&wait=…`
pub(super) async fn a_check(
    State(shared): State<Arc<Shared>>,
    Path(group_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let params = Params::parse(query.as_deref(), if is_form { &body } else { &[] });
    if params.get("act") != Some("a_check") {
        return (
            StatusCode::BAD_REQUEST,
            "sandbox: the Bots Long Poll server only knows act=a_check",
        )
            .into_response();
    }
    let group_id = group_id.parse::<i64>().ok();
    let key = params.get("key");
    let ts = params
        .get("ts")
        .and_then(|ts| ts.trim().parse::<u64>().ok());
    let wait = params
        .get("wait")
        .and_then(|wait| wait.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .min(MAX_WAIT_SECS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);

    let queued = change(&shared, |lp| lp.queued_failures.pop_front());
    if let Some(answer) = queued.and_then(|code| injected_failure(&shared, code)) {
        return Json(answer).into_response();
    }

    let mut wake = shared.long_poll_wake.subscribe();
    let mut waiting = None;
    let answer = loop {
        // Mark the current version seen *before* checking, so no push can slip between.
        wake.borrow_and_update();
        let ready = shared.read().vk.long_poll.answer(group_id, key, ts);
        if let Some(answer) = ready {
            break answer;
        }
        if waiting.is_none() {
            waiting = Some(Waiting::start(&shared));
        }
        let woken = tokio::select! {
            woken = tokio::time::timeout_at(deadline, wake.changed()) => matches!(woken, Ok(Ok(()))),
            () = shared.shutdown.cancelled() => false,
        };
        if !woken {
            // Only reachable with a valid `ts` (otherwise the answer was immediate).
            let ts = ts.unwrap_or_default().to_string();
            break json!({"ts": ts, "updates": []});
        }
    };
    drop(waiting);
    shared.mutate(|s| s.vk.long_poll.answered += 1);
    Json(answer).into_response()
}

/// An injected [`Failure::VkError`](crate::Failure::VkError) on the long poll server, which has
/// no error envelope: see the module docs.
pub(crate) fn injected_failure(shared: &Shared, code: i64) -> Option<Value> {
    match code {
        1 => Some(shared.read().vk.long_poll.failed_1()),
        2 | 3 => {
            expire_key(shared);
            Some(json!({"failed": code}))
        }
        _ => None,
    }
}

impl Sandbox {
    /// The next `a_check` request answers `{"failed": code}` as VK does (`1` with the current
    /// `ts`; `2` and `3` also expire the key, so `groups.getLongPollServer` is needed again);
    /// several calls queue several answers. Only the long poll server is affected, and only
    /// codes 1, 2 and 3 (others are ignored). Such answers are not counted in
    /// [`Sandbox::vk_long_poll_requests`].
    pub fn vk_long_poll_fail_next(&self, code: i64) {
        if matches!(code, 1..=3) {
            change(&self.shared, |lp| lp.queued_failures.push_back(code));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::Sandbox;

    async fn get(url: &str, query: &[(&str, &str)]) -> Value {
        reqwest::Client::new()
            .get(url)
            .query(query)
            .send()
            .await
            .expect("the fake answers")
            .json()
            .await
            .expect("JSON")
    }

    async fn server(sandbox: &Sandbox) -> (String, String) {
        let answer = get(
            &format!("{}/groups.getLongPollServer", sandbox.vk_api_url()),
            &[
                ("access_token", &sandbox.options().vk_access_token),
                ("v", "5.199"),
                ("group_id", "1"),
            ],
        )
        .await;
        let field = |name: &str| answer["response"][name].as_str().expect(name).to_owned();
        (field("server"), field("key"))
    }

    async fn poll(server: &str, key: &str, ts: &str) -> Value {
        get(
            server,
            &[("act", "a_check"), ("key", key), ("ts", ts), ("wait", "0")],
        )
        .await
    }

    #[tokio::test]
    async fn queued_failures_answer_the_next_polls_in_order() {
        let sandbox = Sandbox::start().await.expect("starts");
        let (srv, key) = server(&sandbox).await;
        sandbox.vk_push_long_poll_event(json!({"type": "message_new", "group_id": 1}));
        sandbox.vk_long_poll_fail_next(1);
        sandbox.vk_long_poll_fail_next(9); // not a VK code: ignored
        sandbox.vk_long_poll_fail_next(3);
        // 1: the current ts, the key still valid.
        assert_eq!(poll(&srv, &key, "0").await, json!({"failed": 1, "ts": 1}));
        // 3: and the key is gone, as after a real failed 2/3.
        assert_eq!(poll(&srv, &key, "0").await, json!({"failed": 3}));
        assert_eq!(poll(&srv, &key, "0").await, json!({"failed": 2}));
        let (srv, key) = server(&sandbox).await;
        sandbox.vk_long_poll_fail_next(2);
        assert_eq!(poll(&srv, &key, "0").await, json!({"failed": 2}));
        let (srv, key) = server(&sandbox).await;
        let answer = poll(&srv, &key, "0").await;
        assert_eq!(answer["ts"], "1", "{answer}");
        assert_eq!(answer["updates"].as_array().map(Vec::len), Some(1));
        // Only the answered polls count, as for injected failures.
        assert_eq!(sandbox.vk_long_poll_requests(), 2);
    }
}
