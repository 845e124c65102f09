//! The Chatwoot Application API fake, under `{url}/chatwoot`.
//!
//! Reference: <https://developers.chatwoot.com/api-reference/introduction> and the server itself,
//! <https://github.com/chatwoot/chatwoot> (controllers under `app/controllers/api/v1/accounts/`,
//! views under `app/views/api/v1/`). Authentication is the `api_access_token` header (Rack also
//! accepts it spelled `api-access-token`):
//! * no token: 401 `{"errors":["You need to sign in or sign up before continuing."]}` (devise_token_auth);
//! * unknown token: 401 `{"error":"Invalid Access Token"}` (`AccessTokenAuthHelper`);
//! * another account id in the path: 401 `{"error":"You are not authorized to access this account"}`.
//!
//! Other errors are rendered like `RequestExceptionHandler`: a missing record is 404
//! `{"error":"Resource could not be found"}`, a failed validation 422
//! `{"message":"Identifier has already been taken","attributes":["identifier"]}`.
//!
//! Every created message of type incoming, outgoing or template (private notes included) fires one
//! `message_created` webhook, like `WebhookListener#message_created` with `webhook_sendable?`: to
//! the URL of `Sandbox::set_chatwoot_webhook`, and to every webhook registered through
//! `POST /webhooks` that subscribes to `message_created` (an inbox webhook only for its inbox),
//! signed with that webhook's secret.
//!
//! Messages take files (`multipart/form-data` with `attachments[]` parts); the files are served
//! under `/rails/active_storage/…` like ActiveStorage's disk service (see [`files`]). Inboxes,
//! account webhooks and the conversation list are in [`admin`].

mod admin;
mod control;
mod files;
pub(crate) mod model;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::Shared;
use model::{CONTENT_TYPES, Contact, Conversation, MESSAGE_TYPES, Message, STATUSES, Sender};

pub(crate) fn router() -> Router<Arc<Shared>> {
    let account = Router::new()
        .route("/contacts", post(create_contact))
        .route("/contacts/search", get(search_contacts))
        .route("/contacts/{id}", get(show_contact))
        .route("/contacts/{id}/contact_inboxes", post(create_contact_inbox))
        .route("/contacts/{id}/conversations", get(contact_conversations))
        .route(
            "/conversations",
            get(admin::list_conversations).post(create_conversation),
        )
        .route(
            "/inboxes",
            get(admin::list_inboxes).post(admin::create_inbox),
        )
        .route(
            "/webhooks",
            get(admin::list_webhooks).post(admin::create_webhook),
        )
        .route(
            "/webhooks/{id}",
            axum::routing::patch(admin::update_webhook)
                .put(admin::update_webhook)
                .delete(admin::delete_webhook),
        )
        .route("/conversations/{id}", get(show_conversation))
        .route("/conversations/{id}/toggle_status", post(toggle_status))
        .route(
            "/conversations/{id}/messages",
            get(list_messages).post(create_message),
        );
    Router::new()
        .route("/api/v1/profile", get(profile))
        .nest("/api/v1/accounts/{account_id}", account)
        .merge(files::router())
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"error": "Not Found"}))) })
        // The recording middleware already caps bodies (4 MiB); axum's own 2 MB default for
        // `Bytes` would refuse uploads below that.
        .layer(DefaultBodyLimit::disable())
}

