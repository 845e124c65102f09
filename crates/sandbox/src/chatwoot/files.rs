//! Message files: reading `multipart/form-data` uploads of `POST …/messages` and serving the
//! stored files the way ActiveStorage's disk service does.
//!
//! Chatwoot renders a file as `Attachment#file_url` = `url_for(file)`
//! (`app/models/concerns/attachmentable.rb` / `app/models/attachment.rb`), i.e.
//! `{FRONTEND_URL}/rails/active_storage/blobs/redirect/{signed_id}/{filename}`; that answers
//! `302 Found` to the service URL, here the disk service's
//! `{FRONTEND_URL}/rails/active_storage/disk/{encoded_key}/{filename}`, which serves the bytes with
//! their `Content-Type`, `Content-Length` and a `Content-Disposition` (`inline` for images,
//! `attachment` otherwise, like `ActiveStorage.content_types_allowed_inline`). Images also get a
//! `thumb_url` (`url_for(file.representation(resize_to_fill: [250, nil]))`,
//! `/rails/active_storage/representations/redirect/{signed_id}/{variation_key}/{filename}`); the
//! fake's "thumbnail" is the original file. None of these URLs needs the API token.
//!
//! Routes (under `/chatwoot`; `GET` only):
//! * `/rails/active_storage/blobs/redirect/{signed_id}/{*filename}` (and the older
//!   `/rails/active_storage/blobs/{signed_id}/{*filename}`) → 302;
//! * `/rails/active_storage/representations/redirect/{signed_id}/{variation_key}/{*filename}` → 302;
//! * `/rails/active_storage/disk/{encoded_key}/{*filename}` → 200 with the bytes.
//!
//! Unknown ids answer 404 (`ActiveRecord::RecordNotFound`, an empty page); a file given to
//! `Sandbox::chatwoot_fail_file` answers its status on all three.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::model::{Attachment, file_type};
use crate::Shared;
use crate::multipart;

/// A message form: its text params and its files.
pub(super) type Form = (Map<String, Value>, Vec<Upload>);

/// One uploaded file of an `attachments[]` part.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    /// The part's `filename` (percent-decoded like Rack does).
    pub(crate) file_name: String,
    /// The part's `Content-Type` (`application/octet-stream` when it had none, like Rack).
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
}

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/rails/active_storage/blobs/redirect/{signed_id}/{*filename}",
            get(blob_redirect),
        )
        .route(
            "/rails/active_storage/blobs/{signed_id}/{*filename}",
            get(blob_redirect),
        )
        .route(
            "/rails/active_storage/representations/redirect/{signed_id}/{variation}/{*filename}",
            get(representation_redirect),
        )
        .route("/rails/active_storage/disk/{key}/{*filename}", get(disk))
}

/// The fake's `FRONTEND_URL`: `http://{Host of the last API request}/chatwoot`, or the bound
/// address before any request.
pub(super) fn frontend_url(shared: &Shared) -> String {
    shared
        .read()
        .cw
        .frontend_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/chatwoot", shared.addr))
}

/// Remembers the request's `Host` as the fake's `FRONTEND_URL` (without waking waiters: it is
/// not an observable change).
pub(super) fn remember_host(shared: &Shared, headers: &HeaderMap) {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let url = format!("http://{host}/chatwoot");
    let mut state = shared.read();
    if state.cw.frontend_url.as_deref() != Some(url.as_str()) {
        state.cw.frontend_url = Some(url);
    }
}

/// `Attachmentable#validate_file_size` (`errors.add(:file, 'size is too big') if byte_size >
/// 40.megabytes`), surfacing through the message's autosaved `attachments` association as
/// `Validation failed: Attachments file size is too big`, rendered by the controller's rescue as
/// 422 `{"error": …}`. The server runs this check for website widget inboxes only
/// (`Attachment#should_validate_file?`); the fake runs it for every inbox so a client meets the
/// refusal in tests. `Sandbox::chatwoot_set_attachment_limit` lowers the limit (the recording
/// middleware refuses bodies above 4 MiB with 413 before the fake sees them).
pub(super) fn check_sizes(shared: &Shared, files: &[Upload]) -> Result<(), ApiError> {
    let limit = shared.read().cw.attachment_limit;
    if files.iter().any(|f| f.bytes.len() as u64 > limit) {
        return Err(ApiError::CouldNotCreate(
            "Validation failed: Attachments file size is too big".into(),
        ));
    }
    Ok(())
}

/// `ActiveStorage::Filename#sanitized`: these characters become `-`.
fn sanitize_file_name(name: &str) -> String {
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| {
            if "\u{202E}%$|:;/\t\r\n\\".contains(c) {
                '-'
            } else {
                c
            }
        })
        .collect();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

