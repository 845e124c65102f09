//! Downloading a file from an upstream (a VK photo, a Chatwoot attachment) with a size limit and
//! a timeout, read chunk by chunk so that a file past the limit is never held whole.

use std::time::Duration;

/// A file fetched by [`download`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The body, at most the limit given to [`download`].
    pub bytes: Vec<u8>,
    /// The `Content-Type` the server sent, without parameters (`image/jpeg`), when it sent one.
    pub content_type: Option<String>,
    /// The file name from `Content-Disposition` (`filename=`), else the last segment of the
    /// final URL's path (after redirects), percent-decoded; `None` when neither gives one.
    pub file_name: Option<String>,
}

/// Why [`download`] gave no file.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The file is larger than the limit (`declared`: the `Content-Length`, when the server
    /// announced it; otherwise the transfer was cut when the limit was passed).
    #[error("the file is larger than {limit} bytes{}", declared.map(|d| format!(" ({d} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
        /// `Content-Length`, when sent.
        declared: Option<u64>,
    },
    /// The server answered a non-2xx status (after following redirects).
    #[error("the file server answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// Not reachable, reset, or slower than the timeout (the URL is not in the message: file
    /// URLs can carry access keys).
    #[error("downloading the file failed: {0}")]
    Transport(String),
}

impl DownloadError {
    /// Worth trying again: unreachable, timed out, 429 or 5xx. A refusal (other 4xx) or a file
    /// over the limit will not change.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::TooLarge { .. } => false,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(_) => true,
        }
    }
}

/// GETs `url` through `http` and returns its body if it is at most `max_bytes` long; the whole
/// request (headers and body) must finish within `timeout`. A `Content-Length` over the limit
/// is refused before the body is read; without one, reading stops as soon as the limit is
/// passed. Redirects are followed as `http` is configured to (reqwest's default: up to 10).
///
/// Errors: [`DownloadError`].
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    max_bytes: u64,
    timeout: Duration,
) -> Result<Downloaded, DownloadError> {
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            DownloadError::Transport(format!("no complete answer within {}s", timeout.as_secs()))
        } else {
            DownloadError::Transport(e.without_url().to_string())
        }
    };
    let mut res = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(transport)?;
    let status = res.status();
    if !status.is_success() {
        return Err(DownloadError::Status {
            status: status.as_u16(),
            retry_after: crate::retry_after(res.headers()),
        });
    }
    let declared = res.content_length();
    if let Some(len) = declared.filter(|len| *len > max_bytes) {
        return Err(DownloadError::TooLarge {
            limit: max_bytes,
            declared: Some(len),
        });
    }
    let headers = res.headers();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    let file_name = headers
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(disposition_file_name)
        .or_else(|| {
            res.url()
                .path_segments()?
                .next_back()
                .map(percent_decode)
                .filter(|s| !s.is_empty())
        });
    let capacity = declared.unwrap_or(64 * 1024).min(max_bytes) as usize;
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(DownloadError::TooLarge {
                limit: max_bytes,
                declared,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Downloaded {
        bytes,
        content_type,
        file_name,
    })
}

/// `filename="a b.pdf"` or `filename=a.pdf` of a `Content-Disposition` value (RFC 6266);
/// `filename*=UTF-8''…` is preferred when present.
fn disposition_file_name(value: &str) -> Option<String> {
    let mut plain = None;
    for part in value.split(';').map(str::trim) {
        if let Some(v) = part.strip_prefix("filename*=") {
            let v = v.split_once("''").map_or(v, |(_, rest)| rest);
            let name = percent_decode(v.trim_matches('"'));
            if !name.is_empty() {
                return Some(name);
            }
        } else if let Some(v) = part.strip_prefix("filename=") {
            plain = Some(v.trim_matches('"').to_owned()).filter(|s| !s.is_empty());
        }
    }
    plain
}

/// `%D0%BF` → `п`; invalid escapes are kept as they are, invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_headers_and_paths() {
        assert_eq!(
            disposition_file_name("attachment; filename=\"report.pdf\"").as_deref(),
            Some("report.pdf")
        );
        assert_eq!(
            disposition_file_name(
                "attachment; filename=\"a.pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf"
            )
            .as_deref(),
            Some("отчёт.pdf")
        );
        assert_eq!(disposition_file_name("inline"), None);
        assert_eq!(percent_decode("a%20b%zz%2"), "a b%zz%2");
    }

    #[test]
    fn only_outages_are_retried() {
        let status = |status| DownloadError::Status {
            status,
            retry_after: None,
        };
        assert!(status(503).is_retriable());
        assert!(status(429).is_retriable());
        assert!(!status(404).is_retriable());
        assert!(!status(403).is_retriable());
        assert!(DownloadError::Transport("reset".into()).is_retriable());
        let big = DownloadError::TooLarge {
            limit: 10,
            declared: Some(11),
        };
        assert!(!big.is_retriable());
        assert_eq!(
            big.to_string(),
            "the file is larger than 10 bytes (11 bytes)"
        );
    }
}