/// Chatwoot's error responses.
#[derive(Debug)]
pub(crate) enum ApiError {
    NoToken,
    InvalidToken,
    OtherAccount,
    NotFound,
    /// 404 with a specific message, e.g. `Inbox not found`.
    NotFoundMessage(&'static str),
    /// 422 `{"error": …}` (`render_could_not_create_error`).
    CouldNotCreate(String),
    /// 422 `{"message": …, "attributes": […]}` (`render_record_invalid`).
    RecordInvalid(Vec<(&'static str, String)>),
    BadRequest,
    /// What Rails answers for an exception nobody rescues (e.g. an unknown enum value).
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::NoToken => (
                StatusCode::UNAUTHORIZED,
                json!({"errors": ["You need to sign in or sign up before continuing."]}),
            ),
            ApiError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "Invalid Access Token"}),
            ),
            ApiError::OtherAccount => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "You are not authorized to access this account"}),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                json!({"error": "Resource could not be found"}),
            ),
            ApiError::NotFoundMessage(message) => {
                (StatusCode::NOT_FOUND, json!({"error": message}))
            }
            ApiError::CouldNotCreate(message) => {
                (StatusCode::UNPROCESSABLE_ENTITY, json!({"error": message}))
            }
            ApiError::RecordInvalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "message": errors.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join(", "),
                    "attributes": errors.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
                }),
            ),
            ApiError::BadRequest => (
                StatusCode::BAD_REQUEST,
                json!({"status": 400, "error": "Bad Request"}),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": 500, "error": "Internal Server Error"}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// `Api::BaseController` authentication.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = ["api_access_token", "api-access-token"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::NoToken)?;
    if token == shared.opts.chatwoot_api_token {
        Ok(())
    } else {
        Err(ApiError::InvalidToken)
    }
}

/// Authentication plus `EnsureCurrentAccountHelper`: the agent belongs to one account only.
/// Also remembers the request's `Host` as the fake's `FRONTEND_URL` (see [`files::frontend_url`]).
fn authorize(shared: &Shared, headers: &HeaderMap, account_id: &str) -> Result<(), ApiError> {
    authenticate(shared, headers)?;
    files::remember_host(shared, headers);
    match account_id.parse::<i64>() {
        Ok(id) if id == shared.opts.chatwoot_account_id => Ok(()),
        Ok(_) => Err(ApiError::OtherAccount),
        Err(_) => Err(ApiError::NotFound),
    }
}

/// Request parameters the way Rails merges them: a JSON body, or a flat urlencoded form.
fn body_params(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if body.is_empty() {
        return Ok(Map::new());
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(url::form_urlencoded::parse(body)
            .into_owned()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::BadRequest),
    }
}

