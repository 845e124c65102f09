//! amocrm-sync against real Postgres and NATS, with the sandbox standing in for amoCRM. One test
//! binary; each test has its own database, its own NATS subject prefix and streams, and its own
//! sandbox.

mod auth;
mod binary;
mod helpers;
mod oauth;
mod ops;
mod ordering;
mod outage;
mod webhooks;
