//! Account administration in the Chatwoot fake: inboxes, account webhooks, and the conversation
//! list (`ConversationFinder`).
//!
//! * `GET /inboxes` → `{"payload":[inbox…]}`; `POST /inboxes`
//!   `{"name":…,"channel":{"type":"api","webhook_url":…}}` → the inbox
//!   (`InboxesController#create`, `app/views/api/v1/accounts/inboxes/{index,create}.json.jbuilder`,
//!   `app/views/api/v1/models/_inbox.json.jbuilder`). The fake makes API channel inboxes only.
//! * `GET /webhooks` → `{"payload":{"webhooks":[webhook…]}}`; `POST /webhooks` and
//!   `PATCH /webhooks/{id}` `{"webhook":{"url","subscriptions":[…],"name","inbox_id"}}` →
//!   `{"payload":{"webhook":{…}}}`; `DELETE /webhooks/{id}` → 200, empty
//!   (`WebhooksController`, `app/views/api/v1/accounts/webhooks/*.json.jbuilder`, `Webhook`
//!   validations).
//! * `GET /conversations?inbox_id=&status=&page=` →
//!   `{"data":{"meta":{"mine_count","assigned_count","unassigned_count","all_count"},"payload":[conversation…]}}`
//!   (`ConversationFinder`, `app/views/api/v1/accounts/conversations/index.json.jbuilder`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::model::{DEFAULT_SUBSCRIPTIONS, WEBHOOK_EVENTS, Webhook};
use super::{ApiError, ApiResult, authorize, body_params, path_id, string};
use crate::Shared;

/// `ConversationFinder` pages by `CONVERSATION_RESULTS_PER_PAGE`, 25 by default.
pub(crate) const CONVERSATIONS_PER_PAGE: usize = 25;

/// `GET /inboxes` — <https://developers.chatwoot.com/api-reference/inboxes/list-all-inboxes>.
pub(super) async fn list_inboxes(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let state = shared.read();
    let payload: Vec<Value> = state
        .cw
        .inboxes
        .iter()
        .map(|i| state.cw.inbox_json(i))
        .collect();
    Ok(Json(json!({ "payload": payload })))
}

/// `POST /inboxes` — <https://developers.chatwoot.com/api-reference/inboxes/create-an-inbox>.
///
/// `channel.type` must be `api` here (the server also makes web widget, email, SMS … channels;
/// the fake answers 422 `{"error":"Channel type not supported by the sandbox"}` for them). Without
/// `channel` the server fails on `nil[:type]`: 500. A blank `name` is 422
/// `{"message":"Name can't be blank","attributes":["name"]}`.
pub(super) async fn create_inbox(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let params = body_params(&headers, &body)?;
    let channel = params
        .get("channel")
        .and_then(Value::as_object)
        .ok_or(ApiError::Internal)?;
    if string(channel, "type").as_deref() != Some("api") {
        return Err(ApiError::CouldNotCreate(
            "Channel type not supported by the sandbox".into(),
        ));
    }
    let name = string(&params, "name")
        .ok_or_else(|| ApiError::RecordInvalid(vec![("name", "Name can't be blank".into())]))?;
    let webhook_url = string(channel, "webhook_url");
    shared.mutate(|s| {
        let id = s.cw.create_inbox(name, webhook_url);
        let inbox = s.cw.inbox(id).ok_or(ApiError::Internal)?;
        Ok(Json(s.cw.inbox_json(inbox)))
    })
}

/// `GET /webhooks` — <https://developers.chatwoot.com/api-reference/webhooks/list-all-webhooks>.
pub(super) async fn list_webhooks(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let state = shared.read();
    let webhooks: Vec<Value> = state
        .cw
        .webhooks
        .iter()
        .map(|w| state.cw.webhook_json(w))
        .collect();
    Ok(Json(json!({ "payload": { "webhooks": webhooks } })))
}

/// The permitted `webhook` params (`params.require(:webhook).permit(:inbox_id, :name, :url,
/// subscriptions: [])`); a missing `webhook` key is `ActionController::ParameterMissing`, 400.
fn webhook_params(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let params = body_params(headers, body)?;
    params
        .get("webhook")
        .and_then(Value::as_object)
        .cloned()
        .ok_or(ApiError::BadRequest)
}

/// `Webhook` validations: `url` must hold an http(s) URL
/// (`format: URI::DEFAULT_PARSER.make_regexp(%w[http https])`, 422 `Url is invalid`) unique in
/// the account (`Url has already been taken`); `subscriptions` must be a non-empty array of
/// `ALLOWED_WEBHOOK_EVENTS` (`Subscriptions Invalid events`).
fn validate(webhook: &Webhook, others: &[Webhook]) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let url_ok = url::Url::parse(&webhook.url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok {
        errors.push(("url", "Url is invalid".to_owned()));
    } else if others
        .iter()
        .any(|w| w.id != webhook.id && w.url == webhook.url)
    {
        errors.push(("url", "Url has already been taken".to_owned()));
    }
    if webhook.subscriptions.is_empty()
        || webhook
            .subscriptions
            .iter()
            .any(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
    {
        errors.push(("subscriptions", "Subscriptions Invalid events".to_owned()));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::RecordInvalid(errors))
    }
}

