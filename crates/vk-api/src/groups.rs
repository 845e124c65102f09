//! Setting a community up for the gateway: Callback API servers, their confirmation code and
//! event settings, and the Bots Long Poll settings.
//!
//! Methods: <https://dev.vk.com/ru/method/groups.getCallbackServers>,
//! `groups.addCallbackServer`, `groups.editCallbackServer`, `groups.getCallbackConfirmationCode`,
//! `groups.setCallbackSettings`, `groups.setLongPollSettings` (shapes from VKCOM/vk-api-schema
//! v5.199, `groups/methods.json` and `groups/objects.json`). All need a community token with the
//! `manage` right.
//!
//! Limits from the schema: a server `title` is at most [`MAX_SERVER_TITLE_CHARS`] (14)
//! characters, a `secret_key` at most 50; a community has at most 10 servers (error 2000
//! "Servers number limit is reached").

use serde::Deserialize;

use crate::client::VkClient;
use crate::error::VkError;

/// The longest `title` `groups.addCallbackServer` / `groups.editCallbackServer` accept
/// (`maxLength: 14` in vk-api-schema), in characters.
pub const MAX_SERVER_TITLE_CHARS: usize = 14;

/// One Callback API server of a community (`groups_callback_server`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct CallbackServer {
    /// Server id within the community.
    pub id: i64,
    /// Name shown in the community settings (≤ 14 characters).
    #[serde(default)]
    pub title: String,
    /// Where VK posts events.
    #[serde(default)]
    pub url: String,
    /// The `secret` VK puts in every event; `None` when empty or absent.
    #[serde(default, deserialize_with = "non_empty")]
    pub secret_key: Option<String>,
    /// `unconfigured`, `failed`, `wait` or `ok` (confirmed).
    #[serde(default)]
    pub status: String,
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(v.filter(|s| !s.is_empty()))
}

/// Shows everything but the secret key.
impl std::fmt::Debug for CallbackServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackServer")
            .field("id", &self.id)
            .field("title", &self.title)
            .field("url", &self.url)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Deserialize)]
struct ServerList {
    #[serde(default)]
    items: Vec<CallbackServer>,
}

#[derive(Deserialize)]
struct ServerId {
    server_id: i64,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

/// `events` as VK's boolean parameters: `message_new=1`, `message_reply=0`.
fn event_params<'a>(events: &[(&'a str, bool)]) -> impl Iterator<Item = (&'a str, String)> {
    events
        .iter()
        .map(|(name, on)| (*name, if *on { "1" } else { "0" }.to_owned()))
}

impl VkClient {
    /// `groups.getCallbackServers` (<https://dev.vk.com/ru/method/groups.getCallbackServers>):
    /// every Callback API server of the community (`{count, items}`; the items are returned).
    pub async fn callback_servers(&self, group_id: i64) -> Result<Vec<CallbackServer>, VkError> {
        let list: ServerList = self
            .call(
                "groups.getCallbackServers",
                &[("group_id", group_id.to_string())],
            )
            .await?;
        Ok(list.items)
    }

    /// `groups.addCallbackServer` (<https://dev.vk.com/ru/method/groups.addCallbackServer>):
    /// adds a server (`title` ≤ [`MAX_SERVER_TITLE_CHARS`] characters, `secret_key` ≤ 50);
    /// returns its `server_id`. Errors: 2000 when the community already has 10 servers, 100 for
    /// a bad parameter.
    pub async fn add_callback_server(
        &self,
        group_id: i64,
        url: &str,
        title: &str,
        secret_key: &str,
    ) -> Result<i64, VkError> {
        let r: ServerId = self
            .call(
                "groups.addCallbackServer",
                &[
                    ("group_id", group_id.to_string()),
                    ("url", url.to_owned()),
                    ("title", title.to_owned()),
                    ("secret_key", secret_key.to_owned()),
                ],
            )
            .await?;
        Ok(r.server_id)
    }

