//! `/api/admin/*` (role `Admin`): users and invite codes.

use axum::extract::State;
use axum::http::StatusCode;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::dto::{CreateInviteRequest, ErrorBody, InviteDto, UserDto, UsersQuery};
use crate::AppState;
use crate::auth::tokens::{Role, random_code};
use crate::auth::{AuthUser, current_role};
use crate::error::{ApiError, Json, Path, Query};

/// The caller must be an administrator now, not only when its access token was issued: a
/// deleted account gets 401, a demoted one 403. (A token that does not claim `Admin` is refused
/// without a lookup: the claim may deny, never grant.)
async fn require_admin(state: &AppState, user: &AuthUser) -> Result<(), ApiError> {
    if user.claimed_role != Role::Admin {
        return Err(ApiError::Forbidden("administrators only".into()));
    }
    match current_role(state, user).await? {
        None => Err(ApiError::Unauthorized(
            "the account no longer exists".into(),
        )),
        Some(Role::Admin) => Ok(()),
        Some(Role::User) => Err(ApiError::Forbidden("administrators only".into())),
    }
}

/// Every user, oldest first.
#[utoipa::path(
    get,
    path = "/api/admin/users",
    tag = "admin",
    params(UsersQuery),
    responses(
        (status = 200, description = "users", body = [UserDto]),
        (status = 400, description = "limit outside 1..=500 or negative offset", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 403, description = "not an administrator", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn users(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<UsersQuery>,
) -> Result<Json<Vec<UserDto>>, ApiError> {
    require_admin(&state, &user).await?;
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=500).contains(&limit) || offset < 0 {
        return Err(ApiError::bad_request(
            "limit must be 1 to 500 and offset not negative",
        ));
    }
    let rows = state.store.list_users(limit, offset).await?;
    Ok(Json(rows.into_iter().map(UserDto::from).collect()))
}

/// Delete a user: their sessions end (hub connections are closed), their memberships go,
/// their messages stay without an author.
#[utoipa::path(
    delete,
    path = "/api/admin/users/{id}",
    tag = "admin",
    params(("id" = Uuid, Path, description = "user id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 403, description = "not an administrator", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 409, description = "administrators cannot delete themselves", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    require_admin(&state, &user).await?;
    if id == user.id {
        return Err(ApiError::Conflict(
            "administrators cannot delete their own account".into(),
        ));
    }
    if state.store.delete_user(id).await?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    state.hub.user_removed(id).await;
    tracing::info!(admin = %user.id, deleted = %id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Create an invite code.
#[utoipa::path(
    post,
    path = "/api/admin/invites",
    tag = "admin",
    request_body(content = CreateInviteRequest, description = "optional"),
    responses(
        (status = 201, description = "the new code", body = InviteDto),
        (status = 400, description = "maxUses or expiresInHours out of range", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 403, description = "not an administrator", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_invite(
    State(state): State<AppState>,
    user: AuthUser,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<InviteDto>), ApiError> {
    require_admin(&state, &user).await?;
    let req: CreateInviteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateInviteRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let invite = create_invite_code(
        &state.store,
        req.max_uses.unwrap_or(1),
        req.expires_in_hours.unwrap_or(72),
        Some(user.id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

/// Creates one code (shared with `messenger-api invite create`).
pub async fn create_invite_code(
    store: &crate::store::Store,
    max_uses: i32,
    expires_in_hours: i64,
    created_by: Option<Uuid>,
) -> Result<InviteDto, ApiError> {
    if !(1..=10_000).contains(&max_uses) {
        return Err(ApiError::bad_request("maxUses must be 1 to 10000"));
    }
    if !(1..=24 * 366).contains(&expires_in_hours) {
        return Err(ApiError::bad_request(
            "expiresInHours must be 1 to 8784 (a year)",
        ));
    }
    let code = random_code(12)?;
    let expires = OffsetDateTime::now_utc() + Duration::hours(expires_in_hours);
    let row = store
        .create_invite(&code, max_uses, expires, created_by)
        .await?;
    Ok(row.into())
}
