//! `GET /api/webhooks/amo/health` and `GET /api/webhooks/amo/test`, with the bodies of the
//! existing deployment (monitoring and amoCRM integration checks read them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use service_kit::http::now_rfc3339;

use crate::AppState;

/// Every `<section>.<action>` the webhook routes turn into events.
pub const SUPPORTED_EVENTS: &[&str] = &[
    "leads.add",
    "leads.update",
    "leads.delete",
    "contacts.add",
    "contacts.update",
    "leads.status",
    "leads.responsible",
    "leads.restore",
    "contacts.delete",
    "contacts.responsible",
    "contacts.restore",
];

/// `{"status":"healthy","timestamp":"…","database":"connected","webhook_endpoint":"active"}`, or
/// 503 with `"status":"unhealthy","database":"disconnected"` when Postgres does not answer.
pub async fn health(State(state): State<AppState>) -> Response {
    let db = service_kit::db::ping(state.store.pool()).await;
    let (code, status, database) = match &db {
        Ok(()) => (StatusCode::OK, "healthy", "connected"),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "health: database down");
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy", "disconnected")
        }
    };
    (
        code,
        Json(json!({
            "status": status,
            "timestamp": now_rfc3339(),
            "database": database,
            "webhook_endpoint": "active",
        })),
    )
        .into_response()
}

/// The supported events list.
pub async fn test() -> Json<serde_json::Value> {
    Json(json!({
        "status": "success",
        "message": "Webhook endpoint is working",
        "timestamp": now_rfc3339(),
        "endpoint": "/api/webhooks/amo",
        "supported_events": SUPPORTED_EVENTS,
    }))
}
