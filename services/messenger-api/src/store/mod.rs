//! SQL for schema `messenger`. Every statement names its tables with the schema; the pool's
//! `search_path` is the schema too.

mod chats;
mod messages;
mod users;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

pub use chats::{ChatListRow, ChatRow, MemberRow, NewChat};
pub use messages::{FileRow, InsertOutcome, MessageRow, NewMessage, ReadOutcome};
pub use users::{InviteRow, RegisterError, RotateOutcome, UserRow};

/// Name of this service's schema.
pub const SCHEMA: &str = "messenger";

/// Access to schema `messenger`.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A store on `pool`, whose database holds schema `messenger`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `true` for a unique-constraint violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// Now, for values compared in SQL with timestamps Postgres wrote.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The stable key of the private chat of two users: the smaller id first.
pub fn private_key(a: Uuid, b: Uuid) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("{x}:{y}")
}
