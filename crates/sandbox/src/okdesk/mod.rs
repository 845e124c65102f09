//! The Okdesk fake, `{url}/okdesk/api/v1/…` standing in for `https://<account>.okdesk.ru/api/v1`
//! (API reference <https://okdesk.ru/apidoc>; what each shape rests on is in
//! `docs/okdesk-api.md`):
//!
//! * every request needs `?api_token=` = [`SandboxOptions::okdesk_api_token`](crate::SandboxOptions);
//!   otherwise 401 `{"errors":"Неверный ключ авторизации (api_token)"}`;
//! * `GET /companies/list?custom_parameters[<code>]=<value>&name=…` — companies whose INN
//!   attribute (code [`SandboxOptions::okdesk_inn_parameter_code`](crate::SandboxOptions),
//!   default `inn`) equals the value; filters on other codes are ignored, as a filter Okdesk
//!   does not know would be. A contact person's key
//!   ([`Sandbox::okdesk_deny_company_search`]) gets 403 `{"errors":"Доступ запрещен"}`;
//! * `GET /contacts/?phone=…|email=…|id=…` — one contact object (phone compared exactly with
//!   `phone` and `mobile_phone`; a `+` sent unencoded arrives as a space and matches nothing),
//!   `{}` when none; `POST /contacts/` `{"contact":{first_name,last_name,…}}` (unwrapped bodies
//!   are taken too, as Rails does); `GET /contacts/{id}`;
//! * `POST /issues/` `{"issue":{title,description,contact_id,company_id,type,priority}}` — ids
//!   from 1, status `opened`, type `service` and priority `normal` by default, the company taken
//!   from the contact when not given; answers the issue as `GET /issues/{id}` renders it and
//!   fires `new_ticket`;
//! * `GET /issues/{id}` (404 when unknown), `GET /issues/count?contact_ids[]=…&company_ids[]=…
//!   &status[]=…` (ids, newest first), `GET /issues/statuses`;
//! * `GET|POST /issues/{id}/comments` — JSON `{"comment":{content,author_id,author_type,public}}`
//!   or `multipart/form-data` with `comment[attachments][i][attachment]` files; the author must
//!   exist (a contact, or employee [`EMPLOYEE_ID`]); fires `new_comment`;
//! * `POST /issues/{id}/statuses` `{code, comment?, comment_public?, delay_to?, skip_options?}` —
//!   422 for an unknown code, the current status, or `delayed` without `delay_to`; fires
//!   `new_ticket_status` unless `skip_options` holds `skip_webhooks`.
//!
//! Webhooks go to [`Sandbox::okdesk_set_webhook`]'s URL as `{"event":{…},"issue":{…}}` with ids
//! as strings, in order, unsigned; a non-2xx answer or no answer is retried (50 ms doubling to
//! 1 s) up to [`WEBHOOK_ATTEMPTS`] times. Errors are `{"errors":…}` with HTTP 4xx; failures
//! are injected with `fail_next(Target::Okdesk, …)`.

mod control;
mod webhook;

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

use crate::multipart;
use crate::{Sandbox, Shared};

pub(crate) use control::router as control_router;
pub(crate) use webhook::spawn as spawn_webhook_sender;

/// The API key's employee, who is also the engineer acting in the UI
/// ([`Sandbox::okdesk_change_status`], [`Sandbox::okdesk_add_comment`]).
pub const EMPLOYEE_ID: i64 = 1;
const EMPLOYEE: (&str, &str, &str) = ("Сергей", "Иванов", "Петрович");

/// How often a webhook delivery is tried before the fake gives up on it.
pub const WEBHOOK_ATTEMPTS: u32 = 10;

/// The account's statuses: code, name, colour.
pub const STATUSES: [(&str, &str, &str); 5] = [
    ("opened", "Открыта", "#5bc0de"),
    ("in_progress", "В работе", "#337ab7"),
    ("delayed", "Отложена", "#777777"),
    ("completed", "Решена", "#5cb85c"),
    ("closed", "Закрыта", "#333333"),
];
const TYPES: [(&str, &str); 2] = [("service", "Обслуживание"), ("incident", "Инцидент")];
const PRIORITIES: [(&str, &str); 3] = [
    ("low", "Низкий"),
    ("normal", "Обычный"),
    ("high", "Высокий"),
];

/// One webhook delivery attempt that finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OkdeskWebhookDelivery {
    /// Where it was posted.
    pub url: String,
    /// `new_ticket`, `new_comment`, `new_ticket_status`.
    pub event_type: String,
    /// The issue it is about.
    pub issue_id: i64,
    /// 1 for the first try.
    pub attempt: u32,
    /// The receiver's status; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why it failed (non-2xx, connection refused, timeout); `None` when delivered.
    pub error: Option<String>,
    /// The exact body sent.
    pub body: String,
}

/// A file stored with a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkdeskAttachment {
    /// The attachment id.
    pub id: i64,
    /// The file name.
    pub file_name: String,
    /// The content type it was sent with.
    pub mime: String,
    /// The content.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Author {
    Employee(i64),
    Contact(i64),
}

#[derive(Debug, Clone)]
struct CompanyRec {
    id: i64,
    name: String,
    inn: Option<String>,
    created_at: String,
}

