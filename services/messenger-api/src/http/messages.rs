//! `/api/messages*` and `/api/files/{id}`: pages of a chat's messages, sending text (with an
//! idempotency key), deleting, voice messages (multipart upload, stored on the files volume)
//! and member-only downloads with Range support.

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use uuid::Uuid;

use super::dto::{ErrorBody, MessageDto, MessagePage, PageQuery, SendMessageRequest};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, Json, Path, Query};
use crate::messaging;
use crate::store::{InsertOutcome, NewMessage};

/// A chat's messages, newest first; page backwards with `before`.
#[utoipa::path(
    get,
    path = "/api/messages/{id}",
    tag = "messages",
    params(("id" = Uuid, Path, description = "chat id"), PageQuery),
    responses(
        (status = 200, description = "one page, newest first", body = MessagePage),
        (status = 400, description = "limit outside 1..=100 or a bad cursor", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "no such chat, or the caller is not a member", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn page(
    State(state): State<AppState>,
    user: AuthUser,
    Path(chat_id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "limit must be between 1 and 100",
            json!({ "limit": limit }),
        ));
    }
    if q.before.is_some_and(|b| b <= 0) {
        return Err(ApiError::invalid(
            "before must be a positive message id",
            json!({ "before": q.before }),
        ));
    }
    if state
        .store
        .chat_for_member(chat_id, user.id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("chat"));
    }
    // One more than asked tells whether there is an older page.
    let mut rows = state
        .store
        .messages_page(chat_id, q.before, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|m| m.id)
    } else {
        None
    };
    Ok(Json(MessagePage {
        items: rows.into_iter().map(MessageDto::from).collect(),
        next_before,
    }))
}

/// Send a text message. With an idempotency key (`clientMessageId` or the `Idempotency-Key`
/// header) a retried send stores one message: the retry gets the first one, with 200.
#[utoipa::path(
    post,
    path = "/api/messages",
    tag = "messages",
    request_body = SendMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "alternative to clientMessageId")),
    responses(
        (status = 201, description = "stored and pushed to the chat", body = MessageDto),
        (status = 200, description = "a retry: the message stored the first time", body = MessageDto),
        (status = 400, description = "empty or too long text", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "no such chat, or the caller is not a member", body = ErrorBody),
        (status = 409, description = "the idempotency key was used for a different message", body = ErrorBody),
        (status = 429, description = "the sender's message limit is used up (Retry-After says when to retry)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(req): Json<SendMessageRequest>,
) -> Result<(StatusCode, Json<MessageDto>), ApiError> {
    let header_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let key = req.client_message_id.clone().or(header_key);
    let (msg, created) =
        messaging::post_text(&state, &user, req.chat_id, &req.text, key.as_deref()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(msg)))
}

/// Delete a message: its author, or an admin. Pushes `MessageDeleted` to the chat.
#[utoipa::path(
    delete,
    path = "/api/messages/{id}",
    tag = "messages",
    params(("id" = i64, Path, description = "message id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 403, description = "a member who is neither the author nor an admin", body = ErrorBody),
        (status = 404, description = "no such message (for the caller)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    messaging::delete_message(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The multipart form of a voice message.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AudioForm {
    /// The chat (UUID).
    #[schema(value_type = String, format = Uuid)]
    chat_id: String,
    /// The recording: an `audio/*` type (audio/ogg, audio/webm, audio/mpeg, audio/mp4, …).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Duration in milliseconds.
    duration_ms: Option<i32>,
    /// Idempotency key.
    client_message_id: Option<String>,
}

/// Upload a voice message (multipart: `chatId`, `file`, optional `durationMs`,
/// `clientMessageId`). Stored on the files volume; pushed like a text message.
#[utoipa::path(
    post,
    path = "/api/messages/audio",
    tag = "messages",
    request_body(content = AudioForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "stored and pushed to the chat", body = MessageDto),
        (status = 200, description = "a retry with the same clientMessageId", body = MessageDto),
        (status = 400, description = "missing chatId or file", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "no such chat, or the caller is not a member", body = ErrorBody),
        (status = 413, description = "larger than MESSENGER_MAX_AUDIO_BYTES", body = ErrorBody),
        (status = 415, description = "not multipart, or the file is not audio", body = ErrorBody),
        (status = 429, description = "the sender's message limit is used up (Retry-After says when to retry)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload_audio(
    State(state): State<AppState>,
    user: AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<MessageDto>), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("expected multipart/form-data: {}", e.body_text()))
    })?;
    // Before the body is read: a limited sender writes nothing to the files volume.
    state.user_limits.check_send(user.id)?;
    let file_id = Uuid::now_v7();
    let result = receive_audio(&state, &user, &mut multipart, file_id).await;
    if result.is_err() {
        state.files.remove(file_id).await;
    }
    result
}

struct Upload {
    content_type: String,
    size: i64,
    name: Option<String>,
}

