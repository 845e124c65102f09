//! vk-connector: VK community messages into Chatwoot conversations, agents' replies back to VK.
//!
//! ```text
//! VK ──callback / long poll──▶ ingest ──▶ events.vk.message.received ──▶ relay ──▶ Chatwoot API
//! Chatwoot ──webhook──▶ /chatwoot/webhook ──▶ cmd.vk.message.send ──▶ sender ──▶ VK messages.send
//!                       reconciliation sweep ──┘ (replies the webhook missed)
//! ```
//!
//! [`App::build`] wires Postgres (schema `vk`), NATS, the HTTP listener and the workers;
//! [`App::run_until`] runs them until the shutdown token is cancelled.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod consumers;
pub mod error;
pub mod http;
pub mod ingest;
pub mod long_poll;
pub mod normalize;
pub mod reconcile;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use chatwoot_api::ChatwootClient;
use domain::{Command, Event, Source, Subject};
use service_kit::bus::Bus;
use service_kit::consumer::{self, ConsumerSpec};
use service_kit::dead_letter::DeadLetters;
use service_kit::http::{Readiness, Server};
use tokio_util::sync::CancellationToken;
use vk_api::VkClient;

use crate::config::Settings;
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "vk-connector";

/// Migrations of schema `vk`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Shared by handlers and consumers.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Schema `vk`: mappings and idempotency records.
    pub store: Store,
    /// NATS JetStream, for publishing events and commands.
    pub bus: Bus,
    /// The VK API client (community token).
    pub vk: VkClient,
    /// The Chatwoot API client of the configured account.
    pub chatwoot: ChatwootClient,
    /// The dead-letter table `vk.dead_letters`.
    pub dead_letters: DeadLetters,
}

impl AppState {
    /// Connects Postgres (running migrations) and NATS, and builds the upstream clients.
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
        let vk = VkClient::new(
            http.clone(),
            &settings.vk.api_url,
            settings.vk.access_token.expose(),
            &settings.vk.api_version,
        );
        let chatwoot = ChatwootClient::new(
            http,
            &settings.chatwoot.base_url,
            settings.chatwoot.api_token.expose(),
            settings.chatwoot.account_id,
        );
        Ok(Self {
            dead_letters: DeadLetters::new(pool.clone(), store::SCHEMA),
            store: Store::new(pool),
            settings: Arc::new(settings),
            bus,
            vk,
            chatwoot,
        })
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

    /// Serves HTTP and runs both consumers and the sweep until `shutdown` is cancelled; then
    /// finishes in-flight requests and the messages in hand.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state;
        let relay = {
            let s = state.clone();
            consumer::run::<Event, _, _>(
                state.bus.clone(),
                state.dead_letters.clone(),
                ConsumerSpec::new(
                    state.bus.events_stream(),
                    consumers::relay::DURABLE,
                    Subject::event(Source::Vk, "message.received"),
                ),
                shutdown.clone(),
                move |env| consumers::relay::handle(s.clone(), env),
            )
        };
        let sender = {
            let s = state.clone();
            consumer::run::<Command, _, _>(
                state.bus.clone(),
                state.dead_letters.clone(),
                ConsumerSpec::new(
                    state.bus.commands_stream(),
                    consumers::sender::DURABLE,
                    Subject::command("vk.message.send"),
                ),
                shutdown.clone(),
                move |env| consumers::sender::handle(s.clone(), env),
            )
        };
        let sweep = reconcile::run(state.clone(), shutdown.clone());
        let long_poll = {
            let (s, t) = (state.clone(), shutdown.clone());
            async move {
                if let Some(wait) = s.settings.vk.long_poll {
                    long_poll::run(s, wait, t).await;
                }
            }
        };
        let server = self.server.serve(shutdown.clone());
        let (server, relay, sender, (), ()) = tokio::join!(server, relay, sender, sweep, long_poll);
        server.context("HTTP server")?;
        relay.context("relay consumer")?;
        sender.context("sender consumer")?;
        tracing::info!("vk-connector stopped");
        Ok(())
    }
}