#[derive(Debug, Clone)]
struct ContactRec {
    id: i64,
    first_name: String,
    last_name: String,
    patronymic: Option<String>,
    phone: Option<String>,
    mobile_phone: Option<String>,
    email: Option<String>,
    company_id: Option<i64>,
    comment: Option<String>,
    created_at: String,
}

#[derive(Debug, Clone)]
struct IssueRec {
    id: i64,
    title: String,
    description: String,
    status: String,
    old_status: Option<String>,
    type_code: String,
    priority: String,
    company_id: Option<i64>,
    contact_id: Option<i64>,
    author: Author,
    created_at: String,
    updated_at: String,
    completed_at: Option<String>,
    delayed_to: Option<String>,
}

#[derive(Debug, Clone)]
struct CommentRec {
    id: i64,
    issue_id: i64,
    content: String,
    public: bool,
    author: Author,
    published_at: String,
    attachments: Vec<i64>,
}

#[derive(Debug, Clone)]
struct AttachmentRec {
    file: OkdeskAttachment,
    is_public: bool,
    created_at: String,
}

/// A webhook waiting to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct WebhookJob {
    pub(crate) url: String,
    pub(crate) event_type: String,
    pub(crate) issue_id: i64,
    pub(crate) body: String,
    pub(crate) attempts: u32,
}

/// What the Okdesk fake remembers.
#[derive(Debug, Default)]
pub(crate) struct OkdeskState {
    companies: Vec<CompanyRec>,
    contacts: Vec<ContactRec>,
    issues: Vec<IssueRec>,
    comments: Vec<CommentRec>,
    attachments: Vec<AttachmentRec>,
    last_id: LastIds,
    deny_company_search: bool,
    webhook_url: Option<String>,
    pub(crate) queue: VecDeque<WebhookJob>,
    pub(crate) deliveries: Vec<OkdeskWebhookDelivery>,
}

#[derive(Debug, Default)]
struct LastIds {
    company: i64,
    contact: i64,
    issue: i64,
    comment: i64,
    attachment: i64,
}

/// `2024-05-12T09:58:01.123+03:00`: Okdesk's timestamps, in the account's zone (Moscow here).
fn now() -> String {
    let t = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+3));
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+03:00"
    ))
    .unwrap_or_default()
}

fn status_name(code: &str) -> &'static str {
    STATUSES.iter().find(|s| s.0 == code).map_or("", |s| s.1)
}

fn code_name(table: &[(&str, &str)], code: &str) -> Value {
    let name = table.iter().find(|t| t.0 == code).map_or("", |t| t.1);
    json!({"code": code, "name": name})
}

fn status_json(code: &str) -> Value {
    json!({"code": code, "name": status_name(code)})
}