/// Applies the permitted params to `webhook`; a `subscriptions` that is not an array of strings
/// becomes invalid (empty).
fn apply(webhook: &mut Webhook, params: &Map<String, Value>) {
    if let Some(url) = params.get("url") {
        webhook.url = url.as_str().unwrap_or_default().trim().to_owned();
    }
    if let Some(name) = params.get("name") {
        webhook.name = name.as_str().map(str::to_owned);
    }
    if let Some(inbox_id) = params.get("inbox_id") {
        webhook.inbox_id = match inbox_id {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
    }
    if let Some(subscriptions) = params.get("subscriptions") {
        webhook.subscriptions = subscriptions
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        webhook.subscriptions.dedup();
    }
}

/// A `has_secure_token` value: 24 base58 characters.
fn secure_token() -> String {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let bytes = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    bytes
        .iter()
        .take(24)
        .map(|b| BASE58[usize::from(*b) % BASE58.len()] as char)
        .collect()
}

/// `POST /webhooks` — <https://developers.chatwoot.com/api-reference/webhooks/add-a-webhook>.
/// Without `subscriptions` the webhook gets the column default (six events, `message_created`
/// among them).
pub(super) async fn create_webhook(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let params = webhook_params(&headers, &body)?;
    shared.mutate(|s| {
        let mut webhook = Webhook {
            id: 0,
            name: None,
            url: String::new(),
            subscriptions: DEFAULT_SUBSCRIPTIONS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            inbox_id: None,
            secret: secure_token(),
        };
        apply(&mut webhook, &params);
        validate(&webhook, &s.cw.webhooks)?;
        webhook.id = s.cw.next_webhook_id();
        let json = s.cw.webhook_json(&webhook);
        s.cw.webhooks.push(webhook);
        Ok(Json(json!({ "payload": { "webhook": json } })))
    })
}

/// `PATCH /webhooks/{id}` — <https://developers.chatwoot.com/api-reference/webhooks/update-a-webhook-object>.
/// The secret stays.
pub(super) async fn update_webhook(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let params = webhook_params(&headers, &body)?;
    shared.mutate(|s| {
        let index =
            s.cw.webhooks
                .iter()
                .position(|w| w.id == id)
                .ok_or(ApiError::NotFound)?;
        let mut webhook = s.cw.webhooks[index].clone();
        apply(&mut webhook, &params);
        validate(&webhook, &s.cw.webhooks)?;
        let json = s.cw.webhook_json(&webhook);
        s.cw.webhooks[index] = webhook;
        Ok(Json(json!({ "payload": { "webhook": json } })))
    })
}

/// `DELETE /webhooks/{id}` — <https://developers.chatwoot.com/api-reference/webhooks/delete-a-webhook>:
/// `head :ok`.
pub(super) async fn delete_webhook(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    shared.mutate(|s| {
        let before = s.cw.webhooks.len();
        s.cw.webhooks.retain(|w| w.id != id);
        if s.cw.webhooks.len() == before {
            Err(ApiError::NotFound)
        } else {
            Ok(StatusCode::OK.into_response())
        }
    })
}

/// `GET /conversations` — <https://developers.chatwoot.com/api-reference/conversations/conversations-list>.
///
/// Like `ConversationFinder`: `status` defaults to `open`, `all` lists every status, an unknown
/// one matches nothing; `inbox_id` narrows to one inbox; `assignee_type` `mine`/`assigned` match
/// nothing (the fake never assigns), `unassigned`/`all`/absent everything. Most recently active
/// first, [`CONVERSATIONS_PER_PAGE`] a page, `page` from 1 (default 1). The `meta` counts are of
/// all pages.
pub(super) async fn list_conversations(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let status = query
        .get("status")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .unwrap_or("open");
    let inbox_id = query
        .get("inbox_id")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().unwrap_or(0));
    let page = query
        .get("page")
        .and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let assigned_only = matches!(
        query.get("assignee_type").map(String::as_str),
        Some("me" | "mine" | "assigned")
    );
    let state = shared.read();
    let mut matches: Vec<_> = state
        .cw
        .conversations
        .iter()
        .filter(|c| status == "all" || c.status == status)
        .filter(|c| inbox_id.is_none_or(|id| c.inbox_id == id))
        .collect();
    let all_count = matches.len();
    if assigned_only {
        matches.clear();
    }
    matches.sort_by_key(|c| std::cmp::Reverse((c.last_activity_at, c.id)));
    let payload: Vec<Value> = matches
        .into_iter()
        .skip((page - 1).saturating_mul(CONVERSATIONS_PER_PAGE))
        .take(CONVERSATIONS_PER_PAGE)
        .map(|c| state.cw.conversation_json(c))
        .collect();
    Ok(Json(json!({
        "data": {
            "meta": {
                "mine_count": 0,
                "assigned_count": 0,
                "unassigned_count": all_count,
                "all_count": all_count,
            },
            "payload": payload,
        }
    })))
}
