//! The files of a comment: each photo, document, audio or video of the person's message is
//! fetched from Telegram (getFile, then the download URL, which holds the token and is never
//! logged) and carried inline as base64 ([`FileData`]), at most [`MAX_FILE_BYTES`] each — and
//! no more than fits in one NATS message of this server (`max_payload`), base64 included.

use base64::Engine as _;
use domain::{Attachment, AttachmentKind, FileData, InboundMessage};
use service_kit::consumer::HandleError;

use crate::AppState;
use crate::consumers::tg_failure;
use crate::normalize::FILE_URL_PREFIX;
use crate::telegram::DownloadError;

/// Largest file attached to a comment.
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;

/// Room left in a NATS message for the envelope around the files.
const ENVELOPE_ROOM: u64 = 64 * 1024;

/// What became of a message's attachments.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The files to send.
    pub files: Vec<FileData>,
    /// Names of files over the limit.
    pub too_large: Vec<String>,
    /// Stickers, locations, contacts …: not files a comment can carry.
    pub unsupported: usize,
}

/// The largest file that fits: [`MAX_FILE_BYTES`], or less when NATS' `max_payload` is
/// smaller than the base64 of that plus the envelope.
fn limit(state: &AppState) -> u64 {
    let payload = state.bus.client().server_info().max_payload as u64;
    let fits = payload.saturating_sub(ENVELOPE_ROOM) / 4 * 3;
    MAX_FILE_BYTES.min(fits)
}

/// Fetches the files of `m`.
///
/// Errors: Telegram failing (retried as any Bot API failure).
pub async fn fetch(state: &AppState, m: &InboundMessage) -> Result<Fetched, HandleError> {
    let mut out = Fetched::default();
    let mut budget = limit(state);
    for a in &m.attachments {
        let file_id = match (
            a.kind,
            a.url
                .as_deref()
                .and_then(|u| u.strip_prefix(FILE_URL_PREFIX)),
        ) {
            (
                AttachmentKind::Image
                | AttachmentKind::File
                | AttachmentKind::Audio
                | AttachmentKind::Voice
                | AttachmentKind::Video,
                Some(id),
            ) => id,
            _ => {
                out.unsupported += 1;
                continue;
            }
        };
        let mut name = a.name.clone().unwrap_or_default();
        if a.size.is_some_and(|s| s > budget) {
            out.too_large.push(display_name(a, &name));
            continue;
        }
        let file = state
            .telegram
            .get_file(file_id)
            .await
            .map_err(|e| tg_failure("getFile", e))?;
        if file.file_size.is_some_and(|s| s > budget) {
            out.too_large.push(display_name(a, &name));
            continue;
        }
        let Some(path) = file.file_path else {
            return Err(HandleError::Fatal(
                "getFile answered without file_path".into(),
            ));
        };
        let bytes = match state.telegram.download(&path, budget).await {
            Ok(b) => b,
            Err(DownloadError::TooLarge(_)) => {
                out.too_large.push(display_name(a, &name));
                continue;
            }
            Err(DownloadError::Telegram(e)) => return Err(tg_failure("file download", e)),
        };
        if name.is_empty() {
            name = path.rsplit('/').next().unwrap_or("file").to_owned();
        }
        budget = budget.saturating_sub(bytes.len() as u64);
        out.files.push(FileData {
            mime: a.mime.clone().unwrap_or_else(|| mime_of(&name).to_owned()),
            name,
            base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
        });
    }
    Ok(out)
}

fn display_name(a: &Attachment, name: &str) -> String {
    if name.is_empty() {
        match a.kind {
            AttachmentKind::Image => "photo.jpg".to_owned(),
            _ => "file".to_owned(),
        }
    } else {
        name.to_owned()
    }
}

/// A MIME type by file extension, for files Telegram gave none for.
fn mime_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "oga" | "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}
