//! Integration tests of okdesk-bridge: the real service on port 0 with a fresh database,
//! unique NATS streams and the sandbox's Okdesk fake.

mod helpers;

mod binary;
mod commands;
mod rpc;
mod webhook;
