//! The one outbound HTTP client setup: see the `upstream-http` crate, re-exported here so a
//! service reaches it as `service_kit::http_client`.

pub use upstream_http::{build, parse_retry_after, retry_after, truncate_body};
