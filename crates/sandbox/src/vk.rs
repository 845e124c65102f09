//! The VK API fake: `GET|POST {url}/vk/method/{method}`, parameters from the query string and/or an
//! `application/x-www-form-urlencoded` body, exactly as `api.vk.com/method/` takes them.
//!
//! Every answer is HTTP 200 with either `{"response": …}` or VK's error envelope
//! (<https://dev.vk.com/en/reference/errors>):
//!
//! ```json
//! {"error":{"error_code":100,"error_msg":"One of the parameters specified was missing or invalid: random_id is a required parameter",
//!           "request_params":[{"key":"method","value":"messages.send"},{"key":"oauth","value":"1"},{"key":"v","value":"5.199"}, …]}}
//! ```
//!
//! `request_params` echoes every parameter except `access_token`, after `method` and `oauth`.
//!
//! `groups.getLongPollServer` hands out sessions on the Bots Long Poll server fake,
//! `{url}/vk/longpoll/{group_id}` (see [`long_poll`]). Uploads (`photos.getMessagesUploadServer`,
//! `photos.saveMessagesPhoto`, `docs.getMessagesUploadServer`, `docs.save`), the upload servers
//! `{url}/vk/upload/…` and hosted files `{url}/vk/files/{id}` are in [`media`]; Callback API
//! servers and event settings (`groups.*CallbackServer*`, `groups.*Settings`) in [`groups`].
//! Codes and messages come from VK's own schema, <https://github.com/VKCOM/vk-api-schema/blob/master/errors.json>
//! (v5.199); the detailed 5 / 8 / 100 texts are the ones VK actually returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Shared, VkSentMessage};

pub mod groups;
pub mod long_poll;
pub mod media;

/// Longest `message` the fake accepts; longer ones get error 914 "Message is too long".
///
/// dev.vk.com documents `Max. length = 9000` for `messages.send` `message`
/// (<https://dev.vk.com/en/method/messages.send>), while VK clients and bot libraries split at
/// 4096 characters, the limit VK applies to messages in practice. The sandbox enforces the
/// stricter 4096 so that a client which does not split is caught here.
pub const MESSAGE_MAX_CHARS: usize = 4096;

/// The community `groups.getById` describes when no ids are given and none was set.
pub const DEFAULT_GROUP: (i64, &str) = (1, "Sandbox Community");

/// What the VK fake remembers.
#[derive(Debug, Default)]
pub(crate) struct VkState {
    /// `users.get` names; other ids get a generated one.
    pub(crate) users: BTreeMap<i64, (String, String)>,
    /// Peers that have not allowed messages from the community: `messages.send` answers 901.
    pub(crate) blocked: HashSet<i64>,
    pub(crate) sent: Vec<VkSentMessage>,
    /// `(peer_id, random_id)` -> message id, for VK's de-duplication.
    dedup: HashMap<(i64, i64), i64>,
    last_message_id: i64,
    pub(crate) group: Option<(i64, String)>,
    pub(crate) long_poll: long_poll::LongPollState,
    pub(crate) media: media::MediaState,
    pub(crate) groups: groups::GroupsState,
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/method/{method}", get(call).post(call))
        .route(
            "/longpoll/{group_id}",
            get(long_poll::a_check).post(long_poll::a_check),
        )
        .route("/upload/photo/{token}", post(media::upload_photo))
        .route("/upload/doc/{token}", post(media::upload_doc))
        .route("/files/{id}", get(media::file))
}

/// Request parameters in arrival order: query string first, then the form body.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>, form_body: &[u8]) -> Params {
        let mut pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        pairs.extend(url::form_urlencoded::parse(form_body).into_owned());
        Params(pairs)
    }

    /// The last value given for `key`; VK treats an empty value as absent.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `Ok(None)` when absent, `Err` with VK's wording when present but not an integer.
    fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{key} not integer")),
        }
    }
}

/// VK's error envelope (HTTP 200).
pub(crate) fn error(code: i64, msg: &str, method: &str, params: &Params) -> Json<Value> {
    let mut request_params = vec![
        json!({"key": "method", "value": method}),
        json!({"key": "oauth", "value": "1"}),
    ];
    request_params.extend(
        params
            .0
            .iter()
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| json!({"key": k, "value": v})),
    );
    Json(json!({"error": {"error_code": code, "error_msg": msg, "request_params": request_params}}))
}

