//! Media in the VK fake: upload servers, saved photos / documents / voice messages, hosted files
//! and the attachment objects VK puts in inbound messages.
//!
//! The upload flow, as VK runs it (<https://dev.vk.com/ru/api/upload/overview>):
//!
//! * `photos.getMessagesUploadServer(peer_id)` → `{"upload_url":"{url}/vk/upload/photo/{token}",
//!   "album_id":-64,"user_id":0,"group_id":G}`; `POST` multipart field `photo` there →
//!   `{"server":N,"photo":"[{\"markers_restarted\":true,\"photo\":\"…:w\",\"sizes\":[],…}]",
//!   "hash":"…"}`; `photos.saveMessagesPhoto(server, photo, hash)` → `[{"album_id":-64,"date",
//!   "id","owner_id":-G,"access_key","sizes":[…],"text":"","has_tags":false}]`
//!   (<https://dev.vk.com/ru/api/upload/photo-in-message>).
//! * `docs.getMessagesUploadServer(peer_id, type=doc|audio_message|graffiti)` →
//!   `{"upload_url":"{url}/vk/upload/doc/{token}"}`; `POST` multipart field `file` →
//!   `{"file":"…"}`; `docs.save(file, title)` → `{"type":"doc","doc":{id,owner_id,title,size,ext,
//!   url,date,type,access_key}}`, `{"type":"audio_message","audio_message":{id,owner_id,duration,
//!   waveform,link_ogg,link_mp3,access_key}}` or `{"type":"graffiti","graffiti":{id,owner_id,url,
//!   width,height,access_key}}` (<https://dev.vk.com/ru/api/upload/document-in-message>,
//!   <https://dev.vk.com/ru/api/upload/audio-record>; shapes from VKCOM/vk-api-schema v5.199).
//!
//! Errors, as VK gives them: `photos.saveMessagesPhoto` 100 `photo is undefined` / `photo is
//! invalid`, 121 `Invalid hash` (unknown or already used), 118 `Invalid server`; `docs.save` 100
//! `file is undefined` / `file is invalid`; both upload-server methods 901 for a blocked peer.
//! An upload without the right field, or a photo that is not JPG/PNG/GIF (by content type, or
//! file extension when the type is missing or `application/octet-stream`), is refused the way the
//! upload servers do it: `"photo":"[]"` for photos, `{"error":"ERR_UPLOAD_FILE_NOT_UPLOADED",
//! "error_descr":"…"}` for documents (the exact code string is a sandbox choice). An unknown
//! upload token is HTTP 403. Voice messages are not checked for OGG/OPUS.
//!
//! Saved media answer `messages.send`'s `attachment`: `photo{owner}_{id}[_{key}]`,
//! `doc{owner}_{id}[_{key}]` (documents, voice messages and graffiti), also
//! `audio_message{owner}_{id}[_{key}]`, and `video{owner}_{id}[_{key}]` for videos built with
//! [`Sandbox::vk_video_attachment`]. A wrong access key is not found.
//!
//! Hosted files: `GET {url}/vk/files/{id}` serves the bytes with `Content-Type` and
//! `Content-Length`; [`Sandbox::vk_fail_file`] makes one answer an HTTP error.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{DEFAULT_GROUP, MethodResult, Params, error_message};
use crate::intercept::proxy_page;
use crate::multipart;
use crate::{Failure, Sandbox, Shared};

/// `album_id` of photos saved for messages (what VK answers for community uploads).
pub const MESSAGES_ALBUM_ID: i64 = -64;

/// The `owner_id` of media built by the inbound attachment builders (a user who sent them).
pub const INBOUND_OWNER_ID: i64 = 100;

/// The `server` number the photo upload server answers.
const PHOTO_SERVER: i64 = 625_831;

