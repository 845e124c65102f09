//! JetStream: the `EVENTS` and `COMMANDS` streams and publishing envelopes to them.
//!
//! Every publish carries `Nats-Msg-Id` = the envelope's idempotency key (so one upstream
//! delivery published twice inside the duplicate window is stored once) and the W3C
//! `traceparent` of the publishing span, and returns only after JetStream acknowledged it.
//!
//! The service's NATS user and password come in `NATS_URL` (`nats://vk:…@nats:4222`, see
//! `deploy/nats/auth.conf`): async-nats does not read them from the URL itself, so
//! [`Bus::connect`] takes them out, passes them as options and never shows the password. Replies
//! come to the service's own inbox, `_INBOX.<service>.…`, which is all its user may subscribe to.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use domain::{Envelope, Payload, Subject};

use crate::config::{Secret, redact_url};

/// Duplicate window of both streams: a publish with a `Nats-Msg-Id` seen within it is
/// acknowledged as a duplicate and not stored again.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How long a publish may wait for JetStream's acknowledgement.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to NATS with JetStream, bound to a subject prefix (empty in production).
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    endpoint: Arc<Endpoint>,
}

/// Publishing failed: NATS is unreachable, or JetStream did not acknowledge in time.
/// Callers at the ingress answer 5xx so that the upstream retries.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {subject} failed: {reason}")]
pub struct PublishError {
    /// The subject on the wire (with prefix) the publish was for.
    pub subject: String,
    /// What went wrong: the NATS error, or the missing acknowledgement.
    pub reason: String,
}

/// What JetStream said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Stream sequence number of the stored message.
    pub sequence: u64,
    /// `true` when the `Nats-Msg-Id` had been seen inside the duplicate window.
    pub duplicate: bool,
}

impl Bus {
    /// Connects (reconnecting by itself when NATS goes away later) and creates or
    /// updates the two streams.
    ///
    /// `url` may carry the service's NATS user (`nats://vk:<password>@nats:4222`, several
    /// servers comma-separated); replies come to `_INBOX.<name>.…`.
    ///
    /// Errors: a password that is a placeholder (`change_me` …), NATS unreachable or the
    /// credentials refused at start, or JetStream disabled on the server. No error shows the
    /// password.
    pub async fn connect(url: &str, prefix: &str, name: &str) -> anyhow::Result<Self> {
        let endpoint = Arc::new(Endpoint::parse(url, name)?);
        let client = endpoint
            .options()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(5)))
            .connect(endpoint.servers.as_str())
            .await
            .with_context(|| format!("connecting to NATS at {}", endpoint.servers))?;
        let bus = Self {
            js: jetstream::new(client.clone()),
            client,
            prefix: prefix.trim_matches('.').to_owned(),
            endpoint,
        };
        bus.ensure_streams().await?;
        Ok(bus)
    }

    /// Options for another connection as the same NATS user, with the same inbox (the
    /// messenger hub's fan-out connection, which needs `no_echo`); connect them to
    /// [`Self::server_url`].
    pub fn connect_options(&self) -> async_nats::ConnectOptions {
        self.endpoint.options()
    }

    /// The server(s) of `NATS_URL` without the credentials: for another connection and for
    /// logs.
    pub fn server_url(&self) -> &str {
        &self.endpoint.servers
    }

    /// The core NATS client (request/reply, fan-out).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// `EVENTS`, or `<PREFIX>_EVENTS` with a prefix.
    pub fn events_stream(&self) -> String {
        self.stream_name("EVENTS")
    }

    /// `COMMANDS`, or `<PREFIX>_COMMANDS` with a prefix.
    pub fn commands_stream(&self) -> String {
        self.stream_name("COMMANDS")
    }

    fn stream_name(&self, base: &str) -> String {
        if self.prefix.is_empty() {
            base.to_owned()
        } else {
            let p: String = self
                .prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{p}_{base}")
        }
    }

    /// The subject as it is on the wire, with this bus's prefix.
    pub fn wire_subject(&self, subject: &Subject) -> String {
        subject.with_prefix(&self.prefix)
    }

    /// Creates both streams, or updates them to this configuration (idempotent; safe to run
    /// from every replica at start).
    pub async fn ensure_streams(&self) -> anyhow::Result<()> {
        for (name, subject) in [
            (self.events_stream(), Subject::all_events()),
            (self.commands_stream(), Subject::all_commands()),
        ] {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![self.wire_subject(&subject)],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            };
            match self.js.get_stream(&name).await {
                Ok(_) => {
                    self.js
                        .update_stream(&config)
                        .await
                        .with_context(|| format!("updating stream {name}"))?;
                }
                Err(_) => {
                    self.js
                        .get_or_create_stream(config)
                        .await
                        .with_context(|| format!("creating stream {name}"))?;
                }
            }
        }
        Ok(())
    }

    /// Publishes `envelope` to its subject and waits for JetStream's acknowledgement.
    /// Sets `Nats-Msg-Id` to the idempotency key and `traceparent` to the current trace
    /// (the envelope's own `traceparent` is filled in too when empty).
    pub async fn publish<P: Payload>(
        &self,
        envelope: &Envelope<P>,
    ) -> Result<Published, PublishError> {
        let mut envelope = envelope.clone();
        if envelope.traceparent.is_none() {
            envelope.traceparent = crate::telemetry::current_traceparent();
        }
        let subject = self.wire_subject(&envelope.subject());
        let id = envelope.idempotency_key.to_string();
        self.publish_raw(
            &subject,
            &id,
            envelope.traceparent.as_deref(),
            envelope.to_bytes(),
        )
        .await
    }

    /// Publishes bytes that already are an envelope (dead-letter replay) under `msg_id`.
    pub async fn publish_raw(
        &self,
        wire_subject: &str,
        msg_id: &str,
        traceparent: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Published, PublishError> {
        let err = |reason: String| PublishError {
            subject: wire_subject.to_owned(),
            reason,
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let ack = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            self.js
                .publish_with_headers(wire_subject.to_owned(), headers, body.into())
                .await
                .map_err(|e| err(e.to_string()))?
                .await
                .map_err(|e| err(e.to_string()))
        })
        .await
        .map_err(|_| err("no acknowledgement from JetStream within 5 s".into()))??;
        metrics::counter!("bus_published_total", "duplicate" => ack.duplicate.to_string())
            .increment(1);
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// `true` when the client is connected, for `/ready`.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Deletes this bus's streams (tests clean up their prefixed streams with it).
    pub async fn delete_streams(&self) -> anyhow::Result<()> {
        for name in [self.events_stream(), self.commands_stream()] {
            let _ = self.js.delete_stream(&name).await;
        }
        Ok(())
    }
}

