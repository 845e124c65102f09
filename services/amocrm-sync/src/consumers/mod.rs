//! Durable consumers of amocrm-sync: events on `events.amocrm.>` into Postgres.

pub mod sync;