fn full_name(last: &str, first: &str, patronymic: Option<&str>) -> String {
    [last, first, patronymic.unwrap_or_default()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn employee_name() -> String {
    full_name(EMPLOYEE.1, EMPLOYEE.0, Some(EMPLOYEE.2))
}

impl OkdeskState {
    fn contact(&self, id: i64) -> Option<&ContactRec> {
        self.contacts.iter().find(|c| c.id == id)
    }

    fn company(&self, id: i64) -> Option<&CompanyRec> {
        self.companies.iter().find(|c| c.id == id)
    }

    fn issue(&self, id: i64) -> Option<&IssueRec> {
        self.issues.iter().find(|i| i.id == id)
    }

    fn author_exists(&self, author: Author) -> bool {
        match author {
            Author::Employee(id) => id == EMPLOYEE_ID,
            Author::Contact(id) => self.contact(id).is_some(),
        }
    }

    fn company_json(&self, c: &CompanyRec, inn_code: &str) -> Value {
        let parameters: Vec<Value> = c
            .inn
            .iter()
            .map(|inn| json!({"code": inn_code, "name": "ИНН", "field_type": "ftstring", "value": inn}))
            .collect();
        json!({
            "id": c.id,
            "name": c.name,
            "additional_name": null,
            "site": null,
            "email": null,
            "phone": null,
            "crm_1c_id": null,
            "active": true,
            "address": null,
            "coordinates": null,
            "comment": null,
            "observers": [],
            "contacts": self.contacts.iter().filter(|p| p.company_id == Some(c.id))
                .map(|p| json!({"id": p.id, "name": full_name(&p.last_name, &p.first_name, p.patronymic.as_deref())}))
                .collect::<Vec<_>>(),
            "default_assignee": null,
            "category": null,
            "attachments": [],
            "parameters": parameters,
            "created_at": c.created_at,
        })
    }

    fn contact_json(&self, c: &ContactRec) -> Value {
        json!({
            "id": c.id,
            "name": full_name(&c.last_name, &c.first_name, c.patronymic.as_deref()),
            "first_name": c.first_name,
            "last_name": c.last_name,
            "patronymic": c.patronymic.clone().unwrap_or_default(),
            "position": "",
            "email": c.email,
            "phone": c.phone.clone().unwrap_or_default(),
            "mobile_phone": c.mobile_phone.clone().unwrap_or_default(),
            "comment": c.comment.clone().unwrap_or_default(),
            "company_id": c.company_id,
            "active": true,
            "login": null,
            "parameters": [],
            "created_at": c.created_at,
        })
    }

    /// `{"id","name","type"}` as the API shows authors.
    fn author_json(&self, a: Author) -> Value {
        match a {
            Author::Employee(id) => json!({"id": id, "name": employee_name(), "type": "employee"}),
            Author::Contact(id) => {
                let name = self
                    .contact(id)
                    .map(|c| full_name(&c.last_name, &c.first_name, c.patronymic.as_deref()))
                    .unwrap_or_default();
                json!({"id": id, "name": name, "type": "contact"})
            }
        }
    }

    /// `{"id":"…","first_name","last_name","patronymic","type"}` as webhooks show people.
    fn webhook_person(&self, a: Author) -> Value {
        match a {
            Author::Employee(id) => json!({
                "id": id.to_string(), "first_name": EMPLOYEE.0, "last_name": EMPLOYEE.1,
                "patronymic": EMPLOYEE.2, "type": "employee",
            }),
            Author::Contact(id) => {
                let c = self.contact(id);
                json!({
                    "id": id.to_string(),
                    "first_name": c.map(|c| c.first_name.clone()),
                    "last_name": c.map(|c| c.last_name.clone()),
                    "patronymic": c.and_then(|c| c.patronymic.clone()).unwrap_or_default(),
                    "type": "contact",
                })
            }
        }
    }

    fn attachment_json(&self, id: i64) -> Option<Value> {
        let a = self.attachments.iter().find(|a| a.file.id == id)?;
        Some(json!({
            "id": a.file.id,
            "attachment_file_name": a.file.file_name,
            "description": "",
            "attachment_file_size": a.file.bytes.len(),
            "is_public": a.is_public,
            "created_at": a.created_at,
        }))
    }

    fn issue_json(&self, i: &IssueRec) -> Value {
        let comments: Vec<&CommentRec> = self
            .comments
            .iter()
            .filter(|c| c.issue_id == i.id)
            .collect();
        json!({
            "id": i.id,
            "title": i.title,
            "description": i.description,
            "created_at": i.created_at,
            "completed_at": i.completed_at,
            "deadline_at": null,
            "source": match i.author { Author::Contact(_) => "from_contact", Author::Employee(_) => "from_employee" },
            "spent_time_total": 0,
            "start_execution_until": null,
            "planned_execution_in_hours": null,
            "planned_reaction_at": null,
            "reacted_at": null,
            "updated_at": i.updated_at,
            "delayed_to": i.delayed_to,
            "company_id": i.company_id,
            "group_id": null,
            "coexecutors": [],
            "service_object_id": null,
            "equipment_ids": [],
            "attachments": [],
            "parameters": [],
            "comments": {"count": comments.len(), "last_at": comments.last().map(|c| c.published_at.clone())},
            "parent_id": null,
            "child_ids": [],
            "type": code_name(&TYPES, &i.type_code),
            "priority": code_name(&PRIORITIES, &i.priority),
            "status": status_json(&i.status),
            "old_status": i.old_status.as_deref().map(status_json),
            "rate": null,
            "observers": [],
            "observer_groups": [],
            "contact": i.contact_id.map(|id| {
                let name = self.contact(id).map(|c| full_name(&c.last_name, &c.first_name, c.patronymic.as_deref()));
                json!({"id": id, "name": name})
            }),
            "agreement": null,
            "assignee": null,
            "author": self.author_json(i.author),
        })
    }

    /// The `issue` block of a webhook: ids as strings, the client as `client.{company,contact}`.
    fn webhook_issue_json(&self, i: &IssueRec) -> Value {
        json!({
            "id": i.id.to_string(),
            "title": i.title,
            "description": i.description,
            "type": {"code": i.type_code, "name": code_name(&TYPES, &i.type_code)["name"], "inner": false},
            "priority": code_name(&PRIORITIES, &i.priority),
            "status": status_json(&i.status),
            "old_status": i.old_status.as_deref().map(status_json),
            "rate": null,
            "client": {
                "company": i.company_id.and_then(|id| self.company(id)).map(|c| json!({"id": c.id.to_string(), "name": c.name})),
                "contact": i.contact_id.and_then(|id| self.contact(id)).map(|c| json!({
                    "id": c.id.to_string(), "first_name": c.first_name, "last_name": c.last_name,
                    "patronymic": c.patronymic.clone().unwrap_or_default(),
                })),
            },
            "author": self.webhook_person(i.author),
            "assignee": {"group": null, "employee": null},
            "coexecutors": [],
            "observers": {"employees": [], "contacts": [], "groups": []},
            "created_at": i.created_at,
            "deadline_at": null,
            "completed_at": i.completed_at,
            "parameters": [],
            "attachments": [],
        })
    }

    fn comment_json(&self, c: &CommentRec) -> Value {
        json!({
            "id": c.id,
            "content": c.content,
            "public": c.public,
            "published_at": c.published_at,
            "attachments": c.attachments.iter().filter_map(|a| self.attachment_json(*a)).collect::<Vec<_>>(),
            "author": self.author_json(c.author),
        })
    }

    /// Queues a webhook (when one is set). Returns whether something was queued.
    fn fire(&mut self, event_type: &str, issue_id: i64, event: Value) -> bool {
        let Some(url) = self.webhook_url.clone() else {
            return false;
        };
        let Some(issue) = self.issue(issue_id) else {
            return false;
        };
        let mut event = event;
        event["event_type"] = json!(event_type);
        let body = json!({"event": event, "issue": self.webhook_issue_json(issue)});
        self.queue.push_back(WebhookJob {
            url,
            event_type: event_type.to_owned(),
            issue_id,
            body: body.to_string(),
            attempts: 0,
        });
        true
    }

    fn add_comment(
        &mut self,
        issue_id: i64,
        content: String,
        public: bool,
        author: Author,
        files: Vec<(String, String, Vec<u8>)>,
    ) -> i64 {
        let created_at = now();
        let mut attachment_ids = Vec::new();
        for (file_name, mime, bytes) in files {
            self.last_id.attachment += 1;
            let id = self.last_id.attachment;
            attachment_ids.push(id);
            self.attachments.push(AttachmentRec {
                file: OkdeskAttachment {
                    id,
                    file_name,
                    mime,
                    bytes,
                },
                is_public: public,
                created_at: created_at.clone(),
            });
        }
        self.last_id.comment += 1;
        let id = self.last_id.comment;
        self.comments.push(CommentRec {
            id,
            issue_id,
            content,
            public,
            author,
            published_at: created_at.clone(),
            attachments: attachment_ids,
        });
        if let Some(issue) = self.issues.iter_mut().find(|i| i.id == issue_id) {
            issue.updated_at = created_at;
        }
        id
    }

    fn comment_event(&self, comment_id: i64) -> Value {
        let Some(c) = self.comments.iter().find(|c| c.id == comment_id) else {
            return json!({});
        };
        json!({
            "author": self.webhook_person(c.author),
            "comment": {"id": c.id.to_string(), "is_public": c.public, "content": c.content},
            "attachments": c.attachments.iter().filter_map(|a| {
                let mut v = self.attachment_json(*a)?;
                v["id"] = json!(a.to_string());
                v["attachment_file_size"] = json!(v["attachment_file_size"].to_string());
                Some(v)
            }).collect::<Vec<_>>(),
        })
    }

    /// Changes the status; `Err` = a 422 `errors` object.
    fn change_status(
        &mut self,
        issue_id: i64,
        code: &str,
        delay_to: Option<String>,
        author: Author,
        comment: Option<(String, bool)>,
        fire: bool,
    ) -> Result<bool, Value> {
        if !STATUSES.iter().any(|s| s.0 == code) {
            return Err(json!({"code": ["имеет неверное значение"]}));
        }
        let Some(issue) = self.issues.iter_mut().find(|i| i.id == issue_id) else {
            return Err(json!({"issue_id": ["Заявка не найдена"]}));
        };
        if issue.status == code {
            return Err(json!({"code": ["Заявка уже находится в этом статусе"]}));
        }
        if code == "delayed" && delay_to.is_none() {
            return Err(json!({"delay_to": ["не может быть пустым"]}));
        }
        let old = std::mem::replace(&mut issue.status, code.to_owned());
        issue.old_status = Some(old.clone());
        let at = now();
        issue.updated_at = at.clone();
        issue.delayed_to = if code == "delayed" { delay_to } else { None };
        if code == "completed" || code == "closed" {
            issue.completed_at.get_or_insert(at);
        } else {
            issue.completed_at = None;
        }
        let comment_id = comment
            .filter(|(text, _)| !text.is_empty())
            .map(|(text, public)| self.add_comment(issue_id, text, public, author, Vec::new()));
        if !fire {
            return Ok(false);
        }
        let mut event = json!({
            "author": self.webhook_person(author),
            "old_status": status_json(&old),
            "new_status": status_json(code),
            "comment": null,
            "attachments": [],
            "parameters": [],
            "time_entries": null,
            "old_assignee": null,
            "new_assignee": null,
        });
        if let Some(id) = comment_id {
            event["comment"] = self.comment_event(id)["comment"].clone();
        }
        Ok(self.fire("new_ticket_status", issue_id, event))
    }
}

// ---------------------------------------------------------------- HTTP

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/companies/list", get(companies_list))
        .route("/api/v1/contacts", get(find_contact).post(create_contact))
        .route("/api/v1/contacts/", get(find_contact).post(create_contact))
        .route("/api/v1/contacts/{id}", get(contact_by_id))
        .route("/api/v1/issues", post(create_issue))
        .route("/api/v1/issues/", post(create_issue))
        .route("/api/v1/issues/count", get(issues_count))
        .route("/api/v1/issues/statuses", get(statuses))
        .route("/api/v1/issues/statuses/", get(statuses))
        .route("/api/v1/issues/{id}", get(issue_by_id))
        .route(
            "/api/v1/issues/{id}/comments",
            get(list_comments).post(create_comment),
        )
        .route("/api/v1/issues/{id}/statuses", post(change_status))
}

fn errors(status: StatusCode, errors: Value) -> Response {
    (status, Json(json!({ "errors": errors }))).into_response()
}

/// An error answer, `{"errors": …}` with this status (small, unlike a `Response`).
struct Reject(StatusCode, Value);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        errors(self.0, self.1)
    }
}

