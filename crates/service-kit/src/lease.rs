//! One holder among replicas: a session-level Postgres advisory lock on a connection of its
//! own. The durable consumers take one per durable (`<schema>.<durable>`), so that one
//! replica handles a consumer at a time; [`run_exclusive`] gives the same to any loop that
//! must run once per deployment (a Telegram long poll: two pollers on one token get 409).

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often a stand-by replica tries to take a lease, and how often the holder checks that
/// its lock connection is alive.
pub const LEASE_CHECK: Duration = Duration::from_secs(1);

/// `true` when cancelled before `d` passed.
pub(crate) async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// A session-level Postgres advisory lock (`pg_try_advisory_lock(hashtextextended(name, 0))`)
/// on a connection of its own, detached from the pool.
pub struct Lease {
    conn: sqlx::PgConnection,
    name: String,
}

impl Lease {
    /// Takes the lock on `conn` (or a new connection out of `pool`): `Ok(Ok(lease))` when
    /// taken, `Ok(Err(conn))` when another session holds it (keep `conn` to ask again).
    ///
    /// Errors: Postgres unreachable.
    pub async fn try_acquire(
        pool: &PgPool,
        conn: Option<sqlx::PgConnection>,
        name: &str,
    ) -> anyhow::Result<Result<Self, sqlx::PgConnection>> {
        let mut conn = match conn {
            Some(c) => c,
            None => pool
                .acquire()
                .await
                .context("connecting to Postgres")?
                .detach(),
        };
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .context("pg_try_advisory_lock")?;
        if got {
            Ok(Ok(Self {
                conn,
                name: name.to_owned(),
            }))
        } else {
            Ok(Err(conn))
        }
    }

    /// Checks the lock's connection every [`LEASE_CHECK`]; cancels `held` when it does not
    /// answer within 3 s, and releases the lock only once `release` is cancelled (after the
    /// holder's work drained) — also after a failed check, so a stall does not hand the lock
    /// over while work runs (a connection Postgres really lost has released it anyway).
    /// `what` names the holder in the log.
    pub async fn hold(mut self, held: CancellationToken, release: CancellationToken, what: String) {
        loop {
            if sleep_or_cancel(LEASE_CHECK, &release).await {
                break;
            }
            let alive = tokio::time::timeout(
                Duration::from_secs(3),
                sqlx::query("SELECT 1").execute(&mut self.conn),
            )
            .await;
            if !matches!(alive, Ok(Ok(_))) {
                // Stop the work, but keep the session (and so the lock, if Postgres still has
                // it: a stall, not a lost connection) until the work has drained, so that a
                // stand-by does not start while an attempt of ours still runs.
                tracing::error!(lease = %what, "the lease's Postgres connection does not answer; stopping here");
                held.cancel();
                release.cancelled().await;
                break;
            }
        }
        // Bounded: a Postgres that vanished must not hold the shutdown (closing the session
        // releases the lock anyway).
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&self.name)
                .execute(&mut self.conn),
        )
        .await;
        let _ =
            tokio::time::timeout(Duration::from_secs(3), sqlx::Connection::close(self.conn)).await;
    }
}

/// Runs `work` only while this replica holds lease `name`, until `shutdown`: a stand-by asks
/// again every [`LEASE_CHECK`]; `work` gets a token that is cancelled at shutdown or when the
/// lease is lost, and the lock is released only after `work` returned. When `work` returns
/// by itself it is started again (after [`LEASE_CHECK`]) while the lease holds.
pub async fn run_exclusive<F, Fut>(
    pool: &PgPool,
    name: &str,
    shutdown: CancellationToken,
    mut work: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut standby: Option<sqlx::PgConnection> = None;
    let mut said_standby = false;
    while !shutdown.is_cancelled() {
        let lease = match Lease::try_acquire(pool, standby.take(), name).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(conn)) => {
                standby = Some(conn);
                if !said_standby {
                    tracing::info!(lease = name, "another replica holds this; standing by");
                    said_standby = true;
                }
                if sleep_or_cancel(LEASE_CHECK, &shutdown).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(
                    lease = name,
                    error = format!("{e:#}"),
                    "cannot take the lease; retrying in 1 s"
                );
                if sleep_or_cancel(LEASE_CHECK, &shutdown).await {
                    break;
                }
                continue;
            }
        };
        said_standby = false;
        tracing::info!(lease = name, "holding the lease");
        let held = shutdown.child_token();
        let release = CancellationToken::new();
        let watch = tokio::spawn(lease.hold(held.clone(), release.clone(), name.to_owned()));
        while !held.is_cancelled() {
            work(held.clone()).await;
            if sleep_or_cancel(LEASE_CHECK, &held).await {
                break;
            }
        }
        held.cancel();
        release.cancel();
        let _ = watch.await;
    }
}
