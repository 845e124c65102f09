//! Community setup in the VK fake: Callback API servers, the confirmation code, and the
//! Callback API / Bots Long Poll event settings.
//!
//! Methods and shapes from VKCOM/vk-api-schema v5.199 (`groups/methods.json`,
//! `groups/objects.json`; <https://dev.vk.com/ru/method/groups.getCallbackServers> and the
//! neighbouring pages):
//!
//! * `groups.getCallbackServers(group_id[, server_ids])` → `{"count":N,"items":[{"id","title",
//!   "creator_id","url","secret_key","status"}]}`; `status` is `unconfigured` for new servers
//!   (the fake sends no confirmation request).
//! * `groups.addCallbackServer(group_id, url, title[, secret_key])` → `{"server_id":N}`; `title`
//!   at most 14 characters, `secret_key` at most 50; the 11th server is error 2000 "Servers
//!   number limit is reached".
//! * `groups.editCallbackServer(group_id, server_id, url, title[, secret_key])`,
//!   `groups.deleteCallbackServer(group_id, server_id)` → `1`; an unknown server is 104 "Not
//!   found".
//! * `groups.getCallbackConfirmationCode(group_id)` → `{"code":"…"}`: 8 hex digits, stable per
//!   community.
//! * `groups.setCallbackSettings(group_id, server_id[, api_version], <event>=0|1 …)` → `1`;
//!   `groups.getCallbackSettings(group_id, server_id)` → `{"api_version","events":{<event>:0|1}}`.
//! * `groups.setLongPollSettings(group_id[, enabled][, api_version], <event>=0|1 …)` → `1`;
//!   `groups.getLongPollSettings(group_id)` → `{"is_enabled","api_version","events":{…}}`.
//!
//! Settings are merged: events not mentioned keep their value (all start off). Parameter
//! checks use VK's wording (`group_id is undefined`, `group_id not integer`, `group_id should
//! be positive`); a `group_id` other than the token's community is error 15, as for
//! `groups.getLongPollServer`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{DEFAULT_GROUP, MethodResult, Params};
use crate::{Sandbox, Shared};

/// At most this many Callback API servers per community.
pub const MAX_CALLBACK_SERVERS: usize = 10;

/// The longest server `title`, in characters.
pub const MAX_TITLE_CHARS: usize = 14;

/// The longest `secret_key`, in characters.
pub const MAX_SECRET_CHARS: usize = 50;

/// The API version events use when none was set.
const DEFAULT_API_VERSION: &str = "5.199";

/// The events `groups.setCallbackSettings` / `setLongPollSettings` know
/// (`groups_long_poll_events`).
const EVENTS: &[&str] = &[
    "audio_new",
    "board_post_delete",
    "board_post_edit",
    "board_post_new",
    "board_post_restore",
    "donut_money_withdraw",
    "donut_money_withdraw_error",
    "donut_subscription_cancelled",
    "donut_subscription_create",
    "donut_subscription_expired",
    "donut_subscription_price_changed",
    "donut_subscription_prolonged",
    "group_change_photo",
    "group_change_settings",
    "group_join",
    "group_leave",
    "group_officers_edit",
    "lead_forms_new",
    "market_comment_delete",
    "market_comment_edit",
    "market_comment_new",
    "market_comment_restore",
    "market_order_edit",
    "market_order_new",
    "message_allow",
    "message_deny",
    "message_edit",
    "message_event",
    "message_new",
    "message_reaction_event",
    "message_read",
    "message_reply",
    "message_typing_state",
    "photo_comment_delete",
    "photo_comment_edit",
    "photo_comment_new",
    "photo_comment_restore",
    "photo_new",
    "poll_vote_new",
    "user_block",
    "user_unblock",
    "video_comment_delete",
    "video_comment_edit",
    "video_comment_new",
    "video_comment_restore",
    "video_new",
    "wall_post_new",
    "wall_reply_delete",
    "wall_reply_edit",
    "wall_reply_new",
    "wall_reply_restore",
    "wall_repost",
    "wall_schedule_post_delete",
    "wall_schedule_post_new",
];

#[derive(Debug, Clone)]
struct Server {
    id: i64,
    title: String,
    url: String,
    secret_key: String,
    status: &'static str,
}

#[derive(Debug, Clone, Default)]
struct Settings {
    api_version: Option<String>,
    events: BTreeMap<&'static str, bool>,
}

impl Settings {
    fn apply(&mut self, params: &Params) {
        if let Some(v) = params.get("api_version") {
            self.api_version = Some(v.to_owned());
        }
        for event in EVENTS {
            if let Some(v) = params.get(event) {
                self.events.insert(event, matches!(v, "1" | "true"));
            }
        }
    }

