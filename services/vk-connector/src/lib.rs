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
pub mod legacy;
pub mod media;
pub mod normalize;
pub mod setup;
pub mod store;
pub mod workers;

use std::sync::Arc;

use chatwoot_api::ChatwootClient;
use service_kit::Runtime;
use service_kit::bus::Bus;
use service_kit::dead_letter::DeadLetters;
use vk_api::VkClient;

use crate::config::{InboxRef, Settings};
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
    /// The Chatwoot inbox VK conversations live in: `CHATWOOT_INBOX_ID`, or the inbox named
    /// `CHATWOOT_INBOX_NAME` found at start ([`resolve_inbox`]).
    pub inbox_id: i64,
    /// The runtime's HTTP client, for file downloads and uploads ([`media`]).
    pub http: reqwest::Client,
    /// The dead-letter table `vk.dead_letters`.
    pub dead_letters: DeadLetters,
}

impl AppState {
    /// The state on a connected runtime: the store on its pool, both upstream clients on its
    /// HTTP client; `inbox_id` as [`resolve_inbox`] found it.
    pub fn new(rt: &Runtime, settings: Settings, inbox_id: i64) -> Self {
        Self {
            vk: vk_client(&settings, &rt.http),
            chatwoot: chatwoot_client(&settings, &rt.http),
            settings: Arc::new(settings),
            store: Store::new(rt.pool.clone()),
            bus: rt.bus.clone(),
            inbox_id,
            http: rt.http.clone(),
            dead_letters: rt.dead_letters.clone(),
        }
    }
}

/// The VK API client of `settings` (community token, API version) on `http`.
pub fn vk_client(settings: &Settings, http: &reqwest::Client) -> VkClient {
    VkClient::new(
        http.clone(),
        &settings.vk.api_url,
        settings.vk.access_token.expose(),
        &settings.vk.api_version,
    )
}

/// The Chatwoot API client of `settings` (base URL, token, account) on `http`.
pub fn chatwoot_client(settings: &Settings, http: &reqwest::Client) -> ChatwootClient {
    ChatwootClient::new(
        http.clone(),
        &settings.chatwoot.base_url,
        settings.chatwoot.api_token.expose(),
        settings.chatwoot.account_id,
    )
}

/// How often [`resolve_inbox`] asks an unreachable Chatwoot before giving up.
const INBOX_LOOKUP_ATTEMPTS: usize = 5;

/// The id of the inbox `inbox` names: the id itself, or the one inbox whose name is the given
/// one (`GET /api/v1/accounts/{id}/inboxes`; exact match first, then ignoring case). Chatwoot
/// being unreachable or answering 5xx is retried a few times with a growing pause.
///
/// Errors: no inbox of that name (with the names there are, and what to do), more than one,
/// or Chatwoot failing.
pub async fn resolve_inbox(chatwoot: &ChatwootClient, inbox: &InboxRef) -> anyhow::Result<i64> {
    use backon::{ExponentialBuilder, Retryable};
    let name = match inbox {
        InboxRef::Id(id) => return Ok(*id),
        InboxRef::Name(name) => name,
    };
    let inboxes = (|| chatwoot.inboxes())
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_millis(500))
                .with_max_times(INBOX_LOOKUP_ATTEMPTS - 1),
        )
        .when(chatwoot_api::ChatwootError::is_retriable)
        .notify(|e, after| {
            tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, "listing Chatwoot inboxes failed; retrying");
        })
        .await
        .map_err(|e| anyhow::anyhow!("listing Chatwoot inboxes to find «{name}»: {e}"))?;
    let exact: Vec<_> = inboxes.iter().filter(|i| i.name == *name).collect();
    let found = if exact.is_empty() {
        inboxes
            .iter()
            .filter(|i| i.name.to_lowercase() == name.to_lowercase())
            .collect()
    } else {
        exact
    };
    match found.as_slice() {
        [one] => {
            tracing::info!(chatwoot_inbox_id = one.id, inbox = %name, "Chatwoot inbox found by name");
            Ok(one.id)
        }
        [] => {
            let names: Vec<_> = inboxes
                .iter()
                .map(|i| format!("«{}» ({})", i.name, i.id))
                .collect();
            anyhow::bail!(
                "no Chatwoot inbox is named «{name}» (there are: {}); run `vk-connector setup --url https://<your host>` to create it, or set CHATWOOT_INBOX_ID",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        }
        many => anyhow::bail!(
            "{} Chatwoot inboxes are named «{name}» (ids {}); set CHATWOOT_INBOX_ID to the one VK conversations live in",
            many.len(),
            many.iter()
                .map(|i| i.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Connects the runtime (Postgres with migrations, NATS, the HTTP client), declares the
/// consumers and loops, and binds `HOST:PORT` (port 0 picks a free one, for tests).
///
/// Errors: Postgres or NATS unreachable, a migration failing, the port taken.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
    let port = settings.port;
    let inbox_id = resolve_inbox(
        &chatwoot_client(&settings, &rt.http),
        &settings.chatwoot.inbox,
    )
    .await?;
    let state = AppState::new(&rt, settings, inbox_id);
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