fn unprocessable(e: Value) -> Response {
    errors(StatusCode::UNPROCESSABLE_ENTITY, e)
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `Err` = the 401 to answer.
fn authorize(shared: &Shared, pairs: &[(String, String)]) -> Result<(), Reject> {
    let token = pairs
        .iter()
        .find(|(k, _)| k == "api_token")
        .map(|(_, v)| v.as_str());
    if token.is_some_and(|t| t == shared.opts.okdesk_api_token) {
        Ok(())
    } else {
        Err(Reject(
            StatusCode::UNAUTHORIZED,
            json!("Неверный ключ авторизации (api_token)"),
        ))
    }
}

macro_rules! authorized {
    ($shared:expr, $query:expr) => {{
        let pairs = query_pairs($query.as_deref());
        if let Err(reject) = authorize(&$shared, &pairs) {
            return reject.into_response();
        }
        pairs
    }};
}

/// A JSON body, unwrapped from `{"<root>":{…}}` when wrapped.
fn json_body(body: &Bytes, root: &str) -> Result<Value, Reject> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| Reject(StatusCode::BAD_REQUEST, json!("Неверный формат JSON")))?;
    Ok(match v.get(root) {
        Some(inner @ Value::Object(_)) => inner.clone(),
        _ => v,
    })
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id_of(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(matches!(s.as_str(), "true" | "1")),
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        _ => None,
    }
}