/// Percent-encodes a URL path segment (everything but RFC 3986 unreserved characters).
fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The stored attachment for an upload, with its absolute URLs under `frontend_url`.
pub(super) fn attachment(
    frontend_url: &str,
    id: i64,
    message_id: i64,
    upload: Upload,
) -> Attachment {
    let file_type = file_type(&upload.content_type);
    let file_name = sanitize_file_name(&upload.file_name);
    let signed_id = format!(
        "{}--{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let key = uuid::Uuid::new_v4().simple().to_string();
    let escaped = escape_segment(&file_name);
    let data_url =
        format!("{frontend_url}/rails/active_storage/blobs/redirect/{signed_id}/{escaped}");
    let thumb_url = if file_type == "image" {
        format!(
            "{frontend_url}/rails/active_storage/representations/redirect/{signed_id}/resize_to_fill-250/{escaped}"
        )
    } else {
        String::new()
    };
    Attachment {
        id,
        message_id,
        file_type,
        file_name,
        content_type: upload.content_type,
        bytes: Arc::new(upload.bytes),
        signed_id,
        key,
        data_url,
        thumb_url,
        fail_status: None,
    }
}

/// The request's own `FRONTEND_URL` (its `Host`), for the redirect `Location`.
fn request_base(shared: &Shared, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || format!("http://{}/chatwoot", shared.addr),
            |host| format!("http://{host}/chatwoot"),
        )
}

/// The empty 404 Rails answers for a missing record outside the JSON API.
fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn failed(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<html><head><title>{} {reason}</title></head><body><h1>{reason}</h1></body></html>",
        status.as_u16()
    );
    (status, [(header::CONTENT_TYPE, "text/html")], html).into_response()
}