/// A string parameter (numbers are accepted as their text, like Rails params); blank = absent.
fn string(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn integer(params: &Map<String, Value>, key: &str) -> Option<i64> {
    string(params, key).and_then(|s| s.trim().parse().ok())
}

/// Rails' boolean casting: `true`, `"true"`, `"1"`, `1` are true.
fn boolean(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "t" | "on"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn object(params: &Map<String, Value>, key: &str) -> Value {
    match params.get(key) {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => json!({}),
    }
}

fn path_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// `GET /api/v1/profile` — <https://developers.chatwoot.com/api-reference/profile/fetch-user-profile>.
async fn profile(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    authenticate(&shared, &headers)?;
    Ok(Json(
        shared
            .read()
            .cw
            .profile_json(&shared.opts.chatwoot_api_token),
    ))
}

/// `GET /contacts/search?q=&page=` — <https://developers.chatwoot.com/api-reference/contacts/search-contacts>.
/// `{"meta":{"count","current_page"},"payload":[contact…]}`; `q` matches name, email and phone
/// number case-insensitively as a substring, identifier case-sensitively, or the id exactly.
/// 15 contacts a page (`RESULTS_PER_PAGE`), `page` from 1 (default 1); `count` is the number of
/// matches on all pages. Blank `q`: 422 `{"error":"Specify search string with parameter q"}`.
async fn search_contacts(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let q = query.get("q").map(|q| q.trim()).unwrap_or_default();
    if q.is_empty() {
        return Err(ApiError::CouldNotCreate(
            "Specify search string with parameter q".into(),
        ));
    }
    let needle = q.to_lowercase();
    let contains = |field: &Option<String>| {
        field
            .as_ref()
            .is_some_and(|f| f.to_lowercase().contains(&needle))
    };
    const RESULTS_PER_PAGE: usize = 15;
    let page = query
        .get("page")
        .and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let state = shared.read();
    let matches: Vec<&Contact> = state
        .cw
        .contacts
        .iter()
        .filter(|c| {
            c.name.to_lowercase().contains(&needle)
                || contains(&c.email)
                || contains(&c.phone_number)
                || c.identifier.as_ref().is_some_and(|i| i.contains(q))
                || q.parse::<i64>().is_ok_and(|id| id == c.id)
        })
        .collect();
    let found: Vec<Value> = matches
        .iter()
        .skip((page - 1).saturating_mul(RESULTS_PER_PAGE))
        .take(RESULTS_PER_PAGE)
        .map(|c| state.cw.contact_json(c, true))
        .collect();
    Ok(Json(
        json!({"meta": {"count": matches.len(), "current_page": page}, "payload": found}),
    ))
}

/// `GET /contacts/{id}` — `{"payload": contact}`.
async fn show_contact(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let state = shared.read();
    let contact = state.cw.contact(id).ok_or(ApiError::NotFound)?;
    Ok(Json(
        json!({"payload": state.cw.contact_json(contact, true)}),
    ))
}

/// `POST /contacts` — <https://developers.chatwoot.com/api-reference/contacts/create-contact>.
///
/// Body: `name, identifier, email, phone_number, avatar_url, additional_attributes,
/// custom_attributes, inbox_id, source_id`. Answers 200
/// `{"payload":{"contact":{…, "contact_inboxes":[…]},"contact_inbox":{"inbox":{…}|null,"source_id":…|null}}}`
/// (`app/views/api/v1/accounts/contacts/create.json.jbuilder`). Identifier, email and phone number
/// are unique per account: 422 `{"message":"Identifier has already been taken","attributes":["identifier"]}`.
/// An unknown `inbox_id` is 404 and nothing is created.
async fn create_contact(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let params = body_params(&headers, &body)?;
    let identifier = string(&params, "identifier");
    let email = string(&params, "email").map(|e| e.to_lowercase());
    let phone_number = string(&params, "phone_number");
    let inbox_id = string(&params, "inbox_id").map(|raw| raw.trim().parse::<i64>().unwrap_or(0));
    if inbox_id.is_some_and(|id| shared.read().cw.inbox(id).is_none()) {
        return Err(ApiError::NotFound);
    }
    let source_id = string(&params, "source_id");
    shared.mutate(|s| {
        let cw = &mut s.cw;
        // Checked up front: the real create runs in a transaction, so nothing may be left behind.
        if let (Some(inbox_id), Some(source_id)) = (inbox_id, &source_id)
            && cw.contact_inboxes.iter().any(|ci| ci.inbox_id == inbox_id && &ci.source_id == source_id)
        {
            return Err(ApiError::CouldNotCreate("source_id should be unique".into()));
        }
        let mut errors = Vec::new();
        if identifier.is_some() && cw.contacts.iter().any(|c| c.identifier == identifier) {
            errors.push(("identifier", "Identifier has already been taken".to_owned()));
        }
        if email.is_some() && cw.contacts.iter().any(|c| c.email == email) {
            errors.push(("email", "Email has already been taken".to_owned()));
        }
        if phone_number.is_some() && cw.contacts.iter().any(|c| c.phone_number == phone_number) {
            errors.push(("phone_number", "Phone number has already been taken".to_owned()));
        }
        if !errors.is_empty() {
            return Err(ApiError::RecordInvalid(errors));
        }
        let id = cw.next_id();
        let contact = Contact {
            id,
            name: string(&params, "name").unwrap_or_default(),
            email,
            phone_number,
            identifier,
            additional_attributes: object(&params, "additional_attributes"),
            custom_attributes: object(&params, "custom_attributes"),
            created_at: OffsetDateTime::now_utc(),
            last_activity_at: None,
        };
        cw.contacts.push(contact.clone());
        let contact_inbox = match inbox_id {
            Some(inbox_id) => {
                let link = cw
                    .link_contact(id, inbox_id, source_id)
                    .map_err(|()| ApiError::CouldNotCreate("source_id should be unique".into()))?;
                cw.contact_inbox(link).map(|ci| cw.contact_inbox_json(ci))
            }
            None => None,
        }
        .unwrap_or_else(|| json!({"inbox": null, "source_id": null}));
        Ok(Json(json!({"payload": {"contact": cw.contact_json(&contact, true), "contact_inbox": contact_inbox}})))
    })
}

/// `POST /contacts/{id}/contact_inboxes` —
/// <https://developers.chatwoot.com/api-reference/contacts/create-contact-inbox>.
/// Body `inbox_id` (required), `source_id` (generated when absent). Answers the contact inbox
/// `{"source_id":…,"inbox":{…}}`; unknown inbox: 404 `{"error":"Inbox not found"}`.
async fn create_contact_inbox(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let params = body_params(&headers, &body)?;
    if shared.read().cw.contact(id).is_none() {
        return Err(ApiError::NotFound);
    }
    let inbox_id = integer(&params, "inbox_id")
        .filter(|inbox| shared.read().cw.inbox(*inbox).is_some())
        .ok_or(ApiError::NotFoundMessage("Inbox not found"))?;
    shared.mutate(|s| {
        let link =
            s.cw.link_contact(id, inbox_id, string(&params, "source_id"))
                .map_err(|()| ApiError::CouldNotCreate("source_id should be unique".into()))?;
        let ci = s.cw.contact_inbox(link).ok_or(ApiError::Internal)?;
        Ok(Json(s.cw.contact_inbox_json(ci)))
    })
}

/// `GET /contacts/{id}/conversations` —
/// <https://developers.chatwoot.com/api-reference/contacts/contact-conversations>.
/// `{"payload":[conversation…]}`, most recently active first.
async fn contact_conversations(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let state = shared.read();
    state.cw.contact(id).ok_or(ApiError::NotFound)?;
    let mut conversations: Vec<&Conversation> = state
        .cw
        .conversations
        .iter()
        .filter(|c| c.contact_id == id)
        .collect();
    conversations.sort_by_key(|c| std::cmp::Reverse((c.last_activity_at, c.id)));
    let payload: Vec<Value> = conversations
        .into_iter()
        .map(|c| state.cw.conversation_json(c))
        .collect();
    Ok(Json(json!({ "payload": payload })))
}

/// `POST /conversations` — <https://developers.chatwoot.com/api-reference/conversations/create-new-conversation>.
///
/// Body: `source_id, inbox_id, contact_id, status, additional_attributes, custom_attributes,
/// message{content}`. Like `ConversationsController#create`: with `inbox_id` and `contact_id` the
/// contact inbox for `source_id` is found or created; otherwise it is looked up by `source_id`
/// alone (404 when missing). Answers the conversation (status `open` unless given). `message`
/// becomes the first (outgoing, agent) message.
async fn create_conversation(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let params = body_params(&headers, &body)?;
    let status = string(&params, "status").unwrap_or_else(|| "open".into());
    if !STATUSES.contains(&status.as_str()) {
        return Err(ApiError::Internal); // ArgumentError: 'x' is not a valid status
    }
    // Blank ids are ignored, unknown ones are 404 (`Current.account.inboxes.find`).
    let inbox_id = string(&params, "inbox_id").map(|raw| raw.trim().parse::<i64>().unwrap_or(0));
    if inbox_id.is_some_and(|id| shared.read().cw.inbox(id).is_none()) {
        return Err(ApiError::NotFound);
    }
    let contact_id =
        string(&params, "contact_id").map(|raw| raw.trim().parse::<i64>().unwrap_or(0));
    let source_id = string(&params, "source_id");
    let first_message = params
        .get("message")
        .and_then(Value::as_object)
        .and_then(|m| string(m, "content"));

    let id = shared.mutate(|s| {
        let cw = &mut s.cw;
        if contact_id.is_some_and(|id| cw.contact(id).is_none()) {
            return Err(ApiError::NotFound);
        }
        let contact_inbox_id = match (inbox_id, contact_id) {
            (Some(inbox), Some(contact)) => cw
                .link_contact(contact, inbox, source_id)
                .map_err(|()| ApiError::CouldNotCreate("source_id should be unique".into()))?,
            _ => cw
                .contact_inboxes
                .iter()
                .find(|ci| Some(&ci.source_id) == source_id.as_ref())
                .map(|ci| ci.id)
                .ok_or(ApiError::NotFound)?,
        };
        let (contact_id, inbox_id) = cw
            .contact_inbox(contact_inbox_id)
            .map(|ci| (ci.contact_id, ci.inbox_id))
            .ok_or(ApiError::Internal)?;
        let id = cw.next_id();
        let now = OffsetDateTime::now_utc();
        cw.conversations.push(Conversation {
            id,
            uuid: uuid::Uuid::new_v4().to_string(),
            inbox_id,
            contact_id,
            contact_inbox_id,
            status,
            additional_attributes: object(&params, "additional_attributes"),
            custom_attributes: object(&params, "custom_attributes"),
            created_at: now,
            updated_at: now,
            last_activity_at: now,
            waiting_since: Some(now),
            first_reply_created_at: None,
        });
        Ok(id)
    })?;
    if let Some(content) = first_message {
        let new = NewMessage {
            message_type: 1,
            content: Some(content),
            ..NewMessage::default()
        };
        store_message(&shared, id, new)?;
    }
    let state = shared.read();
    let conversation = state.cw.conversation(id).ok_or(ApiError::Internal)?;
    Ok(Json(state.cw.conversation_json(conversation)))
}

/// `GET /conversations/{id}` — <https://developers.chatwoot.com/api-reference/conversations/conversation-details>.
async fn show_conversation(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let state = shared.read();
    let conversation = state.cw.conversation(id).ok_or(ApiError::NotFound)?;
    Ok(Json(state.cw.conversation_json(conversation)))
}

/// `POST /conversations/{id}/toggle_status` —
/// <https://developers.chatwoot.com/api-reference/conversations/toggle-status>.
/// Body `status` (`open|resolved|pending|snoozed`); without it open and resolved swap. Answers
/// `{"meta":{},"payload":{"success":true,"conversation_id":…,"current_status":…,"snoozed_until":null}}`.
async fn toggle_status(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let params = body_params(&headers, &body)?;
    let requested = string(&params, "status");
    if requested.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(ApiError::Internal);
    }
    shared.mutate(|s| {
        let conversation = s.cw.conversation_mut(id).ok_or(ApiError::NotFound)?;
        conversation.status = requested.unwrap_or_else(|| {
            if conversation.status == "open" { "resolved".into() } else { "open".into() }
        });
        conversation.updated_at = OffsetDateTime::now_utc();
        Ok(Json(json!({
            "meta": {},
            "payload": {
                "success": true, "conversation_id": id, "current_status": conversation.status, "snoozed_until": null,
            },
        })))
    })
}

/// `GET /conversations/{id}/messages` —
/// <https://developers.chatwoot.com/api-reference/messages/get-messages>.
///
/// `{"meta":{labels, additional_attributes, contact, agent_last_seen_at, assignee_last_seen_at},
/// "payload":[message…]}`, oldest first. Paging like `MessageFinder`: the latest 20; `before=id`:
/// the 20 before it; `after=id`: up to 100 after it; both: `after <= id < before`, up to 1000.
async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let state = shared.read();
    let conversation = state.cw.conversation(id).ok_or(ApiError::NotFound)?;
    let number = |key: &str| query.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    let all: Vec<&Message> = state.cw.messages_of(id).collect();
    let page: Vec<&Message> = match (number("after"), number("before")) {
        (Some(after), Some(before)) => all
            .into_iter()
            .filter(|m| m.id >= after && m.id < before)
            .take(1000)
            .collect(),
        (None, Some(before)) => latest(all.into_iter().filter(|m| m.id < before).collect(), 20),
        (Some(after), None) => all.into_iter().filter(|m| m.id > after).take(100).collect(),
        (None, None) => latest(all, 20),
    };
    let contact = state.cw.contact(conversation.contact_id);
    Ok(Json(json!({
        "meta": {
            "labels": [],
            "additional_attributes": conversation.additional_attributes,
            "contact": contact.map(|c| state.cw.contact_json(c, false)),
            "agent_last_seen_at": null,
            "assignee_last_seen_at": null,
        },
        "payload": page.into_iter().map(|m| state.cw.message_json(m)).collect::<Vec<_>>(),
    })))
}

