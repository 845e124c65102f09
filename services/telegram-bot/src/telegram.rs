//! The Bot API client of telegram-bot: [frankenstein](https://docs.rs/frankenstein)'s reqwest
//! `Bot` (it shares the workspace's reqwest 0.13) on our own HTTP client, behind the sending
//! limits Telegram documents and one error type the relay can act on.
//!
//! - **The token** is part of every URL (`{TELEGRAM_API_URL}/bot{BOT_TOKEN}/{method}`).
//!   frankenstein strips the URL from reqwest errors, and nothing here formats a URL, so
//!   the token reaches no log line, error or span.
//! - **Limits** ([Bots FAQ](https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this)):
//!   about 30 messages/s in all, 1/s to one private chat, 20/min to one group. Every send waits
//!   for its turn *before* it goes out ([`Telegram::before_send`]); a 429 anyway pauses every
//!   send of the bot for its `retry_after` ([`TgError::retry_after`]).
//! - **Lengths**: a text is at most 4096 UTF-16 code units ([`MAX_TEXT_UNITS`]); longer texts
//!   are split by [`split_text`], entity offsets moved along.
//! - **Files** ([getFile](https://core.telegram.org/bots/api#getfile)) are downloaded from
//!   `{TELEGRAM_API_URL}/file/bot{BOT_TOKEN}/{file_path}`: that URL holds the token too, so a
//!   failed download is reported without it ([`Telegram::download`]).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::TextSpan;
use frankenstein::AsyncTelegramApi;
use frankenstein::client_reqwest::Bot;
use frankenstein::methods::{
    AnswerCallbackQueryParams, CloseForumTopicParams, CopyMessageParams, CreateForumTopicParams,
    DeleteWebhookParams, EditMessageCaptionParams, EditMessageTextParams, GetChatMemberParams,
    GetChatParams, GetFileParams, GetUpdatesParams, ReopenForumTopicParams, SendMessageParams,
    SetWebhookParams,
};
use frankenstein::types::{
    AllowedUpdate, ChatFullInfo, ChatMember, File, MessageEntity, MessageEntityType, ReplyMarkup,
    ReplyParameters, User,
};
use frankenstein::updates::WebhookInfo;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::config::Limits;

/// Longest text of one message (sendMessage `text`, editMessageText), in UTF-16 code units.
pub const MAX_TEXT_UNITS: usize = 4096;

/// How often one send waits out a 429 and tries again before the error reaches the caller.
pub const FLOOD_RETRIES: u32 = 5;

/// Longest topic name (createForumTopic `name`), in characters.
pub const MAX_TOPIC_NAME_CHARS: usize = 128;

/// The update kinds the bot asks for (`allowed_updates`): only what it handles — messages and
/// their edits, and with the helpdesk on the presses of its inline buttons (`callback_query`).
pub fn allowed_updates(button_presses: bool) -> Vec<AllowedUpdate> {
    let mut kinds = vec![AllowedUpdate::Message, AllowedUpdate::EditedMessage];
    if button_presses {
        kinds.push(AllowedUpdate::CallbackQuery);
    }
    kinds
}

/// Why a file could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownloadError {
    /// Larger than the limit asked for (bytes).
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// getFile or the download failed.
    #[error(transparent)]
    Telegram(#[from] TgError),
}

/// A failed Bot API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TgError {
    /// Telegram answered `{"ok":false,"error_code","description","parameters"}`
    /// ([Making requests](https://core.telegram.org/bots/api#making-requests)).
    #[error("Telegram {code}: {description}")]
    Api {
        /// `error_code` (the HTTP status).
        code: u64,
        /// `description`, e.g. `Forbidden: bot was blocked by the user`.
        description: String,
        /// `parameters.retry_after`, seconds, on 429.
        retry_after: Option<u64>,
    },
    /// No answer, or one that is not the Bot API's (timeout, connection refused, a proxy's
    /// HTML page). Never carries the URL.
    #[error("Telegram unreachable: {0}")]
    Transport(String),
}

