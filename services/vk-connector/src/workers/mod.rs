//! Long-running loops of vk-connector, started and stopped with the server by one shutdown
//! token (declared in [`crate::build`]).
//!
//! - [`long_poll`]: VK Bots Long Poll → the same ingest as the callback (only when
//!   `VK_LONG_POLL` is on);
//! - [`reconcile`]: the sweep that queues agent replies whose Chatwoot webhook was lost.

pub mod long_poll;
pub mod reconcile;
