//! OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans are exported over OTLP/HTTP and
//! the trace context travels in the NATS `traceparent` header and the envelope.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_and_carried_through_nats() {
    // A stand-in OTLP collector: counts export requests to /v1/traces.
    let exports = Arc::new(AtomicUsize::new(0));
    let counter = exports.clone();
    let collector = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                if !body.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let mut args = service_kit::RuntimeArgs::for_database("unused");
    args.otel_exporter_otlp_endpoint = Some(endpoint);
    args.log_level = "info".into();
    let guard = service_kit::telemetry::init("vk-connector", &args).expect("telemetry starts");

    let app = spawn_app().await;
    app.customer_writes("трассировка").await;
    let stream = jetstream_of(&app)
        .get_stream(app.state.bus.events_stream())
        .await
        .unwrap();
    let raw = stream.get_raw_message(1).await.unwrap();
    let header = raw
        .headers
        .get("traceparent")
        .map(|v| v.as_str().to_owned())
        .expect("traceparent header on the NATS message");
    let env = domain::Envelope::<domain::Event>::decode(&raw.payload).unwrap();
    assert_eq!(env.traceparent.as_deref(), Some(header.as_str()));
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "W3C traceparent: {header}");
    assert_eq!(parts[1].len(), 32);
    app.cleanup().await;
    // Dropping the guard flushes the batch exporter.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
    assert!(
        exports.load(Ordering::SeqCst) >= 1,
        "no spans reached the collector"
    );
}
