//! Public routes of telegram-bot: in webhook mode `POST {WEBHOOK_PATH}` (default
//! `/telegram/webhook`); in polling mode none (the runtime adds /health, /ready, /metrics).

pub mod webhook;

use axum::Router;
use axum::routing::post;

use crate::AppState;

/// The webhook route when in webhook mode, else nothing.
pub fn router(state: AppState) -> Router {
    match state.settings.webhook() {
        Some(w) => {
            let path = w.path.clone();
            Router::new()
                .route(&path, post(webhook::handle))
                .with_state(state)
        }
        None => Router::new(),
    }
}
