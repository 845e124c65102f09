//! The one outbound HTTP client setup every upstream client (VK, Chatwoot, amoCRM, Telegram,
//! Okdesk) is built on — timeouts, user agent, rustls — the one `Retry-After` parser, and
//! [`download`]: a file with a size limit and a timeout.
//!
//! Kept apart from the service runtime so that the typed client crates can use it without
//! pulling Postgres and NATS in.

#![warn(missing_docs)]

mod download;

use std::time::{Duration, SystemTime};

pub use download::{DownloadError, Downloaded, download};

/// A `reqwest::Client` for calling upstream APIs: 5 s connect timeout, `timeout` per request,
/// user agent `messenger-gateway/<service>/<version>`. Clone it freely (it is an `Arc`).
///
/// Errors: only if the TLS backend cannot be initialised.
pub fn build(service: &str, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(format!(
            "messenger-gateway/{service}/{}",
            env!("CARGO_PKG_VERSION")
        ))
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

/// The wait an HTTP `Retry-After` header asks for: delay-seconds (`120`, the form Chatwoot,
/// amoCRM and VK's proxies send) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`, RFC 9110
/// §10.2.3), counted from now; `None` when absent or unreadable.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// Parses the value of a `Retry-After` header (see [`retry_after`]).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate(value)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only date form HTTP senders must use.
fn httpdate(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let mut t = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe as u64 * 365 + yoe as u64 / 4 - yoe as u64 / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// At most `max` characters of an upstream's error body, for an error message (cut on a
/// character boundary, never inside a UTF-8 sequence).
pub fn truncate_body(body: &str, max: usize) -> String {
    match body.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon"), None);
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_body("Привет", 3), "При…");
        assert_eq!(truncate_body("ok", 3), "ok");
    }
}
