//! A small `multipart/form-data` writer (RFC 7578) for comments with files, so that the
//! workspace's reqwest needs no extra feature.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) enum Part<'a> {
    Text {
        name: &'a str,
        value: String,
    },
    File {
        name: String,
        file_name: &'a str,
        mime: &'a str,
        bytes: &'a [u8],
    },
}

/// The body and its `Content-Type` (with the boundary).
pub(crate) fn encode(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut attempt = 0u64;
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let boundary = format!("----okdesk-api-{nanos:016x}{n:08x}{attempt:02x}");
        // A boundary must not occur in any part; pick another in the (unlikely) case it does.
        let clashes = parts.iter().any(|p| match p {
            Part::Text { value, .. } => value.contains(&boundary),
            Part::File { bytes, .. } => contains(bytes, boundary.as_bytes()),
        });
        if clashes {
            attempt += 1;
            continue;
        }
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(b"--");
            body.extend_from_slice(boundary.as_bytes());
            body.extend_from_slice(b"\r\n");
            match part {
                Part::Text { name, value } => {
                    body.extend_from_slice(
                        format!(
                            "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                            quote(name)
                        )
                        .as_bytes(),
                    );
                    body.extend_from_slice(value.as_bytes());
                }
                Part::File {
                    name,
                    file_name,
                    mime,
                    bytes,
                } => {
                    let mime = if mime.is_empty() || mime.contains(['\r', '\n']) {
                        "application/octet-stream"
                    } else {
                        mime
                    };
                    body.extend_from_slice(
                        format!(
                            "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {mime}\r\n\r\n",
                            quote(name),
                            quote(file_name)
                        )
                        .as_bytes(),
                    );
                    body.extend_from_slice(bytes);
                }
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"--\r\n");
        return (format!("multipart/form-data; boundary={boundary}"), body);
    }
}

/// Quoted-string content: `"` → `%22`, line breaks → `%0D`/`%0A` (what browsers do, RFC 7578
/// §4.2).
fn quote(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_text_and_file_parts() {
        let (content_type, body) = encode(&[
            Part::Text {
                name: "comment[content]",
                value: "Привет".into(),
            },
            Part::File {
                name: "comment[attachments][0][attachment]".into(),
                file_name: "a\"b.txt",
                mime: "text/plain",
                bytes: b"hello",
            },
        ]);
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        let body = String::from_utf8(body).expect("utf-8");
        assert_eq!(
            body,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"comment[content]\"\r\n\r\nПривет\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"comment[attachments][0][attachment]\"; filename=\"a%22b.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                 --{boundary}--\r\n"
            )
        );
    }
}
