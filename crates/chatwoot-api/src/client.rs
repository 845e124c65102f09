//! `ChatwootClient`: contacts, contact inboxes, conversations and messages (with files) of one
//! account.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::admin::ContactDetails;

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

/// A conversation (only the fields the gateway reads), as
/// `app/views/api/v1/conversations/partials/_conversation.json.jbuilder` renders it for
/// `GET /conversations`, `GET /conversations/{id}`, `POST /conversations` and
/// `GET /contacts/{id}/conversations`.
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
    /// The conversation's custom attributes (an object; `{}` when absent or `null`).
    #[serde(default = "empty_object", deserialize_with = "object_or_empty")]
    pub custom_attributes: serde_json::Value,
    /// `meta`: the contact the conversation is with (default when it has another shape).
    #[serde(default, deserialize_with = "lenient")]
    pub meta: ConversationMeta,
    /// The newest message (at most one) as `Message#push_event_data`, raw; its
    /// `conversation.contact_inbox.source_id` is the only place the REST conversation names its
    /// contact inbox (see [`Conversation::source_id`]).
    #[serde(default)]
    pub messages: Vec<serde_json::Value>,
}

impl Conversation {
    /// The `source_id` of the conversation's contact inbox, read from the newest message
    /// (`messages[0].conversation.contact_inbox.source_id`); `None` for a conversation without
    /// messages. The REST conversation has no `contact_inbox` of its own; the contact's
    /// `contact_inboxes` ([`ChatwootClient::contact`]) list every one.
    pub fn source_id(&self) -> Option<&str> {
        self.messages
            .iter()
            .find_map(|m| m.pointer("/conversation/contact_inbox/source_id")?.as_str())
    }
}

/// `meta` of a conversation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConversationMeta {
    /// The contact (`app/views/api/v1/models/_contact.json.jbuilder`, without `contact_inboxes`).
    #[serde(default)]
    pub sender: Option<ContactDetails>,
}

/// A message attachment, `Attachment#push_event_data`
/// (<https://github.com/chatwoot/chatwoot/blob/develop/app/models/attachment.rb>).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    /// The attachment's id.
    pub id: i64,
    /// `image`, `audio`, `video`, `file`, `location`, `fallback`, `share`, `story_mention`,
    /// `contact` or `ig_reel` (the `file_type` enum).
    #[serde(default, deserialize_with = "null_as_default")]
    pub file_type: String,
    /// Where the file is: for uploaded files `url_for(file)`, an absolute
    /// `…/rails/active_storage/blobs/redirect/{signed_id}/{filename}` that answers `302` to the
    /// storage URL (follow redirects); for `location`/`fallback` the external URL; `""` when
    /// there is none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data_url: String,
    /// A 250 px wide preview for images (and previewable files), `None` or `""` otherwise.
    #[serde(default)]
    pub thumb_url: Option<String>,
    /// Size in bytes (files only).
    #[serde(default)]
    pub file_size: Option<i64>,
    /// The `extension` column; Chatwoot fills it for some channels only, files uploaded through
    /// the API have `null` (take the type from the download's `Content-Type` or the URL's name).
    #[serde(default)]
    pub extension: Option<String>,
}

/// One file to upload with [`ChatwootClient::create_message_with_attachments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file name Chatwoot stores and shows (any UTF-8; `/` and `\` become `-`).
    pub file_name: String,
    /// The MIME type; Chatwoot's `file_type` follows it (`image/jpeg|png|gif|bmp|webp` → image,
    /// `video/mp4|webm|ogg|quicktime` → video, `*audio/*` → audio, the rest file).
    pub mime: String,
    /// The content.
    pub bytes: Vec<u8>,
}

/// `{}`, the default of attribute objects.
pub(crate) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// jsonb attributes: an object, or `{}` for `null` and anything else.
pub(crate) fn object_or_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Value, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(if v.is_object() { v } else { empty_object() })
}

/// A part the gateway only reads for hints (`meta`, `contact_inbox`): any shape it does not
/// expect reads as the type's default instead of failing the whole payload.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// `null` reads as the type's default (`""`).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `attachments.map(&:push_event_data)` holds `null` for an attachment without `file_type`;
/// those are dropped.
fn attachments_skipping_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Attachment>, D::Error> {
    let list: Option<Vec<Option<Attachment>>> = Option::deserialize(d)?;
    Ok(list.unwrap_or_default().into_iter().flatten().collect())
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
    /// The message's files (absent in the JSON when there are none: empty).
    #[serde(default, deserialize_with = "attachments_skipping_null")]
    pub attachments: Vec<Attachment>,
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
    pub(crate) http: reqwest::Client,
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

    pub(crate) fn account_url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/accounts/{}{path}",
            self.base_url, self.account_id
        )
    }

    /// Sends with the token; the one place Chatwoot's answers become [`ChatwootError`]s.
    pub(crate) async fn send<T: DeserializeOwned>(
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

    /// `POST /conversations/{id}/messages` as `multipart/form-data`
    /// (<https://developers.chatwoot.com/api-reference/messages/create-new-message>): `content`,
    /// `message_type`, `private=false`, `source_id` (when given), `content_attributes` and one
    /// `attachments[]` file part per upload (its name and MIME type). A form carries strings only,
    /// so `content_attributes` goes as its JSON text: `Messages::MessageBuilder#content_attributes`
    /// parses a string value as JSON (`safe_parse_json`), and it keeps `in_reply_to`,
    /// `in_reply_to_external_id` and `items` of it like the JSON route does. Answers the message
    /// with its [`Attachment`]s.
    ///
    /// # Errors
    /// As [`ChatwootClient::create_message`]; a refused file (e.g. too big) is a 422
    /// [`ChatwootError::Status`], a body above the proxy's limit a 413.
    pub async fn create_message_with_attachments(
        &self,
        conversation_id: i64,
        content: &str,
        message_type: crate::MessageType,
        content_attributes: serde_json::Value,
        source_id: Option<&str>,
        files: Vec<Upload>,
    ) -> Result<Message, ChatwootError> {
        let mut form = reqwest::multipart::Form::new()
            .text("content", content.to_owned())
            .text("message_type", message_type.as_str())
            .text("private", "false")
            .text("content_attributes", content_attributes.to_string());
        if let Some(source_id) = source_id {
            form = form.text("source_id", source_id.to_owned());
        }
        for file in files {
            // Chatwoot derives `file_type` from the part's type, so there always is one: an
            // unparsable MIME type goes as `application/octet-stream` (a plain file).
            let mime = if reqwest::multipart::Part::text("")
                .mime_str(&file.mime)
                .is_ok()
            {
                file.mime
            } else {
                "application/octet-stream".to_owned()
            };
            let part = reqwest::multipart::Part::bytes(file.bytes)
                .file_name(file.file_name)
                .mime_str(&mime)
                .map_err(|e| ChatwootError::Decode(format!("MIME type {mime}: {e}")))?;
            form = form.part("attachments[]", part);
        }
        self.send(
            self.http
                .post(self.account_url(&format!("/conversations/{conversation_id}/messages")))
                .multipart(form),
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
