//! The Telegram side of `vk-bench tg-e2e` (`bench/telegram-bot.sh`, end-to-end latency): the
//! webhook updates a customer's private message arrives in, and what the sandbox's fake Bot API
//! shows of the messages the bot sent into the group — the held
//! `GET /_sandbox/telegram/watch`, which stamps each new bot message when it sees it stored,
//! and the full `GET /_sandbox/telegram/chats/{id}/messages` for the topic check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// One customer's private text message, as Telegram posts it to a webhook.
#[derive(Debug, Clone)]
pub struct PrivateText<'a> {
    /// `update_id`, unique per update (the service deduplicates on it).
    pub update_id: i64,
    /// The customer: `from.id` = `chat.id` (a private chat).
    pub user_id: i64,
    /// `message.message_id`, unique in the chat.
    pub message_id: i64,
    /// `message.date`, unix seconds.
    pub date: i64,
    /// `message.text`.
    pub text: &'a str,
}

impl PrivateText<'_> {
    /// The JSON body of the update (the shape `bench/telegram-bot.lua` posts).
    pub fn update(&self) -> String {
        json!({
            "update_id": self.update_id,
            "message": {
                "message_id": self.message_id,
                "date": self.date,
                "chat": {"id": self.user_id, "type": "private", "first_name": "C"},
                "from": {"id": self.user_id, "is_bot": false, "first_name": "C",
                         "language_code": "ru"},
                "text": self.text,
            },
        })
        .to_string()
    }
}

/// One bot message a watch saw stored.
#[derive(Debug, Clone, Deserialize)]
pub struct Watched {
    /// The chat it is in.
    pub chat_id: i64,
    /// Its id in that chat.
    pub message_id: i64,
    /// Its text.
    #[serde(default)]
    pub text: String,
    /// When the watch saw it stored (woken by the change itself), unix microseconds.
    pub seen_at_us: i64,
}

/// A group message as `GET /_sandbox/telegram/chats/{id}/messages` lists it (a Bot API
/// `Message`; only what the topic check needs).
#[derive(Debug, Clone, Deserialize)]
pub struct GroupMessage {
    /// Its id in the group.
    pub message_id: i64,
    /// The forum topic it is in; `None` in the General topic.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// Its text, if it has one.
    #[serde(default)]
    pub text: Option<String>,
    /// The sender.
    #[serde(default)]
    pub from: Option<Sender>,
}

/// `Message.from`.
#[derive(Debug, Clone, Deserialize)]
pub struct Sender {
    /// Whether the sender is a bot (the relay's messages are the bot's).
    #[serde(default)]
    pub is_bot: bool,
}

/// Every message stored in chat `chat_id` of the sandbox at `base`, oldest first.
///
/// Errors: the sandbox does not answer, or not with the list.
pub async fn chat_messages(
    http: &reqwest::Client,
    base: &str,
    chat_id: i64,
) -> anyhow::Result<Vec<GroupMessage>> {
    Ok(http
        .get(format!(
            "{}/_sandbox/telegram/chats/{chat_id}/messages",
            base.trim_end_matches('/')
        ))
        .timeout(Duration::from_secs(120))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// `GET /_sandbox/telegram/stats` (the fields used here).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Stats {
    /// Live forum topics of the group.
    pub topics: u64,
    /// The bot's non-service messages in the group.
    pub bot_messages: u64,
}

/// The sandbox's Telegram counters.
///
/// Errors: the sandbox does not answer, or not with the counters.
pub async fn stats(http: &reqwest::Client, base: &str) -> anyhow::Result<Stats> {
    Ok(http
        .get(format!(
            "{}/_sandbox/telegram/stats",
            base.trim_end_matches('/')
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// How long each watch of a [`WatchChain`] is held.
const WATCH_WINDOW_SECS: u64 = 2;
/// How often a [`WatchChain`] starts the next watch: while one is held, the next starts, so a
/// message stored at any moment is seen by a watch that was held then.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the watches saw, one entry per stored message (the earliest stamp when two overlapping
/// watches saw it).
#[derive(Debug, Default)]
struct Log {
    seen: HashMap<(i64, i64), Watched>,
    answers: u64,
    errors: u64,
}

/// Overlapping `GET /_sandbox/telegram/watch` requests over one chat, started every second and
/// held two seconds each, so the bot's messages are stamped as they are stored without one
/// request held for the whole run (whose answer would come only at its end): what they saw is
/// readable at any time with [`WatchChain::distinct_texts`].
pub struct WatchChain {
    log: Arc<Mutex<Log>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WatchChain {
    /// Starts watching chat `chat_id` of the sandbox at `base` for bot messages whose text
    /// starts with `prefix`. The first watch's snapshot is taken when the sandbox gets it:
    /// messages stored before that are not seen.
    pub fn start(http: reqwest::Client, base: &str, chat_id: i64, prefix: String) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let (stop, mut stopped) = watch::channel(false);
        let url = format!("{}/_sandbox/telegram/watch", base.trim_end_matches('/'));
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            let mut held = JoinSet::new();
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        held.spawn(watch_once(http.clone(), url.clone(), chat_id, prefix.clone()));
                    }
                    Some(done) = held.join_next() => take(&task_log, done),
                    _ = stopped.changed() => break,
                }
            }
            while let Some(done) = held.join_next().await {
                take(&task_log, done);
            }
        });
        Self { log, stop, task }
    }

    /// How many distinct texts starting with `prefix` the watches have seen (each benchmark
    /// message's text is unique, so a message relayed twice counts once).
    pub fn distinct_texts(&self, prefix: &str) -> usize {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let texts: std::collections::HashSet<&str> = log
            .seen
            .values()
            .map(|w| w.text.as_str())
            .filter(|t| t.starts_with(prefix))
            .collect();
        texts.len()
    }

    /// How many watches have answered so far. After the first, the watches overlap: a message
    /// stored from then on is seen.
    pub fn answers(&self) -> u64 {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answers
    }

    /// Starts no more watches, waits for the held ones (at most the window) and returns every
    /// message seen, once each, with its earliest stamp, and how many watches failed (a failed
    /// watch may leave a gap: messages stored meanwhile are not stamped).
    pub async fn finish(self) -> (Vec<Watched>, u64) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let log = std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner));
        (log.seen.into_values().collect(), log.errors)
    }
}