async fn receive_audio(
    state: &AppState,
    user: &AuthUser,
    multipart: &mut Multipart,
    file_id: Uuid,
) -> Result<(StatusCode, Json<MessageDto>), ApiError> {
    let mut chat_id: Option<Uuid> = None;
    let mut duration_ms: Option<i32> = None;
    let mut client_id: Option<String> = None;
    let mut upload: Option<Upload> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "chatId" => {
                let v = field.text().await.map_err(multipart_error)?;
                chat_id = Some(Uuid::parse_str(v.trim()).map_err(|_| {
                    ApiError::invalid("chatId is not a UUID", json!({ "chatId": v }))
                })?);
            }
            "durationMs" => {
                let v = field.text().await.map_err(multipart_error)?;
                duration_ms = Some(v.trim().parse().map_err(|_| {
                    ApiError::invalid(
                        "durationMs must be a whole number",
                        json!({ "durationMs": v }),
                    )
                })?);
            }
            "clientMessageId" => client_id = Some(field.text().await.map_err(multipart_error)?),
            "file" | "audio" => {
                if upload.is_some() {
                    return Err(ApiError::bad_request("only one file per message"));
                }
                upload = Some(save_audio(state, field, file_id).await?);
            }
            _ => {} // unknown fields are ignored
        }
    }
    let chat_id = chat_id
        .ok_or_else(|| ApiError::invalid("chatId is required", json!({ "chatId": "required" })))?;
    let upload = upload
        .ok_or_else(|| ApiError::invalid("the file is required", json!({ "file": "required" })))?;
    let client_id = messaging::check_client_id(client_id.as_deref())?;
    if state
        .store
        .chat_for_member(chat_id, user.id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("chat"));
    }
    state
        .files
        .commit(file_id)
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::Error::new(e).context("storing the upload")))?;
    state
        .store
        .insert_file(
            file_id,
            chat_id,
            user.id,
            &upload.content_type,
            upload.size,
            upload.name.as_deref(),
        )
        .await?;
    let outcome = state
        .store
        .insert_message(&NewMessage {
            chat_id,
            sender_id: user.id,
            sender_name: &user.name,
            kind: "audio",
            text: None,
            file_id: Some(file_id),
            duration_ms,
            client_message_id: client_id,
        })
        .await?;
    match outcome {
        InsertOutcome::Created(row) => Ok((
            StatusCode::CREATED,
            Json(messaging::posted(state, row).await),
        )),
        InsertOutcome::Existing(row) => {
            // A retry: keep the first upload, drop this one.
            state.store.delete_file_row(file_id).await?;
            state.files.remove(file_id).await;
            if row.chat_id != chat_id || row.kind != "audio" {
                return Err(ApiError::Conflict(
                    "this clientMessageId was already used for a different message".into(),
                ));
            }
            Ok((StatusCode::OK, Json(row.into())))
        }
        InsertOutcome::NotMember => {
            state.store.delete_file_row(file_id).await?;
            Err(ApiError::NotFound("chat"))
        }
    }
}

/// Is this an audio type we keep? (`audio/*`, and Ogg/WebM containers some recorders label
/// generically.)
pub fn is_audio(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("audio/") || essence == "application/ogg" || essence == "video/webm"
}

async fn save_audio(
    state: &AppState,
    mut field: Field<'_>,
    file_id: Uuid,
) -> Result<Upload, ApiError> {
    let content_type = field.content_type().unwrap_or_default().to_owned();
    if !is_audio(&content_type) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the file must be audio (audio/*), not `{}`",
            if content_type.is_empty() {
                "unspecified"
            } else {
                &content_type
            }
        )));
    }
    let name = field.file_name().map(|n| n.chars().take(200).collect());
    let path = state.files.partial_path(file_id);
    let mut out = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::Error::new(e).context("creating the upload")))?;
    let max = state.settings.max_audio_bytes;
    let mut size = 0usize;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len();
        if size > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "a voice message may be at most {max} bytes"
            )));
        }
        out.write_all(&chunk).await.map_err(|e| {
            ApiError::Unexpected(anyhow::Error::new(e).context("writing the upload"))
        })?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::Error::new(e).context("writing the upload")))?;
    if size == 0 {
        return Err(ApiError::invalid(
            "the file is empty",
            json!({ "file": "empty" }),
        ));
    }
    Ok(Upload {
        content_type,
        size: size as i64,
        name,
    })
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the upload is too large".into())
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// Download a file of a chat the caller is a member of. Supports `Range` (audio players seek
/// with it); the token may come as `access_token` for `<audio src>`.
#[utoipa::path(
    get,
    path = "/api/files/{id}",
    tag = "messages",
    params(("id" = Uuid, Path, description = "file id")),
    responses(
        (status = 200, description = "the file", content_type = "audio/*"),
        (status = 206, description = "the requested range"),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "no such file, or the caller is not a member of its chat", body = ErrorBody),
        (status = 416, description = "range not satisfiable"),
    ),
    security(("bearer" = []))
)]
pub async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    req: Request,
) -> Result<Response, ApiError> {
    let file = state
        .store
        .file_for_member(id, user.id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    let res = ServeFile::new(state.files.path(file.id))
        .oneshot(req)
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::Error::new(e).context("serving a file")))?;
    if res.status() == StatusCode::NOT_FOUND {
        tracing::warn!(file = %file.id, "file row without bytes on the files volume");
        return Err(ApiError::NotFound("file"));
    }
    let mut res = res.map(Body::new).into_response();
    let h = res.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&file.content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::is_audio;

    #[test]
    fn audio_types() {
        for t in [
            "audio/ogg",
            "audio/webm;codecs=opus",
            "AUDIO/MPEG",
            "application/ogg",
        ] {
            assert!(is_audio(t), "{t}");
        }
        for t in ["", "image/png", "text/plain", "application/octet-stream"] {
            assert!(!is_audio(t), "{t}");
        }
    }
}
