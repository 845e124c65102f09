//! What every Messenger Gateway service starts with.
//!
//! - [`config`]: the runtime flags every service shares (`DATABASE_URL`, `NATS_URL`, …) and
//!   [`Secret`], which refuses placeholders and never prints itself;
//! - [`telemetry`]: `tracing` JSON/pretty logs and OpenTelemetry export;
//! - [`db`]: the Postgres pool bound to the service's own schema, and its migrations;
//! - [`bus`]: JetStream streams `EVENTS`/`COMMANDS`, publishing envelopes with `Nats-Msg-Id`
//!   and trace context;
//! - [`consumer`]: durable pull consumers with ack-after-success, NAK-with-delay retries and
//!   dead letters ([`dead_letter`]);
//! - [`http`]: the axum server with tower-http layers, `/health`, `/ready`, `/metrics` and
//!   graceful shutdown;
//! - [`rpc`]: request/reply over core NATS for look-ups a person waits for.
//! - [`lease`]: one holder among replicas (Postgres advisory lock), for consumers and loops.
//! - [`http_client`]: the one `reqwest::Client` setup every upstream client is built on, and
//!   `Retry-After` parsing;
//! - [`http_error`]: the one HTTP error core (5xx bodies never carry internal detail);
//! - [`runtime`]: the service template — [`Runtime::connect`], [`runtime::Workers`] (consumers
//!   and loops declared in one place) and [`runtime::App`];
//! - [`cli`]: the standard commands (`serve | migrate | check | dlq | healthcheck`) and the
//!   one `main` with its exit codes;
//! - [`compare`]: constant-time comparison of secrets.

#![warn(missing_docs)]

pub mod bus;
pub mod cli;
pub mod compare;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letter;
pub mod http;
pub mod http_client;
pub mod http_error;
pub mod lease;
pub mod rpc;
pub mod runtime;
pub mod shutdown;
pub mod telemetry;

pub use compare::secure_eq;
pub use config::{ConfigError, RuntimeArgs, Secret, SecretError};
pub use runtime::{App, Runtime, Workers};