/// Merges one watch's answer into the log.
fn take(log: &Mutex<Log>, done: Result<anyhow::Result<Vec<Watched>>, tokio::task::JoinError>) {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    match done {
        Ok(Ok(seen)) => {
            log.answers += 1;
            for w in seen {
                let key = (w.chat_id, w.message_id);
                match log.seen.get_mut(&key) {
                    Some(known) if known.seen_at_us <= w.seen_at_us => {}
                    Some(known) => *known = w,
                    None => {
                        log.seen.insert(key, w);
                    }
                }
            }
        }
        Ok(Err(_)) | Err(_) => log.errors += 1,
    }
}

/// One watch held [`WATCH_WINDOW_SECS`] (it never reaches its count: it ends at the window).
async fn watch_once(
    http: reqwest::Client,
    url: String,
    chat_id: i64,
    prefix: String,
) -> anyhow::Result<Vec<Watched>> {
    Ok(http
        .get(&url)
        .query(&[
            ("from_chat", chat_id.to_string()),
            ("to_chat", chat_id.to_string()),
            ("count", u32::MAX.to_string()),
            ("seconds", WATCH_WINDOW_SECS.to_string()),
            ("prefix", prefix),
        ])
        .timeout(Duration::from_secs(WATCH_WINDOW_SECS + 30))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_is_a_private_message_of_the_customer() {
        let body = PrivateText {
            update_id: 7,
            user_id: 500_000_001,
            message_id: 9,
            date: 1_764_000_000,
            text: "e2e r run i=1",
        }
        .update();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["update_id"], 7);
        assert_eq!(v["message"]["chat"]["id"], 500_000_001);
        assert_eq!(v["message"]["from"]["id"], 500_000_001);
        assert_eq!(v["message"]["chat"]["type"], "private");
        assert_eq!(v["message"]["text"], "e2e r run i=1");
    }

    #[test]
    fn overlapping_watches_keep_the_earliest_stamp() {
        let log = Mutex::new(Log::default());
        let w = |at| Watched {
            chat_id: -1,
            message_id: 5,
            text: "x".into(),
            seen_at_us: at,
        };
        take(&log, Ok(Ok(vec![w(20)])));
        take(&log, Ok(Ok(vec![w(10)])));
        take(&log, Ok(Ok(vec![w(30)])));
        take(&log, Ok(Err(anyhow::anyhow!("down"))));
        let log = log.into_inner().unwrap();
        assert_eq!(log.seen.len(), 1);
        assert_eq!(log.seen[&(-1, 5)].seen_at_us, 10);
        assert_eq!(log.errors, 1);
        assert_eq!(log.answers, 3);
    }
}
