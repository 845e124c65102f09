//! `ChatwootClient`: contacts, contact inboxes, conversations and messages of one account.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// A failed Chatwoot API call.
#[derive(Debug, thiserror::Error)]
pub enum ChatwootError {
    /// Non-2xx answer; `body` is Chatwoot's error JSON as text (truncated).
    #[error("Chatwoot answered HTTP {status}: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The response body as text, cut to 500 characters (`…` marks a cut).
        body: String,
        /// The wait `Retry-After` asked for (delay-seconds or an HTTP-date).
        retry_after: Option<Duration>,
    },
    /// Connection failed or timed out (the message never names the URL).
    #[error("Chatwoot unreachable: {0}")]
    Transport(String),
    /// A 2xx body that is not the JSON the endpoint documents.
    #[error("unexpected Chatwoot response: {0}")]
    Decode(String),
}

impl ChatwootError {
    /// 429, 5xx, and transport failures are worth retrying; other 4xx are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(_) | Self::Decode(_) => true,
        }
    }

    /// The wait Chatwoot asked for (`Retry-After`, seconds).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A contact (<https://developers.chatwoot.com/api-reference/contacts/create-contact>).
#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    /// The contact's id in the account.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The external identifier set at creation (the gateway uses `vk:<user id>`).
    #[serde(default)]
    pub identifier: Option<String>,
}

/// The link of a contact to an inbox; `source_id` is the contact's id in that channel.
#[derive(Debug, Clone, Deserialize)]
pub struct ContactInbox {
    /// The contact's id in the inbox's channel (the gateway uses `vk:<user id>`).
    pub source_id: String,
}

/// A conversation (only the fields the gateway reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    /// The conversation's display id (per account), as `/conversations/{id}` takes it.
    pub id: i64,
    /// `open`, `resolved`, `pending` or `snoozed`.
    #[serde(default)]
    pub status: Option<String>,
    /// The inbox the conversation belongs to.
    #[serde(default)]
    pub inbox_id: Option<i64>,
    /// Attributes given at creation as raw JSON (the gateway puts `vk_peer_id` there).
    #[serde(default)]
    pub additional_attributes: Option<serde_json::Value>,
}

/// A message as the API returns it (list and create).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// The message id.
    pub id: i64,
    /// The message text; `None` or empty for attachment-only messages.
    #[serde(default)]
    pub content: Option<String>,
    /// Number (0 incoming, 1 outgoing, 2 activity, 3 template) or string.
    #[serde(default)]
    pub message_type: serde_json::Value,
    /// A private note, visible to agents only.
    #[serde(default)]
    pub private: bool,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: Option<serde_json::Value>,
    /// The author as raw JSON (`{"id","name","type"…}`), when Chatwoot included it.
    #[serde(default)]
    pub sender: Option<serde_json::Value>,
    /// The author's kind: `User` (an agent), `Contact`, `AgentBot` …
    #[serde(default)]
    pub sender_type: Option<String>,
    /// Attachments as raw JSON (`{"id","file_type","data_url"…}`).
    #[serde(default)]
    pub attachments: Vec<serde_json::Value>,
    /// Extra attributes as raw JSON, e.g. `in_reply_to`.
    #[serde(default)]
    pub content_attributes: Option<serde_json::Value>,
    /// The message's id in its channel, as given at creation (`source_id` of
    /// `POST …/messages`; the gateway uses the VK message's idempotency key). Chatwoot does not
    /// make it unique.
    #[serde(default)]
    pub source_id: Option<String>,
}

impl Message {
    /// Unix seconds of `created_at` (a number in API responses; `None` when absent or not one).
    pub fn created_unix(&self) -> Option<i64> {
        self.created_at.as_ref().and_then(serde_json::Value::as_i64)
    }
}

/// Contacts per page of `GET /contacts/search` (`RESULTS_PER_PAGE` of Chatwoot's
/// `ContactsController`).
pub const CONTACTS_PER_PAGE: usize = 15;

