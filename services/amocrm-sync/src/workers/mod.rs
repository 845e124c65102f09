//! Long-running loops of amocrm-sync, started and stopped with the server by the same shutdown
//! token (registered in [`crate::build`]).

pub mod token_refresh;
