//! The one outbound HTTP client setup: timeouts, user agent, rustls.

use std::time::Duration;

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

/// Parses an HTTP `Retry-After` header given in seconds (the form Chatwoot, VK's proxies and
/// most APIs use; HTTP-dates are ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