impl TgError {
    /// `token` is blanked out of any upstream text kept (a proxy's error page may echo the
    /// URL).
    fn from_frankenstein(e: frankenstein::Error, token: &str) -> Self {
        match e {
            frankenstein::Error::Api(r) => TgError::Api {
                code: r.error_code,
                description: r.description,
                retry_after: r.parameters.and_then(|p| p.retry_after).map(u64::from),
            },
            frankenstein::Error::HttpReqwest(e) => {
                // `without_url()` was applied by frankenstein; say what kind of failure it was.
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                TgError::Transport(format!("{kind}: {e}"))
            }
            frankenstein::Error::JsonDecode { source, input } => {
                // What came back instead (a proxy's 502 page …), short and without the token.
                let shown: String = input
                    .replace(token, "[token]")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(120)
                    .collect();
                TgError::Transport(format!("answer is not Bot API JSON ({source}): {shown}"))
            }
            other => TgError::Transport(other.to_string()),
        }
    }

    /// The HTTP status / `error_code`, when Telegram answered.
    pub fn code(&self) -> Option<u64> {
        match self {
            TgError::Api { code, .. } => Some(*code),
            TgError::Transport(_) => None,
        }
    }

    fn description_has(&self, needle: &str) -> bool {
        matches!(self, TgError::Api { description, .. } if description.to_ascii_lowercase().contains(needle))
    }

    /// 429: how long Telegram asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TgError::Api {
                code: 429,
                retry_after,
                ..
            } => Some(Duration::from_secs(retry_after.unwrap_or(1).max(1))),
            _ => None,
        }
    }

    /// Worth trying again as it is: 429, 5xx, no answer.
    pub fn is_retriable(&self) -> bool {
        match self {
            TgError::Api { code, .. } => *code == 429 || *code >= 500,
            TgError::Transport(_) => true,
        }
    }

    /// 403 from a private chat: the user blocked the bot or deleted their account.
    pub fn is_blocked_by_user(&self) -> bool {
        self.code() == Some(403)
            && (self.description_has("blocked by the user")
                || self.description_has("user is deactivated"))
    }

    /// 403 from the group: the bot was removed from it, or is not a member any more.
    pub fn is_removed_from_group(&self) -> bool {
        self.code() == Some(403)
            && (self.description_has("kicked") || self.description_has("not a member"))
    }

    /// 400 `message thread not found`: the topic was deleted by hand.
    pub fn is_thread_gone(&self) -> bool {
        self.code() == Some(400)
            && (self.description_has("thread not found")
                || self.description_has("topic_deleted")
                || self.description_has("topic deleted"))
    }

    /// 400 `not enough rights …`: the bot may not manage topics (or post) in the group.
    pub fn is_missing_rights(&self) -> bool {
        self.code() == Some(400) && self.description_has("not enough rights")
            || self.code() == Some(403) && self.description_has("not enough rights")
    }

    /// 400 `message is not modified` (an edit to the same content) or `TOPIC_NOT_MODIFIED`:
    /// nothing to do.
    pub fn is_not_modified(&self) -> bool {
        self.code() == Some(400) && self.description_has("not_modified")
            || self.description_has("not modified")
    }

    /// 400 `message to edit not found` / `message to copy not found`.
    pub fn is_message_gone(&self) -> bool {
        self.code() == Some(400)
            && (self.description_has("message to edit not found")
                || self.description_has("message to copy not found"))
    }

    /// 409: another getUpdates poller, or a webhook is set.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
}

/// Sending limits in force: one bucket for the bot, one per private chat, one per group.
struct Limiter {
    bot: Option<DefaultDirectRateLimiter>,
    chat: Option<DefaultKeyedRateLimiter<i64>>,
    group: Option<DefaultKeyedRateLimiter<i64>>,
    /// Until when every send waits (a 429's `retry_after`).
    flood_until: Mutex<Option<Instant>>,
}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            bot: limits
                .per_second
                .map(|n| RateLimiter::direct(Quota::per_second(nz(n)))),
            chat: limits
                .chat_per_second
                .map(|n| RateLimiter::keyed(Quota::per_second(nz(n)))),
            group: limits
                .group_per_minute
                .map(|n| RateLimiter::keyed(Quota::per_minute(nz(n)))),
            flood_until: Mutex::new(None),
        }
    }

    fn flood_wait(&self) -> Option<Instant> {
        let until = *self.flood_until.lock().unwrap_or_else(|e| e.into_inner());
        until.filter(|t| *t > Instant::now())
    }

    fn flooded(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut f = self.flood_until.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none_or(|t| t < until) {
            *f = Some(until);
        }
    }
}

