//! `VkClient`: `messages.send`, `users.get`, `groups.getById`, `groups.getLongPollServer` and
//! the Bots Long Poll request.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::VkError;

/// Calls `{base_url}/{method}` with `access_token` and `v` as form parameters (POST, as VK
/// accepts; <https://dev.vk.com/ru/api/api-requests>).
#[derive(Clone)]
pub struct VkClient {
    pub(crate) http: reqwest::Client,
    base_url: String,
    token: String,
    version: String,
}

/// `users.get` item (<https://dev.vk.com/ru/reference/objects/user>).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct User {
    /// VK user id (positive).
    pub id: i64,
    /// Given name.
    #[serde(default)]
    pub first_name: String,
    /// Family name.
    #[serde(default)]
    pub last_name: String,
}

impl User {
    /// "First Last", trimmed.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }
}

/// `groups.getById` item (<https://dev.vk.com/ru/method/groups.getById>).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Group {
    /// Community id (positive; `-id` as an owner or peer id).
    pub id: i64,
    /// Community name.
    #[serde(default)]
    pub name: String,
    /// Short address, as in `https://vk.com/<screen_name>`.
    #[serde(default)]
    pub screen_name: String,
}

/// `groups.getLongPollServer` response (<https://dev.vk.com/ru/api/bots-long-poll/getting-started>).
#[derive(Debug, Clone, Deserialize)]
pub struct LongPollServer {
    /// Session key for `a_check` requests.
    pub key: String,
    /// Long poll server URL to send `a_check` requests to.
    pub server: String,
    /// Number of the last event; start polling from it.
    pub ts: String,
}

/// One Bots Long Poll answer: `{"ts":"…","updates":[…]}` or `{"failed":1|2|3,"ts":…}`.
#[derive(Debug, Clone, Deserialize)]
pub struct LongPollUpdate {
    /// Number of the last event returned; pass it as `ts` in the next poll. VK sends a string
    /// or a number; kept as a string.
    #[serde(default, deserialize_with = "string_or_number")]
    pub ts: Option<String>,
    /// New events, each a [`crate::callback::CallbackEvent`] object; empty on timeout or failure.
    #[serde(default)]
    pub updates: Vec<serde_json::Value>,
    /// 1: history lost, continue with the new `ts`; 2: key expired; 3: key and ts lost.
    #[serde(default)]
    pub failed: Option<i64>,
}

pub(crate) fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

#[derive(Deserialize)]
struct Envelope<T> {
    response: Option<T>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    error_code: i64,
    #[serde(default)]
    error_msg: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GroupsResponse {
    /// API ≥ 5.194: `{"groups":[…],"profiles":[…]}`.
    Wrapped { groups: Vec<Group> },
    /// Older versions: a bare array.
    Bare(Vec<Group>),
}

impl VkClient {
    /// `base_url` like `https://api.vk.com/method`; `version` like `5.199`.
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        token: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            version: version.into(),
        }
    }

    /// Calls `method` with `params` and decodes `response` as `T`.
    ///
    /// Errors: [`VkError::Api`] for VK's error envelope, [`VkError::Http`] for non-2xx,
    /// [`VkError::Transport`] when unreachable, [`VkError::Decode`] for anything else.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<T, VkError> {
        let mut form: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.push(("access_token", &self.token));
        form.push(("v", &self.version));
        let res = self
            .http
            .post(format!("{}/{method}", self.base_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| VkError::Transport(without_url(e)))?;
        let status = res.status();
        if !status.is_success() {
            return Err(VkError::Http {
                status: status.as_u16(),
                retry_after: upstream_http::retry_after(res.headers()),
            });
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| VkError::Transport(without_url(e)))?;
        let env: Envelope<T> =
            serde_json::from_slice(&body).map_err(|e| VkError::Decode(format!("{method}: {e}")))?;
        if let Some(err) = env.error {
            return Err(VkError::Api {
                code: err.error_code,
                message: err.error_msg,
            });
        }
        env.response
            .ok_or_else(|| VkError::Decode(format!("{method}: neither response nor error")))
    }

    /// `messages.send` to one peer (<https://dev.vk.com/ru/method/messages.send>). VK
    /// de-duplicates on (`peer_id`, `random_id`): the same pair sends once. Returns the id of
    /// the message in the community's dialogue.
    pub async fn send_message(
        &self,
        peer_id: i64,
        random_id: i32,
        message: &str,
        attachment: Option<&str>,
    ) -> Result<i64, VkError> {
        let mut params = vec![
            ("peer_id", peer_id.to_string()),
            ("random_id", random_id.to_string()),
            ("message", message.to_owned()),
        ];
        if let Some(a) = attachment {
            params.push(("attachment", a.to_owned()));
        }
        self.call("messages.send", &params).await
    }

    /// `users.get` for the given ids (<https://dev.vk.com/ru/method/users.get>).
    pub async fn users_get(&self, ids: &[i64]) -> Result<Vec<User>, VkError> {
        let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        self.call("users.get", &[("user_ids", ids)]).await
    }

    /// `groups.getById` for one community; both response shapes are accepted.
    pub async fn group_by_id(&self, group_id: i64) -> Result<Group, VkError> {
        let r: GroupsResponse = self
            .call("groups.getById", &[("group_id", group_id.to_string())])
            .await?;
        let groups = match r {
            GroupsResponse::Wrapped { groups } | GroupsResponse::Bare(groups) => groups,
        };
        groups
            .into_iter()
            .next()
            .ok_or_else(|| VkError::Decode("groups.getById: empty".into()))
    }

    /// `groups.getLongPollServer` (Bots Long Poll API).
    pub async fn long_poll_server(&self, group_id: i64) -> Result<LongPollServer, VkError> {
        self.call(
            "groups.getLongPollServer",
            &[("group_id", group_id.to_string())],
        )
        .await
    }

    /// One long poll: `GET {server}?act=a_check&key=…&ts=…&wait=…`; waits up to `wait`.
    pub async fn long_poll(
        &self,
        server: &LongPollServer,
        ts: &str,
        wait: Duration,
    ) -> Result<LongPollUpdate, VkError> {
        let wait_s = wait.as_secs().to_string();
        let res = self
            .http
            .get(&server.server)
            .query(&[
                ("act", "a_check"),
                ("key", server.key.as_str()),
                ("ts", ts),
                ("wait", wait_s.as_str()),
            ])
            .timeout(wait + Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| VkError::Transport(without_url(e)))?;
        if !res.status().is_success() {
            return Err(VkError::Http {
                status: res.status().as_u16(),
                retry_after: upstream_http::retry_after(res.headers()),
            });
        }
        res.json()
            .await
            .map_err(|e| VkError::Decode(format!("long poll: {e}")))
    }
}

/// reqwest errors print the URL, which carries no token here (tokens go in the form body),
/// but long-poll URLs carry the key: strip URLs from messages to be safe.
pub(crate) fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
