//! messenger-api: the own messenger — accounts, chats, messages, voice messages, admin — and
//! the real-time hub that the official SignalR clients connect to.
//!
//! ```text
//! clients ──REST /api──▶ handlers ──▶ Postgres (schema messenger)
//!    ▲                        ├──▶ hub: local connections + NATS fanout.messenger.chat.<id> ──▶ other replicas
//!    └──── /hubs/chat ◀───────┘    └──▶ JetStream events.messenger.message.posted (other services)
//! ```
//!
//! [`App::build`] wires the runtime (Postgres, NATS), the files directory, the hub and its
//! fan-out subscription, the [`workers`] and the HTTP listener; [`App::run_until`] serves and
//! runs the workers until the shutdown token is cancelled.

#![warn(missing_docs)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod files;
pub mod http;
pub mod hub;
pub mod messaging;
pub mod phone;
pub mod ratelimit;
pub mod store;
pub mod workers;

use std::sync::Arc;

use service_kit::Runtime;
use service_kit::bus::Bus;
use tokio_util::sync::CancellationToken;

use crate::auth::password::{PasswordWork, Passwords};
use crate::auth::tokens::Tokens;
use crate::config::Settings;
use crate::files::FileStore;
use crate::hub::Hub;
use crate::ratelimit::{LoginLimits, UserLimits};
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "messenger-api";

/// Migrations of schema `messenger`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Shared by handlers, the hub and the workers.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Schema `messenger`: users, chats, messages, files, tokens, outbox.
    pub store: Store,
    /// NATS JetStream, for `events.messenger.message.posted`.
    pub bus: Bus,
    /// This replica's real-time hub.
    pub hub: Hub,
    /// Issues and verifies access and hub connection tokens.
    pub tokens: Tokens,
    /// Hashes and verifies passwords.
    pub passwords: Passwords,
    /// Bounds the argon2id work of requests (register, login) running at once.
    pub password_work: PasswordWork,
    /// Login rate limits per phone and per IP.
    pub login_limits: LoginLimits,
    /// Per-user limits on messages sent and members added to groups.
    pub user_limits: UserLimits,
    /// Voice message files on disk.
    pub files: FileStore,
}

impl AppState {
    fn new(rt: &Runtime, settings: Settings, hub: Hub, files: FileStore) -> Self {
        let permits = match settings.password_hash_concurrency {
            0 => PasswordWork::default_permits(),
            n => n,
        };
        Self {
            tokens: Tokens::new(&settings.jwt),
            passwords: Passwords::new(settings.argon2),
            password_work: PasswordWork::new(Passwords::new(settings.argon2), permits),
            login_limits: LoginLimits::new(
                settings.login_rate_per_phone,
                settings.login_rate_per_ip,
                settings.register_rate_per_ip,
            ),
            user_limits: UserLimits::new(settings.user_limits),
            store: Store::new(rt.pool.clone()),
            bus: rt.bus.clone(),
            settings: Arc::new(settings),
            hub,
            files,
        }
    }
}

/// The built application: the bound server (CORS outside every other layer), the workers
/// and the state.
pub struct App(service_kit::App<AppState>);

impl App {
    /// Connects Postgres (running migrations) and NATS, opens the files directory,
    /// subscribes to the hub fan-out, and binds `HOST:PORT` (port 0 picks a free one, for
    /// tests).
    ///
    /// Errors: Postgres or NATS unreachable, a migration failing, the files directory not
    /// creatable, the port taken.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
        let files = FileStore::open(&settings.files_dir).await?;
        let hub = Hub::connect(rt.bus.clone(), settings.hub.clone()).await?;
        let fanout = hub.subscribe().await?;
        let state = AppState::new(&rt, settings, hub, files);

        let mut workers = rt.workers();
        workers.spawn("hub fan-out", move |stop| fanout.run(stop));
        workers.spawn("outbox", {
            let state = state.clone();
            move |stop| crate::workers::outbox::run(state, stop)
        });
        workers.spawn("housekeeping", {
            let (login, users) = (state.login_limits.clone(), state.user_limits.clone());
            move |stop| crate::workers::housekeeping::run(login, users, stop)
        });

        let mut server = rt
            .bind(state.settings.port, http::router(state.clone()))
            .await?;
        if let Some(cors) = http::cors(&state.settings.cors_allowed_origins) {
            server = server.map_router(|r| r.layer(cors));
        }
        Ok(Self(service_kit::App::new(server, workers, state)))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// The shared state (tests reach the store, hub and bus through it).
    pub fn state(&self) -> &AppState {
        self.0.state()
    }

    /// Serves HTTP and the hub and runs the workers until `shutdown` is cancelled; then closes
    /// hub connections (with a Close message that invites clients to reconnect elsewhere) and
    /// finishes in-flight requests.
    ///
    /// Errors: the server failed, or a worker did.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.0.run_until(shutdown).await
    }
}