/// The Bot API of one bot.
#[derive(Clone)]
pub struct Telegram {
    bot: Bot,
    /// The same, on a client whose timeout outlasts a long poll.
    poll_bot: Bot,
    limiter: Arc<Limiter>,
    /// Only to blank it out of upstream texts kept in errors.
    token: Arc<str>,
    /// For file downloads: the client and `{api_url}/file/bot{token}` (secret: never logged).
    http: reqwest::Client,
    file_base: Arc<str>,
    /// `callback_query` is in `allowed_updates`.
    button_presses: bool,
}

impl Telegram {
    /// A client for `{api_url}/bot{token}/…` on `http` (the runtime's client, its timeout
    /// `UPSTREAM_TIMEOUT_SECS`); getUpdates gets its own client whose timeout is
    /// `poll_timeout` + `http_timeout`.
    ///
    /// Errors: the long-poll client cannot be built (TLS backend missing).
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        token: &str,
        limits: &Limits,
        poll_timeout: Duration,
        http_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let url = format!("{}/bot{token}", api_url.trim_end_matches('/'));
        let poll_http = reqwest::Client::builder()
            .user_agent(concat!(
                "messenger-gateway-telegram-bot/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(http_timeout)
            .timeout(poll_timeout + http_timeout)
            .build()?;
        let file_base = format!("{}/file/bot{token}", api_url.trim_end_matches('/'));
        Ok(Self {
            bot: Bot::builder()
                .api_url(url.clone())
                .client(http.clone())
                .build(),
            poll_bot: Bot::builder().api_url(url).client(poll_http).build(),
            limiter: Arc::new(Limiter::new(limits)),
            token: Arc::from(token),
            http,
            file_base: Arc::from(file_base),
            button_presses: false,
        })
    }

    /// Also asks for `callback_query` updates (the helpdesk's inline buttons).
    #[must_use]
    pub fn with_button_presses(mut self, on: bool) -> Self {
        self.button_presses = on;
        self
    }

    /// Waits until a message to `chat_id` may go out: a pending 429 pause, then the bot's
    /// bucket, then the chat's (groups and supergroups have negative ids, private chats
    /// positive).
    pub async fn before_send(&self, chat_id: i64) {
        while let Some(until) = self.limiter.flood_wait() {
            tokio::time::sleep_until(until).await;
        }
        if let Some(l) = &self.limiter.bot {
            l.until_ready().await;
        }
        let keyed = if chat_id < 0 {
            &self.limiter.group
        } else {
            &self.limiter.chat
        };
        if let Some(l) = keyed {
            l.until_key_ready(&chat_id).await;
            if l.len() > 10_000 {
                l.retain_recent();
            }
        }
    }

    fn seen<T>(&self, r: Result<T, frankenstein::Error>) -> Result<T, TgError> {
        r.map_err(|e| {
            let e = TgError::from_frankenstein(e, &self.token);
            if let Some(wait) = e.retry_after() {
                self.limiter.flooded(wait);
                metrics::counter!("telegram_flood_waits_total").increment(1);
            }
            e
        })
    }

    /// One send to `chat_id`: waits for its turn ([`Self::before_send`]), and on a 429 waits
    /// `retry_after` and sends again, up to [`FLOOD_RETRIES`] times, so that a flood wait in
    /// the middle of a split text does not make the relay start the text over.
    async fn send<T, F, Fut>(&self, chat_id: i64, call: F) -> Result<T, TgError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, frankenstein::Error>>,
    {
        let mut floods = 0;
        loop {
            self.before_send(chat_id).await;
            match self.seen(call().await) {
                Err(e) if e.retry_after().is_some() && floods < FLOOD_RETRIES => floods += 1,
                r => return r,
            }
        }
    }

    /// `getMe`: the bot itself.
    pub async fn get_me(&self) -> Result<User, TgError> {
        self.seen(self.bot.get_me().await).map(|r| r.result)
    }

    /// `getChat`.
    pub async fn get_chat(&self, chat_id: i64) -> Result<ChatFullInfo, TgError> {
        let p = GetChatParams::builder().chat_id(chat_id).build();
        self.seen(self.bot.get_chat(&p).await).map(|r| r.result)
    }

    /// `getChatMember`.
    pub async fn get_chat_member(&self, chat_id: i64, user_id: i64) -> Result<ChatMember, TgError> {
        let p = GetChatMemberParams::builder()
            .chat_id(chat_id)
            .user_id(user_id.unsigned_abs())
            .build();
        self.seen(self.bot.get_chat_member(&p).await)
            .map(|r| r.result)
    }

    /// `getUpdates` long poll from `offset`, held up to `timeout`; the updates as raw JSON so
    /// that one update of a kind this build does not know cannot fail the whole batch.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<serde_json::Value>, TgError> {
        let p = GetUpdatesParams::builder()
            .offset(offset)
            .limit(100)
            .timeout(u32::try_from(timeout.as_secs()).unwrap_or(50))
            .allowed_updates(allowed_updates(self.button_presses))
            .build();
        let r: Result<frankenstein::response::MethodResponse<Vec<serde_json::Value>>, _> =
            self.poll_bot.request("getUpdates", Some(&p)).await;
        self.seen(r).map(|r| r.result)
    }

