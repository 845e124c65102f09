//! Faithful fakes of the upstream platforms the gateway talks to, served by one HTTP server:
//!
//! * [`vk`] — the VK API (`{url}/vk/method/{method}`): `messages.send`, `users.get`, `groups.getById`,
//!   `groups.getLongPollServer` with VK's own error envelope and codes, and the Bots Long Poll
//!   server (`{url}/vk/longpoll/{group_id}`, see [`vk::long_poll`]);
//! * [`chatwoot`] — the Chatwoot Application API (`{url}/chatwoot/api/v1/...`): profile, contacts,
//!   contact inboxes, conversations, messages, and the `message_created` webhook it fires;
//! * [`amocrm`] — amoCRM (`{url}/amocrm/...`): OAuth 2.0 token endpoint with refresh-token
//!   rotation, API v4 leads, contacts and account;
//! * [`okdesk`] — the Okdesk API v1 (`{url}/okdesk/api/v1/...`): companies by INN, contacts,
//!   issues, comments (with files), statuses, and the webhooks it fires;
//! * [`telegram`] — the Telegram Bot API (`{url}/telegram/bot{token}/{method}`): `getUpdates`
//!   long polling and webhooks, messages, copies, edits, forum topics, chats and members, with
//!   Telegram's envelope and error texts;
//! * [`control`] — a small JSON control API under `/_sandbox/` for the demo scripts.
//!
//! Rust tests use [`Sandbox`] in-process; the `sandbox` binary serves the same thing for the demo.
//! Every request to a fake is recorded ([`Sandbox::requests`]) and can be made to fail
//! ([`Sandbox::fail_next`]); [`Sandbox::wait_until`] wakes on every state change, so tests never
//! sleep.

#![warn(missing_docs)]

pub mod amocrm;
pub mod chatwoot;
pub mod control;
mod intercept;
mod multipart;
pub mod okdesk;
pub mod telegram;
pub mod vk;
mod webhook;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use okdesk::{OkdeskAttachment, OkdeskWebhookDelivery};
pub use telegram::{PushedUpdate, TelegramTopic, TelegramWebhookDelivery, TgUser};
pub use vk::media::VkMedia;
pub use webhook::WebhookDelivery;

/// Credentials and ids the fakes accept. `Default`: `"vk-test-token"`, `"cw-test-token"`, account 1,
/// inbox 1, Telegram token [`telegram::DEFAULT_BOT_TOKEN`] and group [`telegram::DEFAULT_GROUP_ID`],
/// Okdesk token `"okdesk-test-token"` with the INN attribute code `"inn"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// The only `access_token` the VK fake accepts (a community token).
    pub vk_access_token: String,
    /// The only `api_access_token` the Chatwoot fake accepts (an agent's token).
    pub chatwoot_api_token: String,
    /// The one Chatwoot account that exists.
    pub chatwoot_account_id: i64,
    /// The one Chatwoot inbox that exists (an API channel inbox).
    pub chatwoot_inbox_id: i64,
    /// The only bot token the Telegram fake accepts (`<bot_id>:<secret>`; `getMe`'s id is the
    /// part before `:`).
    pub telegram_bot_token: String,
    /// The chat id of the support group, a forum supergroup titled
    /// [`telegram::GROUP_TITLE`] where the bot is an administrator.
    pub telegram_group_id: i64,
    /// The only `api_token` the Okdesk fake accepts (`OKDESK_API_TOKEN`).
    pub okdesk_api_token: String,
    /// The code of the companies' INN attribute (`OKDESK_INN_PARAMETER_CODE`).
    pub okdesk_inn_parameter_code: String,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            vk_access_token: "vk-test-token".into(),
            chatwoot_api_token: "cw-test-token".into(),
            chatwoot_account_id: 1,
            chatwoot_inbox_id: 1,
            telegram_bot_token: telegram::DEFAULT_BOT_TOKEN.into(),
            telegram_group_id: telegram::DEFAULT_GROUP_ID,
            okdesk_api_token: "okdesk-test-token".into(),
            okdesk_inn_parameter_code: "inn".into(),
        }
    }
}

