//! `/api/auth/*`: register with an invite code, log in, refresh with rotation and reuse
//! detection, log out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::dto::{
    AuthResponse, ErrorBody, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, UserDto,
};
use crate::AppState;
use crate::auth::password::Verified;
use crate::auth::tokens::{self, AuthUser, Role};
use crate::error::{ApiError, Json};
use crate::phone::Phone;
use crate::ratelimit::client_ip;
use crate::store::{RegisterError, RotateOutcome, UserRow};

const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 128;
const MAX_NAME: usize = 64;

/// Checks registration fields; all problems at once in `details`.
fn validate_register(req: &RegisterRequest) -> Result<(Phone, String), ApiError> {
    let mut details = serde_json::Map::new();
    let phone = Phone::parse(&req.phone);
    if let Err(e) = &phone {
        details.insert("phone".into(), json!(e.to_string()));
    }
    let pw = req.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&pw) {
        details.insert(
            "password".into(),
            json!(format!(
                "must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            )),
        );
    }
    let name = req.display_name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        details.insert(
            "displayName".into(),
            json!(format!("must be 1 to {MAX_NAME} characters")),
        );
    }
    if req.invite_code.trim().is_empty() {
        details.insert("inviteCode".into(), json!("required"));
    }
    match phone {
        Ok(p) if details.is_empty() => Ok((p, name)),
        _ => Err(ApiError::invalid(
            "registration data is invalid",
            serde_json::Value::Object(details),
        )),
    }
}

/// Register with an invite code; answers with tokens, like login.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "registered and logged in", body = AuthResponse),
        (status = 400, description = "invalid fields, or the invite code is unknown, expired or used up", body = ErrorBody),
        (status = 409, description = "phone number already registered", body = ErrorBody),
        (status = 429, description = "too many registrations from this address (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    let ip = client_ip(Some(peer), &headers);
    if let Err(retry_after_secs) = state.login_limits.check_register(ip) {
        metrics::counter!("auth_registrations_rejected_total", "reason" => "rate_limited")
            .increment(1);
        return Err(ApiError::TooManyRequests {
            reason: "too many attempts".into(),
            retry_after_secs,
        });
    }
    let (phone, name) = validate_register(&req)?;
    let invite_error = |e: RegisterError| match e {
        RegisterError::PhoneTaken => ApiError::Conflict(e.to_string()),
        RegisterError::Db(db) => db.into(),
        other => ApiError::invalid(
            other.to_string(),
            json!({ "inviteCode": other.to_string() }),
        ),
    };
    // A cheap look at the invite before the expensive hash: without a usable code nobody gets
    // to spend the server's memory and CPU. (`register` checks it again, atomically.)
    state
        .store
        .check_invite(req.invite_code.trim())
        .await
        .map_err(invite_error)?;
    let hash = hash_password(&state, req.password.clone()).await?;
    let user = state
        .store
        .register(
            Uuid::now_v7(),
            phone.as_str(),
            &name,
            &hash,
            req.invite_code.trim(),
        )
        .await
        .map_err(invite_error)?;
    tracing::info!(user = %user.id, "user registered");
    metrics::counter!("auth_registrations_total").increment(1);
    Ok((StatusCode::CREATED, Json(issue(&state, user, None).await?)))
}

/// Log in with phone and password. Limited per phone number and per client IP.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in", body = AuthResponse),
        (status = 400, description = "missing fields", body = ErrorBody),
        (status = 401, description = "wrong phone or password", body = ErrorBody),
        (status = 429, description = "too many attempts (Retry-After says when to retry)", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    if req.phone.trim().is_empty() || req.password.is_empty() {
        return Err(ApiError::bad_request("phone and password are required"));
    }
    let phone_key = Phone::parse(&req.phone)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| req.phone.trim().to_owned());
    let ip = client_ip(Some(peer), &headers);
    if let Err(retry_after_secs) = state.login_limits.check(&phone_key, ip) {
        metrics::counter!("auth_logins_total", "outcome" => "rate_limited").increment(1);
        return Err(ApiError::TooManyRequests {
            reason: "too many attempts".into(),
            retry_after_secs,
        });
    }
    let wrong = || ApiError::Unauthorized("invalid phone or password".into());
    let user = state.store.user_by_phone(&phone_key).await?;
    let Some(user) = user else {
        // Spend comparable time so that unknown phones are not told apart by timing.
        let _ = hash_password(&state, req.password.clone()).await;
        metrics::counter!("auth_logins_total", "outcome" => "failed").increment(1);
        return Err(wrong());
    };
    let verified = state
        .password_work
        .verify(req.password.clone(), user.password_hash.clone())
        .await
        .map_err(ApiError::Unexpected)?;
    match verified {
        Verified::Wrong => {
            metrics::counter!("auth_logins_total", "outcome" => "failed").increment(1);
            return Err(wrong());
        }
        Verified::OkRehashed(new_hash) => {
            state.store.set_password_hash(user.id, &new_hash).await?;
            tracing::info!(user = %user.id, "imported password hash upgraded to argon2id");
        }
        Verified::Ok => {}
    }
    metrics::counter!("auth_logins_total", "outcome" => "ok").increment(1);
    Ok(Json(issue(&state, user, None).await?))
}