/// Media saved through the upload flow (or built for an inbound message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VkMedia {
    /// `"photo"`, `"doc"`, `"audio_message"`, `"graffiti"` or `"video"`.
    pub kind: String,
    /// Owner id: `-group_id` for uploads, [`INBOUND_OWNER_ID`] for built ones.
    pub owner_id: i64,
    /// Media id (unique across kinds in this sandbox).
    pub id: i64,
    /// File name as uploaded (`filename` of the multipart part).
    pub file_name: String,
    /// Content type as uploaded (`application/octet-stream` when none was given).
    pub mime: String,
    /// The uploaded bytes.
    pub bytes: Vec<u8>,
    /// `docs.save` `title` (the file name when none was given); empty for photos.
    pub title: String,
}

#[derive(Debug)]
struct SavedMedia {
    media: VkMedia,
    access_key: String,
}

#[derive(Debug)]
struct HostedFile {
    mime: String,
    bytes: Vec<u8>,
    /// When set, `GET` answers this status instead of the bytes.
    fail_status: Option<u16>,
}

/// What an upload URL uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UploadKind {
    Photo,
    Doc,
    AudioMessage,
    Graffiti,
}

impl UploadKind {
    fn as_str(self) -> &'static str {
        match self {
            UploadKind::Photo => "photo",
            UploadKind::Doc => "doc",
            UploadKind::AudioMessage => "audio_message",
            UploadKind::Graffiti => "graffiti",
        }
    }
}

/// A file on an upload server, not saved yet.
#[derive(Debug)]
struct Pending {
    kind: UploadKind,
    file_name: String,
    mime: String,
    bytes: Vec<u8>,
    /// Photos: the `photo` string handed out (must come back unchanged).
    photo: String,
}

/// What the media part of the VK fake remembers.
#[derive(Debug, Default)]
pub(crate) struct MediaState {
    files: HashMap<String, HostedFile>,
    /// Upload token → what it uploads.
    upload_urls: HashMap<String, UploadKind>,
    /// Photo `hash` → the uploaded photo.
    pending_photos: HashMap<String, Pending>,
    /// Document `file` string → the uploaded file.
    pending_docs: HashMap<String, Pending>,
    saved: Vec<SavedMedia>,
    last_id: i64,
    /// `POST`s to upload servers, failed ones included.
    upload_attempts: usize,
    upload_failures: VecDeque<Failure>,
}

impl MediaState {
    fn host(&mut self, base: &str, mime: &str, bytes: Vec<u8>) -> String {
        let id = random_hex();
        self.files.insert(
            id.clone(),
            HostedFile {
                mime: mime.to_owned(),
                bytes,
                fail_status: None,
            },
        );
        format!("{base}/vk/files/{id}")
    }

    fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    fn save(&mut self, media: VkMedia) -> String {
        let access_key = random_hex()[..18].to_owned();
        self.saved.push(SavedMedia {
            media,
            access_key: access_key.clone(),
        });
        access_key
    }

    /// The saved media an attachment string (`photo-1_5_key`, `doc-1_7`) names.
    fn resolve(&self, attachment: &str) -> Option<&SavedMedia> {
        let attachment = attachment.trim();
        let (prefix, rest) = ["audio_message", "photo", "video", "doc"]
            .iter()
            .find_map(|p| attachment.strip_prefix(p).map(|rest| (*p, rest)))?;
        let mut parts = rest.splitn(3, '_');
        let owner_id: i64 = parts.next()?.parse().ok()?;
        let id: i64 = parts.next()?.parse().ok()?;
        let key = parts.next();
        self.saved.iter().find(|s| {
            let kind_ok = match prefix {
                "doc" => matches!(s.media.kind.as_str(), "doc" | "audio_message" | "graffiti"),
                other => s.media.kind == other,
            };
            kind_ok
                && s.media.owner_id == owner_id
                && s.media.id == id
                && key.is_none_or(|k| k == s.access_key)
        })
    }
}

