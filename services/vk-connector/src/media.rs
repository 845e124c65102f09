//! Files carried each way: fetching a VK photo, document, voice message, sticker or video
//! preview (or a Chatwoot attachment) within `MEDIA_MAX_BYTES` and `MEDIA_TIMEOUT_SECS`, naming
//! it and typing it; and uploading a file to VK as a message photo or document.
//!
//! A file that cannot be carried — larger than the limit, refused by the server that holds it,
//! refused by the side it goes to — becomes a link line in the message text and a log line with
//! the reason; it never fails the message. An outage (unreachable, timed out, 429, 5xx) is
//! retried here a few times and then handed to the consumer's retry, so nothing is dropped.
//!
//! VK upload flows (<https://dev.vk.com/ru/api/upload/photo-in-message>,
//! <https://dev.vk.com/ru/api/upload/document-in-message>): `photos.getMessagesUploadServer`
//! → POST `photo` → `photos.saveMessagesPhoto`; `docs.getMessagesUploadServer` (type `doc` or
//! `audio_message`) → POST `file` → `docs.save`.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use domain::{Attachment, AttachmentKind};
use upstream_http::{DownloadError, Downloaded};
use vk_api::{DocType, ErrorClass, VkClient, VkError};

use crate::config::MediaSettings;

/// Attempts of one download before the failure goes to the consumer's retry.
const DOWNLOAD_ATTEMPTS: usize = 3;

/// Handlings of one message (each with [`DOWNLOAD_ATTEMPTS`] downloads) during which a file
/// whose server is unreachable or failing holds the message back; the last one sends it as a
/// link, so that the text is never dead-lettered for a file and the dialogue moves on.
pub const MEDIA_HANDLINGS: i32 = 3;

impl MediaError {
    /// A [`MediaError::Retry`] turned into [`MediaError::Skip`] when this is the last handling
    /// that may wait for the file (`attempts_before` handlings of the message came before).
    pub fn or_skip_after(self, attempts_before: i32) -> Self {
        match self {
            Self::Retry { reason, .. } if attempts_before + 1 >= MEDIA_HANDLINGS => Self::Skip(
                format!("still failing after {MEDIA_HANDLINGS} attempts: {reason}"),
            ),
            other => other,
        }
    }
}

/// A file ready to be uploaded: name with an extension, MIME type, content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// File name as the receiving side will show it, e.g. `photo.jpg`, `отчёт.pdf`.
    pub file_name: String,
    /// MIME type, e.g. `image/jpeg`; `application/octet-stream` when nothing says better.
    pub mime: String,
    /// The content, at most `MEDIA_MAX_BYTES`.
    pub bytes: Vec<u8>,
}

/// Why a file was not carried.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Will not change on a retry: sent as a link instead (the reason goes to the log).
    #[error("{0}")]
    Skip(String),
    /// An outage of the server holding the file or of VK's upload: retry the whole message.
    #[error("{reason}")]
    Retry {
        /// What failed, for the log and the retry reason.
        reason: String,
        /// What the upstream asked to wait, if anything.
        after: Option<Duration>,
    },
}

