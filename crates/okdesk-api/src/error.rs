//! What can go wrong talking to Okdesk. No message ever contains the API token: the token
//! travels in the query string, so URLs are never part of an error (reqwest errors are taken
//! `.without_url()`), and an error body that echoes the token has it replaced by `[redacted]`.

use std::time::Duration;

use serde_json::Value;

/// An Okdesk API call failed. `endpoint` names the call (`issues`, `companies/list` …) without
/// its URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OkdeskError {
    /// Okdesk answered with an error status. Its errors come as
    /// `{"errors":{"title":["не может быть пустым"]}}` or `{"errors":"…"}`; `detail` is that
    /// text, or the start of the body.
    #[error("Okdesk {endpoint}: HTTP {status}: {detail}")]
    Status {
        /// The call.
        endpoint: &'static str,
        /// The HTTP status code.
        status: u16,
        /// What Okdesk said.
        detail: String,
        /// `Retry-After` of a 429/503, when given.
        retry_after: Option<Duration>,
    },
    /// The API key may not search companies: keys of contact persons cannot use the companies
    /// methods, nor can employees without access to the company list
    /// (<https://okdesk.ru/apidoc#!kompanii-poisk-kompanii>). Use an employee's key.
    #[error(
        "Okdesk {endpoint}: this API key may not search companies (HTTP {status}: {detail}); \
         a contact person's key cannot, use the key of an employee with access to companies"
    )]
    CompanySearchNotAllowed {
        /// The call.
        endpoint: &'static str,
        /// The HTTP status code (403).
        status: u16,
        /// What Okdesk said.
        detail: String,
    },
    /// No answer: connection refused, DNS, TLS, timeout, a broken body.
    #[error("Okdesk {endpoint} unreachable: {message}")]
    Transport {
        /// The call.
        endpoint: &'static str,
        /// What happened, without the URL.
        message: String,
        /// The request timed out.
        timeout: bool,
    },
    /// A 2xx answer that is not what the API documents.
    #[error("unexpected answer from Okdesk {endpoint}: {message}")]
    Decode {
        /// The call.
        endpoint: &'static str,
        /// What did not fit.
        message: String,
    },
}

impl OkdeskError {
    /// 5xx, 429, timeouts and no answer at all: worth trying again later.
    pub fn is_retriable(&self) -> bool {
        match self {
            OkdeskError::Status { status, .. } => *status == 429 || *status >= 500,
            OkdeskError::Transport { .. } => true,
            OkdeskError::CompanySearchNotAllowed { .. } | OkdeskError::Decode { .. } => false,
        }
    }

    /// The HTTP status, when Okdesk answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            OkdeskError::Status { status, .. }
            | OkdeskError::CompanySearchNotAllowed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 401: the API token is wrong or revoked.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// The request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, OkdeskError::Transport { timeout: true, .. })
    }

    /// `Retry-After` of a 429/503.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OkdeskError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The call that failed.
    pub fn endpoint(&self) -> &'static str {
        match self {
            OkdeskError::Status { endpoint, .. }
            | OkdeskError::CompanySearchNotAllowed { endpoint, .. }
            | OkdeskError::Transport { endpoint, .. }
            | OkdeskError::Decode { endpoint, .. } => endpoint,
        }
    }

    pub(crate) fn transport(endpoint: &'static str, e: reqwest::Error) -> Self {
        OkdeskError::Transport {
            endpoint,
            timeout: e.is_timeout(),
            message: e.without_url().to_string(),
        }
    }
}

/// The human text of an Okdesk error body: `errors` as a string, a list, or an object of field
/// → messages (flattened to `field: message; …`), else `error`/`message`/`description`.
/// `None` when the body is not JSON or holds none of these.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    for key in ["errors", "error", "message", "description"] {
        if let Some(e) = v.get(key) {
            let mut parts = Vec::new();
            flatten(e, "", &mut parts);
            if !parts.is_empty() {
                return Some(parts.join("; "));
            }
        }
    }
    None
}

fn flatten(v: &Value, prefix: &str, out: &mut Vec<String>) {
    let label = |text: String| {
        if prefix.is_empty() {
            text
        } else {
            format!("{prefix}: {text}")
        }
    };
    match v {
        Value::String(s) if !s.is_empty() => out.push(label(s.clone())),
        Value::Number(n) => out.push(label(n.to_string())),
        Value::Array(items) => items.iter().for_each(|i| flatten(i, prefix, out)),
        Value::Object(map) => {
            for (k, item) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(item, &key, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_flattened() {
        assert_eq!(
            error_message(include_bytes!("../tests/fixtures/error_validation.json")).as_deref(),
            Some("contact_id: Контактное лицо не найдено; title: не может быть пустым")
        );
        assert_eq!(
            error_message(include_bytes!("../tests/fixtures/error_nested.json")).as_deref(),
            Some(
                "created_until: Неверный формат даты; page.size: должно быть меньше или равно 100"
            )
        );
        assert_eq!(
            error_message(br#"{"errors":"Invalid api token"}"#).as_deref(),
            Some("Invalid api token")
        );
        assert_eq!(
            error_message(br#"{"errors":["a","b"]}"#).as_deref(),
            Some("a; b")
        );
        assert_eq!(
            error_message(br#"{"error":"Not found"}"#).as_deref(),
            Some("Not found")
        );
        assert_eq!(error_message(b"<html>502</html>"), None);
    }

    #[test]
    fn retriable_classes() {
        let status = |s| OkdeskError::Status {
            endpoint: "issues",
            status: s,
            detail: String::new(),
            retry_after: None,
        };
        assert!(status(500).is_retriable());
        assert!(status(503).is_retriable());
        assert!(status(429).is_retriable());
        assert!(!status(422).is_retriable());
        assert!(!status(401).is_retriable());
        assert!(status(401).is_unauthorized());
        let t = OkdeskError::Transport {
            endpoint: "issues",
            message: "timed out".into(),
            timeout: true,
        };
        assert!(t.is_retriable() && t.is_timeout());
        let c = OkdeskError::CompanySearchNotAllowed {
            endpoint: "companies/list",
            status: 403,
            detail: "x".into(),
        };
        assert!(!c.is_retriable());
        assert_eq!(c.status(), Some(403));
        assert!(c.to_string().contains("may not search companies"));
    }
}
