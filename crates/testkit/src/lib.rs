//! Test support shared by the services' integration tests: a fresh Postgres database and a
//! unique NATS subject prefix per test (our own infrastructure is never mocked), and bounded
//! waits for asynchronous effects (never fixed sleeps).
//!
//! [`TestEnv`] is one test's share of our infrastructure — its database and its NATS prefix —
//! removed on `Drop`, also when the test panics. [`parse_config`] builds a service's settings
//! through its real clap parser, with the test's values given by their environment names
//! (zero2prod's `get_configuration` plus overrides), so config parsing runs in every test.
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

/// One test's database and NATS prefix (so its streams are `<PREFIX>_EVENTS`, …). Dropping
/// it drops the database and deletes the streams, also when the test panicked.
pub struct TestEnv {
    /// Database name.
    pub db_name: String,
    /// Connection URL of the database.
    pub database_url: String,
    /// NATS subject prefix, unique to this test.
    pub prefix: String,
    /// Extra prefixes to clean up (a test that runs several gateways).
    pub more_prefixes: Vec<String>,
}

impl TestEnv {
    /// A fresh database named `<db_prefix>_<unique>` and a unique NATS prefix.
    pub async fn new(db_prefix: &str) -> Self {
        let (db_name, database_url) = fresh_database(db_prefix).await;
        Self {
            db_name,
            database_url,
            prefix: unique_prefix(),
            more_prefixes: Vec::new(),
        }
    }

    /// The `DATABASE_URL`, `NATS_URL`, `NATS_SUBJECT_PREFIX` overrides for [`parse_config`].
    pub fn runtime_overrides(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("NATS_URL", nats_url()),
            ("NATS_SUBJECT_PREFIX", self.prefix.clone()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("LOG_FORMAT", "pretty".to_owned()),
        ]
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let db = std::mem::take(&mut self.db_name);
        let mut prefixes = std::mem::take(&mut self.more_prefixes);
        prefixes.push(std::mem::take(&mut self.prefix));
        // Drop may run inside a runtime (or while unwinding from a panic in one): clean up
        // on a thread of our own with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                for p in &prefixes {
                    delete_streams(p).await;
                }
                drop_database(&db).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Parses `C` (a service's clap `Cli`) from the program name and `overrides` given by their
/// **environment variable names** (`("VK_GROUP_ID", "1")`), through the real parser: each name
/// is turned into the flag that reads it, so defaults, value parsing and validation are the
/// service's own. Variables not overridden fall back to the process environment as in
/// production.
///
/// Panics when a name is no setting of `C`, or the parser refuses the values (with clap's
/// message): a test that means to see a refusal uses [`try_parse_config`].
pub fn parse_config<C: clap::Parser>(overrides: &[(&str, String)]) -> C {
    try_parse_config(overrides).unwrap_or_else(|e| panic!("settings do not parse: {e}"))
}

/// [`parse_config`] returning clap's error instead of panicking.
///
/// Errors: clap's, for a value it refuses. Panics when a name is no setting of `C`.
pub fn try_parse_config<C: clap::Parser>(overrides: &[(&str, String)]) -> Result<C, clap::Error> {
    let command = C::command();
    let mut args = vec![command.get_name().to_owned()];
    for (name, value) in overrides {
        let arg = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == *name))
            .unwrap_or_else(|| panic!("{name} is not a setting of {}", command.get_name()));
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("{name} has no long flag"));
        args.push(format!("--{long}={value}"));
    }
    C::try_parse_from(args)
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