/// The URL a file of `a` is fetched from: the content itself, or for a video its preview frame.
/// `None` for what is not a file (links, wall posts, locations, unknown types). For VK → Chatwoot
/// use [`vk_file_url`].
pub fn file_url(a: &Attachment) -> Option<&str> {
    match a.kind {
        AttachmentKind::Image
        | AttachmentKind::File
        | AttachmentKind::Voice
        | AttachmentKind::Audio
        | AttachmentKind::Sticker => a.url.as_deref(),
        AttachmentKind::Video => a.preview_url.as_deref(),
        AttachmentKind::Location | AttachmentKind::Link | AttachmentKind::Other => None,
    }
    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

/// Downloads the file of `a` from `url` (see [`file_url`]) within the limits and names it:
/// the attachment's name (a VK doc's title), else the server's, else one by kind (`photo.jpg`,
/// `voice.mp3`, `sticker.png`, `video-preview.jpg`); an extension is added from the MIME type
/// when the name has none. The MIME type is the server's unless it is generic, else the
/// attachment's, else guessed from the extension.
///
/// Errors: [`MediaError::Skip`] for a file over the limit or refused (4xx);
/// [`MediaError::Retry`] when the server stays unreachable or answers 429/5xx after
/// [`DOWNLOAD_ATTEMPTS`] tries.
pub async fn fetch(
    http: &reqwest::Client,
    limits: MediaSettings,
    a: &Attachment,
    url: &str,
) -> Result<MediaFile, MediaError> {
    let downloaded = (|| upstream_http::download(http, url, limits.max_bytes, limits.timeout))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_times(DOWNLOAD_ATTEMPTS - 1),
        )
        .when(DownloadError::is_retriable)
        .await;
    match downloaded {
        Ok(d) => Ok(describe(a, d)),
        Err(e @ DownloadError::TooLarge { .. }) => Err(MediaError::Skip(format!("too large: {e}"))),
        Err(e) if e.is_retriable() => Err(MediaError::Retry {
            after: match &e {
                DownloadError::Status { retry_after, .. } => *retry_after,
                _ => None,
            },
            reason: e.to_string(),
        }),
        Err(e) => Err(MediaError::Skip(format!("refused: {e}"))),
    }
}

/// [`file_url`] for an attachment from VK: music tracks (`audio`) stay links, since VK gives
/// third-party tokens no track file (`audio_api_unavailable.mp3` placeholders).
pub fn vk_file_url(a: &Attachment) -> Option<&str> {
    match a.kind {
        AttachmentKind::Audio => None,
        _ => file_url(a),
    }
}

fn describe(a: &Attachment, d: Downloaded) -> MediaFile {
    let generic = |m: &str| m == "application/octet-stream" || m == "binary/octet-stream";
    let mime = d
        .content_type
        .filter(|m| !generic(m))
        .or_else(|| a.mime.clone())
        .or_else(|| {
            let name = a.name.as_deref().or(d.file_name.as_deref())?;
            mime_of_extension(extension(name)?).map(str::to_owned)
        })
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let base = match a.kind {
        // A video's name is its title; the file is the preview frame.
        AttachmentKind::Video => None,
        _ => a.name.clone().filter(|n| !n.trim().is_empty()),
    }
    .or(d.file_name.filter(|n| extension(n).is_some()))
    .unwrap_or_else(|| {
        match a.kind {
            AttachmentKind::Image => "photo",
            AttachmentKind::Voice => "voice",
            AttachmentKind::Audio => "audio",
            AttachmentKind::Sticker => "sticker",
            AttachmentKind::Video => "video-preview",
            _ => "file",
        }
        .to_owned()
    });
    let file_name = match (extension(&base), extension_of_mime(&mime)) {
        (None, Some(ext)) => format!("{base}.{ext}"),
        _ => base,
    };
    MediaFile {
        file_name: sanitize(&file_name),
        mime,
        bytes: d.bytes,
    }
}

/// No path separators or control characters in a file name sent on.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return cleaned.to_owned();
    }
    // Shortened in the stem: the extension tells the receiving side the type.
    match cleaned
        .rsplit_once('.')
        .filter(|(_, e)| e.chars().count() <= 5)
    {
        Some((stem, ext)) => {
            let stem: String = stem
                .chars()
                .take(MAX_NAME_CHARS - ext.chars().count() - 1)
                .collect();
            format!("{stem}.{ext}")
        }
        None => cleaned.chars().take(MAX_NAME_CHARS).collect(),
    }
}

/// The longest file name sent on, in characters.
const MAX_NAME_CHARS: usize = 200;

fn extension(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()
        && (1..=5).contains(&ext.len())
        && ext.chars().all(|c| c.is_ascii_alphanumeric()))
    .then_some(ext)
}

/// The common types seen each way; anything else keeps its server-given type or goes as
/// `application/octet-stream`.
const TYPES: &[(&str, &str)] = &[
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("m4a", "audio/mp4"),
    ("wav", "audio/wav"),
    ("webm", "audio/webm"),
    ("mp4", "video/mp4"),
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("zip", "application/zip"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
];

/// The MIME type of a file extension (`pdf` → `application/pdf`), for the common types.
pub(crate) fn mime_of_extension(ext: &str) -> Option<&'static str> {
    let ext = ext.to_ascii_lowercase();
    TYPES.iter().find(|(e, _)| *e == ext).map(|(_, m)| *m)
}

