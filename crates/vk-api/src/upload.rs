//! Uploading media for messages: the three steps VK uses for every file
//! (<https://dev.vk.com/ru/api/upload/overview>).
//!
//! 1. Ask a method for an upload server: `photos.getMessagesUploadServer` or
//!    `docs.getMessagesUploadServer` → [`UploadServer`] (`{"upload_url":"https://pu.vk.com/…"}`).
//! 2. `POST` the file as `multipart/form-data` to that absolute URL (not to the API base URL):
//!    field `photo` for photos → [`PhotoUpload`] (`{"server":N,"photo":"[…]","hash":"…"}`),
//!    field `file` for documents and voice messages → `{"file":"…"}`.
//! 3. Save it: `photos.saveMessagesPhoto` → [`SavedPhoto`], `docs.save` → [`SavedDoc`]; their
//!    [`attachment`](SavedPhoto::attachment) strings go into `messages.send`'s `attachment`.
//!
//! Photos: <https://dev.vk.com/ru/api/upload/photo-in-message>; documents:
//! <https://dev.vk.com/ru/api/upload/document-in-message>; voice messages:
//! <https://dev.vk.com/ru/api/upload/audio-record> (OGG/OPUS, 16 kHz, up to 5 minutes).
//! Response shapes follow VKCOM/vk-api-schema v5.199 (`photos_photo`, `docs_save_response`,
//! `messages_audio_message`).

use serde::Deserialize;

use crate::client::{VkClient, string_or_number, without_url};
use crate::error::VkError;

/// Where to `POST` a file: `photos.getMessagesUploadServer` / `docs.getMessagesUploadServer`
/// `response` (`base_upload_server`; VK also sends `album_id`, `user_id`, `group_id`, ignored).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UploadServer {
    /// Absolute URL of the upload server. It carries signing keys: never log it.
    pub upload_url: String,
}

/// The photo upload server's answer (<https://dev.vk.com/ru/api/upload/photo-in-message>):
/// `{"server":625831,"photo":"[{\"photo\":\"8d81799f90:w\",…}]","hash":"8954a4da5ba06d4e"}`.
/// Passed as it is to [`VkClient::save_messages_photo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoUpload {
    /// Upload server number (VK sends a JSON number).
    pub server: i64,
    /// The uploaded photo, a JSON array encoded as a string; kept verbatim.
    pub photo: String,
    /// Signature of `server` + `photo`.
    pub hash: String,
}

/// A photo saved with `photos.saveMessagesPhoto` (first item of its array; `photos_photo`,
/// <https://dev.vk.com/ru/reference/objects/photo>). Other fields (`sizes`, `album_id`, `date`)
/// are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SavedPhoto {
    /// Photo id.
    pub id: i64,
    /// Owner id (negative for a community).
    pub owner_id: i64,
    /// Access key, needed to attach a private photo.
    #[serde(default)]
    pub access_key: Option<String>,
}

impl SavedPhoto {
    /// The `messages.send` attachment string: `photo{owner_id}_{id}` plus `_{access_key}` when
    /// there is one (<https://dev.vk.com/ru/method/messages.send>).
    pub fn attachment(&self) -> String {
        attachment_string("photo", self.owner_id, self.id, self.access_key.as_deref())
    }
}

/// What `docs.getMessagesUploadServer` uploads (`type`; VK also knows `graffiti`, unused here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocType {
    /// A file shown as a document (`doc`).
    Doc,
    /// A voice message (`audio_message`): OGG/OPUS, 16 kHz, up to 5 minutes.
    AudioMessage,
}

impl DocType {
    /// The wire name: `"doc"` or `"audio_message"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Doc => "doc",
            DocType::AudioMessage => "audio_message",
        }
    }
}

/// A document or voice message saved with `docs.save` (`docs_save_response`):
/// `{"type":"doc","doc":{"id","owner_id","title","size","ext","url",…}}` or
/// `{"type":"audio_message","audio_message":{"id","owner_id","duration","waveform","link_ogg",
/// "link_mp3","access_key"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedDoc {
    /// Which of the two it is.
    pub kind: DocType,
    /// Document (or voice message) id.
    pub id: i64,
    /// Owner id (negative for a community).
    pub owner_id: i64,
    /// Access key, when VK gave one.
    pub access_key: Option<String>,
}

