//! Public routes of okdesk-bridge: `POST /okdesk/webhook/{OKDESK_WEBHOOK_TOKEN}`.

pub mod webhook;

use axum::Router;
use axum::routing::post;

use crate::AppState;

/// `POST /okdesk/webhook/{token}`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/okdesk/webhook/{token}", post(webhook::handle))
        .with_state(state)
}
