//! Just enough `multipart/form-data` (RFC 7578) reading for the fakes that take files: Okdesk's
//! `POST …/comments`, Chatwoot's `POST …/messages` and the VK upload servers. File names are
//! read as Rack reads them (`filename*=` wins; a `filename` whose every `%` starts an escape is
//! percent-decoded), since clients such as reqwest percent-encode them.

/// One part of a form.
pub(crate) struct FormPart {
    /// The field name (`attachments[]`, `comment[content]`, `photo`).
    pub(crate) name: String,
    /// The file name of a file part, percent-decoded as Rack does.
    pub(crate) file_name: Option<String>,
    /// The part's `Content-Type`, when sent.
    pub(crate) content_type: Option<String>,
    /// The part's content.
    pub(crate) data: Vec<u8>,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The parts of `body` (RFC 7578); `None` when it is not well-formed.
pub(crate) fn parse(boundary: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let close = [b"\r\n".as_slice(), delimiter].concat();
    let mut pos = find(body, delimiter, 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(parts);
        }
        pos = find(body, b"\r\n", pos)? + 2;
        let headers_end = find(body, b"\r\n\r\n", pos)?;
        let headers = std::str::from_utf8(&body[pos..headers_end]).ok()?;
        let data_start = headers_end + 4;
        let data_end = find(body, &close, data_start)?;
        let mut part = FormPart {
            name: String::new(),
            file_name: None,
            content_type: None,
            data: body[data_start..data_end].to_vec(),
        };
        let mut extended_name = None;
        for line in headers.split("\r\n") {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if key.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    let Some((k, v)) = param.split_once('=') else {
                        continue;
                    };
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    match k.trim().to_ascii_lowercase().as_str() {
                        "name" => part.name = v.to_owned(),
                        "filename" => part.file_name = Some(rack_unescape(v)),
                        // RFC 5987 `UTF-8''%D1%84.txt`: wins over `filename`, as in Rack.
                        "filename*" => {
                            extended_name = v.splitn(3, '\'').nth(2).map(percent_decode);
                        }
                        _ => {}
                    }
                }
            } else if key.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_owned());
            }
        }
        if extended_name.is_some() {
            part.file_name = extended_name;
        }
        parts.push(part);
        pos = data_end + close.len();
    }
}

/// Rack's `get_filename`: a name whose every `%` starts a valid escape is percent-decoded
/// (clients such as reqwest percent-encode file names).
fn rack_unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let all_valid = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if all_valid {
        percent_decode(name)
    } else {
        name.to_owned()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"comment[content]\"\r\n\r\nhi\r\n--XyZ\r\nContent-Disposition: form-data; name=\"comment[attachments][0][attachment]\"; filename=\"a%22.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n";
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        let parts = parse("XyZ", body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "comment[content]");
        assert_eq!(parts[0].data, b"hi");
        assert_eq!(parts[1].file_name.as_deref(), Some("a\".txt"));
        assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
        assert_eq!(parts[1].data, b"line1\r\nline2");
        assert!(parse("XyZ", b"garbage").is_none());
    }
}
