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

/// Constant-time comparison of two secrets.
pub(crate) fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    // Compare HMACs of both under a fixed key: constant time in the content, and lengths
    // leak nothing useful since the MACs have equal length.
    let mac = |v: &[u8]| {
        let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"vk-connector-compare")
            .expect("any key length");
        m.update(v);
        m
    };
    let tag = mac(a).finalize().into_bytes();
    mac(b).verify_slice(&tag).is_ok()
}