/// `POST /conversations/{id}/messages` —
/// <https://developers.chatwoot.com/api-reference/messages/create-new-message>.
///
/// Body: `content, message_type ("outgoing" default | "incoming" | …), private, content_type
/// ("text" default), content_attributes, source_id`, as JSON, a urlencoded form, or
/// `multipart/form-data` with one `attachments[]` file part per file (see
/// [`files::parse_form`]). Incoming messages come from the conversation's contact, the rest from
/// the agent (`Messages::MessageBuilder`). Answers the message (`message_type` as a number, with
/// `attachments` when it has files). Failures are 422 `{"error": …}` (the controller rescues
/// everything into `render_could_not_create_error`), e.g. `'x' is not a valid message_type`.
///
/// Stricter than the server: blank `content` without files is refused (422
/// `{"error":"Content can't be blank"}`), as the API reference marks `content` required; the real
/// model has no presence validation and would store an empty message. A file above the
/// attachment limit (40 MB) is refused for every inbox, where the server checks it for website
/// widget inboxes only (see [`files::check_sizes`]).
async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let received_at = OffsetDateTime::now_utc();
    authorize(&shared, &headers, &account_id)?;
    let id = path_id(&id)?;
    let (params, uploads) = match files::parse_form(&headers, &body)? {
        Some(form) => form,
        None => (body_params(&headers, &body)?, Vec::new()),
    };
    if shared.read().cw.conversation(id).is_none() {
        return Err(ApiError::NotFound);
    }
    let message_type = string(&params, "message_type").unwrap_or_else(|| "outgoing".into());
    let message_type = MESSAGE_TYPES
        .iter()
        .position(|t| *t == message_type)
        .ok_or_else(|| {
            ApiError::CouldNotCreate(format!("'{message_type}' is not a valid message_type"))
        })?;
    let content_type = string(&params, "content_type").unwrap_or_else(|| "text".into());
    if !CONTENT_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::CouldNotCreate(format!(
            "'{content_type}' is not a valid content_type"
        )));
    }
    let content = string(&params, "content");
    if content.is_none() && uploads.is_empty() {
        return Err(ApiError::CouldNotCreate("Content can't be blank".into()));
    }
    if content
        .as_ref()
        .is_some_and(|c| c.chars().count() > 150_000)
    {
        return Err(ApiError::CouldNotCreate(
            "Validation failed: Content is too long (maximum is 150000 characters)".into(),
        ));
    }
    let new = NewMessage {
        message_type: message_type as i64,
        content,
        private: boolean(&params, "private"),
        content_type,
        content_attributes: files::content_attributes(&params),
        source_id: string(&params, "source_id"),
        received_at: Some(received_at),
        files: uploads,
    };
    let message_id = store_message(&shared, id, new)?;
    let state = shared.read();
    // From the end: it was just stored, and a scan from the front costs O(messages) per call.
    let message = state
        .cw
        .messages
        .iter()
        .rev()
        .find(|m| m.id == message_id)
        .ok_or(ApiError::Internal)?;
    Ok(Json(state.cw.message_json(message)))
}