    fn events_json(&self) -> Value {
        let events: serde_json::Map<String, Value> = EVENTS
            .iter()
            .map(|e| {
                let on = self.events.get(e).copied().unwrap_or(false);
                ((*e).to_owned(), json!(i64::from(on)))
            })
            .collect();
        Value::Object(events)
    }

    fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION)
    }
}

/// What the community-setup part of the VK fake remembers (one community: the token's).
#[derive(Debug, Default)]
pub(crate) struct GroupsState {
    servers: Vec<Server>,
    last_server_id: i64,
    callback_settings: BTreeMap<i64, Settings>,
    long_poll: Option<(bool, Settings)>,
}

fn own_group(shared: &Shared) -> i64 {
    shared
        .read()
        .vk
        .group
        .as_ref()
        .map_or(DEFAULT_GROUP.0, |(id, _)| *id)
}

/// `group_id`: required, positive, the token's community.
fn group_id(shared: &Shared, params: &Params) -> Result<i64, (i64, String)> {
    let group_id = params
        .int("group_id")
        .map_err(|d| (100, d))?
        .ok_or_else(|| (100, "group_id is undefined".to_owned()))?;
    if group_id <= 0 {
        return Err((100, "group_id should be positive".into()));
    }
    if group_id != own_group(shared) {
        return Err((15, "Access denied: no access to call this method".into()));
    }
    Ok(group_id)
}

fn required_int(params: &Params, key: &str) -> Result<i64, (i64, String)> {
    params
        .int(key)
        .map_err(|d| (100, d))?
        .ok_or_else(|| (100, format!("{key} is undefined")))
}

fn required_str<'a>(params: &'a Params, key: &str) -> Result<&'a str, (i64, String)> {
    params
        .get(key)
        .ok_or_else(|| (100, format!("{key} is undefined")))
}

