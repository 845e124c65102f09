//! `vk-callback-ceiling`: vk-connector's `POST /vk/callback/{VK_CALLBACK_ID}` doing all its work —
//! callback id and secret checks, JSON parsing, normalization, the envelope serialised with its
//! headers as the bus would publish it — and answering `ok` **without publishing**. Served
//! through the same service-kit HTTP stack (request id, trace span, timeout, body limit,
//! metrics), with the same settings (`VK_*`, `DATABASE_URL`, `NATS_URL`, `LOG_*`), so the
//! difference to the real route is the JetStream round trip. A benchmark binary only: the
//! shipped route has no such switch.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use service_kit::{Runtime, RuntimeArgs};
use std::sync::Arc;
use vk_bench::route::{self, Accepted, CallbackSettings, Refused};

/// The callback route without the publish (benchmark only).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 18182)]
    port: u16,
    /// Id of the VK community.
    #[arg(long, env = "VK_GROUP_ID")]
    vk_group_id: i64,
    /// Secret every callback carries.
    #[arg(long, env = "VK_SECRET", hide_env_values = true)]
    vk_secret: String,
    /// Answer to `confirmation`.
    #[arg(long, env = "VK_CONFIRMATION", hide_env_values = true)]
    vk_confirmation: String,
    /// Path segment of POST /vk/callback/{VK_CALLBACK_ID}.
    #[arg(long, env = "VK_CALLBACK_ID", hide_env_values = true)]
    vk_callback_id: String,
    /// The flags every service shares.
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Clone)]
struct AppState {
    settings: Arc<CallbackSettings>,
    prefix: Arc<str>,
}

fn text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[tracing::instrument(skip_all, fields(event_type, event_id))]
async fn handle(
    State(state): State<AppState>,
    Path(callback_id): Path<String>,
    body: Bytes,
) -> Response {
    match route::handle(&state.settings, &state.prefix, &callback_id, &body) {
        Ok(Accepted::Confirmation(c)) => text(c),
        Ok(Accepted::Publish(wire)) => {
            // The publish would hand these to JetStream; keep them observable to the compiler.
            std::hint::black_box(wire);
            text("ok".into())
        }
        Ok(Accepted::Skipped(reason)) => {
            tracing::debug!(reason, "VK event not relayed");
            text("ok".into())
        }
        Err(e) => {
            let status = match e {
                Refused::NotFound => StatusCode::NOT_FOUND,
                Refused::BadRequest(_) => StatusCode::BAD_REQUEST,
                Refused::Forbidden(_) => StatusCode::FORBIDDEN,
                Refused::Unauthorized => StatusCode::UNAUTHORIZED,
            };
            (status, e.to_string()).into_response()
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = service_kit::telemetry::init("vk-callback-ceiling", &args.runtime)?;
    // Postgres and NATS only for /ready, like the service's; nothing is published.
    let rt = Runtime::connect_without_migrating("vk-callback-ceiling", "vk", &args.runtime).await?;
    let state = AppState {
        settings: Arc::new(CallbackSettings {
            group_id: args.vk_group_id,
            secret: args.vk_secret,
            confirmation: args.vk_confirmation,
            callback_id: args.vk_callback_id,
        }),
        prefix: args.runtime.nats_subject_prefix.clone().into(),
    };
    let routes = Router::new()
        .route("/vk/callback/{callback_id}", post(handle))
        .with_state(state);
    let server = rt.bind(args.port, routes).await?;
    server.serve(service_kit::shutdown::on_signal()).await?;
    Ok(())
}