/// The message VK sends with `code` (from vk-api-schema `errors.json`); "Unknown error occurred" for
/// codes the sandbox does not list.
pub fn error_message(code: i64) -> &'static str {
    match code {
        2 => "Application is disabled. Enable your application or use test mode",
        3 => "Unknown method passed",
        5 => "User authorization failed",
        6 => "Too many requests per second",
        7 => "Permission to perform this action is denied",
        8 => "Invalid request",
        9 => "Flood control",
        10 => "Internal server error",
        14 => "Captcha needed",
        15 => "Access denied",
        18 => "User was deleted or banned",
        27 => "Group authorization failed",
        28 => "Application authorization failed",
        29 => "Rate limit reached",
        30 => "This profile is private",
        100 => "One of the parameters specified was missing or invalid",
        113 => "Invalid user id",
        125 => "Invalid group id",
        203 => "Access to group denied",
        900 => "Can't send messages for users from blacklist",
        901 => "Can't send messages for users without permission",
        902 => "Can't send messages to this user due to their privacy settings",
        910 => "Can't sent this message, because it's too big",
        913 => "Too many forwarded messages",
        914 => "Message is too long",
        917 => "You don't have access to this chat",
        936 => "Contact not found",
        945 => "Chat was disabled",
        950 => "Can't send message, reply timed out",
        _ => "Unknown error occurred",
    }
}

fn param_error(detail: &str, method: &str, params: &Params) -> Json<Value> {
    error(
        100,
        &format!("{}: {detail}", error_message(100)),
        method,
        params,
    )
}

/// `{url}/vk/method/{method}`: authentication, then the method.
async fn call(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // VK reads urlencoded forms (and multipart, which no client here uses) but never JSON.
    let form: &[u8] = if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        &body
    } else {
        &[]
    };
    let params = Params::parse(query.as_deref(), form);

    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = params.get("access_token").or(bearer) else {
        return error(
            5,
            "User authorization failed: no access_token passed.",
            &method,
            &params,
        );
    };
    if params.get("v").is_none() {
        return error(8, "Invalid request: v is required", &method, &params);
    }
    if token != shared.opts.vk_access_token {
        return error(
            5,
            "User authorization failed: invalid access_token (4).",
            &method,
            &params,
        );
    }

    // URLs handed out point back at the address the client used.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| shared.addr.to_string(), str::to_owned);
    let base = format!("http://{host}");
    let result = match method.as_str() {
        "messages.send" => messages_send(&shared, &params),
        "users.get" => users_get(&shared, &params),
        "groups.getById" => groups_get_by_id(&shared, &params),
        "groups.getLongPollServer" => long_poll::get_server(&shared, &params, &host),
        "photos.getMessagesUploadServer" => {
            media::photos_get_messages_upload_server(&shared, &params, &base)
        }
        "photos.saveMessagesPhoto" => media::photos_save_messages_photo(&shared, &params, &base),
        "docs.getMessagesUploadServer" => {
            media::docs_get_messages_upload_server(&shared, &params, &base)
        }
        "docs.save" => media::docs_save(&shared, &params, &base),
        other => groups::call(&shared, other, &params)
            .unwrap_or_else(|| Err((3, error_message(3).to_owned()))),
    };
    match result {
        Ok(response) => Json(json!({ "response": response })),
        Err((100, msg)) => param_error(&msg, &method, &params),
        Err((code, msg)) => error(code, &msg, &method, &params),
    }
}

/// A method's failure: VK code and message (for code 100: only the part after the colon).
type MethodResult = Result<Value, (i64, String)>;

/// `messages.send` — <https://dev.vk.com/en/method/messages.send>.
///
/// Destination from `peer_id`, `user_id` or `chat_id` (as peer `2000000000 + chat_id`);
/// `random_id` is required (since API 5.90); `message` and/or `attachment` (comma-separated
/// `photo{owner}_{id}[_{key}]` / `doc{owner}_{id}[_{key}]` naming media saved in this fake, see
/// [`media`]; anything else is error 100 `attachment is invalid`). Returns the new
/// message id (`{"response": 123}`). A repeated non-zero `random_id` to the same peer is VK's
/// "resend": the original message id comes back and nothing new is sent. `random_id=0` is never
/// de-duplicated.
fn messages_send(shared: &Shared, params: &Params) -> MethodResult {
    let bad = |detail: String| (100, detail);
    let peer_id = match (
        params.int("peer_id").map_err(bad)?,
        params.int("user_id").map_err(bad)?,
    ) {
        (Some(peer), _) | (None, Some(peer)) => peer,
        (None, None) => match params.int("chat_id").map_err(bad)? {
            Some(chat) => 2_000_000_000 + chat,
            None => {
                return Err(bad(
                    "you should specify peer_id, user_id, domain, chat_id or user_ids param".into(),
                ));
            }
        },
    };
    let random_id = params
        .int("random_id")
        .map_err(bad)?
        .ok_or_else(|| bad("random_id is a required parameter".into()))?;
    let message = params.get("message");
    let attachment = params.get("attachment");
    if message.is_none() && attachment.is_none() {
        return Err(bad("message is empty or invalid".into()));
    }
    if message.is_some_and(|m| m.chars().count() > MESSAGE_MAX_CHARS) {
        return Err((914, error_message(914).into()));
    }
    let attachments = media::check_attachments(shared, attachment)?;

    shared.mutate(|s| {
        let vk = &mut s.vk;
        if vk.blocked.contains(&peer_id) {
            return Err((901, error_message(901).into()));
        }
        if random_id != 0
            && let Some(&existing) = vk.dedup.get(&(peer_id, random_id))
        {
            return Ok(json!(existing));
        }
        vk.last_message_id += 1;
        let message_id = vk.last_message_id;
        if random_id != 0 {
            vk.dedup.insert((peer_id, random_id), message_id);
        }
        vk.sent.push(VkSentMessage {
            peer_id,
            random_id,
            message: message.unwrap_or_default().to_owned(),
            attachments,
            message_id,
        });
        Ok(json!(message_id))
    })
}

