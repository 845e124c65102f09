//! amocrm-sync: amoCRM leads and contacts into the gateway.
//!
//! ```text
//! amoCRM ──form webhook /api/webhooks/amo/{token}──┐
//! client ──JSON webhook /api/webhooks/amo (HMAC)───┴─▶ ingest ──▶ events.amocrm.{lead,contact}.*
//!          (only with AMOCRM_LEGACY_JSON_WEBHOOK=true)                   │
//!            Postgres schema amocrm ◀── store consumer ◀─────────────────┘
//!                                        └── API v4 (OAuth 2.0, 7 req/s): the full lead
//! ```
//!
//! [`build`] puts the service's own parts — its state, routes, the store consumer and the token
//! refresher — on the shared runtime (Postgres schema `amocrm`, NATS, the HTTP client);
//! [`App::run_until`](service_kit::App::run_until) runs them until the shutdown token is
//! cancelled.

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
pub mod workers;

use std::sync::Arc;

use amocrm_api::{AmoClient, RetryPolicy};
use service_kit::Runtime;
use service_kit::bus::Bus;
use service_kit::dead_letter::DeadLetters;

use crate::config::Settings;
use crate::oauth::Tokens;
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "amocrm-sync";

/// Migrations of schema `amocrm`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Logged once at start when `AMOCRM_LEGACY_JSON_WEBHOOK=true`.
pub const LEGACY_JSON_WARNING: &str = "AMOCRM_LEGACY_JSON_WEBHOOK=true: POST /api/webhooks/amo \
     accepts the earlier deployment's JSON webhook, whose X-Signature covers neither the body \
     nor a time: anyone who saw one request can post any body for the configured account. Move \
     to amoCRM's own webhook (docs/amocrm.md, «Moving off the JSON route») and turn it off.";

/// The running service: its server, workers and [`AppState`].
pub type App = service_kit::App<AppState>;

/// Shared by handlers and consumers.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Schema `amocrm`: leads, contacts, stage history and the OAuth pair.
    pub store: Store,
    /// NATS JetStream, for publishing events.
    pub bus: Bus,
    /// The amoCRM client (OAuth 2.0 and API v4, rate limited) on the runtime's HTTP client.
    pub amo: AmoClient,
    /// The stored OAuth pair, refreshed before it expires.
    pub tokens: Tokens,
    /// The dead-letter table `amocrm.dead_letters`.
    pub dead_letters: DeadLetters,
}

impl AppState {
    /// The state over a connected runtime.
    pub fn new(rt: &Runtime, settings: Settings) -> Self {
        let amo = AmoClient::new(rt.http.clone(), &settings.base_url, settings.api_rps).with_retry(
            RetryPolicy {
                min_delay: settings.api_retry_min,
                ..RetryPolicy::default()
            },
        );
        let settings = Arc::new(settings);
        let store = Store::new(rt.pool.clone());
        Self {
            tokens: Tokens::new(store.clone(), amo.clone(), settings.clone()),
            dead_letters: rt.dead_letters.clone(),
            store,
            settings,
            bus: rt.bus.clone(),
            amo,
        }
    }
}

/// Connects the runtime and binds `HOST:PORT` (port 0 picks a free one, for tests): the
/// webhook and OAuth routes, the store consumer (`events.amocrm.>`) and the token refresher.
///
/// Errors: Postgres or NATS unreachable, a migration failing, the port taken.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
    if settings.legacy_json_webhook {
        tracing::warn!("{LEGACY_JSON_WARNING}");
    }
    let port = settings.port;
    let state = AppState::new(&rt, settings);
    let mut workers = rt.workers();
    workers.consumer(
        consumers::sync::spec(&state.settings),
        state.clone(),
        consumers::sync::handle,
    );
    let tokens = state.tokens.clone();
    workers.spawn(crate::workers::token_refresh::NAME, move |stop| {
        crate::workers::token_refresh::run(tokens, stop)
    });
    let server = rt.bind(port, http::router(state.clone())).await?;
    Ok(App::new(server, workers, state))
}
