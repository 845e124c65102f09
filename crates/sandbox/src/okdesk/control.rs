//! `/_sandbox/okdesk/…`: the Okdesk UI for the demo scripts (listed in [`crate::control`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/okdesk/companies", get(companies).post(add_company))
        .route("/okdesk/contacts", get(contacts))
        .route("/okdesk/issues", get(issues))
        .route(
            "/okdesk/issues/{id}/comments",
            get(comments).post(add_comment),
        )
        .route("/okdesk/issues/{id}/status", post(change_status))
        .route("/okdesk/webhook", post(set_webhook))
        .route("/okdesk/webhooks", get(deliveries))
        .route("/okdesk/deny_company_search", post(deny_company_search))
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn companies(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.read();
    let code = &shared.opts.okdesk_inn_parameter_code;
    Json(
        state
            .okdesk
            .companies
            .iter()
            .map(|c| state.okdesk.company_json(c, code))
            .collect(),
    )
}

#[derive(Deserialize)]
struct NewCompany {
    name: String,
    #[serde(default)]
    inn: String,
}

async fn add_company(State(shared): State<Arc<Shared>>, Json(c): Json<NewCompany>) -> Json<Value> {
    Json(json!({ "id": super::add_company(&shared, &c.name, &c.inn) }))
}

async fn contacts(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.read();
    Json(
        state
            .okdesk
            .contacts
            .iter()
            .map(|c| state.okdesk.contact_json(c))
            .collect(),
    )
}

async fn issues(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.read();
    Json(
        state
            .okdesk
            .issues
            .iter()
            .map(|i| state.okdesk.issue_json(i))
            .collect(),
    )
}

async fn comments(State(shared): State<Arc<Shared>>, Path(id): Path<i64>) -> Json<Value> {
    let state = shared.read();
    let st = &state.okdesk;
    Json(
        st.comments
            .iter()
            .filter(|c| c.issue_id == id)
            .map(|c| st.comment_json(c))
            .collect(),
    )
}

#[derive(Deserialize)]
struct UiComment {
    text: String,
    #[serde(default = "yes")]
    public: bool,
}

fn yes() -> bool {
    true
}

async fn add_comment(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Json(c): Json<UiComment>,
) -> Response {
    match super::ui_add_comment(&shared, id, &c.text, c.public) {
        Ok(comment_id) => Json(json!({ "id": comment_id })).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Deserialize)]
struct UiStatus {
    code: String,
}

async fn change_status(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Json(s): Json<UiStatus>,
) -> Response {
    match super::ui_change_status(&shared, id, &s.code) {
        Ok(issue) => Json(issue).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Deserialize)]
struct Webhook {
    url: Option<String>,
}

async fn set_webhook(State(shared): State<Arc<Shared>>, Json(w): Json<Webhook>) -> StatusCode {
    shared.mutate(|s| s.okdesk.webhook_url = w.url);
    StatusCode::NO_CONTENT
}

async fn deliveries(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read().okdesk.deliveries))
}

#[derive(Deserialize)]
struct Deny {
    deny: bool,
}

async fn deny_company_search(State(shared): State<Arc<Shared>>, Json(d): Json<Deny>) -> StatusCode {
    shared.mutate(|s| s.okdesk.deny_company_search = d.deny);
    StatusCode::NO_CONTENT
}