/// The last `n` of `items`.
fn latest(mut items: Vec<&Message>, n: usize) -> Vec<&Message> {
    items.drain(..items.len().saturating_sub(n));
    items
}

#[derive(Debug)]
struct NewMessage {
    message_type: i64,
    content: Option<String>,
    private: bool,
    content_type: String,
    content_attributes: Value,
    source_id: Option<String>,
    /// When its request arrived; `None`: when it is stored.
    received_at: Option<OffsetDateTime>,
    /// Files to attach, in order.
    files: Vec<files::Upload>,
}

impl Default for NewMessage {
    fn default() -> Self {
        NewMessage {
            message_type: 1,
            content: None,
            private: false,
            content_type: "text".into(),
            content_attributes: json!({}),
            source_id: None,
            received_at: None,
            files: Vec::new(),
        }
    }
}

/// Stores a message the way `Message` callbacks do (a resolved conversation reopens on an incoming
/// message, activity times move), with its files, and fires `message_created` unless it is an
/// activity: to the URL of `Sandbox::set_chatwoot_webhook` and to every registered webhook
/// subscribed to it (`WebhookListener#deliver_account_webhooks`; an inbox webhook only for its
/// inbox). Files above the attachment limit refuse the whole message (422).
fn store_message(
    shared: &Arc<Shared>,
    conversation_id: i64,
    new: NewMessage,
) -> Result<i64, ApiError> {
    files::check_sizes(shared, &new.files)?;
    let frontend_url = files::frontend_url(shared);
    let (id, deliveries) = shared.mutate(|s| {
        let cw = &mut s.cw;
        let conversation = cw.conversation(conversation_id).ok_or(ApiError::NotFound)?;
        let (contact_id, inbox_id) = (conversation.contact_id, conversation.inbox_id);
        let id = cw.next_id();
        let now = OffsetDateTime::now_utc();
        let sender = if new.message_type == 1 {
            Sender::Agent
        } else {
            Sender::Contact(contact_id)
        };
        for upload in new.files {
            let attachment_id = cw.next_id();
            let attachment = files::attachment(&frontend_url, attachment_id, id, upload);
            cw.attachments.push(attachment);
        }
        let message = Message {
            id,
            conversation_id,
            message_type: new.message_type,
            content: new.content,
            private: new.private,
            content_type: new.content_type,
            content_attributes: new.content_attributes,
            source_id: new.source_id,
            sender,
            created_at: now,
            received_at: new.received_at.unwrap_or(now),
        };
        if let Some(conversation) = cw.conversation_mut(conversation_id) {
            if message.message_type == 0 && conversation.status == "resolved" {
                conversation.status = "open".into();
            }
            if message.message_type != 2 {
                conversation.last_activity_at = now;
            }
            if message.message_type == 1
                && !message.private
                && conversation.first_reply_created_at.is_none()
            {
                conversation.first_reply_created_at = Some(now);
            }
            conversation.updated_at = now;
        }
        if message.message_type == 0
            && let Some(contact) = cw.contacts.iter_mut().find(|c| c.id == contact_id)
        {
            contact.last_activity_at = Some(now);
        }
        cw.messages.push(message);
        // webhook_sendable?: incoming, outgoing, template — private notes included.
        let mut deliveries = Vec::new();
        if matches!(new.message_type, 0 | 1 | 3) {
            let message = cw.messages.last().ok_or(ApiError::Internal)?;
            let payload = cw.message_webhook(message, "message_created");
            if let Some(url) = &s.webhook_url {
                deliveries.push((url.clone(), s.webhook_secret.clone(), payload.clone()));
            }
            for webhook in &cw.webhooks {
                if webhook.subscriptions.iter().any(|e| e == "message_created")
                    && webhook.inbox_id.is_none_or(|inbox| inbox == inbox_id)
                {
                    deliveries.push((
                        webhook.url.clone(),
                        Some(webhook.secret.clone()),
                        payload.clone(),
                    ));
                }
            }
        }
        Ok((id, deliveries))
    })?;
    for (url, secret, payload) in deliveries {
        crate::webhook::deliver(
            shared.clone(),
            url,
            secret,
            "message_created",
            Some(id),
            payload,
        );
    }
    Ok(id)
}

/// An agent's reply typed in the UI: an outgoing message (or private note) from the agent.
/// `None` when the conversation does not exist.
pub(crate) fn agent_reply(
    shared: &Arc<Shared>,
    conversation_id: i64,
    content: &str,
    private: bool,
) -> Option<i64> {
    let new = NewMessage {
        message_type: 1,
        content: Some(content.to_owned()),
        private,
        ..NewMessage::default()
    };
    store_message(shared, conversation_id, new).ok()
}
