//! Account setup and look-ups for the gateway's `setup` and for taking over conversations of an
//! earlier gateway: inboxes, account webhooks, the conversation list, and a contact with its
//! contact inboxes.
//!
//! Shapes follow Chatwoot's server (<https://github.com/chatwoot/chatwoot>):
//! `app/controllers/api/v1/accounts/{inboxes,webhooks,conversations,contacts}_controller.rb` and
//! their views under `app/views/api/v1/`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::client::{null_as_default, object_or_empty};
use crate::{ChatwootClient, ChatwootError, Conversation};

/// Conversations per page of `GET /conversations` (`ConversationFinder`,
/// `CONVERSATION_RESULTS_PER_PAGE`, 25 unless the server's operator changed it).
pub const CONVERSATIONS_PER_PAGE: usize = 25;

/// An inbox (`app/views/api/v1/models/_inbox.json.jbuilder`, the fields the gateway reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Inbox {
    /// The inbox id (what contacts, contact inboxes and conversations are created in).
    pub id: i64,
    /// The name agents see.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// `Channel::Api`, `Channel::WebWidget`, `Channel::Email` …
    #[serde(default, deserialize_with = "null_as_default")]
    pub channel_type: String,
}

/// An account webhook (`app/views/api/v1/accounts/webhooks/_webhook.json.jbuilder`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    /// The webhook id.
    pub id: i64,
    /// Where Chatwoot posts the events.
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    /// The events delivered, e.g. `message_created` (`Webhook::ALLOWED_WEBHOOK_EVENTS`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscriptions: Vec<String>,
    /// The HMAC key of `X-Chatwoot-Signature` (Chatwoot v4.11.2+, generated per webhook and
    /// rendered in every answer; `None` on older servers, which do not sign). The receiver
    /// verifies with it ([`crate::webhook::verify_signature`]).
    #[serde(default)]
    pub secret: Option<String>,
}

/// Shows everything but the signing secret.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("subscriptions", &self.subscriptions)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A contact as `GET /contacts/{id}` renders it (`app/views/api/v1/models/_contact.json.jbuilder`
/// with `contact_inboxes`); also the `meta.sender` of a conversation (there without
/// `contact_inboxes`) and of a webhook's conversation (`Contact#push_event_data`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContactDetails {
    /// The contact id.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The external identifier, unique in the account.
    #[serde(default)]
    pub identifier: Option<String>,
    /// E-mail, unique in the account.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number in E.164, unique in the account.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Custom attributes (an object; `{}` when absent or `null`).
    #[serde(
        default = "crate::client::empty_object",
        deserialize_with = "object_or_empty"
    )]
    pub custom_attributes: serde_json::Value,
    /// Additional attributes such as `city`, `company_name`, `social_profiles` (an object; `{}`
    /// when absent or `null`).
    #[serde(
        default = "crate::client::empty_object",
        deserialize_with = "object_or_empty"
    )]
    pub additional_attributes: serde_json::Value,
    /// The contact's links to inboxes; empty where the JSON has none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub contact_inboxes: Vec<ContactInboxRef>,
}

/// A contact inbox: the contact's id (`source_id`) in one inbox. The API renders
/// `{"source_id":…,"inbox":{"id":…,…}}` (`_contact_inbox.json.jbuilder`), a webhook the raw record
/// `{"source_id":…,"inbox_id":…}`; both read into this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInboxRef {
    /// The contact's id in the inbox's channel.
    pub source_id: String,
    /// The inbox.
    pub inbox_id: i64,
}

impl<'de> Deserialize<'de> for ContactInboxRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct InboxId {
            id: i64,
        }
        #[derive(Deserialize)]
        struct Raw {
            source_id: String,
            #[serde(default)]
            inbox: Option<InboxId>,
            #[serde(default)]
            inbox_id: Option<i64>,
        }
        let raw = Raw::deserialize(d)?;
        let inbox_id = raw
            .inbox
            .map(|i| i.id)
            .or(raw.inbox_id)
            .ok_or_else(|| serde::de::Error::missing_field("inbox"))?;
        Ok(Self {
            source_id: raw.source_id,
            inbox_id,
        })
    }
}

impl ChatwootClient {
    /// `GET /inboxes` → `{"payload":[inbox…]}`: every inbox of the account the token may see.
    pub async fn inboxes(&self) -> Result<Vec<Inbox>, ChatwootError> {
        #[derive(Deserialize)]
        struct R {
            payload: Vec<Inbox>,
        }
        let r: R = self
            .send(self.http.get(self.account_url("/inboxes")))
            .await?;
        Ok(r.payload)
    }

    /// `POST /inboxes` with `{"name":…,"channel":{"type":"api","webhook_url":""}}`: a new API
    /// channel inbox (`InboxesController#create` → `Channel::Api`; the channel's own
    /// `webhook_url` stays empty, the gateway takes events from an account webhook). Answers the
    /// inbox. Needs an administrator's token (else 401).
    pub async fn create_api_inbox(&self, name: &str) -> Result<Inbox, ChatwootError> {
        self.send(self.http.post(self.account_url("/inboxes")).json(&json!({
            "name": name,
            "channel": {"type": "api", "webhook_url": ""},
        })))
        .await
    }