    /// `setWebhook(url, secret_token, allowed_updates)`.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), TgError> {
        let p = SetWebhookParams::builder()
            .url(url)
            .secret_token(secret)
            .allowed_updates(allowed_updates(self.button_presses))
            .build();
        self.seen(self.bot.set_webhook(&p).await).map(|_| ())
    }

    /// `deleteWebhook` (pending updates are kept).
    pub async fn delete_webhook(&self) -> Result<(), TgError> {
        let p = DeleteWebhookParams::builder()
            .drop_pending_updates(false)
            .build();
        self.seen(self.bot.delete_webhook(&p).await).map(|_| ())
    }

    /// `getWebhookInfo`.
    pub async fn webhook_info(&self) -> Result<WebhookInfo, TgError> {
        self.seen(self.bot.get_webhook_info().await)
            .map(|r| r.result)
    }

    /// `sendMessage` of `text` with its formatting, split into parts of at most
    /// [`MAX_TEXT_UNITS`]; each part waits for its turn; the first part answers `reply_to`
    /// (sent anyway when that message is gone). Returns the message ids in order.
    ///
    /// Errors: the first part that fails (earlier parts stay sent).
    pub async fn send_text(
        &self,
        chat_id: i64,
        thread_id: Option<i32>,
        text: &str,
        spans: &[TextSpan],
        reply_to: Option<i32>,
    ) -> Result<Vec<i32>, TgError> {
        let mut ids = Vec::new();
        for (part, part_spans) in split_text(text, spans, MAX_TEXT_UNITS) {
            let r = if ids.is_empty() { reply_to } else { None };
            ids.push(
                self.send_part(chat_id, thread_id, &part, &part_spans, r)
                    .await?,
            );
        }
        Ok(ids)
    }

    /// One `sendMessage` of a text that fits ([`split_text`] made it), answering `reply_to`.
    pub async fn send_part(
        &self,
        chat_id: i64,
        thread_id: Option<i32>,
        part: &str,
        spans: &[TextSpan],
        reply_to: Option<i32>,
    ) -> Result<i32, TgError> {
        self.send_one(chat_id, thread_id, part, spans, reply_to, None)
            .await
    }

    /// `sendMessage` of a plain `text` with `markup` (a reply keyboard, its removal, or inline
    /// buttons), split like [`Self::send_text`]; the markup goes with the last part, so inline
    /// buttons sit under the end of the text. Returns the message ids in order.
    ///
    /// Errors: the first part that fails.
    pub async fn send_with_markup(
        &self,
        chat_id: i64,
        text: &str,
        markup: Option<ReplyMarkup>,
    ) -> Result<Vec<i32>, TgError> {
        let parts = split_text(text, &[], MAX_TEXT_UNITS);
        let last = parts.len().saturating_sub(1);
        let mut ids = Vec::new();
        for (i, (part, _)) in parts.into_iter().enumerate() {
            let m = if i == last { markup.clone() } else { None };
            ids.push(self.send_one(chat_id, None, &part, &[], None, m).await?);
        }
        Ok(ids)
    }

    /// The one `sendMessage` every text goes through (limits, 429 waits, the metric).
    async fn send_one(
        &self,
        chat_id: i64,
        thread_id: Option<i32>,
        part: &str,
        spans: &[TextSpan],
        reply_to: Option<i32>,
        markup: Option<ReplyMarkup>,
    ) -> Result<i32, TgError> {
        let p = SendMessageParams::builder()
            .chat_id(chat_id)
            .text(part)
            .maybe_message_thread_id(thread_id)
            .maybe_entities(entities(spans))
            .maybe_reply_parameters(reply(reply_to))
            .maybe_reply_markup(markup)
            .build();
        let m = self
            .send(chat_id, || self.bot.send_message(&p))
            .await?
            .result;
        metrics::counter!("telegram_sent_total", "method" => "sendMessage").increment(1);
        Ok(m.message_id)
    }

    /// `answerCallbackQuery`: stops the spinner on the pressed button, showing `text` as a
    /// short notification when given. Not a message, so not behind the sending limits.
    pub async fn answer_callback(
        &self,
        callback_id: &str,
        text: Option<&str>,
    ) -> Result<(), TgError> {
        let p = AnswerCallbackQueryParams::builder()
            .callback_query_id(callback_id)
            .maybe_text(text.map(str::to_owned))
            .build();
        self.seen(self.bot.answer_callback_query(&p).await)
            .map(|_| ())
    }

    /// `getFile`: the file's `file_path` (valid for an hour) and size.
    pub async fn get_file(&self, file_id: &str) -> Result<File, TgError> {
        let p = GetFileParams::builder().file_id(file_id).build();
        self.seen(self.bot.get_file(&p).await).map(|r| r.result)
    }

    /// Downloads `file_path` (from [`Self::get_file`]), refusing more than `limit` bytes
    /// (by `Content-Length`, and while reading). The URL carries the token: errors never
    /// include it.
    ///
    /// Errors: [`DownloadError::TooLarge`]; a non-2xx answer as [`TgError::Api`] with its
    /// status; no answer as [`TgError::Transport`].
    pub async fn download(&self, file_path: &str, limit: u64) -> Result<Vec<u8>, DownloadError> {
        let url = format!("{}/{}", self.file_base, file_path.trim_start_matches('/'));
        let transport = |e: reqwest::Error| {
            let e = e.without_url();
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            DownloadError::Telegram(TgError::Transport(format!("file download {kind}: {e}")))
        };
        let mut r = self.http.get(url).send().await.map_err(transport)?;
        let status = r.status();
        if !status.is_success() {
            return Err(DownloadError::Telegram(TgError::Api {
                code: u64::from(status.as_u16()),
                description: format!("file download answered {status}"),
                retry_after: None,
            }));
        }
        if r.content_length().is_some_and(|n| n > limit) {
            return Err(DownloadError::TooLarge(limit));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(transport)? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(DownloadError::TooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        metrics::counter!("telegram_files_downloaded_total").increment(1);
        Ok(bytes)
    }

    /// `copyMessage`: the message `message_id` of `from_chat_id`, content and media included,
    /// into `chat_id` (and topic `thread_id`), answering `reply_to` there when given.
    /// Telegram answers only `{message_id}`.
    pub async fn copy_message(
        &self,
        chat_id: i64,
        thread_id: Option<i32>,
        from_chat_id: i64,
        message_id: i32,
        reply_to: Option<i32>,
    ) -> Result<i32, TgError> {
        let p = CopyMessageParams::builder()
            .chat_id(chat_id)
            .maybe_message_thread_id(thread_id)
            .from_chat_id(from_chat_id)
            .message_id(message_id)
            .maybe_reply_parameters(reply(reply_to))
            .build();
        let id = self
            .send(chat_id, || self.bot.copy_message(&p))
            .await?
            .result
            .message_id;
        metrics::counter!("telegram_sent_total", "method" => "copyMessage").increment(1);
        Ok(id)
    }

    /// `editMessageText` (the text cut at [`MAX_TEXT_UNITS`]). "Not modified" is success.
    pub async fn edit_text(
        &self,
        chat_id: i64,
        message_id: i32,
        text: &str,
        spans: &[TextSpan],
    ) -> Result<(), TgError> {
        let (text, spans) = split_text(text, spans, MAX_TEXT_UNITS)
            .into_iter()
            .next()
            .unwrap_or_default();
        let p = EditMessageTextParams::builder()
            .chat_id(chat_id)
            .message_id(message_id)
            .text(text)
            .maybe_entities(entities(&spans))
            .build();
        match self.send(chat_id, || self.bot.edit_message_text(&p)).await {
            Err(e) if e.is_not_modified() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// `editMessageCaption`. "Not modified" is success.
    pub async fn edit_caption(
        &self,
        chat_id: i64,
        message_id: i32,
        caption: &str,
        spans: &[TextSpan],
    ) -> Result<(), TgError> {
        let p = EditMessageCaptionParams::builder()
            .chat_id(chat_id)
            .message_id(message_id)
            .caption(caption)
            .maybe_caption_entities(entities(spans))
            .build();
        match self
            .send(chat_id, || self.bot.edit_message_caption(&p))
            .await
        {
            Err(e) if e.is_not_modified() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// `createForumTopic(name, icon_custom_emoji_id)` in `chat_id`: the new topic's
    /// `message_thread_id`. The name is cut at [`MAX_TOPIC_NAME_CHARS`].
    pub async fn create_topic(
        &self,
        chat_id: i64,
        name: &str,
        emoji_id: Option<&str>,
    ) -> Result<i32, TgError> {
        let name: String = name.chars().take(MAX_TOPIC_NAME_CHARS).collect();
        let p = CreateForumTopicParams::builder()
            .chat_id(chat_id)
            .name(name)
            .maybe_icon_custom_emoji_id(emoji_id.map(str::to_owned))
            .build();
        let t = self
            .send(chat_id, || self.bot.create_forum_topic(&p))
            .await?
            .result;
        Ok(t.message_thread_id)
    }

    /// `closeForumTopic`; an already closed topic is success.
    pub async fn close_topic(&self, chat_id: i64, thread_id: i32) -> Result<(), TgError> {
        let p = CloseForumTopicParams::builder()
            .chat_id(chat_id)
            .message_thread_id(thread_id)
            .build();
        match self.send(chat_id, || self.bot.close_forum_topic(&p)).await {
            Err(e) if e.is_not_modified() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// `reopenForumTopic`; an open topic is success.
    pub async fn reopen_topic(&self, chat_id: i64, thread_id: i32) -> Result<(), TgError> {
        let p = ReopenForumTopicParams::builder()
            .chat_id(chat_id)
            .message_thread_id(thread_id)
            .build();
        match self.send(chat_id, || self.bot.reopen_forum_topic(&p)).await {
            Err(e) if e.is_not_modified() => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

/// A reply to `message_id` that is sent anyway when that message was deleted.
fn reply(message_id: Option<i32>) -> Option<ReplyParameters> {
    message_id.map(|id| {
        ReplyParameters::builder()
            .message_id(id)
            .allow_sending_without_reply(true)
            .build()
    })
}

/// `TextSpan`s as Bot API entities (`None` when there are none); an unknown kind is dropped.
fn entities(spans: &[TextSpan]) -> Option<Vec<MessageEntity>> {
    let out: Vec<MessageEntity> = spans
        .iter()
        .filter_map(|s| {
            let kind: MessageEntityType =
                serde_json::from_value(serde_json::Value::String(s.kind.clone())).ok()?;
            if kind == MessageEntityType::Unknown {
                return None;
            }
            Some(MessageEntity {
                type_field: kind,
                offset: u16::try_from(s.offset).ok()?,
                length: u16::try_from(s.length).ok()?,
                url: s.url.clone(),
                user: None,
                language: s.language.clone(),
                custom_emoji_id: s.custom_emoji_id.clone(),
                unix_time: None,
                date_time_format: None,
            })
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Bot API entities as `TextSpan`s (offsets stay UTF-16 code units).
pub fn spans_of(entities: Option<&Vec<MessageEntity>>) -> Vec<TextSpan> {
    entities
        .map(|es| {
            es.iter()
                .filter_map(|e| {
                    let kind = serde_json::to_value(e.type_field).ok()?;
                    Some(TextSpan {
                        kind: kind.as_str()?.to_owned(),
                        offset: u32::from(e.offset),
                        length: u32::from(e.length),
                        url: e.url.clone(),
                        language: e.language.clone(),
                        custom_emoji_id: e.custom_emoji_id.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Length of `s` in UTF-16 code units, the unit of Telegram's limits and entity offsets.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits `text` into parts of at most `max_units` UTF-16 code units, never inside a
/// character (so never between the two halves of a surrogate pair), preferring the last line
/// break, else the last space, in the second half of a part. Each part gets the spans that
/// overlap it, clipped and re-based to the part. A text that fits is one part; an empty text
/// is no part.
pub fn split_text(
    text: &str,
    spans: &[TextSpan],
    max_units: usize,
) -> Vec<(String, Vec<TextSpan>)> {
    let max_units = max_units.max(2);
    let mut parts = Vec::new();
    let mut rest = text;
    let mut base = 0usize; // UTF-16 offset of `rest` in `text`
    while !rest.is_empty() {
        if utf16_len(rest) <= max_units {
            parts.push((rest.to_owned(), clip(spans, base, base + utf16_len(rest))));
            break;
        }
        // The longest prefix that fits, as a byte index, and the best break inside it.
        let mut units = 0usize;
        let mut cut = 0usize;
        let mut soft_break: Option<(usize, usize)> = None; // (byte end, units) after the separator
        for (i, ch) in rest.char_indices() {
            let w = ch.len_utf16();
            if units + w > max_units {
                break;
            }
            units += w;
            cut = i + ch.len_utf8();
            if units * 2 >= max_units {
                match ch {
                    '\n' => soft_break = Some((cut, units)),
                    ' ' if soft_break.is_none_or(|(b, _)| !rest[..b].ends_with('\n')) => {
                        soft_break = Some((cut, units))
                    }
                    _ => {}
                }
            }
        }
        let (end, end_units) = soft_break.unwrap_or((cut, units));
        parts.push((rest[..end].to_owned(), clip(spans, base, base + end_units)));
        rest = &rest[end..];
        base += end_units;
    }
    parts
}

fn clip(spans: &[TextSpan], start: usize, end: usize) -> Vec<TextSpan> {
    spans
        .iter()
        .filter_map(|s| {
            let (s_start, s_end) = (s.offset as usize, (s.offset + s.length) as usize);
            let (a, b) = (s_start.max(start), s_end.min(end));
            (a < b).then(|| TextSpan {
                offset: (a - start) as u32,
                length: (b - a) as u32,
                ..s.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(kind: &str, offset: u32, length: u32) -> TextSpan {
        TextSpan {
            kind: kind.into(),
            offset,
            length,
            url: None,
            language: None,
            custom_emoji_id: None,
        }
    }

    #[test]
    fn a_text_that_fits_is_one_part_and_empty_is_none() {
        let s = [span("bold", 0, 2)];
        assert_eq!(
            split_text("hi", &s, 10),
            vec![("hi".to_owned(), s.to_vec())]
        );
        assert!(split_text("", &[], 10).is_empty());
    }

    #[test]
    fn splits_count_utf16_units_and_never_cut_a_surrogate_pair() {
        // 4,500 units: "😀" is 2 UTF-16 units (a surrogate pair), "я" 1.
        let text: String = "😀я".repeat(1500);
        assert_eq!(utf16_len(&text), 4500);
        let parts = split_text(&text, &[], MAX_TEXT_UNITS);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|(p, _)| utf16_len(p) <= MAX_TEXT_UNITS));
        assert_eq!(parts.concat_text(), text);
        // "😀я" × 1365 is 4095 units; the next 😀 would straddle the limit (4097), so the
        // cut falls before it, not between its two halves.
        assert_eq!(utf16_len(&parts[0].0), 4095);
        assert!(parts[1].0.starts_with('😀'));
    }

    #[test]
    fn a_line_break_in_the_second_half_is_preferred() {
        let text = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        let parts = split_text(&text, &[], MAX_TEXT_UNITS);
        assert_eq!(parts[0].0, format!("{}\n", "a".repeat(3000)));
        assert_eq!(parts[1].0, "b".repeat(3000));
    }

    #[test]
    fn spans_are_clipped_and_rebased_to_their_part() {
        // bold over the cut at 10: 8..14 → part 1: 8..10, part 2: 0..4.
        let text = "x".repeat(20);
        let parts = split_text(&text, &[span("bold", 8, 6), span("italic", 15, 2)], 10);
        assert_eq!(parts[0].1, vec![span("bold", 8, 2)]);
        assert_eq!(parts[1].1, vec![span("bold", 0, 4), span("italic", 5, 2)]);
    }

    #[test]
    fn spans_round_trip_through_bot_api_entities() {
        let spans = vec![
            TextSpan {
                url: Some("https://example.com".into()),
                ..span("text_link", 0, 4)
            },
            span("bold", 5, 3),
            span("no_such_kind", 1, 1),
        ];
        let es = entities(&spans).expect("some");
        assert_eq!(es.len(), 2, "the unknown kind is dropped");
        assert_eq!(spans_of(Some(&es)), spans[..2].to_vec());
    }

    #[test]
    fn errors_are_classified_as_the_bot_api_documents_them() {
        let api = |code, d: &str, ra| TgError::Api {
            code,
            description: d.into(),
            retry_after: ra,
        };
        let e = api(429, "Too Many Requests: retry after 7", Some(7));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.is_retriable());
        assert!(api(403, "Forbidden: bot was blocked by the user", None).is_blocked_by_user());
        assert!(
            api(
                403,
                "Forbidden: bot was kicked from the supergroup chat",
                None
            )
            .is_removed_from_group()
        );
        assert!(api(400, "Bad Request: message thread not found", None).is_thread_gone());
        assert!(
            api(
                400,
                "Bad Request: not enough rights to create a topic",
                None
            )
            .is_missing_rights()
        );
        assert!(api(400, "Bad Request: TOPIC_NOT_MODIFIED", None).is_not_modified());
        assert!(!api(400, "Bad Request: chat not found", None).is_retriable());
        assert!(api(502, "Bad Gateway", None).is_retriable());
        assert!(TgError::Transport("timed out".into()).is_retriable());
    }

    #[test]
    fn a_non_json_answer_is_shown_short_and_without_the_token() {
        let body = "<html><head><title>502 Bad Gateway</title></head><body>/bot1:SECRET/sendMessage</body></html>";
        let source = serde_json::from_str::<serde_json::Value>(body).unwrap_err();
        let e = TgError::from_frankenstein(
            frankenstein::Error::JsonDecode {
                source,
                input: body.into(),
            },
            "1:SECRET",
        );
        let text = e.to_string();
        assert!(text.contains("502 Bad Gateway"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(e.is_retriable());
    }

    #[tokio::test]
    async fn a_send_takes_its_turn_in_the_chats_bucket_first() {
        let limits = Limits {
            per_second: Some(30),
            chat_per_second: Some(1),
            group_per_minute: Some(20),
        };
        let tg = Telegram::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            "1:x",
            &limits,
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        tg.before_send(42).await;
        let chat = tg.limiter.chat.as_ref().unwrap();
        assert!(
            chat.check_key(&42).is_err(),
            "a second message to the chat must wait"
        );
        assert!(
            chat.check_key(&43).is_ok(),
            "another chat has its own bucket"
        );
        // A group allows a burst of 20 per minute, then waits.
        for _ in 0..20 {
            tg.before_send(-100).await;
        }
        assert!(tg.limiter.group.as_ref().unwrap().check_key(&-100).is_err());
        // A 429 pauses every send of the bot.
        tg.limiter.flooded(Duration::from_secs(60));
        assert!(tg.limiter.flood_wait().is_some());
    }

    trait Concat {
        fn concat_text(&self) -> String;
    }
    impl Concat for Vec<(String, Vec<TextSpan>)> {
        fn concat_text(&self) -> String {
            self.iter().map(|(p, _)| p.as_str()).collect()
        }
    }
}