/// Messages per page of `GET /conversations/{id}/messages` without `after`
/// (`MessageFinder`: the latest 20, or the 20 before `before`).
pub const MESSAGES_PER_PAGE: usize = 20;

/// `GET /api/v1/profile`: who the token belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    /// The user's (agent's) id.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Login e-mail.
    #[serde(default)]
    pub email: Option<String>,
}

/// Client of one account. Base URL like `https://chatwoot.example.com`.
#[derive(Clone)]
pub struct ChatwootClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
    account_id: i64,
}

impl ChatwootClient {
    /// A client of account `account_id` at `base_url` (a trailing `/` is dropped), sending `token`
    /// as the `api_access_token` header.
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        token: impl Into<String>,
        account_id: i64,
    ) -> Self {
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            account_id,
        }
    }

    /// The account this client works in.
    pub fn account_id(&self) -> i64 {
        self.account_id
    }

    fn account_url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/accounts/{}{path}",
            self.base_url, self.account_id
        )
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ChatwootError> {
        let res = req
            .header("api_access_token", &self.token)
            .send()
            .await
            .map_err(|e| ChatwootError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        let retry_after = upstream_http::retry_after(res.headers());
        let body = res
            .bytes()
            .await
            .map_err(|e| ChatwootError::Transport(e.without_url().to_string()))?;
        if !status.is_success() {
            // At most 500 characters (not bytes: error bodies may be Cyrillic).
            let text = upstream_http::truncate_body(&String::from_utf8_lossy(&body), 500);
            return Err(ChatwootError::Status {
                status: status.as_u16(),
                body: text,
                retry_after,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ChatwootError::Decode(e.to_string()))
    }

    /// `GET /api/v1/profile`.
    pub async fn profile(&self) -> Result<Profile, ChatwootError> {
        self.send(self.http.get(format!("{}/api/v1/profile", self.base_url)))
            .await
    }

    /// `GET /contacts/search?q=` → `{"meta":…,"payload":[contact…]}`: the first page (at most
    /// [`CONTACTS_PER_PAGE`]).
    pub async fn search_contacts(&self, q: &str) -> Result<Vec<Contact>, ChatwootError> {
        self.search_contacts_page(q, 1).await
    }

    /// `GET /contacts/search?q=&page=` (pages from 1, [`CONTACTS_PER_PAGE`] each). `q` is a
    /// substring match, so an identifier such as `vk:1001` also matches `vk:10010…`: an exact
    /// match may be on a later page.
    pub async fn search_contacts_page(
        &self,
        q: &str,
        page: u32,
    ) -> Result<Vec<Contact>, ChatwootError> {
        #[derive(Deserialize)]
        struct R {
            payload: Vec<Contact>,
        }
        let page = page.max(1).to_string();
        let r: R = self
            .send(
                self.http
                    .get(self.account_url("/contacts/search"))
                    .query(&[("q", q), ("page", page.as_str())]),
            )
            .await?;
        Ok(r.payload)
    }

    /// `POST /contacts` with `inbox_id`, `name`, `identifier` and custom attributes.
    /// Response `{"payload":{"contact":{…},"contact_inbox":{…}}}`.
    pub async fn create_contact(
        &self,
        inbox_id: i64,
        name: &str,
        identifier: &str,
        custom_attributes: serde_json::Value,
    ) -> Result<Contact, ChatwootError> {
        #[derive(Deserialize)]
        struct Payload {
            contact: Contact,
        }
        #[derive(Deserialize)]
        struct R {
            payload: Payload,
        }
        let r: R = self
            .send(self.http.post(self.account_url("/contacts")).json(&json!({
                "inbox_id": inbox_id,
                "name": name,
                "identifier": identifier,
                "custom_attributes": custom_attributes,
            })))
            .await?;
        Ok(r.payload.contact)
    }

    /// `POST /contacts/{id}/contact_inboxes` with `inbox_id` and our `source_id`.
    pub async fn create_contact_inbox(
        &self,
        contact_id: i64,
        inbox_id: i64,
        source_id: &str,
    ) -> Result<ContactInbox, ChatwootError> {
        self.send(
            self.http
                .post(self.account_url(&format!("/contacts/{contact_id}/contact_inboxes")))
                .json(&json!({ "inbox_id": inbox_id, "source_id": source_id })),
        )
        .await
    }

    /// `GET /contacts/{id}/conversations` → `{"payload":[conversation…]}`.
    pub async fn contact_conversations(
        &self,
        contact_id: i64,
    ) -> Result<Vec<Conversation>, ChatwootError> {
        #[derive(Deserialize)]
        struct R {
            payload: Vec<Conversation>,
        }
        let r: R = self
            .send(
                self.http
                    .get(self.account_url(&format!("/contacts/{contact_id}/conversations"))),
            )
            .await?;
        Ok(r.payload)
    }

    /// `POST /conversations` for a contact inbox (`source_id`).
    pub async fn create_conversation(
        &self,
        source_id: &str,
        inbox_id: i64,
        contact_id: i64,
        additional_attributes: serde_json::Value,
    ) -> Result<Conversation, ChatwootError> {
        self.send(
            self.http
                .post(self.account_url("/conversations"))
                .json(&json!({
                    "source_id": source_id,
                    "inbox_id": inbox_id,
                    "contact_id": contact_id,
                    "status": "open",
                    "additional_attributes": additional_attributes,
                })),
        )
        .await
    }

    /// `GET /conversations/{id}`.
    pub async fn conversation(&self, id: i64) -> Result<Conversation, ChatwootError> {
        self.send(
            self.http
                .get(self.account_url(&format!("/conversations/{id}"))),
        )
        .await
    }

    /// `POST /conversations/{id}/messages`: an `incoming` message (from the contact) or an
    /// `outgoing` one; `content_attributes` may carry e.g. `in_reply_to`. `source_id`, when
    /// given, is stored on the message and returned by the messages list — the message's
    /// identity in its channel (`Messages::MessageBuilder` takes it from the request; the API
    /// reference does not list it). Chatwoot does not refuse a repeated `source_id`.
    pub async fn create_message(
        &self,
        conversation_id: i64,
        content: &str,
        message_type: crate::MessageType,
        content_attributes: serde_json::Value,
        source_id: Option<&str>,
    ) -> Result<Message, ChatwootError> {
        let mut body = json!({
            "content": content,
            "message_type": message_type.as_str(),
            "private": false,
            "content_attributes": content_attributes,
        });
        if let Some(source_id) = source_id {
            body["source_id"] = json!(source_id);
        }
        self.send(
            self.http
                .post(self.account_url(&format!("/conversations/{conversation_id}/messages")))
                .json(&body),
        )
        .await
    }

    /// `GET /conversations/{id}/messages` → `{"meta":…,"payload":[message…]}`, oldest first
    /// (the newest page; Chatwoot pages with `before`).
    pub async fn messages(&self, conversation_id: i64) -> Result<Vec<Message>, ChatwootError> {
        self.messages_before(conversation_id, None).await
    }

    /// `GET /conversations/{id}/messages?before=<message id>`: the [`MESSAGES_PER_PAGE`]
    /// messages just older than `before` (`None`: the latest ones), oldest first; empty when
    /// there are none.
    pub async fn messages_before(
        &self,
        conversation_id: i64,
        before: Option<i64>,
    ) -> Result<Vec<Message>, ChatwootError> {
        #[derive(Deserialize)]
        struct R {
            payload: Vec<Message>,
        }
        let mut req = self
            .http
            .get(self.account_url(&format!("/conversations/{conversation_id}/messages")));
        if let Some(before) = before {
            req = req.query(&[("before", before)]);
        }
        let r: R = self.send(req).await?;
        Ok(r.payload)
    }
}
