//! Test support shared by the services' integration tests: a fresh Postgres database and a
//! unique NATS subject prefix per test (our own infrastructure is never mocked), and bounded
//! waits for asynchronous effects (never fixed sleeps).
//!
//! Environment: `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`, a
//! role that may CREATE DATABASE) and `NATS_URL` (default `nats://127.0.0.1:4222`).

#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

/// How long a test waits for an asynchronous effect before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The admin connection URL tests create databases with.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The NATS URL tests connect to.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A new empty database named `<prefix>_<unique>`: returns (name, URL).
///
/// Panics when Postgres is unreachable: the tests need it.
pub async fn fresh_database(prefix: &str) -> (String, String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let name = format!("{prefix}_{}", &id[id.len() - 16..]);
    let admin = sqlx::PgPool::connect(&admin_url())
        .await
        .expect("admin connection to Postgres (TEST_DATABASE_URL)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let url = format!("{base}/{name}");
    (name, url)
}

/// Drops a database made by [`fresh_database`] (best effort).
pub async fn drop_database(name: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(&admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// A NATS subject prefix (and so stream names) no other test uses.
pub fn unique_prefix() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("t{}", &id[id.len() - 12..])
}

/// Deletes the streams of a prefix (best effort), for cleanup.
pub async fn delete_streams(prefix: &str) {
    if let Ok(bus) = service_kit::bus::Bus::connect(&nats_url(), prefix, "test-cleanup").await {
        let _ = bus.delete_streams().await;
    }
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after [`WAIT`].
/// For conditions nothing notifies about (rows in Postgres, stream state).
pub async fn wait_for<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
