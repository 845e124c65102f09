//! amocrm-sync: amoCRM leads and contacts into the gateway.
//!
//! ```text
//! amoCRM ──form webhook /api/webhooks/amo/{token}──┐
//! client ──JSON webhook /api/webhooks/amo (HMAC)───┴─▶ ingest ──▶ events.amocrm.{lead,contact}.*
//!                                                                        │
//!            Postgres schema amocrm ◀── store consumer ◀─────────────────┘
//!                                        └── API v4 (OAuth 2.0, 7 req/s): the full lead
//! ```
//!
//! [`App::build`] wires Postgres (schema `amocrm`), NATS, the HTTP listener and the workers;
//! [`App::run_until`] runs them until the shutdown token is cancelled.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod consumers;
pub mod error;
pub mod http;
pub mod ingest;
pub mod mapping;
pub mod normalize;
pub mod oauth;
pub mod store;

use std::sync::Arc;

use amocrm_api::{AmoClient, RetryPolicy};
use anyhow::Context;
use domain::{Event, Source, Subject};
use service_kit::bus::Bus;
use service_kit::consumer::{self, ConsumerSpec};
use service_kit::dead_letter::DeadLetters;
use service_kit::http::{Readiness, Server};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::oauth::Tokens;
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "amocrm-sync";

/// Migrations of schema `amocrm`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Shared by handlers and consumers.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Schema `amocrm`: leads, contacts, stage history and the OAuth pair.
    pub store: Store,
    /// NATS JetStream, for publishing events.
    pub bus: Bus,
    /// The amoCRM client (OAuth 2.0 and API v4, rate limited).
    pub amo: AmoClient,
    /// The stored OAuth pair, refreshed before it expires.
    pub tokens: Tokens,
    /// The dead-letter table `amocrm.dead_letters`.
    pub dead_letters: DeadLetters,
}

impl AppState {
    /// Connects Postgres (running migrations) and NATS.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let rt = &settings.runtime;
        let pool = service_kit::db::connect_and_migrate(
            &rt.database_url,
            store::SCHEMA,
            rt.database_max_connections,
            &MIGRATOR,
        )
        .await?;
        let bus = Bus::connect(&rt.nats_url, &rt.nats_subject_prefix, SERVICE).await?;
        Self::from_parts(settings, pool, bus)
    }

    /// Builds the state from an existing pool and bus.
    pub fn from_parts(settings: Settings, pool: sqlx::PgPool, bus: Bus) -> anyhow::Result<Self> {
        let http = service_kit::http_client::build(SERVICE, std::time::Duration::from_secs(10))
            .context("building the HTTP client")?;
        let amo =
            AmoClient::new(http, &settings.base_url, settings.api_rps).with_retry(RetryPolicy {
                min_delay: settings.api_retry_min,
                ..RetryPolicy::default()
            });
        let settings = Arc::new(settings);
        let store = Store::new(pool.clone());
        Ok(Self {
            tokens: Tokens::new(store.clone(), amo.clone(), settings.clone()),
            dead_letters: DeadLetters::new(pool, store::SCHEMA),
            store,
            settings,
            bus,
            amo,
        })
    }

    /// The store consumer's spec: `events.amocrm.>`, attempts and delays from the settings.
    pub fn consumer_spec(&self) -> ConsumerSpec {
        let mut spec = ConsumerSpec::new(
            self.bus.events_stream(),
            consumers::sync::DURABLE,
            Subject::event(Source::Amocrm, ">"),
        );
        let delays = &self.settings.retry_delays;
        spec.max_attempts = delays.len() as u32 + 1;
        if !delays.is_empty() {
            spec.backoff = delays.clone();
        }
        spec
    }
}

/// The built application: bound listener and routes, and the shared state.
pub struct App {
    server: Server,
    state: AppState,
}

impl App {
    /// Connects everything and binds `HOST:PORT` (port 0 picks a free one, for tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (host, port) = (settings.runtime.host.clone(), settings.port);
        let state = AppState::connect(settings).await?;
        let server = Server::bind(
            &host,
            port,
            http::router(state.clone()),
            Readiness {
                service: SERVICE,
                pool: state.store.pool().clone(),
                bus: state.bus.clone(),
            },
            &state.settings.runtime,
        )
        .await?;
        Ok(Self { server, state })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The shared state (tests reach the store and bus through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP and runs the store consumer's pullers and the token refresher until
    /// `shutdown` is cancelled; then finishes in-flight requests and the messages in hand.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state;
        // Several pullers on the one durable consumer: JetStream hands each its own messages,
        // and the store's row locks and `updated_at` order keep concurrent writes of one lead
        // correct.
        let pullers = (0..state.settings.consumer_concurrency).map(|_| {
            let s = state.clone();
            consumer::run::<Event, _, _>(
                state.bus.clone(),
                state.dead_letters.clone(),
                state.consumer_spec(),
                shutdown.clone(),
                move |env| consumers::sync::handle(s.clone(), env),
            )
        });
        let pullers = futures::future::join_all(pullers);
        let refresher = state.tokens.clone().run_refresher(shutdown.clone());
        let server = self.server.serve(shutdown.clone());
        let (server, pullers, ()) = tokio::join!(server, pullers, refresher);
        server.context("HTTP server")?;
        for p in pullers {
            p.context("store consumer")?;
        }
        tracing::info!("amocrm-sync stopped");
        Ok(())
    }
}
