//! messenger-api: the own messenger — accounts, chats, messages, voice messages, admin — and
//! the real-time hub that the official SignalR clients connect to.
//!
//! ```text
//! clients ──REST /api──▶ handlers ──▶ Postgres (schema messenger)
//!    ▲                        ├──▶ hub: local connections + NATS fanout.messenger.chat.<id> ──▶ other replicas
//!    └──── /hubs/chat ◀───────┘    └──▶ JetStream events.messenger.message.posted (other services)
//! ```
//!
//! [`App::build`] wires Postgres, NATS, the files directory, the hub's fan-out subscription and
//! the HTTP listener; [`App::run_until`] serves until the shutdown token is cancelled.

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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue, Method};
use service_kit::bus::Bus;
use service_kit::http::Readiness;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::password::{PasswordWork, Passwords};
use crate::auth::tokens::Tokens;
use crate::config::Settings;
use crate::files::FileStore;
use crate::hub::Hub;
use crate::ratelimit::LoginLimits;
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "messenger-api";

/// Migrations of schema `messenger`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How often the outbox of unpublished events is retried.
const OUTBOX_EVERY: Duration = Duration::from_secs(10);

/// Shared by handlers and the hub.
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
    /// Voice message files on disk.
    pub files: FileStore,
}

/// The built application: bound listener, state, routes.
pub struct App {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
    fanout: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    shutdown: CancellationToken,
}

impl App {
    /// Connects Postgres (running migrations) and NATS, subscribes to the hub fan-out, and
    /// binds `HOST:PORT` (port 0 picks a free one, for tests). `shutdown` stops everything,
    /// hub connections included.
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let rt = &settings.runtime;
        let pool = service_kit::db::connect_and_migrate(
            &rt.database_url,
            store::SCHEMA,
            rt.database_max_connections,
            &MIGRATOR,
        )
        .await?;
        let bus = Bus::connect(&rt.nats_url, &rt.nats_subject_prefix, SERVICE).await?;
        let files = FileStore::open(&settings.files_dir).await?;
        let hub = Hub::connect(
            bus.clone(),
            &rt.nats_url,
            settings.hub.clone(),
            shutdown.clone(),
        )
        .await?;
        let fanout = Box::pin(
            hub.subscribe()
                .await
                .context("subscribing to the hub fan-out")?,
        );
        let addr = format!("{}:{}", settings.runtime.host, settings.port);
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let state = AppState {
            tokens: Tokens::new(&settings.jwt),
            passwords: Passwords::new(settings.argon2),
            password_work: PasswordWork::new(
                Passwords::new(settings.argon2),
                match settings.password_hash_concurrency {
                    0 => PasswordWork::default_permits(),
                    n => n,
                },
            ),
            login_limits: LoginLimits::new(
                settings.login_rate_per_phone,
                settings.login_rate_per_ip,
                settings.register_rate_per_ip,
            ),
            store: Store::new(pool),
            settings: Arc::new(settings),
            bus,
            hub,
            files,
        };
        let mut router = service_kit::http::finish(
            http::router(state.clone()),
            Readiness {
                service: SERVICE,
                pool: state.store.pool().clone(),
                bus: state.bus.clone(),
            },
            &state.settings.runtime,
        );
        if let Some(cors) = cors(&state.settings.cors_allowed_origins) {
            router = router.layer(cors);
        }
        Ok(Self {
            listener,
            state,
            router,
            fanout,
            shutdown,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests reach the store, hub and bus through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP and the hub until the shutdown token is cancelled; then closes hub
    /// connections (with a Close message that invites clients to reconnect elsewhere) and
    /// finishes in-flight requests.
    pub async fn run_until(self) -> anyhow::Result<()> {
        let state = self.state;
        let shutdown = self.shutdown;
        tracing::info!(
            port = self.listener.local_addr()?.port(),
            "messenger-api listening"
        );
        let server = {
            let t = shutdown.clone();
            axum::serve(
                self.listener,
                self.router
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { t.cancelled().await })
        };
        let outbox = messaging::run_outbox(state.clone(), OUTBOX_EVERY, shutdown.clone());
        let housekeeping = {
            let (limits, t) = (state.login_limits.clone(), shutdown.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = t.cancelled() => return,
                        _ = tick.tick() => limits.retain_recent(),
                    }
                }
            }
        };
        let (server, (), (), ()) = tokio::join!(server, self.fanout, outbox, housekeeping);
        server.context("HTTP server")?;
        tracing::info!("messenger-api stopped");
        Ok(())
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::header::RANGE,
                HeaderName::from_static("x-requested-with"),
                HeaderName::from_static("x-signalr-user-agent"),
                HeaderName::from_static("idempotency-key"),
            ])
            .allow_credentials(true),
    )
}