async fn companies_list(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let pairs = authorized!(shared, q);
    let state = shared.read();
    let st = &state.okdesk;
    if st.deny_company_search {
        return errors(StatusCode::FORBIDDEN, json!("Доступ запрещен"));
    }
    let code = &shared.opts.okdesk_inn_parameter_code;
    let mut inn_filter = None;
    let mut name_filter = None;
    let mut size = 50usize;
    for (k, v) in &pairs {
        if let Some(param) = k
            .strip_prefix("custom_parameters[")
            .and_then(|r| r.strip_suffix(']'))
            && param == code
        {
            inn_filter = Some(v.clone());
        } else if k == "name" {
            name_filter = Some(v.clone());
        } else if k == "page[size]" {
            match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => size = n,
                _ => {
                    return unprocessable(
                        json!({"page": {"size": ["должно быть меньше или равно 100"]}}),
                    );
                }
            }
        }
    }
    let list: Vec<Value> = st
        .companies
        .iter()
        .filter(|c| {
            inn_filter
                .as_ref()
                .is_none_or(|inn| c.inn.as_ref() == Some(inn))
        })
        .filter(|c| name_filter.as_ref().is_none_or(|n| &c.name == n))
        .take(size)
        .map(|c| st.company_json(c, code))
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn find_contact(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let pairs = authorized!(shared, q);
    let state = shared.read();
    let st = &state.okdesk;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let found = st.contacts.iter().find(|c| {
        if let Some(phone) = get("phone") {
            return c.phone.as_deref() == Some(phone) || c.mobile_phone.as_deref() == Some(phone);
        }
        if let Some(email) = get("email") {
            return c
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email));
        }
        if let Some(id) = get("id") {
            return id.parse() == Ok(c.id);
        }
        false
    });
    match found {
        Some(c) => Json(st.contact_json(c)).into_response(),
        None => Json(json!({})).into_response(),
    }
}

async fn contact_by_id(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    RawQuery(q): RawQuery,
) -> Response {
    let _ = authorized!(shared, q);
    let state = shared.read();
    match state.okdesk.contact(id) {
        Some(c) => Json(state.okdesk.contact_json(c)).into_response(),
        None => errors(StatusCode::NOT_FOUND, json!("Контактное лицо не найдено")),
    }
}

async fn create_contact(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let _ = authorized!(shared, q);
    let b = match json_body(&body, "contact") {
        Ok(b) => b,
        Err(reject) => return reject.into_response(),
    };
    let mut problems = serde_json::Map::new();
    let first_name = text(&b, "first_name");
    let last_name = text(&b, "last_name");
    if first_name.is_none() {
        problems.insert("first_name".into(), json!(["не может быть пустым"]));
    }
    if last_name.is_none() {
        problems.insert("last_name".into(), json!(["не может быть пустым"]));
    }
    let company_id = id_of(&b, "company_id");
    let answer = shared.mutate(|s| {
        let st = &mut s.okdesk;
        if company_id.is_some_and(|id| st.company(id).is_none()) {
            problems.insert("company_id".into(), json!(["Компания не найдена"]));
        }
        if !problems.is_empty() {
            return Err(Value::Object(problems));
        }
        st.last_id.contact += 1;
        let contact = ContactRec {
            id: st.last_id.contact,
            first_name: first_name.unwrap_or_default(),
            last_name: last_name.unwrap_or_default(),
            patronymic: text(&b, "patronymic"),
            phone: text(&b, "phone"),
            mobile_phone: text(&b, "mobile_phone"),
            email: text(&b, "email"),
            company_id,
            comment: text(&b, "comment"),
            created_at: now(),
        };
        let json = st.contact_json(&contact);
        st.contacts.push(contact);
        Ok(json)
    });
    match answer {
        Ok(json) => Json(json).into_response(),
        Err(e) => unprocessable(e),
    }
}