/// Exchange a refresh token for new tokens. Each refresh token works once; presenting a spent
/// one revokes every token of that login (it was stolen, or replayed).
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "new tokens", body = AuthResponse),
        (status = 400, description = "missing refreshToken", body = ErrorBody),
        (status = 401, description = "unknown, expired, revoked or reused refresh token", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    if req.refresh_token.trim().is_empty() {
        return Err(ApiError::bad_request("refreshToken is required"));
    }
    let old = tokens::hash_refresh_token(req.refresh_token.trim());
    let (token, new_hash) = tokens::new_refresh_token()?;
    let expires = refresh_expiry(&state);
    match state
        .store
        .rotate_refresh_token(&old, &new_hash, expires)
        .await?
    {
        RotateOutcome::Rotated(user) => {
            let access = state.tokens.issue(&auth_user(&user))?;
            Ok(Json(AuthResponse {
                access_token: access.token,
                refresh_token: token,
                token_type: "Bearer".into(),
                expires_in: access.expires_in,
                user: user.into(),
            }))
        }
        RotateOutcome::Reused => {
            tracing::warn!("refresh token reused; its whole family is revoked");
            metrics::counter!("auth_refresh_reuse_total").increment(1);
            Err(ApiError::Unauthorized(
                "refresh token was already used; all sessions of this login are revoked".into(),
            ))
        }
        RotateOutcome::Invalid => Err(ApiError::Unauthorized(
            "refresh token is invalid or expired".into(),
        )),
    }
}

/// Log out: revokes this device's refresh token family, or every session without a body.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    request_body(content = LogoutRequest, description = "optional"),
    responses(
        (status = 204, description = "logged out"),
        (status = 401, description = "no valid access token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional: none (or `{}`) logs out everywhere.
    let req: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    match req.refresh_token {
        Some(t) if !t.trim().is_empty() => {
            state
                .store
                .revoke_family_of(user.id, &tokens::hash_refresh_token(t.trim()))
                .await?;
        }
        _ => state.store.revoke_all_refresh_tokens(user.id).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "the caller", body = UserDto),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "the account was deleted", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<UserDto>, ApiError> {
    let row = state
        .store
        .user_by_id(user.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(row.into()))
}

/// The caller identity for a stored user: id, display name, phone and role.
pub fn auth_user(u: &UserRow) -> AuthUser {
    AuthUser {
        id: u.id,
        name: u.display_name.clone(),
        phone: u.phone.clone(),
        claimed_role: Role::parse(&u.role),
    }
}

fn refresh_expiry(state: &AppState) -> OffsetDateTime {
    OffsetDateTime::now_utc() + state.tokens.refresh_ttl()
}

/// Access and refresh token for `user`; a new refresh family unless `family` is given.
async fn issue(
    state: &AppState,
    user: UserRow,
    family: Option<Uuid>,
) -> Result<AuthResponse, ApiError> {
    let access = state.tokens.issue(&auth_user(&user))?;
    let (refresh, hash) = tokens::new_refresh_token()?;
    state
        .store
        .insert_refresh_token(
            user.id,
            family.unwrap_or_else(Uuid::now_v7),
            &hash,
            refresh_expiry(state),
        )
        .await?;
    Ok(AuthResponse {
        access_token: access.token,
        refresh_token: refresh,
        token_type: "Bearer".into(),
        expires_in: access.expires_in,
        user: user.into(),
    })
}

/// argon2id on a blocking thread, bounded by [`AppState::password_work`].
pub async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    state
        .password_work
        .hash(password)
        .await
        .map_err(ApiError::Unexpected)
}