    /// `groups.editCallbackServer` (<https://dev.vk.com/ru/method/groups.editCallbackServer>):
    /// replaces a server's `url`, `title` and `secret_key` (answer `1`). Error 104 for an
    /// unknown `server_id`.
    pub async fn edit_callback_server(
        &self,
        group_id: i64,
        server_id: i64,
        url: &str,
        title: &str,
        secret_key: &str,
    ) -> Result<(), VkError> {
        let _: i64 = self
            .call(
                "groups.editCallbackServer",
                &[
                    ("group_id", group_id.to_string()),
                    ("server_id", server_id.to_string()),
                    ("url", url.to_owned()),
                    ("title", title.to_owned()),
                    ("secret_key", secret_key.to_owned()),
                ],
            )
            .await?;
        Ok(())
    }

    /// `groups.getCallbackConfirmationCode`
    /// (<https://dev.vk.com/ru/method/groups.getCallbackConfirmationCode>): the string a callback
    /// endpoint must answer to VK's `{"type":"confirmation"}` request.
    pub async fn callback_confirmation_code(&self, group_id: i64) -> Result<String, VkError> {
        let r: Code = self
            .call(
                "groups.getCallbackConfirmationCode",
                &[("group_id", group_id.to_string())],
            )
            .await?;
        Ok(r.code)
    }

    /// `groups.setCallbackSettings` (<https://dev.vk.com/ru/method/groups.setCallbackSettings>):
    /// the API version of the events posted to `server_id` and which events are on
    /// (`events` like `[("message_new", true), ("message_reply", false)]`). Answer `1`; error
    /// 104 for an unknown server.
    pub async fn set_callback_settings(
        &self,
        group_id: i64,
        server_id: i64,
        api_version: &str,
        events: &[(&str, bool)],
    ) -> Result<(), VkError> {
        let mut params = vec![
            ("group_id", group_id.to_string()),
            ("server_id", server_id.to_string()),
            ("api_version", api_version.to_owned()),
        ];
        params.extend(event_params(events));
        let _: i64 = self.call("groups.setCallbackSettings", &params).await?;
        Ok(())
    }

    /// `groups.setLongPollSettings` (<https://dev.vk.com/ru/method/groups.setLongPollSettings>):
    /// turns the Bots Long Poll API on (`enabled=1`) with this API version and these events.
    /// Answer `1`.
    pub async fn set_long_poll_settings(
        &self,
        group_id: i64,
        api_version: &str,
        events: &[(&str, bool)],
    ) -> Result<(), VkError> {
        let mut params = vec![
            ("group_id", group_id.to_string()),
            ("enabled", "1".to_owned()),
            ("api_version", api_version.to_owned()),
        ];
        params.extend(event_params(events));
        let _: i64 = self.call("groups.setLongPollSettings", &params).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_callback_servers_items_decode() {
        let list: ServerList = serde_json::from_str(
            r#"{"count":2,"items":[
                {"id":1,"title":"gateway","creator_id":5,"url":"https://gw.example/vk/callback","secret_key":"s3cr3t","status":"ok"},
                {"id":2,"title":"old","creator_id":5,"url":"https://old.example/","secret_key":"","status":"failed"}]}"#,
        )
        .expect("decodes");
        assert_eq!(list.items.len(), 2);
        assert_eq!(
            list.items[0],
            CallbackServer {
                id: 1,
                title: "gateway".into(),
                url: "https://gw.example/vk/callback".into(),
                secret_key: Some("s3cr3t".into()),
                status: "ok".into(),
            }
        );
        assert_eq!(list.items[1].secret_key, None);
        assert_eq!(list.items[1].status, "failed");
    }

    #[test]
    fn events_become_boolean_params() {
        let params: Vec<_> =
            event_params(&[("message_new", true), ("message_reply", false)]).collect();
        assert_eq!(
            params,
            vec![
                ("message_new", "1".to_owned()),
                ("message_reply", "0".to_owned())
            ]
        );
    }
}