/// `url`, `title`, `secret_key` of add/edit, checked.
fn server_fields(params: &Params) -> Result<(String, String, String), (i64, String)> {
    let url = required_str(params, "url")?;
    let title = required_str(params, "title")?;
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err((
            100,
            format!("title should be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    let secret = params.get("secret_key").unwrap_or_default();
    if secret.chars().count() > MAX_SECRET_CHARS {
        return Err((
            100,
            format!("secret_key should be at most {MAX_SECRET_CHARS} characters"),
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err((100, "url is invalid".into()));
    }
    Ok((url.to_owned(), title.to_owned(), secret.to_owned()))
}

fn server_json(server: &Server) -> Value {
    json!({
        "id": server.id, "title": server.title, "creator_id": 1, "url": server.url,
        "secret_key": server.secret_key, "status": server.status,
    })
}

/// 8 hex digits derived from the community id (FNV-1a, so the same in every run).
fn confirmation_code(group_id: i64) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in format!("sandbox-confirmation-{group_id}").bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// Dispatches the `groups.*` setup methods; `None` for other methods.
pub(super) fn call(shared: &Shared, method: &str, params: &Params) -> Option<MethodResult> {
    let result = match method {
        "groups.getCallbackServers" => get_servers(shared, params),
        "groups.addCallbackServer" => add_server(shared, params),
        "groups.editCallbackServer" => edit_server(shared, params),
        "groups.deleteCallbackServer" => delete_server(shared, params),
        "groups.getCallbackConfirmationCode" => {
            group_id(shared, params).map(|g| json!({ "code": confirmation_code(g) }))
        }
        "groups.setCallbackSettings" => set_callback_settings(shared, params),
        "groups.getCallbackSettings" => get_callback_settings(shared, params),
        "groups.setLongPollSettings" => set_long_poll_settings(shared, params),
        "groups.getLongPollSettings" => {
            group_id(shared, params).map(|_| long_poll_json(&shared.read().vk.groups))
        }
        _ => return None,
    };
    Some(result)
}

fn get_servers(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let wanted: Option<Vec<i64>> = params.get("server_ids").map(|ids| {
        ids.split(',')
            .filter_map(|i| i.trim().parse().ok())
            .collect()
    });
    let state = shared.read();
    let items: Vec<Value> = state
        .vk
        .groups
        .servers
        .iter()
        .filter(|s| wanted.as_ref().is_none_or(|w| w.contains(&s.id)))
        .map(server_json)
        .collect();
    Ok(json!({"count": items.len(), "items": items}))
}

fn add_server(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let (url, title, secret_key) = server_fields(params)?;
    shared.mutate(|s| {
        let groups = &mut s.vk.groups;
        if groups.servers.len() >= MAX_CALLBACK_SERVERS {
            return Err((2000, "Servers number limit is reached".into()));
        }
        groups.last_server_id += 1;
        let id = groups.last_server_id;
        groups.servers.push(Server {
            id,
            title,
            url,
            secret_key,
            status: "unconfigured",
        });
        Ok(json!({ "server_id": id }))
    })
}

fn edit_server(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let server_id = required_int(params, "server_id")?;
    let (url, title, secret_key) = server_fields(params)?;
    shared.mutate(|s| {
        let server =
            s.vk.groups
                .servers
                .iter_mut()
                .find(|srv| srv.id == server_id)
                .ok_or_else(|| (104, "Not found".to_owned()))?;
        if server.url != url {
            // A new address has to be confirmed again.
            server.status = "unconfigured";
        }
        server.url = url;
        server.title = title;
        server.secret_key = secret_key;
        Ok(json!(1))
    })
}

fn delete_server(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let server_id = required_int(params, "server_id")?;
    shared.mutate(|s| {
        let groups = &mut s.vk.groups;
        let before = groups.servers.len();
        groups.servers.retain(|srv| srv.id != server_id);
        if groups.servers.len() == before {
            return Err((104, "Not found".into()));
        }
        groups.callback_settings.remove(&server_id);
        Ok(json!(1))
    })
}

fn set_callback_settings(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let server_id = required_int(params, "server_id")?;
    shared.mutate(|s| {
        let groups = &mut s.vk.groups;
        if !groups.servers.iter().any(|srv| srv.id == server_id) {
            return Err((104, "Not found".into()));
        }
        groups
            .callback_settings
            .entry(server_id)
            .or_default()
            .apply(params);
        Ok(json!(1))
    })
}

fn callback_settings_json(groups: &GroupsState, server_id: i64) -> Option<Value> {
    if !groups.servers.iter().any(|srv| srv.id == server_id) {
        return None;
    }
    let settings = groups
        .callback_settings
        .get(&server_id)
        .cloned()
        .unwrap_or_default();
    Some(json!({"api_version": settings.api_version(), "events": settings.events_json()}))
}

fn get_callback_settings(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let server_id = required_int(params, "server_id")?;
    callback_settings_json(&shared.read().vk.groups, server_id)
        .ok_or_else(|| (104, "Not found".into()))
}

fn set_long_poll_settings(shared: &Shared, params: &Params) -> MethodResult {
    group_id(shared, params)?;
    let enabled = params.get("enabled").map(|v| matches!(v, "1" | "true"));
    shared.mutate(|s| {
        let (is_enabled, settings) = s.vk.groups.long_poll.get_or_insert_default();
        if let Some(enabled) = enabled {
            *is_enabled = enabled;
        }
        settings.apply(params);
    });
    Ok(json!(1))
}

fn long_poll_json(groups: &GroupsState) -> Value {
    let (enabled, settings) = groups.long_poll.clone().unwrap_or_default();
    json!({"is_enabled": enabled, "api_version": settings.api_version(), "events": settings.events_json()})
}

impl Sandbox {
    /// The community's Callback API servers as `groups.getCallbackServers` renders its `items`
    /// (`{id, title, creator_id, url, secret_key, status}`), oldest first.
    pub fn vk_callback_servers(&self) -> Vec<Value> {
        self.shared
            .read()
            .vk
            .groups
            .servers
            .iter()
            .map(server_json)
            .collect()
    }

    /// `groups.getCallbackSettings` of a server (`{api_version, events: {message_new: 0|1, …}}`);
    /// `None` for an unknown server.
    pub fn vk_callback_settings(&self, server_id: i64) -> Option<Value> {
        callback_settings_json(&self.shared.read().vk.groups, server_id)
    }

    /// `groups.getLongPollSettings` (`{is_enabled, api_version, events: {…}}`) once
    /// `groups.setLongPollSettings` was called; `None` before.
    pub fn vk_long_poll_settings(&self) -> Option<Value> {
        let state = self.shared.read();
        state
            .vk
            .groups
            .long_poll
            .is_some()
            .then(|| long_poll_json(&state.vk.groups))
    }

    /// The code `groups.getCallbackConfirmationCode` answers for the token's community
    /// ([`Sandbox::set_vk_group`], default [`DEFAULT_GROUP`]).
    pub fn vk_confirmation_code(&self) -> String {
        confirmation_code(own_group(&self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_codes_are_stable_8_hex_digits_per_group() {
        let code = confirmation_code(1);
        assert_eq!(code.len(), 8);
        assert!(code.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(code, confirmation_code(1));
        assert_ne!(code, confirmation_code(2));
    }
}
