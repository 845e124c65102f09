//! The service template: what every service connects at start, and the running application.
//!
//! ```ignore
//! let rt = Runtime::connect(SERVICE, SCHEMA, &MIGRATOR, &settings.runtime).await?;
//! let state = AppState::new(&rt, settings)?;
//! let mut workers = rt.workers();
//! workers.consumer(consumers::relay::spec(), state.clone(), consumers::relay::handle);
//! workers.spawn("reconcile", { let s = state.clone(); move |stop| reconcile::run(s, stop) });
//! let server = rt.bind(port, http::router(state.clone())).await?;
//! Ok(App::new(server, workers, state))
//! ```

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use domain::{Envelope, Payload};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::config::RuntimeArgs;
use crate::consumer::{self, ConsumerDeps, ConsumerSpec, HandleError};
use crate::dead_letter::DeadLetters;
use crate::http::{Readiness, Server};

/// What a service has once it is connected: Postgres (its schema, migrated), NATS with both
/// streams, its dead-letter table, and the one outbound HTTP client.
#[derive(Clone)]
pub struct Runtime {
    /// The service's name in logs, metrics, `/health` and the NATS connection.
    pub service: &'static str,
    /// The service's Postgres schema.
    pub schema: &'static str,
    /// The shared flags (database, NATS, logs, limits).
    pub args: RuntimeArgs,
    /// Pool with `search_path` = the schema.
    pub pool: PgPool,
    /// JetStream.
    pub bus: Bus,
    /// `<schema>.dead_letters`.
    pub dead_letters: DeadLetters,
    /// The outbound client every upstream client is built on (timeout `UPSTREAM_TIMEOUT_SECS`).
    pub http: reqwest::Client,
}

impl Runtime {
    /// Connects Postgres (creating the schema when missing and running `migrator`), connects
    /// NATS (creating or updating the streams) and builds the HTTP client.
    ///
    /// Errors: Postgres or NATS unreachable, a migration failing, a bad `DATABASE_URL`.
    pub async fn connect(
        service: &'static str,
        schema: &'static str,
        migrator: &Migrator,
        args: &RuntimeArgs,
    ) -> anyhow::Result<Self> {
        let pool = crate::db::connect_and_migrate(
            &args.database_url,
            schema,
            args.database_max_connections,
            migrator,
        )
        .await?;
        let bus = Bus::connect(&args.nats_url, &args.nats_subject_prefix, service).await?;
        Self::from_parts(service, schema, args, pool, bus)
    }

    /// Connects Postgres (without migrating) and NATS: for commands such as `check`.
    ///
    /// Errors: Postgres or NATS unreachable.
    pub async fn connect_without_migrating(
        service: &'static str,
        schema: &'static str,
        args: &RuntimeArgs,
    ) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&args.database_url, schema, 2).await?;
        let bus = Bus::connect(&args.nats_url, &args.nats_subject_prefix, service).await?;
        Self::from_parts(service, schema, args, pool, bus)
    }

    /// Builds the runtime from a pool and a bus that already exist.
    ///
    /// Errors: only if the TLS backend of the HTTP client cannot start.
    pub fn from_parts(
        service: &'static str,
        schema: &'static str,
        args: &RuntimeArgs,
        pool: PgPool,
        bus: Bus,
    ) -> anyhow::Result<Self> {
        let http = crate::http_client::build(service, args.upstream_timeout())
            .context("building the HTTP client")?;
        Ok(Self {
            service,
            schema,
            args: args.clone(),
            dead_letters: DeadLetters::new(pool.clone(), schema),
            pool,
            bus,
            http,
        })
    }

    /// What `/ready` checks.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            service: self.service,
            pool: self.pool.clone(),
            bus: self.bus.clone(),
        }
    }

    /// Binds `HOST:port` (0 picks a free port, for tests) and finishes `routes` with the
    /// operational routes and layers.
    ///
    /// Errors: the address cannot be bound.
    pub async fn bind(&self, port: u16, routes: axum::Router) -> anyhow::Result<Server> {
        Server::bind(&self.args.host, port, routes, self.readiness(), &self.args).await
    }

    /// An empty set of workers bound to this runtime's bus and dead letters.
    pub fn workers(&self) -> Workers {
        Workers {
            deps: ConsumerDeps {
                bus: self.bus.clone(),
                dead_letters: self.dead_letters.clone(),
                pool: self.pool.clone(),
                schema: self.schema.to_owned(),
                default_concurrency: self.args.consumer_concurrency,
            },
            tasks: Vec::new(),
        }
    }
}

type Task = Box<
    dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
        + Send,
>;

/// The long-running parts of a service besides its HTTP server — durable consumers and
/// loops (long poll, sweeps, outbox, token refresh) — declared in one place and started and
/// stopped with the server by one shutdown token.
pub struct Workers {
    deps: ConsumerDeps,
    tasks: Vec<(String, Task)>,
}

impl Workers {
    /// Adds a durable consumer: `spec` (durable name, filter, ordering key) from the consumer's
    /// module, and its handler, called as `handler(state.clone(), envelope)`.
    pub fn consumer<P, S, F, Fut>(&mut self, spec: ConsumerSpec<P>, state: S, handler: F)
    where
        P: Payload + Send + Sync + 'static,
        S: Clone + Send + Sync + 'static,
        F: Fn(S, Envelope<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandleError>> + Send + 'static,
    {
        let deps = self.deps.clone();
        let name = format!("consumer {}", spec.durable);
        self.tasks.push((
            name,
            Box::new(move |stop| {
                Box::pin(consumer::run(deps, spec, stop, move |env| {
                    handler(state.clone(), env)
                }))
            }),
        ));
    }

    /// Adds a loop: `make(stop)` runs until `stop` is cancelled.
    pub fn spawn<F, Fut>(&mut self, name: impl Into<String>, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks
            .push((name.into(), Box::new(move |stop| Box::pin(make(stop)))));
    }

    /// The names of what was declared, in order (for logs and tests).
    pub fn names(&self) -> Vec<String> {
        self.tasks.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Runs every worker until `shutdown` is cancelled and all have returned. A worker that
    /// fails stops the others (the service exits and its supervisor restarts it).
    ///
    /// Errors: the first worker error, named.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut set = tokio::task::JoinSet::new();
        for (name, make) in self.tasks {
            let fut = make(shutdown.clone());
            set.spawn(async move { fut.await.with_context(|| format!("{name} failed")) });
        }
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = format!("{e:#}"), "a worker stopped; shutting down");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A built service: its bound server, its workers and its state.
pub struct App<S> {
    server: Server,
    workers: Workers,
    state: S,
}

impl<S> App<S> {
    /// Puts the parts together.
    pub fn new(server: Server, workers: Workers, state: S) -> Self {
        Self {
            server,
            workers,
            state,
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The shared state (tests reach the store and bus through it).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The declared workers' names.
    pub fn worker_names(&self) -> Vec<String> {
        self.workers.names()
    }

    /// Serves HTTP and runs the workers until `shutdown` is cancelled; then finishes in-flight
    /// requests and the messages in hand.
    ///
    /// Errors: the server failed, or a worker did.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let service = self.server.service();
        let server = self.server.serve(shutdown.clone());
        let workers = self.workers.run(shutdown.clone());
        let (server, workers) = tokio::join!(
            async {
                let r = server.await;
                // The server stopping for any reason stops the workers too.
                shutdown.cancel();
                r
            },
            workers
        );
        server.context("HTTP server")?;
        workers?;
        tracing::info!("{service} stopped");
        Ok(())
    }
}