fn extension_of_mime(mime: &str) -> Option<&'static str> {
    TYPES.iter().find(|(_, m)| *m == mime).map(|(e, _)| *e)
}

/// What VK takes as a message photo: JPG and PNG (GIF too, but as a photo it loses its
/// animation, so it goes as a document) — <https://dev.vk.com/ru/api/upload/photo-in-message>.
fn is_vk_photo(mime: &str) -> bool {
    matches!(mime, "image/jpeg" | "image/pjpeg" | "image/png")
}

/// What VK takes as a voice message: OGG with Opus —
/// <https://dev.vk.com/ru/api/upload/audio-record>.
fn is_vk_voice(mime: &str) -> bool {
    matches!(mime, "audio/ogg" | "audio/opus" | "audio/ogg; codecs=opus")
}

/// Uploads `file` to VK for a message to `peer_id` and returns the attachment string for
/// `messages.send` (`photo<owner>_<id>[_<key>]`, `doc<owner>_<id>[_<key>]`): JPG/PNG images as
/// message photos, OGG voice and audio as `audio_message` documents, everything else (and a
/// photo or voice message VK refuses as such) as a `doc`.
///
/// Errors: [`MediaError::Skip`] when VK refuses the file as a document too (the upload server's
/// error, a final API error); [`MediaError::Retry`] for VK's transient errors (6, 10, 429,
/// 5xx, unreachable) and flood control (9, after a minute).
pub async fn upload_to_vk(
    vk: &VkClient,
    peer_id: i64,
    kind: AttachmentKind,
    file: MediaFile,
) -> Result<String, MediaError> {
    let special = if kind == AttachmentKind::Image && is_vk_photo(&file.mime) {
        Some(upload_photo(vk, peer_id, &file).await)
    } else if matches!(kind, AttachmentKind::Voice | AttachmentKind::Audio)
        && is_vk_voice(&file.mime)
    {
        Some(upload_doc(vk, peer_id, DocType::AudioMessage, &file).await)
    } else {
        None
    };
    match special {
        Some(Ok(attachment)) => Ok(attachment),
        Some(Err(MediaError::Skip(reason))) => {
            tracing::info!(reason = %reason, "VK refused the file as a photo or voice message; sending it as a document");
            upload_doc(vk, peer_id, DocType::Doc, &file).await
        }
        Some(Err(retry)) => Err(retry),
        None => upload_doc(vk, peer_id, DocType::Doc, &file).await,
    }
}

fn vk_error(step: &str, e: VkError) -> MediaError {
    match e.class() {
        ErrorClass::RetrySoon => MediaError::Retry {
            reason: format!("{step}: {e}"),
            after: e.retry_after(),
        },
        ErrorClass::RetryLater => MediaError::Retry {
            reason: format!("{step}: {e}"),
            after: Some(Duration::from_secs(60)),
        },
        ErrorClass::Final => MediaError::Skip(format!("VK refused it ({step}): {e}")),
    }
}

async fn upload_photo(vk: &VkClient, peer_id: i64, file: &MediaFile) -> Result<String, MediaError> {
    let server = vk
        .photo_upload_server(peer_id)
        .await
        .map_err(|e| vk_error("photos.getMessagesUploadServer", e))?;
    let uploaded = vk
        .upload_photo(&server, &file.file_name, &file.mime, file.bytes.clone())
        .await
        .map_err(|e| vk_error("photo upload", e))?;
    let saved = vk
        .save_messages_photo(&uploaded)
        .await
        .map_err(|e| vk_error("photos.saveMessagesPhoto", e))?;
    Ok(saved.attachment())
}