async fn create_issue(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let _ = authorized!(shared, q);
    let b = match json_body(&body, "issue") {
        Ok(b) => b,
        Err(reject) => return reject.into_response(),
    };
    let answer = shared.mutate(|s| {
        let st = &mut s.okdesk;
        let mut problems = serde_json::Map::new();
        let title = text(&b, "title");
        if title.is_none() {
            problems.insert("title".into(), json!(["не может быть пустым"]));
        }
        let contact_id = id_of(&b, "contact_id");
        if contact_id.is_some_and(|id| st.contact(id).is_none()) {
            problems.insert("contact_id".into(), json!(["Контактное лицо не найдено"]));
        }
        let mut company_id = id_of(&b, "company_id");
        if company_id.is_some_and(|id| st.company(id).is_none()) {
            problems.insert("company_id".into(), json!(["Компания не найдена"]));
        }
        let type_code = text(&b, "type").unwrap_or_else(|| "service".into());
        if !TYPES.iter().any(|t| t.0 == type_code) {
            problems.insert("type".into(), json!(["имеет неверное значение"]));
        }
        let priority = text(&b, "priority").unwrap_or_else(|| "normal".into());
        if !PRIORITIES.iter().any(|p| p.0 == priority) {
            problems.insert("priority".into(), json!(["имеет неверное значение"]));
        }
        if !problems.is_empty() {
            return Err(Value::Object(problems));
        }
        if company_id.is_none() {
            company_id = contact_id
                .and_then(|id| st.contact(id))
                .and_then(|c| c.company_id);
        }
        st.last_id.issue += 1;
        let at = now();
        let issue = IssueRec {
            id: st.last_id.issue,
            title: title.unwrap_or_default(),
            description: text(&b, "description").unwrap_or_default(),
            status: "opened".into(),
            old_status: None,
            type_code,
            priority,
            company_id,
            contact_id,
            author: Author::Employee(EMPLOYEE_ID),
            created_at: at.clone(),
            updated_at: at,
            completed_at: None,
            delayed_to: None,
        };
        let id = issue.id;
        st.issues.push(issue);
        let fired = st.fire("new_ticket", id, json!({"source": "from_employee"}));
        let json = st.issue(id).map(|i| st.issue_json(i)).unwrap_or_default();
        Ok((json, fired))
    });
    match answer {
        Ok((json, fired)) => {
            if fired {
                webhook::wake(&shared);
            }
            Json(json).into_response()
        }
        Err(e) => unprocessable(e),
    }
}

async fn issue_by_id(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    RawQuery(q): RawQuery,
) -> Response {
    let _ = authorized!(shared, q);
    let state = shared.read();
    match state.okdesk.issue(id) {
        Some(i) => Json(state.okdesk.issue_json(i)).into_response(),
        None => errors(StatusCode::NOT_FOUND, json!("Заявка не найдена")),
    }
}

async fn issues_count(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let pairs = authorized!(shared, q);
    let values = |key: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == key || *k == format!("{key}[]"))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let ids_of = |key: &str| -> Vec<Option<i64>> {
        values(key)
            .iter()
            .map(|v| v.parse::<i64>().ok().filter(|id| *id != 0))
            .collect()
    };
    let contact_ids = ids_of("contact_ids");
    let company_ids = ids_of("company_ids");
    let statuses = values("status");
    let state = shared.read();
    let mut ids: Vec<i64> = state
        .okdesk
        .issues
        .iter()
        .filter(|i| contact_ids.is_empty() || contact_ids.contains(&i.contact_id))
        .filter(|i| company_ids.is_empty() || company_ids.contains(&i.company_id))
        .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
        .map(|i| i.id)
        .collect();
    ids.reverse();
    Json(ids).into_response()
}

async fn statuses(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let _ = authorized!(shared, q);
    let list: Vec<Value> = STATUSES
        .iter()
        .enumerate()
        .map(|(i, (code, name, color))| json!({"id": i + 1, "code": code, "name": name, "color": color}))
        .collect();
    Json(list).into_response()
}

async fn list_comments(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    RawQuery(q): RawQuery,
) -> Response {
    let _ = authorized!(shared, q);
    let state = shared.read();
    let st = &state.okdesk;
    if st.issue(id).is_none() {
        return errors(StatusCode::NOT_FOUND, json!("Заявка не найдена"));
    }
    let list: Vec<Value> = st
        .comments
        .iter()
        .filter(|c| c.issue_id == id)
        .map(|c| st.comment_json(c))
        .collect();
    Json(list).into_response()
}

/// The fields of a comment request, JSON or multipart.
struct CommentForm {
    fields: Value,
    files: Vec<(String, String, Vec<u8>)>,
}

fn comment_form(headers: &HeaderMap, body: &Bytes) -> Result<CommentForm, Reject> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = multipart::boundary(content_type) else {
        return Ok(CommentForm {
            fields: json_body(body, "comment")?,
            files: Vec::new(),
        });
    };
    let parts = multipart::parse(&boundary, body)
        .ok_or_else(|| Reject(StatusCode::BAD_REQUEST, json!("Неверный формат multipart")))?;
    let mut fields = serde_json::Map::new();
    let mut files = Vec::new();
    for part in parts {
        let Some(key) = part
            .name
            .strip_prefix("comment[")
            .map(|k| k.strip_suffix(']').unwrap_or(k).to_owned())
        else {
            continue;
        };
        // `comment[attachments][0][attachment]` → key `attachments][0][attachment`.
        if key.starts_with("attachments]") && key.ends_with("[attachment") {
            if let Some(file_name) = part.file_name {
                files.push((
                    file_name,
                    part.content_type
                        .unwrap_or_else(|| "application/octet-stream".into()),
                    part.data,
                ));
            }
            continue;
        }
        if part.file_name.is_none() {
            fields.insert(key, json!(String::from_utf8_lossy(&part.data)));
        }
    }
    Ok(CommentForm {
        fields: Value::Object(fields),
        files,
    })
}

