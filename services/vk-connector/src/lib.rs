//! vk-connector: VK community messages into Chatwoot conversations, agents' replies back to VK.
//!
//! ```text
//! VK ──callback / long poll──▶ ingest ──▶ events.vk.message.received ──▶ relay ──▶ Chatwoot API
//! Chatwoot ──webhook──▶ /chatwoot/webhook ──▶ cmd.vk.message.send ──▶ sender ──▶ VK messages.send
//!                       reconciliation sweep ──┘ (replies the webhook missed; [`gap`])
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
pub mod gap;
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
    /// `CHATWOOT_INBOX_NAME` ([`resolve_inbox`]), found at start or, when Chatwoot was down
    /// then, by a background task soon after (read it with [`AppState::inbox_id`]).
    pub inbox: Arc<std::sync::OnceLock<i64>>,
    /// The HTTP client for files (downloads, VK uploads, Chatwoot posts with attachments):
    /// its timeout is `MEDIA_TIMEOUT_SECS`, not `UPSTREAM_TIMEOUT_SECS`.
    pub media_http: reqwest::Client,
    /// [`AppState::vk`] on [`AppState::media_http`], for uploads.
    pub media_vk: VkClient,
    /// [`AppState::chatwoot`] on [`AppState::media_http`], for messages with attachments.
    pub media_chatwoot: ChatwootClient,
    /// The dead-letter table `vk.dead_letters`.
    pub dead_letters: DeadLetters,
    /// Whether agent replies may have been missed since the last complete sweep ([`gap`]).
    pub gap: Arc<gap::Gap>,
}

impl AppState {
    /// The state on a connected runtime: the store on its pool, both upstream clients on its
    /// HTTP client (and on a client with the media timeout); the inbox set when configured by id.
    ///
    /// Errors: the TLS backend of the media client cannot be initialised.
    pub fn new(rt: &Runtime, settings: Settings) -> anyhow::Result<Self> {
        let media_http = upstream_http::build(SERVICE, settings.media.timeout)?;
        let inbox = Arc::new(std::sync::OnceLock::new());
        if let InboxRef::Id(id) = settings.chatwoot.inbox {
            let _ = inbox.set(id);
        }
        Ok(Self {
            vk: vk_client(&settings, &rt.http),
            chatwoot: chatwoot_client(&settings, &rt.http),
            media_vk: vk_client(&settings, &media_http),
            media_chatwoot: chatwoot_client(&settings, &media_http),
            media_http,
            inbox,
            settings: Arc::new(settings),
            store: Store::new(rt.pool.clone()),
            bus: rt.bus.clone(),
            dead_letters: rt.dead_letters.clone(),
            gap: Arc::default(),
        })
    }

    /// The Chatwoot inbox id, once known (see [`AppState::inbox`]).
    pub fn inbox_id(&self) -> Option<i64> {
        self.inbox.get().copied()
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

/// The one inbox of `inboxes` named `name`: the exact name first, then ignoring case.
///
/// Errors: no inbox of that name (with the names there are, and what to do), or more than one.
pub fn find_inbox<'a>(
    inboxes: &'a [chatwoot_api::Inbox],
    name: &str,
) -> anyhow::Result<&'a chatwoot_api::Inbox> {
    let exact: Vec<_> = inboxes.iter().filter(|i| i.name == name).collect();
    let found = if exact.is_empty() {
        inboxes
            .iter()
            .filter(|i| i.name.to_lowercase() == name.to_lowercase())
            .collect()
    } else {
        exact
    };
    match found.as_slice() {
        [one] => Ok(one),
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

/// Why [`resolve_inbox`] found no inbox.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Chatwoot did not answer (unreachable, 429, 5xx): try again later.
    #[error("listing Chatwoot inboxes: {0}")]
    Unavailable(chatwoot_api::ChatwootError),
    /// Chatwoot answered, and the configuration names no single inbox (or the token is
    /// refused): the operator must act.
    #[error(transparent)]
    Config(anyhow::Error),
}

/// The id of the inbox `inbox` names: the id itself, or the one inbox of that name
/// (`GET /api/v1/accounts/{id}/inboxes`, [`find_inbox`]).
///
/// Errors: [`InboxError`].
pub async fn resolve_inbox(chatwoot: &ChatwootClient, inbox: &InboxRef) -> Result<i64, InboxError> {
    let name = match inbox {
        InboxRef::Id(id) => return Ok(*id),
        InboxRef::Name(name) => name,
    };
    let inboxes = chatwoot.inboxes().await.map_err(|e| {
        if e.is_retriable() {
            InboxError::Unavailable(e)
        } else {
            InboxError::Config(anyhow::anyhow!("listing Chatwoot inboxes: {e}"))
        }
    })?;
    let found = find_inbox(&inboxes, name).map_err(InboxError::Config)?;
    tracing::info!(chatwoot_inbox_id = found.id, inbox = %name, "Chatwoot inbox found by name");
    Ok(found.id)
}

/// Keeps asking Chatwoot for the inbox until it answers (after 5 s, doubling up to a minute),
/// then fills `state.inbox`. A configuration that names no inbox is logged as an error each
/// time: the relay waits meanwhile (nothing is dead-lettered).
async fn resolve_inbox_later(
    state: AppState,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut pause = std::time::Duration::from_secs(5);
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return Ok(()),
        }
        match resolve_inbox(&state.chatwoot, &state.settings.chatwoot.inbox).await {
            Ok(id) => {
                let _ = state.inbox.set(id);
                return Ok(());
            }
            Err(InboxError::Unavailable(e)) => {
                tracing::warn!(error = %e, "Chatwoot still down; VK messages wait for the inbox");
            }
            Err(InboxError::Config(e)) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "no Chatwoot inbox to post VK messages into"
                );
            }
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(60));
    }
}

/// Connects the runtime (Postgres with migrations, NATS, the HTTP client), declares the
/// consumers and loops, and binds `HOST:PORT` (port 0 picks a free one, for tests).
///
/// Errors: Postgres or NATS unreachable, a migration failing, the port taken.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
    let port = settings.port;
    let state = AppState::new(&rt, settings)?;
    // Found now when Chatwoot answers; a configuration that names no inbox stops the start.
    // Chatwoot being down must not stop VK's intake: the inbox is then found later.
    match resolve_inbox(&state.chatwoot, &state.settings.chatwoot.inbox).await {
        Ok(id) => {
            let _ = state.inbox.set(id);
        }
        Err(InboxError::Config(e)) => return Err(e),
        Err(InboxError::Unavailable(e)) => {
            tracing::warn!(error = %e, "Chatwoot is down at start; the inbox is looked up again in the background");
        }
    }
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
    if state.inbox_id().is_none() {
        let s = state.clone();
        run.spawn("inbox lookup", move |stop| resolve_inbox_later(s, stop));
    }
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
