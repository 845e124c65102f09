//! vk-connector: VK community messages into Chatwoot conversations, agents' replies back to VK.
//!
//! ```text
//! VK ──callback / long poll──▶ ingest ──▶ events.vk.message.received ──▶ relay ──▶ Chatwoot API
//! Chatwoot ──webhook──▶ /chatwoot/webhook ──▶ cmd.vk.message.send ──▶ sender ──▶ VK messages.send
//!                       reconciliation sweep ──┘ (replies the webhook missed)
//! dlq replay ──▶ cmd.vk.inbound.reingest ──▶ reingest ──▶ the routes' code again
//!                (authenticated bodies that did not decode, kept as dead letters)
//! ```
//!
//! [`build`] puts this service's own parts — [`AppState`], the routes ([`http`]), the
//! consumers ([`consumers`]) and the loops ([`workers`]) — on the runtime (Postgres schema
//! `vk`, NATS, the HTTP client); [`App::run_until`](service_kit::App::run_until) runs them
//! until the shutdown token is cancelled.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod consumers;
pub mod error;
pub mod http;
pub mod ingest;
pub mod normalize;
pub mod store;
pub mod workers;

use std::sync::Arc;

use chatwoot_api::ChatwootClient;
use service_kit::Runtime;
use service_kit::bus::Bus;
use service_kit::dead_letter::DeadLetters;
use vk_api::VkClient;

use crate::config::Settings;
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "vk-connector";

/// Migrations of schema `vk`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The running service: its server, consumers, loops and state.
pub type App = service_kit::App<AppState>;

/// Shared by handlers, consumers and workers.
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
    /// The state on a connected runtime: the store on its pool, both upstream clients on its
    /// HTTP client.
    pub fn new(rt: &Runtime, settings: Settings) -> Self {
        let vk = VkClient::new(
            rt.http.clone(),
            &settings.vk.api_url,
            settings.vk.access_token.expose(),
            &settings.vk.api_version,
        );
        let chatwoot = ChatwootClient::new(
            rt.http.clone(),
            &settings.chatwoot.base_url,
            settings.chatwoot.api_token.expose(),
            settings.chatwoot.account_id,
        );
        Self {
            settings: Arc::new(settings),
            store: Store::new(rt.pool.clone()),
            bus: rt.bus.clone(),
            vk,
            chatwoot,
            dead_letters: rt.dead_letters.clone(),
        }
    }
}

/// Connects the runtime (Postgres with migrations, NATS, the HTTP client), declares the
/// consumers and loops, and binds `HOST:PORT` (port 0 picks a free one, for tests).
///
/// Errors: Postgres or NATS unreachable, a migration failing, the port taken.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
    let port = settings.port;
    let state = AppState::new(&rt, settings);
    let mut run = rt.workers();
    run.consumer(
        consumers::relay::spec(),
        state.clone(),
        consumers::relay::handle,
    );
    run.consumer(
        consumers::sender::spec(),
        state.clone(),
        consumers::sender::handle,
    );
    run.consumer(
        consumers::reingest::spec(),
        state.clone(),
        consumers::reingest::handle,
    );
    let s = state.clone();
    run.spawn("reconcile", move |stop| workers::reconcile::run(s, stop));
    if let Some(wait) = state.settings.vk.long_poll {
        let s = state.clone();
        run.spawn("long poll", move |stop| {
            workers::long_poll::run(s, wait, stop)
        });
    }
    let server = rt.bind(port, http::router(state.clone())).await?;
    Ok(App::new(server, run, state))
}