async fn create_comment(
    State(shared): State<Arc<Shared>>,
    Path(issue_id): Path<i64>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = authorized!(shared, q);
    let form = match comment_form(&headers, &body) {
        Ok(form) => form,
        Err(reject) => return reject.into_response(),
    };
    let b = form.fields;
    let answer = shared.mutate(|s| {
        let st = &mut s.okdesk;
        if st.issue(issue_id).is_none() {
            return Err(Reject(StatusCode::NOT_FOUND, json!("Заявка не найдена")));
        }
        let mut problems = serde_json::Map::new();
        let content = text(&b, "content");
        if content.is_none() {
            problems.insert("content".into(), json!(["не может быть пустым"]));
        }
        let author = match (id_of(&b, "author_id"), text(&b, "author_type").as_deref()) {
            (None, _) => {
                problems.insert("author_id".into(), json!(["не может быть пустым"]));
                None
            }
            (Some(id), Some("contact")) => Some(Author::Contact(id)),
            (Some(id), None | Some("employee")) => Some(Author::Employee(id)),
            (Some(_), Some(_)) => {
                problems.insert("author_type".into(), json!(["имеет неверное значение"]));
                None
            }
        };
        if let Some(a) = author
            && !st.author_exists(a)
        {
            problems.insert("author_id".into(), json!(["Пользователь не найден"]));
        }
        let (Some(content), Some(author), true) = (content, author, problems.is_empty()) else {
            return Err(Reject(
                StatusCode::UNPROCESSABLE_ENTITY,
                Value::Object(problems),
            ));
        };
        let public = flag(&b, "public").unwrap_or(false);
        let id = st.add_comment(issue_id, content, public, author, form.files);
        let event = st.comment_event(id);
        let fired = st.fire("new_comment", issue_id, event);
        let json = st
            .comments
            .iter()
            .find(|c| c.id == id)
            .map(|c| st.comment_json(c))
            .unwrap_or_default();
        Ok((json, fired))
    });
    match answer {
        Ok((json, fired)) => {
            if fired {
                webhook::wake(&shared);
            }
            Json(json).into_response()
        }
        Err(reject) => reject.into_response(),
    }
}

async fn change_status(
    State(shared): State<Arc<Shared>>,
    Path(issue_id): Path<i64>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let _ = authorized!(shared, q);
    let b = match json_body(&body, "status") {
        Ok(b) => b,
        Err(reject) => return reject.into_response(),
    };
    let Some(code) = text(&b, "code") else {
        return unprocessable(json!({"code": ["не может быть пустым"]}));
    };
    let skip_webhooks = b
        .get("skip_options")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|x| x == "skip_webhooks"));
    let comment = text(&b, "comment").map(|c| (c, flag(&b, "comment_public").unwrap_or(false)));
    let answer = shared.mutate(|s| {
        let st = &mut s.okdesk;
        if st.issue(issue_id).is_none() {
            return Err(Reject(StatusCode::NOT_FOUND, json!("Заявка не найдена")));
        }
        let fired = st
            .change_status(
                issue_id,
                &code,
                text(&b, "delay_to"),
                Author::Employee(EMPLOYEE_ID),
                comment,
                !skip_webhooks,
            )
            .map_err(|e| Reject(StatusCode::UNPROCESSABLE_ENTITY, e))?;
        let json = st
            .issue(issue_id)
            .map(|i| st.issue_json(i))
            .unwrap_or_default();
        Ok((json, fired))
    });
    match answer {
        Ok((json, fired)) => {
            if fired {
                webhook::wake(&shared);
            }
            Json(json).into_response()
        }
        Err(reject) => reject.into_response(),
    }
}

// ---------------------------------------------------------------- the Okdesk UI, for tests

/// What the UI helpers do, shared by [`Sandbox`] and the control API.
pub(crate) fn ui_change_status(
    shared: &Shared,
    issue_id: i64,
    code: &str,
) -> Result<Value, String> {
    let answer = shared.mutate(|s| {
        let st = &mut s.okdesk;
        if st.issue(issue_id).is_none() {
            return Err(format!("no Okdesk issue {issue_id}"));
        }
        let delay_to = (code == "delayed").then(now);
        let fired = st
            .change_status(
                issue_id,
                code,
                delay_to,
                Author::Employee(EMPLOYEE_ID),
                None,
                true,
            )
            .map_err(|e| e.to_string())?;
        let json = st
            .issue(issue_id)
            .map(|i| st.issue_json(i))
            .unwrap_or_default();
        Ok((json, fired))
    });
    let (json, fired) = answer?;
    if fired {
        webhook::wake(shared);
    }
    Ok(json)
}

