//! Public routes of amocrm-sync.

pub mod oauth;
pub mod status;
pub mod webhook;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

/// The webhook routes (amoCRM's form with the token in the path; the earlier deployment's JSON
/// with a signature, 404 unless `AMOCRM_LEGACY_JSON_WEBHOOK=true`), their health and test
/// answers, and the OAuth redirect.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/webhooks/amo", post(webhook::json))
        .route("/api/webhooks/amo/health", get(status::health))
        .route("/api/webhooks/amo/test", get(status::test))
        .route("/api/webhooks/amo/{token}", post(webhook::form))
        .route("/api/auth/amo/callback", get(oauth::callback))
        .with_state(state)
}
