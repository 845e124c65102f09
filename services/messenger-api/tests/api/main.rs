//! messenger-api against real Postgres and NATS. One test binary (one link on 2 cores); each
//! test has its own database, its own NATS subject prefix and streams, and its own files
//! directory.

mod admin;
mod auth;
mod chats;
mod files;
mod helpers;
mod hub;
mod limits;
mod messages;
mod ops;
mod replicas;
