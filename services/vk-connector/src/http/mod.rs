//! Public routes of vk-connector.

pub mod callback;
pub mod chatwoot;

use axum::Router;
use axum::routing::post;

use crate::AppState;

/// `POST /vk/callback/{id}` and `POST /chatwoot/webhook/{id}`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/vk/callback/{callback_id}", post(callback::handle))
        .route("/chatwoot/webhook/{webhook_id}", post(chatwoot::handle))
        .with_state(state)
}
