//! vk-connector against real Postgres and NATS, with the sandbox standing in for VK and
//! Chatwoot. One test binary (one link on 2 cores); each test has its own database, its own
//! NATS subject prefix and streams, and its own sandbox.

mod binary;
mod callback;
mod errors;
mod helpers;
mod legacy;
mod long_poll;
mod long_poll_position;
mod media;
mod ops;
mod outbound;
mod relay;
mod relay_races;
mod setup;
mod telemetry;
mod unreadable;
mod webhook_account;