pub(crate) fn ui_add_comment(
    shared: &Shared,
    issue_id: i64,
    text: &str,
    public: bool,
) -> Result<i64, String> {
    // The UI's editor wraps text in a paragraph and breaks lines with <br>.
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "<br>");
    let content = format!("<p>{escaped}</p>");
    let answer = shared.mutate(|s| {
        let st = &mut s.okdesk;
        if st.issue(issue_id).is_none() {
            return Err(format!("no Okdesk issue {issue_id}"));
        }
        let id = st.add_comment(
            issue_id,
            content,
            public,
            Author::Employee(EMPLOYEE_ID),
            Vec::new(),
        );
        let event = st.comment_event(id);
        let fired = st.fire("new_comment", issue_id, event);
        Ok((id, fired))
    });
    let (id, fired) = answer?;
    if fired {
        webhook::wake(shared);
    }
    Ok(id)
}

pub(crate) fn add_company(shared: &Shared, name: &str, inn: &str) -> i64 {
    shared.mutate(|s| {
        let st = &mut s.okdesk;
        st.last_id.company += 1;
        let id = st.last_id.company;
        st.companies.push(CompanyRec {
            id,
            name: name.to_owned(),
            inn: (!inn.is_empty()).then(|| inn.to_owned()),
            created_at: now(),
        });
        id
    })
}

impl Sandbox {
    /// `{url}/okdesk/api/v1`: the fake account's `OKDESK_API_URL` (issue links are
    /// `{url}/okdesk/issues/{id}`).
    pub fn okdesk_api_url(&self) -> String {
        format!("{}/okdesk/api/v1", self.url())
    }

    /// Where Okdesk posts webhooks (`None`: nowhere, the default). Events from before are not
    /// sent.
    pub fn okdesk_set_webhook(&self, url: Option<String>) {
        self.shared.mutate(|s| s.okdesk.webhook_url = url);
    }

    /// Adds a company whose INN attribute is `inn` (empty: none); returns its id.
    pub fn okdesk_add_company(&self, name: &str, inn: &str) -> i64 {
        add_company(&self.shared, name, inn)
    }

    /// `true`: the API key behaves as a contact person's key, which may not use the companies
    /// methods (403).
    pub fn okdesk_deny_company_search(&self, deny: bool) {
        self.shared.mutate(|s| s.okdesk.deny_company_search = deny);
    }

    /// An engineer moves the issue to status `code` in the UI (a `delayed` one until now);
    /// fires `new_ticket_status`. Returns the issue as the API renders it.
    ///
    /// # Panics
    /// When the issue does not exist, the code is unknown, or the issue is in that status
    /// already: a bug in the test.
    pub fn okdesk_change_status(&self, issue_id: i64, code: &str) -> Value {
        ui_change_status(&self.shared, issue_id, code)
            .unwrap_or_else(|e| panic!("sandbox: Okdesk status change: {e}"))
    }

    /// An engineer writes a comment in the UI (`public: false` is an internal note); the text
    /// is stored as the editor does, `<p>…</p>` with `<br>` line breaks; fires `new_comment`.
    /// Returns the comment id.
    ///
    /// # Panics
    /// When the issue does not exist.
    pub fn okdesk_add_comment(&self, issue_id: i64, text: &str, public: bool) -> i64 {
        ui_add_comment(&self.shared, issue_id, text, public)
            .unwrap_or_else(|e| panic!("sandbox: Okdesk comment: {e}"))
    }

    /// Issues as `GET /issues/{id}` renders them, oldest first.
    pub fn okdesk_issues(&self) -> Vec<Value> {
        let state = self.shared.read();
        state
            .okdesk
            .issues
            .iter()
            .map(|i| state.okdesk.issue_json(i))
            .collect()
    }

    /// The issue's comments as `GET /issues/{id}/comments` renders them (empty for an unknown
    /// issue).
    pub fn okdesk_comments(&self, issue_id: i64) -> Vec<Value> {
        let state = self.shared.read();
        let st = &state.okdesk;
        st.comments
            .iter()
            .filter(|c| c.issue_id == issue_id)
            .map(|c| st.comment_json(c))
            .collect()
    }

    /// Contacts as `GET /contacts/{id}` renders them.
    pub fn okdesk_contacts(&self) -> Vec<Value> {
        let state = self.shared.read();
        state
            .okdesk
            .contacts
            .iter()
            .map(|c| state.okdesk.contact_json(c))
            .collect()
    }

    /// Companies as `GET /companies/list` renders them.
    pub fn okdesk_companies(&self) -> Vec<Value> {
        let state = self.shared.read();
        let code = &self.shared.opts.okdesk_inn_parameter_code;
        state
            .okdesk
            .companies
            .iter()
            .map(|c| state.okdesk.company_json(c, code))
            .collect()
    }

    /// A file stored with a comment.
    pub fn okdesk_attachment(&self, attachment_id: i64) -> Option<OkdeskAttachment> {
        self.shared
            .read()
            .okdesk
            .attachments
            .iter()
            .find(|a| a.file.id == attachment_id)
            .map(|a| a.file.clone())
    }

    /// Every finished webhook delivery attempt, in order.
    pub fn okdesk_webhook_deliveries(&self) -> Vec<OkdeskWebhookDelivery> {
        self.shared.read().okdesk.deliveries.clone()
    }
}
