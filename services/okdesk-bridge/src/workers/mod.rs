//! Long-running loops of okdesk-bridge: the [`poll`] for changes no webhook reported.

pub mod poll;