/// Which fake a request went to, or a failure is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The VK API fake and its Bots Long Poll server (`vk`).
    Vk,
    /// The Chatwoot fake (`chatwoot`).
    Chatwoot,
    /// The amoCRM fake (`amocrm`).
    Amocrm,
    /// The Telegram Bot API fake (`telegram`).
    Telegram,
    /// The Okdesk API fake (`okdesk`).
    Okdesk,
}

/// What the next request(s) to a fake should suffer instead of being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Answer with this HTTP status (e.g. 500, 502, 503) and a proxy-style HTML body. Telegram
    /// answers its own envelope (`{"ok":false,"error_code":500,"description":"Internal Server
    /// Error"}`) except for 502–504, which come from its nginx as HTML.
    Status(u16),
    /// HTTP 429 with `Retry-After: {retry_after_secs}`. Telegram sends no header but
    /// `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after N","parameters":{"retry_after":N}}`.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Hold the request for [`TIMEOUT_HANG`], longer than any sane client timeout, then 504.
    Timeout,
    /// VK: HTTP 200 with VK's error envelope for this code and its real message. On the Bots Long
    /// Poll server, codes 1, 2 and 3 answer `{"failed":code}` instead (see [`vk::long_poll`]),
    /// other codes HTTP 500. Chatwoot, amoCRM, Telegram and Okdesk have no such thing; there it is
    /// answered with HTTP 500.
    VkError(i64),
}

/// How long [`Failure::Timeout`] holds a request.
pub const TIMEOUT_HANG: Duration = Duration::from_secs(60);

/// A message the VK fake accepted (`messages.send` that succeeded and was not a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VkSentMessage {
    /// The VK `peer_id` it was sent to.
    pub peer_id: i64,
    /// The `random_id` it was sent with (VK's de-duplication key per peer).
    pub random_id: i64,
    /// The `message` text; empty when only an attachment was sent.
    pub message: String,
    /// The `attachment` parameter's items (e.g. `photo-1_2`), split at commas and trimmed (each names media of the fake; see
    /// [`Sandbox::vk_media`]).
    pub attachments: Vec<String>,
    /// The message id the fake answered with.
    pub message_id: i64,
}

/// One HTTP request to a fake, as received (recorded before any injected failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    /// The fake it went to.
    pub target: Target,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The full request path, e.g. `/vk/method/messages.send` or `/chatwoot/api/v1/profile`.
    pub path: String,
    /// The raw query string without `?` (empty when none).
    pub query: String,
    /// The raw body as UTF-8 (lossy).
    pub body: String,
}

/// Everything the fakes know, behind one lock. Handlers lock it briefly and never across `.await`.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) vk: vk::VkState,
    pub(crate) cw: chatwoot::model::Store,
    pub(crate) amocrm: amocrm::AmoState,
    pub(crate) telegram: telegram::TelegramState,
    pub(crate) okdesk: okdesk::OkdeskState,
    pub(crate) failures: HashMap<Target, VecDeque<Failure>>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) deliveries: Vec<WebhookDelivery>,
}

/// State plus what every handler needs; shared by the server and the [`Sandbox`] handle.
pub(crate) struct Shared {
    pub(crate) opts: SandboxOptions,
    /// The bound address (fallback for URLs when a request has no `Host`).
    pub(crate) addr: SocketAddr,
    state: Mutex<State>,
    /// Bumped after every change of `state`; [`Sandbox::wait_until`] listens to it.
    changes: watch::Sender<u64>,
    /// Bumped after every change of the Bots Long Poll state (event pushed, key issued or
    /// expired); held polls listen to it.
    pub(crate) long_poll_wake: watch::Sender<u64>,
    /// Bumped after every change of the Telegram update queue or webhook; held `getUpdates`
    /// polls and the Telegram webhook sender listen to it.
    pub(crate) telegram_wake: watch::Sender<u64>,
    /// Bumped after an Okdesk webhook was queued; the Okdesk webhook sender listens to it.
    pub(crate) okdesk_wake: watch::Sender<u64>,
    /// Client for outgoing webhooks (5 s timeout, like Chatwoot's `Webhooks::Trigger`).
    pub(crate) http: reqwest::Client,
    /// Cancelled when the [`Sandbox`] is dropped; ends hanging requests and webhook tasks.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// Reads the state. Use [`Shared::mutate`] for anything that changes it.
    pub(crate) fn read(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn fail_next(&self, target: Target, n: u32, failure: Failure) {
        self.mutate(|s| {
            let queue = s.failures.entry(target).or_default();
            queue.extend(std::iter::repeat_n(failure, n as usize));
        });
    }

    /// Changes the state and wakes every [`Sandbox::wait_until`].
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.read());
        self.changes.send_modify(|version| *version += 1);
        result
    }
}