    /// `GET /webhooks` → `{"payload":{"webhooks":[webhook…]}}`.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, ChatwootError> {
        #[derive(Deserialize)]
        struct Webhooks {
            webhooks: Vec<Webhook>,
        }
        #[derive(Deserialize)]
        struct R {
            payload: Webhooks,
        }
        let r: R = self
            .send(self.http.get(self.account_url("/webhooks")))
            .await?;
        Ok(r.payload.webhooks)
    }

    /// `POST /webhooks` with `{"webhook":{"url":…,"subscriptions":[…]}}` →
    /// `{"payload":{"webhook":{…}}}`. 422 `{"message":"Url is invalid",…}` for a URL that is not
    /// http(s), `Url has already been taken` when the account has one with that URL,
    /// `Subscriptions Invalid events` for an empty list or an unknown event.
    pub async fn create_webhook(
        &self,
        url: &str,
        subscriptions: &[&str],
    ) -> Result<Webhook, ChatwootError> {
        self.webhook_request(
            self.http.post(self.account_url("/webhooks")),
            url,
            subscriptions,
        )
        .await
    }

    /// `PATCH /webhooks/{id}` with the same body as [`ChatwootClient::create_webhook`]; the secret
    /// stays. 404 for an unknown id.
    pub async fn update_webhook(
        &self,
        id: i64,
        url: &str,
        subscriptions: &[&str],
    ) -> Result<Webhook, ChatwootError> {
        self.webhook_request(
            self.http
                .patch(self.account_url(&format!("/webhooks/{id}"))),
            url,
            subscriptions,
        )
        .await
    }

    async fn webhook_request(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        subscriptions: &[&str],
    ) -> Result<Webhook, ChatwootError> {
        #[derive(Deserialize)]
        struct One {
            webhook: Webhook,
        }
        #[derive(Deserialize)]
        struct R {
            payload: One,
        }
        let r: R = self
            .send(req.json(&json!({
                "webhook": {"url": url, "subscriptions": subscriptions},
            })))
            .await?;
        Ok(r.payload.webhook)
    }

    /// `GET /conversations?inbox_id=&status=&page=` →
    /// `{"data":{"meta":{…counts},"payload":[conversation…]}}`: one page (from 1,
    /// [`CONVERSATIONS_PER_PAGE`] each) of the inbox's conversations in `status` (`open`,
    /// `resolved`, `pending`, `snoozed`, or `all`), most recently active first. A short page is
    /// the last; the order moves while conversations get activity, so a full walk may see one
    /// twice or miss one that moved.
    pub async fn conversations_page(
        &self,
        inbox_id: i64,
        status: &str,
        page: u32,
    ) -> Result<Vec<Conversation>, ChatwootError> {
        self.conversations_page_as(inbox_id, status, page).await
    }

    /// [`ChatwootClient::conversations_page`] with each conversation as raw JSON, for readers of
    /// fields [`Conversation`] does not type. Note that the REST conversation has no
    /// `contact_inbox` (webhooks do): its `source_id` is in
    /// `messages[0].conversation.contact_inbox.source_id`, when it has a message.
    pub async fn conversations_page_json(
        &self,
        inbox_id: i64,
        status: &str,
        page: u32,
    ) -> Result<Vec<serde_json::Value>, ChatwootError> {
        self.conversations_page_as(inbox_id, status, page).await
    }

    async fn conversations_page_as<T: DeserializeOwned>(
        &self,
        inbox_id: i64,
        status: &str,
        page: u32,
    ) -> Result<Vec<T>, ChatwootError> {
        #[derive(Deserialize)]
        #[serde(bound = "T: DeserializeOwned")]
        struct Data<T> {
            payload: Vec<T>,
        }
        #[derive(Deserialize)]
        #[serde(bound = "T: DeserializeOwned")]
        struct R<T> {
            data: Data<T>,
        }
        let page = page.max(1).to_string();
        let inbox_id = inbox_id.to_string();
        let r: R<T> = self
            .send(self.http.get(self.account_url("/conversations")).query(&[
                ("inbox_id", inbox_id.as_str()),
                ("status", status),
                ("page", page.as_str()),
            ]))
            .await?;
        Ok(r.data.payload)
    }

    /// `GET /contacts/{id}` → `{"payload":{contact with contact_inboxes}}`. 404 for an unknown
    /// contact.
    pub async fn contact(&self, id: i64) -> Result<ContactDetails, ChatwootError> {
        #[derive(Deserialize)]
        struct R {
            payload: ContactDetails,
        }
        let r: R = self
            .send(self.http.get(self.account_url(&format!("/contacts/{id}"))))
            .await?;
        Ok(r.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_inboxes_read_from_the_api_and_the_webhook_shape() {
        let api: ContactDetails = serde_json::from_str(
            r#"{"id":3,"name":"Ann","identifier":null,"custom_attributes":null,
                "contact_inboxes":[{"source_id":"vk:1","inbox":{"id":7,"name":"VK"}}]}"#,
        )
        .expect("parses");
        assert_eq!(
            api.contact_inboxes,
            vec![ContactInboxRef {
                source_id: "vk:1".into(),
                inbox_id: 7
            }]
        );
        assert_eq!(api.custom_attributes, json!({}));
        assert_eq!(api.additional_attributes, json!({}));
        let raw: ContactInboxRef =
            serde_json::from_str(r#"{"id":9,"source_id":"x","inbox_id":2,"contact_id":3}"#)
                .expect("parses");
        assert_eq!(raw.inbox_id, 2);
        assert!(serde_json::from_str::<ContactInboxRef>(r#"{"source_id":"x"}"#).is_err());
    }

    #[test]
    fn webhook_secret_is_optional() {
        let old: Webhook = serde_json::from_str(
            r#"{"id":1,"url":"http://h/cb","account_id":1,"subscriptions":["message_created"]}"#,
        )
        .expect("parses");
        assert_eq!(old.secret, None);
        assert_eq!(old.subscriptions, vec!["message_created".to_owned()]);
    }
}
