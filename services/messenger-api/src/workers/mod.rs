//! The long-running loops beside the HTTP server, started and stopped with it by the one
//! shutdown token given to [`crate::App::run_until`]:
//!
//! - `hub fan-out` ([`crate::hub::Fanout::run`]): the other replicas' hub frames to this
//!   replica's connections; at stop it closes the hub's connections (reconnect allowed);
//! - [`outbox`]: publishes the `message.posted` events JetStream did not acknowledge in time;
//! - [`housekeeping`]: forgets rate-limit keys that have recovered.

pub mod housekeeping;
pub mod outbox;
