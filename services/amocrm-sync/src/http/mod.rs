//! Public routes of amocrm-sync.

pub mod oauth;
pub mod status;
pub mod webhook;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

/// The webhook routes (form with the token in the path, JSON with a signature), their health and
/// test answers, and the OAuth redirect.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/webhooks/amo", post(webhook::json))
        .route("/api/webhooks/amo/health", get(status::health))
        .route("/api/webhooks/amo/test", get(status::test))
        .route("/api/webhooks/amo/{token}", post(webhook::form))
        .route("/api/auth/amo/callback", get(oauth::callback))
        .with_state(state)
}

/// Constant-time comparison of two secrets.
pub(crate) fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    // Compare HMACs of both under a fixed key: constant time in the content, and the lengths
    // leak nothing useful since the MACs have equal length.
    let mac = |v: &[u8]| {
        let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"amocrm-sync-compare")
            .expect("any key length");
        m.update(v);
        m
    };
    let tag = mac(a).finalize().into_bytes();
    mac(b).verify_slice(&tag).is_ok()
}