async fn upload_doc(
    vk: &VkClient,
    peer_id: i64,
    doc_type: DocType,
    file: &MediaFile,
) -> Result<String, MediaError> {
    let server = vk
        .doc_upload_server(peer_id, doc_type)
        .await
        .map_err(|e| vk_error("docs.getMessagesUploadServer", e))?;
    let uploaded = vk
        .upload_doc(&server, &file.file_name, &file.mime, file.bytes.clone())
        .await
        .map_err(|e| vk_error("document upload", e))?;
    let saved = vk
        .save_doc(&uploaded, &file.file_name)
        .await
        .map_err(|e| vk_error("docs.save", e))?;
    Ok(saved.attachment())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(kind: AttachmentKind, name: Option<&str>, mime: Option<&str>) -> Attachment {
        Attachment {
            kind,
            url: Some("https://example.com/x".into()),
            mime: mime.map(str::to_owned),
            name: name.map(str::to_owned),
            size: None,
            preview_url: None,
        }
    }

    fn got(content_type: Option<&str>, file_name: Option<&str>) -> Downloaded {
        Downloaded {
            bytes: vec![1, 2, 3],
            content_type: content_type.map(str::to_owned),
            file_name: file_name.map(str::to_owned),
        }
    }

    #[test]
    fn files_are_named_and_typed_from_what_is_known() {
        // A VK photo: served as image/jpeg under a CDN name without a usable extension.
        let f = describe(
            &att(AttachmentKind::Image, None, Some("image/jpeg")),
            got(Some("image/jpeg"), Some("impf")),
        );
        assert_eq!(
            (f.file_name.as_str(), f.mime.as_str()),
            ("photo.jpg", "image/jpeg")
        );
        // A VK doc: its title names it; a generic server type gives way to the extension's.
        let f = describe(
            &att(AttachmentKind::File, Some("отчёт.pdf"), None),
            got(Some("application/octet-stream"), Some("doc123")),
        );
        assert_eq!(
            (f.file_name.as_str(), f.mime.as_str()),
            ("отчёт.pdf", "application/pdf")
        );
        // A voice message as mp3.
        let f = describe(
            &att(AttachmentKind::Voice, None, Some("audio/mpeg")),
            got(Some("audio/mpeg"), None),
        );
        assert_eq!(f.file_name, "voice.mp3");
        // A Chatwoot attachment: the disk URL's last segment is the real name.
        let f = describe(
            &att(AttachmentKind::Image, None, Some("image/png")),
            got(Some("image/png"), Some("scan 1.png")),
        );
        assert_eq!(f.file_name, "scan 1.png");
        // A video: the preview frame, never named after the video's title.
        let f = describe(
            &att(AttachmentKind::Video, Some("My clip"), None),
            got(Some("image/jpeg"), None),
        );
        assert_eq!(f.file_name, "video-preview.jpg");
        // No path tricks; a long name keeps its extension.
        assert_eq!(sanitize("../../etc/passwd"), ".._.._etc_passwd");
        let long = format!("{}.pdf", "я".repeat(300));
        let short = sanitize(&long);
        assert_eq!(short.chars().count(), MAX_NAME_CHARS);
        assert!(short.ends_with(".pdf"));
    }

    #[test]
    fn vk_takes_jpg_and_png_as_photos_and_ogg_as_voice() {
        assert!(is_vk_photo("image/jpeg") && is_vk_photo("image/png"));
        assert!(!is_vk_photo("image/gif") && !is_vk_photo("image/webp"));
        assert!(is_vk_voice("audio/ogg"));
        assert!(!is_vk_voice("audio/mpeg") && !is_vk_voice("audio/webm"));
        let music = att(AttachmentKind::Audio, Some("Artist — Title"), None);
        assert_eq!(vk_file_url(&music), None, "a VK music track stays a link");
        assert!(
            file_url(&music).is_some(),
            "an agent's audio file is carried"
        );
    }

    #[test]
    fn only_files_are_fetched() {
        let mut video = att(AttachmentKind::Video, Some("clip"), None);
        video.url = Some("https://vk.com/video-1_2".into());
        assert_eq!(file_url(&video), None, "a video page is not a file");
        video.preview_url = Some("https://sun9.userapi.com/p.jpg".into());
        assert_eq!(file_url(&video), Some("https://sun9.userapi.com/p.jpg"));
        let link = att(AttachmentKind::Link, None, None);
        assert_eq!(file_url(&link), None);
        let mut tel = att(AttachmentKind::File, None, None);
        tel.url = Some("tel:123".into());
        assert_eq!(file_url(&tel), None);
    }
}
