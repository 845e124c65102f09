//! okdesk-bridge: the gateway's side of Okdesk. It owns the Okdesk REST API and the Okdesk
//! webhooks; the messenger side (telegram-bot) talks to it only through NATS.
//!
//! ```text
//! cmd.okdesk.contact.register ──▶ register ──▶ find contact by phone / create ──▶ events.okdesk.contact.registered
//! cmd.okdesk.issue.create     ──▶ issues   ──▶ POST /issues                   ──▶ events.okdesk.issue.created
//! cmd.okdesk.comment.create   ──▶ comments ──▶ POST /issues/{id}/comments
//! rpc.okdesk.company.find_by_inn | issue.list | issue.get ──▶ answered at once (core NATS)
//! Okdesk ──webhook──▶ /okdesk/webhook/{token} ─┐
//! poll of watched issues (missed webhooks)  ───┴▶ announce ──▶ events.okdesk.issue.status_changed
//!                                                              events.okdesk.comment.created (public only)
//! ```

#![warn(missing_docs)]

pub mod announce;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod error;
pub mod http;
pub mod rpc;
pub mod store;
pub mod workers;

use std::sync::Arc;

use okdesk_api::OkdeskClient;
use service_kit::Runtime;
use service_kit::bus::Bus;

use crate::config::Settings;
use crate::store::Store;

/// The service's name in logs, metrics and `/health`.
pub const SERVICE: &str = "okdesk-bridge";

/// Migrations of schema `okdesk`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The running service.
pub type App = service_kit::App<AppState>;

/// Shared by the route, the consumers, the responders and the poll.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// Schema `okdesk`.
    pub store: Store,
    /// NATS.
    pub bus: Bus,
    /// The Okdesk API.
    pub okdesk: OkdeskClient,
}

impl AppState {
    /// The state on a connected runtime.
    pub fn new(rt: &Runtime, settings: Settings) -> Self {
        let okdesk = OkdeskClient::new(
            rt.http.clone(),
            &settings.api_url,
            settings.api_token.expose(),
        );
        Self {
            settings: Arc::new(settings),
            store: Store::new(rt.pool.clone()),
            bus: rt.bus.clone(),
            okdesk,
        }
    }
}

/// Connects the runtime, declares the consumers, responders and the poll, and binds
/// `HOST:PORT` (port 0 picks a free one, for tests).
///
/// Errors: Postgres or NATS unreachable, a migration failing, the port taken.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let rt = Runtime::connect(SERVICE, store::SCHEMA, &MIGRATOR, &settings.runtime).await?;
    let port = settings.port;
    let state = AppState::new(&rt, settings);
    let mut run = rt.workers();
    run.consumer(
        consumers::register::spec(),
        state.clone(),
        consumers::register::handle,
    );
    run.consumer(
        consumers::issues::spec(),
        state.clone(),
        consumers::issues::handle,
    );
    run.consumer(
        consumers::comments::spec(),
        state.clone(),
        consumers::comments::handle,
    );
    let s = state.clone();
    run.spawn("rpc company.find_by_inn", move |stop| {
        rpc::serve_find_by_inn(s, stop)
    });
    let s = state.clone();
    run.spawn("rpc issue.list", move |stop| rpc::serve_issue_list(s, stop));
    let s = state.clone();
    run.spawn("rpc issue.get", move |stop| rpc::serve_issue_get(s, stop));
    if let Some(every) = state.settings.poll_interval {
        let s = state.clone();
        run.spawn("poll", move |stop| workers::poll::run(s, every, stop));
    }
    let server = rt.bind(port, http::router(state.clone())).await?;
    Ok(App::new(server, run, state))
}
