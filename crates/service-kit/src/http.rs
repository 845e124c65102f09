//! The HTTP server every service runs: tower-http layers (request id, trace, timeout, body
//! limit), `GET /health`, `GET /ready`, `GET /metrics`, and graceful shutdown.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::bus::Bus;
use crate::config::RuntimeArgs;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What `/ready` checks.
#[derive(Clone)]
pub struct Readiness {
    /// The service name reported in the `/health` and `/ready` bodies.
    pub service: &'static str,
    /// The database pool `/ready` pings.
    pub pool: PgPool,
    /// The NATS connection `/ready` checks (connected and flushing).
    pub bus: Bus,
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only when another recorder is installed already; then ours stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Adds `/health`, `/ready`, `/metrics` and the layers to a service's routes.
pub fn finish(routes: Router, readiness: Readiness, args: &RuntimeArgs) -> Router {
    let service = readiness.service;
    // Install the recorder now, before the first counter is incremented.
    let _ = prometheus();
    let ops = Router::new()
        .route(
            "/health",
            get(move || async move {
                Json(json!({
                    "ok": true,
                    "service": service,
                    "version": env!("CARGO_PKG_VERSION"),
                    "timestamp": now_rfc3339(),
                }))
            }),
        )
        .route("/ready", get(ready).with_state(readiness))
        .route("/metrics", get(|| async { prometheus().render() }));
    routes
        .merge(ops)
        .layer(middleware::from_fn(crate::http_error::scope_request_id))
        .layer(middleware::from_fn(record_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(args.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            args.request_timeout(),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // The route template, never the raw path: paths carry secrets such as
            // /vk/callback/{VK_CALLBACK_ID} and /api/webhooks/amo/{AMOCRM_WEBHOOK_TOKEN}.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "unmatched".to_owned());
            let span = tracing::info_span!(
                "http",
                method = %req.method(),
                route,
                request_id,
                trace_id = tracing::field::Empty,
            );
            crate::telemetry::record_trace_id(&span);
            span
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn ready(State(r): State<Readiness>) -> Response {
    let postgres = match crate::db::ping(&r.pool).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("down: {e:#}"),
    };
    let nats = if r.bus.is_connected() {
        match tokio::time::timeout(Duration::from_secs(2), r.bus.client().flush()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("down: {e}"),
            Err(_) => "down: flush timed out".to_owned(),
        }
    } else {
        "down: not connected".to_owned()
    };
    let failing: Vec<&str> = [("postgres", &postgres), ("nats", &nats)]
        .into_iter()
        .filter(|(_, s)| s.as_str() != "ok")
        .map(|(n, _)| n)
        .collect();
    let ok = failing.is_empty();
    let body = Json(json!({
        "ok": ok,
        "service": r.service,
        "failing": failing,
        "checks": { "postgres": postgres, "nats": nats },
        "timestamp": now_rfc3339(),
    }));
    if ok {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// A service's bound listener and finished router: what `App::build` makes and
/// `App::run_until` serves.
pub struct Server {
    listener: TcpListener,
    router: Router,
    service: &'static str,
}

impl Server {
    /// Binds `host:port` (port 0 picks a free one, for tests) and finishes `routes` with the
    /// operational routes and layers ([`finish`]).
    ///
    /// Errors: the address cannot be bound.
    pub async fn bind(
        host: &str,
        port: u16,
        routes: Router,
        readiness: Readiness,
        args: &RuntimeArgs,
    ) -> anyhow::Result<Self> {
        let addr = format!("{host}:{port}");
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        let service = readiness.service;
        Ok(Self {
            router: finish(routes, readiness, args),
            listener,
            service,
        })
    }

    /// The service's name (from its readiness).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Wraps the finished router once more, outside every standard layer (e.g. CORS, which
    /// must answer preflight requests before anything else sees them).
    pub fn map_router(mut self, f: impl FnOnce(Router) -> Router) -> Self {
        self.router = f(self.router);
        self
    }

    /// Serves until `shutdown` is cancelled, then waits for in-flight requests ([`serve`]).
    /// Handlers can extract `ConnectInfo<SocketAddr>` (the peer address).
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(service = self.service, port = self.port(), "listening");
        serve(self.listener, self.router, shutdown).await
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting and waits for in-flight
/// requests to finish. The peer address is available as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// Now as RFC 3339 UTC, second precision: `2026-01-01T12:00:00Z`.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