/// 32 random hex digits.
fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn own_group(shared: &Shared) -> i64 {
    shared
        .read()
        .vk
        .group
        .as_ref()
        .map_or(DEFAULT_GROUP.0, |(id, _)| *id)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn check_peer(shared: &Shared, params: &Params) -> Result<Option<i64>, (i64, String)> {
    let peer_id = params.int("peer_id").map_err(|d| (100, d))?;
    if let Some(peer) = peer_id
        && shared.read().vk.blocked.contains(&peer)
    {
        return Err((901, error_message(901).into()));
    }
    Ok(peer_id)
}

fn new_upload_url(shared: &Shared, base: &str, kind: UploadKind) -> String {
    let token = random_hex();
    shared.mutate(|s| s.vk.media.upload_urls.insert(token.clone(), kind));
    let path = if kind == UploadKind::Photo {
        "photo"
    } else {
        "doc"
    };
    format!("{base}/vk/upload/{path}/{token}?type={}", kind.as_str())
}

/// `photos.getMessagesUploadServer` — <https://dev.vk.com/ru/method/photos.getMessagesUploadServer>.
pub(super) fn photos_get_messages_upload_server(
    shared: &Shared,
    params: &Params,
    base: &str,
) -> MethodResult {
    check_peer(shared, params)?;
    let group_id = own_group(shared);
    Ok(json!({
        "album_id": MESSAGES_ALBUM_ID,
        "upload_url": new_upload_url(shared, base, UploadKind::Photo),
        "user_id": 0,
        "group_id": group_id,
    }))
}

/// `docs.getMessagesUploadServer` — <https://dev.vk.com/ru/method/docs.getMessagesUploadServer>.
pub(super) fn docs_get_messages_upload_server(
    shared: &Shared,
    params: &Params,
    base: &str,
) -> MethodResult {
    let kind = match params.get("type").unwrap_or("doc") {
        "doc" => UploadKind::Doc,
        "audio_message" => UploadKind::AudioMessage,
        "graffiti" => UploadKind::Graffiti,
        _ => return Err((100, "type is invalid".into())),
    };
    check_peer(shared, params)?;
    Ok(json!({ "upload_url": new_upload_url(shared, base, kind) }))
}

/// `photos.saveMessagesPhoto` — <https://dev.vk.com/ru/method/photos.saveMessagesPhoto>.
pub(super) fn photos_save_messages_photo(
    shared: &Shared,
    params: &Params,
    base: &str,
) -> MethodResult {
    let photo = params
        .get("photo")
        .ok_or_else(|| (100, "photo is undefined".to_owned()))?;
    match serde_json::from_str::<Value>(photo) {
        Ok(Value::Array(items)) if !items.is_empty() => {}
        _ => return Err((100, "photo is invalid".into())),
    }
    let server = params.int("server").map_err(|d| (100, d))?;
    let hash = params.get("hash").unwrap_or_default().to_owned();
    let owner_id = -own_group(shared);
    shared.mutate(|s| {
        let media = &mut s.vk.media;
        if server != Some(PHOTO_SERVER) {
            return Err((118, "Invalid server".to_owned()));
        }
        // The hash signs server + photo: a changed `photo` does not match it.
        let pending = match media.pending_photos.remove(&hash) {
            Some(p) if p.photo == photo => p,
            Some(p) => {
                media.pending_photos.insert(hash, p);
                return Err((121, "Invalid hash".to_owned()));
            }
            None => return Err((121, "Invalid hash".to_owned())),
        };
        let url = media.host(base, &pending.mime, pending.bytes.clone());
        let id = media.next_id();
        let access_key = media.save(VkMedia {
            kind: "photo".into(),
            owner_id,
            id,
            file_name: pending.file_name,
            mime: pending.mime,
            bytes: pending.bytes,
            title: String::new(),
        });
        let sizes: Vec<Value> = [("s", 75, 56), ("m", 130, 97), ("x", 604, 453)]
            .iter()
            .map(|(t, w, h)| json!({"height": h, "type": t, "width": w, "url": url}))
            .collect();
        Ok(json!([{
            "album_id": MESSAGES_ALBUM_ID, "date": now(), "id": id, "owner_id": owner_id,
            "access_key": access_key, "sizes": sizes, "text": "", "has_tags": false,
        }]))
    })
}

/// `docs.save` — <https://dev.vk.com/ru/method/docs.save>.
pub(super) fn docs_save(shared: &Shared, params: &Params, base: &str) -> MethodResult {
    let file = params
        .get("file")
        .ok_or_else(|| (100, "file is undefined".to_owned()))?;
    let owner_id = -own_group(shared);
    shared.mutate(|s| {
        let media = &mut s.vk.media;
        let pending = media
            .pending_docs
            .remove(file)
            .ok_or_else(|| (100, "file is invalid".to_owned()))?;
        let title = params
            .get("title")
            .map_or_else(|| pending.file_name.clone(), str::to_owned);
        let id = media.next_id();
        let size = pending.bytes.len();
        let url = media.host(base, &pending.mime, pending.bytes.clone());
        let kind = pending.kind;
        let file_name = pending.file_name.clone();
        let access_key = media.save(VkMedia {
            kind: kind.as_str().into(),
            owner_id,
            id,
            file_name: pending.file_name,
            mime: pending.mime.clone(),
            bytes: pending.bytes,
            title: title.clone(),
        });
        Ok(match kind {
            UploadKind::AudioMessage => json!({"type": "audio_message", "audio_message": {
                "id": id, "owner_id": owner_id, "duration": voice_duration(size),
                "waveform": waveform(), "link_ogg": url, "link_mp3": url, "access_key": access_key,
            }}),
            UploadKind::Graffiti => json!({"type": "graffiti", "graffiti": {
                "id": id, "owner_id": owner_id, "url": url, "width": 512, "height": 512,
                "access_key": access_key,
            }}),
            UploadKind::Doc | UploadKind::Photo => json!({"type": "doc", "doc": {
                "id": id, "owner_id": owner_id, "title": title, "size": size,
                "ext": extension(&file_name), "url": url, "date": now(),
                "type": doc_type(&file_name, &pending.mime), "access_key": access_key,
            }}),
        })
    })
}

/// `messages.send` `attachment`: every comma-separated item must name media of this fake.
/// Returns the items (trimmed) or error 100.
pub(super) fn check_attachments(
    shared: &Shared,
    attachment: Option<&str>,
) -> Result<Vec<String>, (i64, String)> {
    let Some(attachment) = attachment else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = attachment
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let state = shared.read();
    for item in &items {
        if state.vk.media.resolve(item).is_none() {
            return Err((100, format!("attachment is invalid: {item}")));
        }
    }
    Ok(items)
}

/// Seconds of a 16 kbit/s voice message of `size` bytes (at least 1).
fn voice_duration(size: usize) -> usize {
    (size / 2000).max(1)
}

fn waveform() -> Vec<u32> {
    (0..32).map(|i| (i * 7) % 31).collect()
}

fn extension(file_name: &str) -> String {
    file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The `doc.type` number (<https://dev.vk.com/ru/reference/objects/doc>): 1 text, 2 archive,
/// 3 gif, 4 image, 5 audio, 6 video, 7 e-book, 8 unknown.
fn doc_type(file_name: &str, mime: &str) -> i64 {
    match (extension(file_name).as_str(), mime) {
        ("gif", _) | (_, "image/gif") => 3,
        (_, m) if m.starts_with("image/") => 4,
        (_, m) if m.starts_with("audio/") => 5,
        (_, m) if m.starts_with("video/") => 6,
        ("txt" | "doc" | "docx" | "pdf" | "odt" | "rtf" | "xls" | "xlsx" | "csv", _) => 1,
        ("zip" | "rar" | "7z" | "gz" | "tar", _) => 2,
        ("epub" | "fb2" | "djvu" | "mobi", _) => 7,
        (_, m) if m.starts_with("text/") => 1,
        _ => 8,
    }
}

fn is_photo(file_name: &str, mime: &str) -> bool {
    let mime = mime.split(';').next().unwrap_or_default().trim();
    match mime {
        "image/jpeg" | "image/jpg" | "image/png" | "image/gif" => true,
        "" | "application/octet-stream" => {
            matches!(
                extension(file_name).as_str(),
                "jpg" | "jpeg" | "png" | "gif"
            )
        }
        _ => false,
    }
}

/// `POST {url}/vk/upload/photo/{token}` — the photo upload server.
pub(super) async fn upload_photo(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    upload(&shared, &token, &headers, &body, true).await
}

/// `POST {url}/vk/upload/doc/{token}` — the document (and voice message) upload server.
pub(super) async fn upload_doc(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    upload(&shared, &token, &headers, &body, false).await
}

fn refused_photo() -> Value {
    json!({"server": PHOTO_SERVER, "photo": "[]", "hash": random_hex()})
}

fn refused_doc(descr: &str) -> Value {
    json!({"error": "ERR_UPLOAD_FILE_NOT_UPLOADED", "error_descr": descr})
}

async fn upload(
    shared: &Shared,
    token: &str,
    headers: &HeaderMap,
    body: &[u8],
    photo: bool,
) -> Response {
    let (failure, kind) = shared.mutate(|s| {
        let media = &mut s.vk.media;
        media.upload_attempts += 1;
        (
            media.upload_failures.pop_front(),
            media.upload_urls.get(token).copied(),
        )
    });
    if let Some(failure) = failure {
        tracing::warn!(?failure, "injected VK upload failure");
        return match failure {
            Failure::VkError(_) if photo => axum::Json(refused_photo()).into_response(),
            Failure::VkError(_) => {
                axum::Json(refused_doc("injected upload failure")).into_response()
            }
            other => crate::intercept::proxy_failure(shared, other)
                .await
                .unwrap_or_else(|| proxy_page(StatusCode::INTERNAL_SERVER_ERROR)),
        };
    }
    let Some(kind) = kind.filter(|k| (*k == UploadKind::Photo) == photo) else {
        return proxy_page(StatusCode::FORBIDDEN);
    };
    let field = if photo { "photo" } else { "file" };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let part = multipart::boundary(content_type)
        .and_then(|b| multipart::parse(&b, body))
        .and_then(|parts| {
            parts
                .into_iter()
                .find(|p| p.name == field && !p.data.is_empty())
        });
    let Some(part) = part else {
        return axum::Json(if photo {
            refused_photo()
        } else {
            refused_doc("no file in field \"file\"")
        })
        .into_response();
    };
    let file_name = part
        .file_name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| field.to_owned());
    let mime = part
        .content_type
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if photo && !is_photo(&file_name, &mime) {
        return axum::Json(refused_photo()).into_response();
    }
    let size = part.data.len();
    let owner = -own_group(shared);
    let answer = shared.mutate(|s| {
        let media = &mut s.vk.media;
        let mut pending = Pending {
            kind,
            file_name: file_name.clone(),
            mime,
            bytes: part.data,
            photo: String::new(),
        };
        if photo {
            let hash = random_hex();
            pending.photo = json!([{
                "markers_restarted": true, "photo": format!("{}:w", &random_hex()[..10]), "sizes": [],
                "latitude": 0, "longitude": 0, "kid": random_hex(),
            }])
            .to_string();
            let answer = json!({"server": PHOTO_SERVER, "photo": pending.photo, "hash": hash});
            media.pending_photos.insert(hash, pending);
            answer
        } else {
            // Shaped like VK's: owner|0|-1|server|hash|ext|size|name|hash|hash||||…
            let safe_name = file_name.replace('|', "_");
            let file = format!(
                "{owner}|0|-1|874331|{}|{}|{size}|{safe_name}|{}|{}||||{}",
                &random_hex()[..10],
                extension(&file_name),
                random_hex(),
                random_hex(),
                random_hex()
            );
            media.pending_docs.insert(file.clone(), pending);
            json!({ "file": file })
        }
    });
    axum::Json(answer).into_response()
}

/// `GET {url}/vk/files/{id}` — a hosted file.
pub(super) async fn file(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let state = shared.read();
    let Some(file) = state.vk.media.files.get(&id) else {
        return proxy_page(StatusCode::NOT_FOUND);
    };
    if let Some(status) = file.fail_status {
        return proxy_page(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, file.mime.clone()),
            (header::CONTENT_LENGTH, file.bytes.len().to_string()),
        ],
        file.bytes.clone(),
    )
        .into_response()
}

/// What VK's nginx answers for errors: a small HTML page.
impl Sandbox {
    /// Hosts `bytes` at `{url}/vk/files/{id}` (served with `mime` as `Content-Type`); returns
    /// that URL. `file_name` is only for logs and [`VkMedia`].
    pub fn vk_host_file(&self, file_name: &str, mime: &str, bytes: Vec<u8>) -> String {
        let base = self.url();
        tracing::debug!(file_name, mime, size = bytes.len(), "hosting VK file");
        self.shared.mutate(|s| s.vk.media.host(&base, mime, bytes))
    }

    /// From now on the hosted file at `url` answers HTTP `status` (an nginx page); `200` serves
    /// it again.
    ///
    /// # Panics
    /// When `url` is no file this sandbox hosts: that is a bug in the test.
    pub fn vk_fail_file(&self, url: &str, status: u16) {
        let id = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        self.shared.mutate(|s| {
            let file =
                s.vk.media
                    .files
                    .get_mut(&id)
                    .unwrap_or_else(|| panic!("sandbox: {url} is no hosted VK file"));
            file.fail_status = (status != 200).then_some(status);
        });
    }

    /// The media an attachment string as sent in `messages.send` names (`photo-1_5_key`,
    /// `doc-1_7_key`, with or without the key); `None` when none does or the key is wrong.
    pub fn vk_media(&self, attachment: &str) -> Option<VkMedia> {
        self.shared
            .read()
            .vk
            .media
            .resolve(attachment)
            .map(|s| s.media.clone())
    }

    /// How many `POST`s reached the upload servers (refused and failed ones included).
    pub fn vk_upload_attempts(&self) -> usize {
        self.shared.read().vk.media.upload_attempts
    }

    /// The next `n` `POST`s to upload servers get `failure`: [`Failure::Status`] that HTTP
    /// status, [`Failure::TooManyRequests`] 429 with `Retry-After`, [`Failure::Timeout`] a hang
    /// then 504, [`Failure::VkError`] (any code) the upload server's refusal with HTTP 200
    /// (`"photo":"[]"` or `{"error":…}`).
    pub fn vk_fail_next_upload(&self, n: u32, failure: Failure) {
        self.shared.mutate(|s| {
            s.vk.media
                .upload_failures
                .extend(std::iter::repeat_n(failure, n as usize));
        });
    }

    /// Hosts dummy bytes (for the smaller copies of an image).
    fn vk_host_dummy(&self, label: &str) -> String {
        self.vk_host_file(label, "image/jpeg", format!("dummy {label}").into_bytes())
    }

    /// Registers inbound media so `messages.send` may attach it again; returns (id, key).
    fn vk_register_inbound(
        &self,
        kind: &str,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> (i64, String) {
        self.shared.mutate(|s| {
            let media = &mut s.vk.media;
            let id = media.next_id();
            let key = media.save(VkMedia {
                kind: kind.into(),
                owner_id: INBOUND_OWNER_ID,
                id,
                file_name: file_name.into(),
                mime: mime.into(),
                bytes,
                title: file_name.into(),
            });
            (id, key)
        })
    }

    /// A photo as VK puts it in `message.attachments[]` (<https://dev.vk.com/ru/reference/objects/photo>):
    /// `{"type":"photo","photo":{"album_id":-3,"date","id","owner_id","access_key","sizes":[…],
    /// "orig_photo":{…},"text":"","has_tags":false}}`. Of the `sizes` (`{height,type,width,url}`,
    /// in VK's order s, m, x, o, p, q, r, y, z, w — not sorted by size) the largest, `w`
    /// (2560×1920), and `orig_photo` serve `bytes` (as `image/jpeg`); the others serve other
    /// dummy bytes.
    pub fn vk_photo_attachment(&self, bytes: Vec<u8>) -> Value {
        let url = self.vk_host_file("photo.jpg", "image/jpeg", bytes.clone());
        let (id, key) = self.vk_register_inbound("photo", "photo.jpg", "image/jpeg", bytes);
        let sizes: Vec<Value> = [
            ("s", 75, 56),
            ("m", 130, 97),
            ("x", 604, 453),
            ("o", 130, 98),
            ("p", 200, 150),
            ("w", 2560, 1920),
            ("q", 320, 240),
            ("r", 510, 383),
            ("y", 807, 605),
            ("z", 1280, 960),
        ]
        .iter()
        .map(|(t, w, h)| {
            let url = if *t == "w" {
                url.clone()
            } else {
                self.vk_host_dummy(t)
            };
            json!({"height": h, "type": t, "width": w, "url": url})
        })
        .collect();
        json!({"type": "photo", "photo": {
            "album_id": -3, "date": now(), "id": id, "owner_id": INBOUND_OWNER_ID,
            "access_key": key, "sizes": sizes, "text": "", "has_tags": false,
            "orig_photo": {"height": 1920, "type": "base", "url": url, "width": 2560},
            "web_view_token": random_hex()[..20].to_owned(),
        }})
    }

    /// A document as in `message.attachments[]` (<https://dev.vk.com/ru/reference/objects/doc>):
    /// `{"type":"doc","doc":{"id","owner_id","title":file_name,"size","ext","date","type","url",
    /// "access_key"}}`; `url` serves `bytes` as `mime`.
    pub fn vk_doc_attachment(&self, file_name: &str, mime: &str, bytes: Vec<u8>) -> Value {
        let size = bytes.len();
        let url = self.vk_host_file(file_name, mime, bytes.clone());
        let (id, key) = self.vk_register_inbound("doc", file_name, mime, bytes);
        json!({"type": "doc", "doc": {
            "id": id, "owner_id": INBOUND_OWNER_ID, "title": file_name, "size": size,
            "ext": extension(file_name), "date": now(), "type": doc_type(file_name, mime),
            "url": url, "access_key": key,
        }})
    }

    /// A voice message as in `message.attachments[]`
    /// (<https://dev.vk.com/ru/reference/objects/audio-message>): `{"type":"audio_message",
    /// "audio_message":{"id","owner_id","duration","waveform":[…],"link_ogg","link_mp3",
    /// "access_key","transcript_state":"done","transcript":""}}`. `link_ogg` serves `bytes` as
    /// `audio/ogg`, `link_mp3` the same bytes (as `audio/mpeg`) at another URL.
    pub fn vk_audio_message_attachment(&self, bytes: Vec<u8>) -> Value {
        let duration = voice_duration(bytes.len());
        let ogg = self.vk_host_file("voice.ogg", "audio/ogg", bytes.clone());
        let mp3 = self.vk_host_file("voice.mp3", "audio/mpeg", bytes.clone());
        let (id, key) = self.vk_register_inbound("audio_message", "voice.ogg", "audio/ogg", bytes);
        json!({"type": "audio_message", "audio_message": {
            "id": id, "owner_id": INBOUND_OWNER_ID, "duration": duration, "waveform": waveform(),
            "link_ogg": ogg, "link_mp3": mp3, "access_key": key,
            "transcript_state": "done", "transcript": "",
        }})
    }

    /// A sticker as in `message.attachments[]` (<https://dev.vk.com/ru/reference/objects/sticker>):
    /// `{"type":"sticker","sticker":{"inner_type":"base_sticker_new","product_id","sticker_id",
    /// "is_allowed":true,"images":[{url,width,height}…],"images_with_background":[…]}}` with
    /// sizes 64, 128, 256, 352 and 512 px; the 512 px image of both lists serves `png`
    /// (`image/png`), the others dummy bytes.
    pub fn vk_sticker_attachment(&self, png: Vec<u8>) -> Value {
        let url = self.vk_host_file("sticker.png", "image/png", png);
        let images = |with_background: bool| -> Vec<Value> {
            [64, 128, 256, 352, 512]
                .iter()
                .map(|side| {
                    let url = if *side == 512 {
                        url.clone()
                    } else {
                        self.vk_host_dummy(&format!("sticker-{side}-{with_background}"))
                    };
                    json!({"url": url, "width": side, "height": side})
                })
                .collect()
        };
        let id = self.shared.mutate(|s| s.vk.media.next_id());
        json!({"type": "sticker", "sticker": {
            "inner_type": "base_sticker_new", "product_id": 1, "sticker_id": id, "is_allowed": true,
            "images": images(false), "images_with_background": images(true),
        }})
    }

    /// A video as in `message.attachments[]` (<https://dev.vk.com/ru/reference/objects/video>):
    /// `{"type":"video","video":{"id","owner_id","title","duration","date","access_key","width",
    /// "height","views":0,"type":"video","image":[…],"first_frame":[…]}}`. The video itself is
    /// not downloadable (VK gives no file URL in messages); of the preview sizes
    /// (`{url,width,height,with_padding}` 130, 320, 800, 1280 px wide) the largest `image` and
    /// the largest `first_frame` serve `preview_jpeg`, the others dummy bytes.
    pub fn vk_video_attachment(&self, preview_jpeg: Vec<u8>) -> Value {
        let url = self.vk_host_file("preview.jpg", "image/jpeg", preview_jpeg);
        let (id, key) = self.vk_register_inbound("video", "video.mp4", "video/mp4", Vec::new());
        let previews = |label: &str| -> Vec<Value> {
            [(130, 96), (320, 240), (800, 450), (1280, 720)]
                .iter()
                .map(|(w, h)| {
                    let url = if *w == 1280 {
                        url.clone()
                    } else {
                        self.vk_host_dummy(&format!("{label}-{w}"))
                    };
                    json!({"url": url, "width": w, "height": h, "with_padding": 1})
                })
                .collect()
        };
        json!({"type": "video", "video": {
            "id": id, "owner_id": INBOUND_OWNER_ID, "title": "Video", "duration": 12,
            "date": now(), "access_key": key, "width": 1280, "height": 720, "views": 0,
            "type": "video", "image": previews("image"), "first_frame": previews("first_frame"),
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_types_and_photo_formats() {
        assert_eq!(doc_type("a.pdf", "application/pdf"), 1);
        assert_eq!(doc_type("a.zip", "application/zip"), 2);
        assert_eq!(doc_type("a.gif", "image/gif"), 3);
        assert_eq!(doc_type("a.png", "image/png"), 4);
        assert_eq!(doc_type("a.bin", "application/octet-stream"), 8);
        assert!(is_photo("a.jpg", "image/jpeg"));
        assert!(is_photo("a.png", "application/octet-stream"));
        assert!(!is_photo("a.pdf", "application/pdf"));
        assert!(!is_photo("a.bin", ""));
    }

    #[test]
    fn attachment_strings_resolve_by_kind_owner_id_and_key() {
        let mut state = MediaState::default();
        let media = |kind: &str, id| VkMedia {
            kind: kind.into(),
            owner_id: -1,
            id,
            file_name: "f".into(),
            mime: "m".into(),
            bytes: vec![1],
            title: String::new(),
        };
        let photo_key = state.save(media("photo", 5));
        let voice_key = state.save(media("audio_message", 7));
        assert_eq!(
            state
                .resolve(&format!("photo-1_5_{photo_key}"))
                .map(|s| s.media.id),
            Some(5)
        );
        assert!(state.resolve("photo-1_5").is_some());
        assert!(state.resolve("photo-1_5_wrong").is_none());
        assert!(state.resolve("doc-1_5").is_none(), "kind must match");
        assert!(state.resolve("photo1_5").is_none(), "owner must match");
        assert!(state.resolve(&format!("doc-1_7_{voice_key}")).is_some());
        assert!(state.resolve("audio_message-1_7").is_some());
        assert!(state.resolve("garbage").is_none());
        assert!(state.resolve("photo-1_x").is_none());
    }
}