fn redirect_to_disk(
    shared: &Shared,
    headers: &HeaderMap,
    find: impl Fn(&Attachment) -> bool,
) -> Response {
    let state = shared.read();
    let Some(a) = state.cw.attachments.iter().find(|a| find(a)) else {
        return not_found();
    };
    if let Some(status) = a.fail_status {
        return failed(status);
    }
    let location = format!(
        "{}/rails/active_storage/disk/{}/{}",
        request_base(shared, headers),
        a.key,
        escape_segment(&a.file_name)
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `ActiveStorage::Blobs::RedirectController#show`.
async fn blob_redirect(
    State(shared): State<Arc<Shared>>,
    Path((signed_id, _filename)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    redirect_to_disk(&shared, &headers, |a| a.signed_id == signed_id)
}

/// `ActiveStorage::Representations::RedirectController#show` (images only).
async fn representation_redirect(
    State(shared): State<Arc<Shared>>,
    Path((signed_id, _variation, _filename)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    redirect_to_disk(&shared, &headers, |a| {
        a.signed_id == signed_id && a.file_type == "image"
    })
}

/// `ActiveStorage::DiskController#show`: the bytes.
async fn disk(
    State(shared): State<Arc<Shared>>,
    Path((key, _filename)): Path<(String, String)>,
) -> Response {
    let (bytes, content_type, file_name, fail) = {
        let state = shared.read();
        let Some(a) = state.cw.attachments.iter().find(|a| a.key == key) else {
            return not_found();
        };
        (
            a.bytes.clone(),
            a.content_type.clone(),
            a.file_name.clone(),
            a.fail_status,
        )
    };
    if let Some(status) = fail {
        return failed(status);
    }
    let disposition = if content_type.starts_with("image/") {
        "inline"
    } else {
        "attachment"
    };
    let ascii: String = file_name
        .chars()
        .map(|c| if c.is_ascii() && c != '"' { c } else { '_' })
        .collect();
    let disposition = format!(
        "{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        escape_segment(&file_name)
    );
    let mut response = Bytes::from(bytes.as_ref().clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `content_attributes` the way `Messages::MessageBuilder#content_attributes` reads it: an object
/// as is, a string parsed as JSON (multipart forms can only send strings; what does not parse to
/// an object is `{}`), anything else `{}`.
pub(super) fn content_attributes(params: &Map<String, Value>) -> Value {
    match params.get("content_attributes") {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => json!({}),
        },
        _ => json!({}),
    }
}

/// Reads a `multipart/form-data` body the way Rack and Rails params do: text parts become string
/// params (`a[b]` nests one level: `content_attributes[in_reply_to]`), file parts named
/// `attachments[]` become uploads; a file part under another name is ignored. `Ok(None)` when the
/// body is not multipart; 400 when it is malformed. An `attachments[]` part without a file is
/// what a direct-upload client sends (a blob's signed id); the fake has no such blobs and answers
/// what the server answers for an unknown one, 422
/// `{"error":"ActiveSupport::MessageVerifier::InvalidSignature"}`.
pub(super) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Option<Form>, ApiError> {
    let Some(boundary) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(multipart::boundary)
    else {
        return Ok(None);
    };
    let parts = multipart::parse(&boundary, body).ok_or(ApiError::BadRequest)?;
    let mut params = Map::new();
    let mut uploads = Vec::new();
    for part in parts {
        match (part.name.as_str(), part.file_name) {
            ("attachments[]", Some(file_name)) => {
                // A browser's empty file input: no file chosen.
                if file_name.is_empty() && part.data.is_empty() {
                    continue;
                }
                uploads.push(Upload {
                    file_name,
                    content_type: part
                        .content_type
                        .unwrap_or_else(|| "application/octet-stream".into()),
                    bytes: part.data,
                });
            }
            ("attachments[]", None) => {
                return Err(ApiError::CouldNotCreate(
                    "ActiveSupport::MessageVerifier::InvalidSignature".into(),
                ));
            }
            (_, Some(_)) => {}
            (name, None) => {
                let value = Value::String(String::from_utf8_lossy(&part.data).into_owned());
                match name.split_once('[') {
                    Some((outer, rest)) if rest.ends_with(']') && !rest.contains('[') => {
                        let inner = &rest[..rest.len() - 1];
                        let entry = params.entry(outer.to_owned()).or_insert_with(|| json!({}));
                        if let Value::Object(map) = entry {
                            map.insert(inner.to_owned(), value);
                        }
                    }
                    _ => {
                        params.insert(name.to_owned(), value);
                    }
                }
            }
        }
    }
    Ok(Some((params, uploads)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multipart() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
        );
        headers
    }

    #[test]
    fn reads_fields_nested_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nhi\r\n--XyZ\r\nContent-Disposition: form-data; name=\"content_attributes[in_reply_to]\"\r\n\r\n7\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename=\"%D1%84 1.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename=\"100%.bin\"\r\n\r\n\x00\x01\r\n--XyZ--\r\n";
        let (params, uploads) = parse_form(&multipart(), body)
            .expect("well-formed")
            .expect("multipart");
        assert_eq!(params["content"], "hi");
        assert_eq!(params["content_attributes"], json!({"in_reply_to": "7"}));
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].file_name, "ф 1.txt");
        assert_eq!(uploads[0].content_type, "text/plain");
        assert_eq!(uploads[0].bytes, b"line1\r\nline2");
        // Not a valid escape: kept as sent, and no content type means octet-stream.
        assert_eq!(uploads[1].file_name, "100%.bin");
        assert_eq!(uploads[1].content_type, "application/octet-stream");
        assert_eq!(uploads[1].bytes, b"\x00\x01");
        assert!(parse_form(&multipart(), b"garbage").is_err());
        assert!(
            parse_form(&HeaderMap::new(), b"{}")
                .expect("not multipart")
                .is_none()
        );
    }

    #[test]
    fn content_attributes_come_from_an_object_or_a_json_string() {
        let mut params = Map::new();
        params.insert("content_attributes".into(), json!("{\"a\":1}"));
        assert_eq!(content_attributes(&params), json!({"a": 1}));
        params.insert("content_attributes".into(), json!("not json"));
        assert_eq!(content_attributes(&params), json!({}));
        params.insert("content_attributes".into(), json!({"b": 2}));
        assert_eq!(content_attributes(&params), json!({"b": 2}));
    }

    #[test]
    fn file_names_are_sanitized_and_escaped_in_urls() {
        let a = attachment(
            "http://h/chatwoot",
            5,
            4,
            Upload {
                file_name: "a/b c.png".into(),
                content_type: "image/png".into(),
                bytes: vec![1],
            },
        );
        assert_eq!(a.file_name, "a-b c.png");
        assert_eq!(a.file_type, "image");
        assert!(a.data_url.ends_with("/a-b%20c.png"), "{}", a.data_url);
        assert!(
            a.data_url
                .starts_with("http://h/chatwoot/rails/active_storage/blobs/redirect/")
        );
        assert!(!a.thumb_url.is_empty());
        assert_eq!(file_type("image/svg+xml"), "file");
        assert_eq!(file_type("audio/ogg"), "audio");
        assert_eq!(file_type("video/mp4"), "video");
        assert_eq!(file_type("application/pdf"), "file");
    }
}
