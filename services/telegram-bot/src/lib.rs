//! telegram-bot: a support bot that gives every customer a forum topic in the operators'
//! Telegram supergroup and relays both ways.
//!
//! ```text
//! Telegram ──getUpdates (default) / POST webhook──▶ ingest ──▶ events.telegram.message.*
//!     ──▶ relay to topic ──▶ createForumTopic + card, sendMessage / copyMessage into the topic
//! operator in the topic ──▶ ingest ──▶ events.telegram.topic_message.*
//!     ──▶ relay to customer ──▶ sendMessage / copyMessage to the customer; /ban /unban /close
//! ```
//!
//! With `OKDESK_ENABLED` it is also the front-end of the Okdesk helpdesk ([`helpdesk`]):
//! registration, issues and comments in the private chat, through okdesk-bridge on NATS
//! (`rpc.okdesk.*`, `cmd.okdesk.*`), and its events back to the person
//! ([`consumers::notify`]).
//!
//! [`build`] puts this service's parts — [`AppState`], the webhook route ([`http`]), the
//! consumers ([`consumers`]) and the long-poll or webhook-registration loop ([`workers`]) — on
//! the runtime (Postgres schema `telegram`, NATS, the HTTP client).

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod consumers;
pub mod error;
pub mod helpdesk;
pub mod http;
pub mod ingest;
pub mod normalize;
pub mod notices;
pub mod store;
pub mod telegram;
pub mod texts;
pub mod workers;

use std::sync::Arc;

use service_kit::Runtime;
use service_kit::bus::Bus;
use service_kit::dead_letter::DeadLetters;

use crate::config::{Mode, Settings};
use crate::normalize::Scope;
use crate::store::Store;
use crate::telegram::Telegram;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "telegram-bot";

/// Migrations of schema `telegram`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The running service: its server, consumers, loops and state.
pub type App = service_kit::App<AppState>;

/// Shared by the route, the consumers and the workers.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Schema `telegram`, rows of this bot.
    pub store: Store,
    /// NATS JetStream, for publishing updates.
    pub bus: Bus,
    /// The Bot API, behind the sending limits.
    pub telegram: Telegram,
    /// The dead-letter table `telegram.dead_letters`.
    pub dead_letters: DeadLetters,
    /// Which operator notices this process knows to be raised.
    pub notices: notices::Memory,
}

impl AppState {
    /// The state on a connected runtime.
    ///
    /// Errors: the long-poll HTTP client cannot be built.
    pub fn new(rt: &Runtime, settings: Settings) -> anyhow::Result<Self> {
        let telegram = telegram_client(&settings, &rt.http)?;
        Ok(Self {
            store: Store::new(rt.pool.clone(), settings.bot_id),
            settings: Arc::new(settings),
            bus: rt.bus.clone(),
            telegram,
            dead_letters: rt.dead_letters.clone(),
            notices: notices::Memory::default(),
        })
    }

    /// The bot and the group, as updates are judged.
    pub fn scope(&self) -> Scope {
        Scope {
            bot_id: self.settings.bot_id,
            group_id: self.settings.group_id,
            helpdesk: self.settings.helpdesk.is_some(),
        }
    }
}

/// The Bot API client for `settings` on `http` (the runtime's client).
///
/// Errors: the long-poll HTTP client cannot be built.
pub fn telegram_client(settings: &Settings, http: &reqwest::Client) -> anyhow::Result<Telegram> {
    let poll = match settings.mode {
        Mode::Polling { timeout } => timeout,
        Mode::Webhook(_) => std::time::Duration::from_secs(1),
    };
    Ok(Telegram::new(
        http.clone(),
        &settings.api_url,
        settings.token.expose(),
        &settings.limits,
        poll,
        settings.runtime.upstream_timeout(),
    )?
    .with_button_presses(settings.helpdesk.is_some()))
}

/// Connects the runtime (Postgres with migrations, NATS, the HTTP client), declares the
/// consumers and the update loop, and binds `HOST:PORT` (port 0 picks a free one, for tests).
///
/// Errors: Postgres or NATS unreachable, a migration failing, the port taken.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
    let port = settings.port;
    let state = AppState::new(&rt, settings)?;
    let mut run = rt.workers();
    run.consumer(
        consumers::to_topic::spec(),
        state.clone(),
        consumers::to_topic::handle,
    );
    run.consumer(
        consumers::to_customer::spec(),
        state.clone(),
        consumers::to_customer::handle,
    );
    if state.settings.helpdesk.is_some() {
        run.consumer(
            consumers::notify::spec(),
            state.clone(),
            consumers::notify::handle,
        );
    }
    let s = state.clone();
    match &state.settings.mode {
        Mode::Polling { .. } => run.spawn("long poll", move |stop| workers::poll::run(s, stop)),
        Mode::Webhook(_) => run.spawn("set webhook", move |stop| {
            workers::webhook::register(s, stop)
        }),
    }
    let server = rt.bind(port, http::router(state.clone())).await?;
    Ok(App::new(server, run, state))
}