/// A running sandbox: one HTTP server with the fakes and the control API, plus a handle on their
/// state. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Sandbox {
    /// Binds `127.0.0.1:0` with [`SandboxOptions::default`] and serves.
    pub async fn start() -> anyhow::Result<Sandbox> {
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SandboxOptions::default(),
        )
        .await
    }

    /// Binds `addr` (port 0 picks a free one) and serves the fakes and the control API.
    pub async fn start_on(addr: SocketAddr, opts: SandboxOptions) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the sandbox to {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let http = reqwest::Client::builder()
            .timeout(webhook::TIMEOUT)
            .user_agent("rest-client/2.1.0 (sandbox) ruby") // shaped like the RestClient agent Chatwoot sends
            .build()
            .context("building the webhook HTTP client")?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                cw: chatwoot::model::Store::new(&opts),
                telegram: telegram::TelegramState::new(&opts),
                ..State::default()
            }),
            opts,
            addr,
            changes: watch::channel(0).0,
            long_poll_wake: watch::channel(0).0,
            telegram_wake: watch::channel(0).0,
            okdesk_wake: watch::channel(0).0,
            http,
            shutdown: CancellationToken::new(),
        });
        let app = router(shared.clone());
        telegram::spawn_webhook_sender(shared.clone());
        okdesk::spawn_webhook_sender(shared.clone());
        let shutdown = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let serve =
                axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
            if let Err(error) = serve.await {
                tracing::error!(%error, "sandbox server stopped");
            }
        });
        tracing::info!(%addr, "sandbox listening");
        Ok(Sandbox {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `{url}/vk/method` — the client calls `{vk_api_url}/messages.send`.
    pub fn vk_api_url(&self) -> String {
        format!("{}/vk/method", self.url())
    }

    /// `{url}/chatwoot` — the client calls `{chatwoot_url}/api/v1/accounts/{id}/...`.
    pub fn chatwoot_url(&self) -> String {
        format!("{}/chatwoot", self.url())
    }

    /// The options the fakes were started with.
    pub fn options(&self) -> &SandboxOptions {
        &self.shared.opts
    }

    /// Where Chatwoot sends webhooks (`None` = nowhere); `secret: Some` => deliveries are signed
    /// (see [`webhook`](crate::WebhookDelivery) for the scheme).
    pub fn set_chatwoot_webhook(&self, url: Option<String>, secret: Option<String>) {
        self.shared.mutate(|s| {
            s.webhook_url = url;
            s.webhook_secret = secret;
        });
    }

    /// Makes `users.get` answer this name for `id`.
    pub fn add_vk_user(&self, id: i64, first_name: &str, last_name: &str) {
        self.shared.mutate(|s| {
            s.vk.users
                .insert(id, (first_name.to_owned(), last_name.to_owned()))
        });
    }

    /// `messages.send` to this peer answers VK error 901 (Can't send messages for users without
    /// permission).
    pub fn block_vk_peer(&self, peer_id: i64) {
        self.shared.mutate(|s| s.vk.blocked.insert(peer_id));
    }

    /// The user allows messages from the community again.
    pub fn unblock_vk_peer(&self, peer_id: i64) {
        self.shared.mutate(|s| s.vk.blocked.remove(&peer_id));
    }

    /// The community `groups.getById` describes when called without ids (default: 1, "Sandbox
    /// Community").
    pub fn set_vk_group(&self, id: i64, name: &str) {
        self.shared
            .mutate(|s| s.vk.group = Some((id, name.to_owned())));
    }

    /// Queues a Bots Long Poll event, as the Callback API would post it (`type`, `event_id`, `v`,
    /// `object`, `group_id`); a `secret` key is removed. It gets the next `ts` and is handed to
    /// held polls at once. The server keeps the last [`vk::long_poll::HISTORY`] events.
    pub fn vk_push_long_poll_event(&self, event: serde_json::Value) {
        vk::long_poll::push_event(&self.shared, event);
    }

    /// How many `a_check` requests the long poll server has answered (updates, empty or
    /// `failed`), not counting injected failures or polls the client abandoned.
    pub fn vk_long_poll_requests(&self) -> usize {
        self.shared.read().vk.long_poll.answered
    }

    /// How many `a_check` requests are being held right now, waiting for an event.
    pub fn vk_long_poll_waiting(&self) -> usize {
        self.shared.read().vk.long_poll.waiting
    }

    /// Expires the current long poll key: polls with it (also those being held) answer
    /// `{"failed":2}` until `groups.getLongPollServer` issues a new one.
    pub fn vk_expire_long_poll_key(&self) {
        vk::long_poll::expire_key(&self.shared);
    }

    /// The next `n` requests to `target` get `failure` instead of an answer.
    pub fn fail_next(&self, target: Target, n: u32, failure: Failure) {
        self.shared.fail_next(target, n, failure);
    }

    /// Messages VK accepted, in order; duplicates (same peer and `random_id`) appear once.
    pub fn vk_sent_messages(&self) -> Vec<VkSentMessage> {
        self.shared.read().vk.sent.clone()
    }

    /// Contacts as `GET /contacts/{id}` renders them (with `contact_inboxes`).
    pub fn chatwoot_contacts(&self) -> Vec<serde_json::Value> {
        let state = self.shared.read();
        state
            .cw
            .contacts
            .iter()
            .map(|c| state.cw.contact_json(c, true))
            .collect()
    }

    /// Conversations as `GET /conversations/{id}` renders them.
    pub fn chatwoot_conversations(&self) -> Vec<serde_json::Value> {
        let state = self.shared.read();
        state
            .cw
            .conversations
            .iter()
            .map(|c| state.cw.conversation_json(c))
            .collect()
    }

    /// The conversation's messages, oldest first, as `GET .../messages` renders each one
    /// (`message_type` as a number). Empty for an unknown conversation.
    pub fn chatwoot_messages(&self, conversation_id: i64) -> Vec<serde_json::Value> {
        let state = self.shared.read();
        state
            .cw
            .messages_of(conversation_id)
            .map(|m| state.cw.message_json(m))
            .collect()
    }

    /// Simulates an agent typing in the Chatwoot UI: stores an `outgoing` message from the agent
    /// (a private note when `private`) and fires the `message_created` webhook. Returns its id.
    ///
    /// # Panics
    /// When the conversation does not exist: that is a bug in the test.
    pub async fn chatwoot_agent_reply(
        &self,
        conversation_id: i64,
        content: &str,
        private: bool,
    ) -> i64 {
        chatwoot::agent_reply(&self.shared, conversation_id, content, private)
            .unwrap_or_else(|| panic!("sandbox: no Chatwoot conversation {conversation_id}"))
    }

    /// Every `message_created` delivery attempt so far, finished ones only, in completion order.
    pub fn chatwoot_webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.read().deliveries.clone()
    }

    /// Every request to any fake, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.read().requests.clone()
    }

    /// Resolves once `pred` holds; `pred` is re-checked after every state change. `Err` after
    /// `timeout`.
    pub async fn wait_until<F: Fn(&Sandbox) -> bool>(
        &self,
        timeout: Duration,
        pred: F,
    ) -> anyhow::Result<()> {
        let mut changes = self.shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Mark the current version seen *before* checking, so no change can slip between.
            changes.borrow_and_update();
            if pred(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => anyhow::bail!("sandbox stopped while waiting"),
                Err(_) => anyhow::bail!("sandbox condition not met within {timeout:?}"),
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.server.abort();
    }
}

/// The whole app: the fakes (recorded, failure-injectable) and the control API.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .nest(
            "/vk",
            intercept::wrap(vk::router(), shared.clone(), Target::Vk),
        )
        .nest(
            "/chatwoot",
            intercept::wrap(chatwoot::router(), shared.clone(), Target::Chatwoot),
        )
        .nest(
            "/amocrm",
            intercept::wrap(amocrm::router(), shared.clone(), Target::Amocrm),
        )
        .nest(
            "/telegram",
            intercept::wrap(telegram::router(), shared.clone(), Target::Telegram),
        )
        .nest(
            "/okdesk",
            intercept::wrap(okdesk::router(), shared.clone(), Target::Okdesk),
        )
        .nest("/_sandbox", control::router())
        .with_state(shared)
}