impl SavedDoc {
    /// The `messages.send` attachment string, `doc{owner_id}_{id}[_{access_key}]` for both kinds:
    /// `messages.send` lists no `audio_message` attachment type, and a voice message saved by
    /// `docs.save` is a document, sent as `doc…` (as VK's bot examples do).
    pub fn attachment(&self) -> String {
        attachment_string("doc", self.owner_id, self.id, self.access_key.as_deref())
    }
}

fn attachment_string(kind: &str, owner_id: i64, id: i64, key: Option<&str>) -> String {
    match key.filter(|k| !k.is_empty()) {
        Some(key) => format!("{kind}{owner_id}_{id}_{key}"),
        None => format!("{kind}{owner_id}_{id}"),
    }
}

/// The photo upload server's JSON, leniently: `server` as a number or a string, and VK's
/// `{"error":…}` form.
#[derive(Deserialize)]
struct RawPhotoUpload {
    #[serde(default, deserialize_with = "string_or_number")]
    server: Option<String>,
    #[serde(default)]
    photo: Option<String>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawDocUpload {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_descr: Option<String>,
}

#[derive(Deserialize)]
struct RawSavedDoc {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    doc: Option<SavedPhoto>,
    #[serde(default)]
    audio_message: Option<SavedPhoto>,
}

fn upload_refused(message: impl Into<String>) -> VkError {
    VkError::Upload {
        status: 200,
        message: message.into(),
    }
}

/// Decodes a photo upload server's answer; an `error` or an empty `photo` is [`VkError::Upload`].
fn decode_photo_upload(body: &[u8]) -> Result<PhotoUpload, VkError> {
    let raw: RawPhotoUpload = serde_json::from_slice(body)
        .map_err(|e| VkError::Decode(format!("photo upload answer is not JSON: {e}")))?;
    if let Some(error) = raw.error {
        return Err(upload_refused(format!("photo upload refused: {error}")));
    }
    let photo = raw.photo.unwrap_or_default();
    if photo.trim().is_empty() || photo.trim() == "[]" {
        return Err(upload_refused(
            "photo upload refused the file (empty photo)",
        ));
    }
    let server = raw
        .server
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| upload_refused("photo upload answer has no server"))?;
    let hash = raw
        .hash
        .filter(|h| !h.is_empty())
        .ok_or_else(|| upload_refused("photo upload answer has no hash"))?;
    Ok(PhotoUpload {
        server,
        photo,
        hash,
    })
}