/// `NATS_URL` taken apart: the servers without credentials, the user and password (or token)
/// they carried, and the inbox of the service.
struct Endpoint {
    servers: String,
    user: Option<String>,
    password: Option<Secret>,
    inbox_prefix: String,
}

impl Endpoint {
    /// Splits the credentials off `url` (comma-separated servers; the first one that has
    /// credentials gives them). `user:password@` is a NATS user, a bare `token@` a token.
    fn parse(url: &str, name: &str) -> anyhow::Result<Self> {
        let mut servers = Vec::new();
        let (mut user, mut password) = (None, None);
        for server in url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !server.contains('@') {
                servers.push(server.to_owned());
                continue;
            }
            let with_scheme = if server.contains("://") {
                server.to_owned()
            } else {
                format!("nats://{server}")
            };
            let mut parsed = reqwest::Url::parse(&with_scheme).map_err(|e| {
                anyhow::anyhow!("NATS_URL is not a URL ({e}): {}", redact_url(server))
            })?;
            if user.is_none() {
                user = Some(percent_decode(parsed.username())?);
                password = parsed.password().map(percent_decode).transpose()?;
            }
            // Both setters fail only for URLs that cannot have credentials, which `@` rules out.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            servers.push(parsed.to_string());
        }
        let password = match password {
            Some(p) => Some(
                Secret::require(Some(&p), "NATS_URL")
                    .map_err(|e| anyhow::anyhow!("the password in {e}"))?,
            ),
            None => None,
        };
        let inbox: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Self {
            servers: servers.join(","),
            user: user.filter(|u| !u.is_empty()),
            password,
            inbox_prefix: format!("_INBOX.{inbox}"),
        })
    }

    fn options(&self) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new().custom_inbox_prefix(&self.inbox_prefix);
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
            (Some(token), None) => options.token(token.clone()),
            (None, _) => options,
        }
    }
}

/// `%XX` escapes of a URL's user part decoded (a password may hold them).
fn percent_decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .context(
                    "NATS_URL: a `%` in the user or password is not followed by two hex digits",
                )?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("NATS_URL: the user or password is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_url() {
        let e = Endpoint::parse("nats://vk:s3cr%40t@nats:4222", "vk-connector").expect("parsed");
        assert_eq!(e.servers, "nats://nats:4222");
        assert_eq!(e.user.as_deref(), Some("vk"));
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("s3cr@t"));
        assert_eq!(e.inbox_prefix, "_INBOX.vk-connector");

        let e = Endpoint::parse("nats://127.0.0.1:4222", "x y").expect("parsed");
        assert_eq!(e.servers, "nats://127.0.0.1:4222");
        assert!(e.user.is_none() && e.password.is_none());
        assert_eq!(e.inbox_prefix, "_INBOX.x_y");

        let e = Endpoint::parse("a:pw@n1:4222, nats://n2:4222", "s").expect("parsed");
        assert_eq!(e.servers, "nats://n1:4222,nats://n2:4222");
        assert_eq!(e.user.as_deref(), Some("a"));
    }

    #[test]
    fn a_placeholder_password_is_refused_without_showing_it() {
        let err = Endpoint::parse("nats://vk:change_me@nats:4222", "vk-connector")
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("NATS_URL") && !err.contains("change_me"),
            "{err}"
        );
    }
}
