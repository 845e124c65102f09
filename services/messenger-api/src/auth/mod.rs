//! Authentication: password hashes, tokens, and the [`AuthUser`] extractor.
//!
//! A request is authenticated by `Authorization: Bearer <access token>`. On the hub
//! (`/hubs/…`) and file downloads (`/api/files/…`) the token is also accepted as the
//! `access_token` query parameter, because browsers can set no header on a WebSocket upgrade
//! or an `<audio src>`.
//!
//! The token says who the caller is, not what they may do: its `role` claim lives as long as
//! the token (and a hub connection longer), so every permission an administrator has beyond a
//! user's is checked with [`current_role`], against the database.

pub mod password;
pub mod tokens;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub use tokens::{AuthUser, Role};

use crate::AppState;
use crate::error::ApiError;

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::Unauthorized("missing access token (Authorization: Bearer …)".into())
        })?;
        state
            .tokens
            .verify(&token)
            .ok_or_else(|| ApiError::Unauthorized("access token is invalid or expired".into()))
    }
}

/// The caller's role now, from the database; `None` when the account no longer exists (deleted
/// since the token was issued). One primary-key lookup.
///
/// Errors: the database failed (500).
pub async fn current_role(state: &AppState, user: &AuthUser) -> Result<Option<Role>, ApiError> {
    Ok(state
        .store
        .user_role(user.id)
        .await?
        .map(|r| Role::parse(&r)))
}

/// The caller's access token: the Bearer header, or `access_token` where browsers need it.
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim().to_owned());
        }
    }
    let path = parts.uri.path();
    if path.starts_with("/hubs/") || path.starts_with("/api/files/") {
        return query_param(parts.uri.query()?, "access_token");
    }
    None
}

/// One query parameter, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    url_decode_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("id=abc&access_token=a%2Eb%2Bc.d", "access_token").as_deref(),
            Some("a.b+c.d")
        );
        assert_eq!(query_param("x=1", "access_token"), None);
        assert_eq!(query_param("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(query_param("a=50%", "a").as_deref(), Some("50%"));
    }
}