/// Decodes a document upload server's answer `{"file":"…"}`; `{"error":"…"}` is
/// [`VkError::Upload`].
fn decode_doc_upload(body: &[u8]) -> Result<String, VkError> {
    let raw: RawDocUpload = serde_json::from_slice(body)
        .map_err(|e| VkError::Decode(format!("document upload answer is not JSON: {e}")))?;
    if let Some(error) = raw.error {
        let error = match error {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let message = match raw.error_descr {
            Some(descr) => format!("document upload refused: {error} ({descr})"),
            None => format!("document upload refused: {error}"),
        };
        return Err(upload_refused(message));
    }
    raw.file
        .filter(|f| !f.is_empty())
        .ok_or_else(|| upload_refused("document upload answer has no file"))
}

fn decode_saved_doc(raw: RawSavedDoc) -> Result<SavedDoc, VkError> {
    let (kind, object) = match raw.kind.as_str() {
        "doc" => (DocType::Doc, raw.doc),
        "audio_message" => (DocType::AudioMessage, raw.audio_message),
        other => {
            return Err(VkError::Decode(format!(
                "docs.save: unexpected type {other:?}"
            )));
        }
    };
    let object =
        object.ok_or_else(|| VkError::Decode(format!("docs.save: no {} object", raw.kind)))?;
    Ok(SavedDoc {
        kind,
        id: object.id,
        owner_id: object.owner_id,
        access_key: object.access_key,
    })
}

impl VkClient {
    /// `photos.getMessagesUploadServer` (<https://dev.vk.com/ru/method/photos.getMessagesUploadServer>)
    /// for a photo to be sent to `peer_id`. Errors as [`VkClient::call`] (901 when the peer does
    /// not accept messages from the community).
    pub async fn photo_upload_server(&self, peer_id: i64) -> Result<UploadServer, VkError> {
        self.call(
            "photos.getMessagesUploadServer",
            &[("peer_id", peer_id.to_string())],
        )
        .await
    }

    /// `POST`s the photo to `server.upload_url` as `multipart/form-data`, field `photo`
    /// (JPG, PNG or GIF, up to 50 MB, width + height ≤ 14000 px).
    ///
    /// Errors: [`VkError::Upload`] for a non-2xx answer, an `error` answer or an empty `photo`
    /// (VK did not take the file); [`VkError::Transport`] when the server is unreachable.
    pub async fn upload_photo(
        &self,
        server: &UploadServer,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<PhotoUpload, VkError> {
        let body = self
            .post_file(server, "photo", file_name, mime, bytes)
            .await?;
        decode_photo_upload(&body)
    }

    /// `photos.saveMessagesPhoto` (<https://dev.vk.com/ru/method/photos.saveMessagesPhoto>) with
    /// the upload's `server`, `photo` and `hash`; the first photo of the answer. Errors as
    /// [`VkClient::call`] (118 invalid server, 121 invalid hash, 100 bad `photo`).
    pub async fn save_messages_photo(&self, upload: &PhotoUpload) -> Result<SavedPhoto, VkError> {
        let photos: Vec<SavedPhoto> = self
            .call(
                "photos.saveMessagesPhoto",
                &[
                    ("server", upload.server.to_string()),
                    ("photo", upload.photo.clone()),
                    ("hash", upload.hash.clone()),
                ],
            )
            .await?;
        photos
            .into_iter()
            .next()
            .ok_or_else(|| VkError::Decode("photos.saveMessagesPhoto: empty".into()))
    }

    /// `docs.getMessagesUploadServer` (<https://dev.vk.com/ru/method/docs.getMessagesUploadServer>)
    /// for a document or voice message to be sent to `peer_id`.
    pub async fn doc_upload_server(
        &self,
        peer_id: i64,
        kind: DocType,
    ) -> Result<UploadServer, VkError> {
        self.call(
            "docs.getMessagesUploadServer",
            &[
                ("peer_id", peer_id.to_string()),
                ("type", kind.as_str().to_owned()),
            ],
        )
        .await
    }

    /// `POST`s the file to `server.upload_url` as `multipart/form-data`, field `file`; returns
    /// the `file` string of `{"file":"…"}` for [`VkClient::save_doc`].
    ///
    /// Errors: [`VkError::Upload`] for a non-2xx answer or `{"error":"…"}`;
    /// [`VkError::Transport`] when the server is unreachable.
    pub async fn upload_doc(
        &self,
        server: &UploadServer,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<String, VkError> {
        let body = self
            .post_file(server, "file", file_name, mime, bytes)
            .await?;
        decode_doc_upload(&body)
    }

    /// `docs.save` (<https://dev.vk.com/ru/method/docs.save>): saves an uploaded `file` under
    /// `title`. Errors as [`VkClient::call`] (100 bad `file`, 105 could not save).
    pub async fn save_doc(&self, file: &str, title: &str) -> Result<SavedDoc, VkError> {
        let raw: RawSavedDoc = self
            .call(
                "docs.save",
                &[("file", file.to_owned()), ("title", title.to_owned())],
            )
            .await?;
        decode_saved_doc(raw)
    }

    /// One multipart `POST` of `bytes` as `field` to an upload server; the body of a 2xx answer.
    async fn post_file(
        &self,
        server: &UploadServer,
        field: &'static str,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, VkError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(mime)
            .map_err(|e| VkError::Upload {
                status: 0,
                message: format!("invalid content type {mime:?}: {}", without_url(e)),
            })?;
        let form = reqwest::multipart::Form::new().part(field, part);
        let res = self
            .http
            .post(&server.upload_url)
            .multipart(form)
            .send()
            .await
            .map_err(|e| VkError::Transport(without_url(e)))?;
        let status = res.status();
        if !status.is_success() {
            return Err(VkError::Upload {
                status: status.as_u16(),
                message: format!("upload server answered HTTP {}", status.as_u16()),
            });
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| VkError::Transport(without_url(e)))?;
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn photo_upload_answer_with_numeric_server_and_string_photo() {
        let body = br#"{"server":625831,"photo":"[{\"photo\":\"8d81799f90:w\",\"sizes\":[],\"kid\":\"56b8\"}]","hash":"8954a4da5ba06d4e"}"#;
        let upload = decode_photo_upload(body).expect("decodes");
        assert_eq!(upload.server, 625831);
        assert_eq!(
            upload.photo,
            r#"[{"photo":"8d81799f90:w","sizes":[],"kid":"56b8"}]"#
        );
        assert_eq!(upload.hash, "8954a4da5ba06d4e");
        // Some proxies send the server as a string.
        let upload = decode_photo_upload(br#"{"server":"17","photo":"[{}]","hash":"h"}"#)
            .expect("string server");
        assert_eq!(upload.server, 17);
    }

    #[test]
    fn an_empty_photo_or_an_error_is_an_upload_error() {
        for body in [
            &br#"{"server":1,"photo":"[]","hash":"h"}"#[..],
            br#"{"server":1,"photo":"","hash":"h"}"#,
            br#"{"error":"ERR_UPLOAD_FILE_NOT_UPLOADED"}"#,
        ] {
            let err = decode_photo_upload(body).expect_err("refused");
            assert!(
                matches!(err, VkError::Upload { status: 200, .. }),
                "{err:?}"
            );
            assert_eq!(err.class(), ErrorClass::Final);
        }
        // A page that is not JSON (a proxy's maintenance page) is not a refusal: retried.
        let err = decode_photo_upload(b"<html>oops</html>").expect_err("not JSON");
        assert!(matches!(err, VkError::Decode(_)), "{err:?}");
        assert_eq!(err.class(), ErrorClass::RetrySoon);
    }

    #[test]
    fn doc_upload_answer_and_its_error() {
        assert_eq!(
            decode_doc_upload(br#"{"file":"1|0|-1|874331|3ee14|ogg|7363|Record.opus|1df3"}"#)
                .expect("file"),
            "1|0|-1|874331|3ee14|ogg|7363|Record.opus|1df3"
        );
        let err = decode_doc_upload(br#"{"error":"no_file","error_descr":"no file given"}"#)
            .expect_err("refused");
        match err {
            VkError::Upload { status, message } => {
                assert_eq!(status, 200);
                assert!(message.contains("no_file"), "{message}");
                assert!(message.contains("no file given"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docs_save_both_shapes_and_attachment_strings() {
        let doc: RawSavedDoc = serde_json::from_str(
            r#"{"type":"doc","doc":{"id":7,"owner_id":-1,"title":"a.pdf","size":3,"ext":"pdf","url":"https://vk.com/doc-1_7","date":1,"type":1,"access_key":"k1"}}"#,
        )
        .expect("doc json");
        let doc = decode_saved_doc(doc).expect("doc");
        assert_eq!(doc.kind, DocType::Doc);
        assert_eq!(doc.attachment(), "doc-1_7_k1");

        let voice: RawSavedDoc = serde_json::from_str(
            r#"{"type":"audio_message","audio_message":{"id":9,"owner_id":-1,"duration":2,"waveform":[0,1],"link_ogg":"https://x/a.ogg","link_mp3":"https://x/a.mp3"}}"#,
        )
        .expect("voice json");
        let voice = decode_saved_doc(voice).expect("voice");
        assert_eq!(voice.kind, DocType::AudioMessage);
        assert_eq!(voice.attachment(), "doc-1_9");

        let graffiti: RawSavedDoc =
            serde_json::from_str(r#"{"type":"graffiti","graffiti":{}}"#).expect("graffiti json");
        assert!(matches!(
            decode_saved_doc(graffiti),
            Err(VkError::Decode(_))
        ));

        let photo = SavedPhoto {
            id: 5,
            owner_id: -1,
            access_key: Some("abc".into()),
        };
        assert_eq!(photo.attachment(), "photo-1_5_abc");
        let photo = SavedPhoto {
            access_key: None,
            ..photo
        };
        assert_eq!(photo.attachment(), "photo-1_5");
        assert_eq!(DocType::AudioMessage.as_str(), "audio_message");
    }

    #[test]
    fn upload_errors_are_classified_like_http_errors() {
        let err = |status| VkError::Upload {
            status,
            message: String::new(),
        };
        assert_eq!(err(500).class(), ErrorClass::RetrySoon);
        assert_eq!(err(503).class(), ErrorClass::RetrySoon);
        assert_eq!(err(429).class(), ErrorClass::RetrySoon);
        assert_eq!(err(413).class(), ErrorClass::Final);
        assert_eq!(err(200).class(), ErrorClass::Final);
    }
}
