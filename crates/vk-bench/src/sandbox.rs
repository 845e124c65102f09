//! The sandbox's `GET /_sandbox/chatwoot/received` list: every message the Chatwoot fake
//! stored, with the time its `POST …/messages` arrived.

use serde::Deserialize;

/// One stored message.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    /// Message id (ids grow in arrival order).
    pub id: i64,
    /// Its conversation.
    pub conversation_id: i64,
    /// 0 incoming, 1 outgoing, 2 activity, 3 template.
    pub message_type: i64,
    /// Text.
    #[serde(default)]
    pub content: Option<String>,
    /// Arrival of the request that created it, unix microseconds.
    pub received_at_us: i64,
}

/// Reads the list incrementally: each [`Poller::poll`] returns what arrived since the last.
pub struct Poller {
    http: reqwest::Client,
    url: String,
    after: i64,
}

impl Poller {
    /// For the sandbox at `base` (`http://127.0.0.1:PORT`), starting after message `after`.
    pub fn new(http: reqwest::Client, base: &str, after: i64) -> Self {
        Self {
            http,
            url: format!("{}/_sandbox/chatwoot/received", base.trim_end_matches('/')),
            after,
        }
    }

    /// The messages stored since the previous call, oldest first.
    ///
    /// Errors: the sandbox does not answer, or not with the list.
    pub async fn poll(&mut self) -> anyhow::Result<Vec<Received>> {
        let mut out = Vec::new();
        loop {
            let page: Vec<Received> = self
                .http
                .get(&self.url)
                .query(&[("after", self.after)])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let full = page.len() >= 10_000;
            if let Some(last) = page.last() {
                self.after = last.id;
            }
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// The id of the last message seen.
    pub fn last_id(&self) -> i64 {
        self.after
    }
}
