//! The Postgres pool of one service, bound to that service's own schema, and its migrations.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Connects a pool whose connections have `search_path` = `schema`, creates the schema when
/// it is missing (in production `deploy/postgres/init.sql` creates it, owned by the service's
/// role), and runs `migrator` (its bookkeeping table lives in the schema too).
///
/// The pool connects lazily after the first check, so a service whose database goes away
/// later keeps running and reports it on `/ready`.
///
/// Errors: the URL is malformed, Postgres is unreachable at start, or a migration fails.
pub async fn connect_and_migrate(
    database_url: &str,
    schema: &str,
    max_connections: u32,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let pool = connect(database_url, schema, max_connections).await?;
    ensure_schema(&pool, schema).await?;
    migrator
        .run(&pool)
        .await
        .with_context(|| format!("running migrations of schema `{schema}`"))?;
    Ok(pool)
}

/// A pool with `search_path` set to `schema`; checks one connection now.
pub async fn connect(
    database_url: &str,
    schema: &str,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(database_url)
        .context("DATABASE_URL is not a valid Postgres URL")?
        .options([("search_path", schema)])
        .application_name(schema);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    Ok(pool)
}

async fn ensure_schema(pool: &PgPool, schema: &str) -> anyhow::Result<()> {
    // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege on the database first, which
    // the service role rightly lacks in production; so only create when it is missing.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(pool)
            .await?;
    if !exists {
        let ident = schema.replace('"', "\"\"");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{ident}\""
        )))
        .execute(pool)
        .await
        .with_context(|| format!("creating schema `{schema}`"))?;
    }
    Ok(())
}

/// `SELECT 1` with a short timeout, for `/ready`.
pub async fn ping(pool: &PgPool) -> anyhow::Result<()> {
    tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(pool),
    )
    .await
    .context("timed out")??;
    Ok(())
}