/// `users.get` — <https://dev.vk.com/en/method/users.get>, user object
/// <https://dev.vk.com/en/reference/objects/user>.
///
/// `user_ids` (or `user_id`): comma-separated numeric ids or `id123`. Each gives
/// `{id, first_name, last_name, can_access_closed, is_closed}` plus the few `fields` the sandbox
/// knows (`screen_name`, `domain`, `sex`, `photo_50`, `photo_100`, `photo_200`). Ids added with
/// [`Sandbox::add_vk_user`](crate::Sandbox::add_vk_user) get their name; any other positive id
/// is an existing VK account too, named `User {id}`. Invalid ids are left out, and if none is
/// valid the answer is error 113 "Invalid user id". Without ids a community token gets `[]`.
fn users_get(shared: &Shared, params: &Params) -> MethodResult {
    let Some(ids) = params.get("user_ids").or_else(|| params.get("user_id")) else {
        return Ok(json!([]));
    };
    let fields: Vec<&str> = params
        .get("fields")
        .map(|f| f.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let state = shared.read();
    let mut users = Vec::new();
    for raw in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(id) = raw
            .strip_prefix("id")
            .unwrap_or(raw)
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
        else {
            continue;
        };
        let (first, last) = state
            .vk
            .users
            .get(&id)
            .cloned()
            .unwrap_or_else(|| ("User".to_owned(), id.to_string()));
        let mut user = json!({
            "id": id, "first_name": first, "last_name": last, "can_access_closed": true, "is_closed": false,
        });
        for field in &fields {
            let value = match *field {
                "screen_name" | "domain" => json!(format!("id{id}")),
                "sex" => json!(0),
                "photo_50" => json!("https://vk.com/images/camera_50.png"),
                "photo_100" => json!("https://vk.com/images/camera_100.png"),
                "photo_200" => json!("https://vk.com/images/camera_200.png"),
                _ => continue,
            };
            user[*field] = value;
        }
        users.push(user);
    }
    if users.is_empty() {
        return Err((113, error_message(113).into()));
    }
    Ok(Value::Array(users))
}

/// `groups.getById` — <https://dev.vk.com/en/method/groups.getById>, group object
/// <https://dev.vk.com/en/reference/objects/group>.
///
/// `group_ids` or `group_id` (numeric, `club123`, `public123`); without them the token's own
/// community. Since API 5.194 the answer is `{"groups":[…],"profiles":[]}`; older versions get
/// the bare array (what vk-io calls `GroupsGetByIdLegacyResponse`). Each group:
/// `{id, name, screen_name, is_closed, type, photo_50, photo_100, photo_200}`.
fn groups_get_by_id(shared: &Shared, params: &Params) -> MethodResult {
    let (own_id, own_name) = shared
        .read()
        .vk
        .group
        .clone()
        .unwrap_or_else(|| (DEFAULT_GROUP.0, DEFAULT_GROUP.1.to_owned()));
    let mut ids = Vec::new();
    match params.get("group_ids").or_else(|| params.get("group_id")) {
        None => ids.push(own_id),
        Some(list) => {
            for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let digits = raw
                    .strip_prefix("club")
                    .or_else(|| raw.strip_prefix("public"))
                    .unwrap_or(raw);
                match digits.parse::<i64>() {
                    Ok(id) if id != 0 => ids.push(id.abs()),
                    _ => return Err((100, "group_ids is undefined".into())),
                }
            }
        }
    }
    let groups: Vec<Value> = ids
        .into_iter()
        .map(|id| {
            let name = if id == own_id { own_name.clone() } else { format!("Community {id}") };
            json!({
                "id": id, "name": name, "screen_name": format!("club{id}"), "is_closed": 0, "type": "group",
                "photo_50": "https://vk.com/images/community_50.png",
                "photo_100": "https://vk.com/images/community_100.png",
                "photo_200": "https://vk.com/images/community_200.png",
            })
        })
        .collect();
    if api_version_at_least(params.get("v"), (5, 194)) {
        Ok(json!({"groups": groups, "profiles": []}))
    } else {
        Ok(Value::Array(groups))
    }
}

fn api_version_at_least(v: Option<&str>, min: (u32, u32)) -> bool {
    let Some((major, minor)) = v.and_then(|v| v.split_once('.')) else {
        return false;
    };
    match (major.parse::<u32>(), minor.parse::<u32>()) {
        (Ok(major), Ok(minor)) => (major, minor) >= min,
        _ => false,
    }
}
