//! Logs and traces: `tracing` with JSON or pretty output, OpenTelemetry (OTLP/HTTP) export
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context carried in NATS headers.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, RuntimeArgs};

/// Keeps the trace exporter alive; flushes pending spans when dropped (at exit).
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber: `LOG_LEVEL` filter, `LOG_FORMAT` json (one line per event,
/// with the span fields such as `trace_id`) or pretty, and the OTLP layer when an endpoint is
/// configured. Every line carries `service`.
///
/// Errors: the filter does not parse, or the exporter cannot be built.
pub fn init(service: &'static str, args: &RuntimeArgs) -> anyhow::Result<TelemetryGuard> {
    init_to(service, args, LogOutput::Stdout)
}

/// Where log lines go: stdout for `serve` (what the container runtime collects), stderr for
/// one-shot commands whose own output is on stdout (`check`, `dlq list`, `admin create` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// [`init`], writing log lines to `output`.
///
/// Errors: as [`init`].
pub fn init_to(
    service: &'static str,
    args: &RuntimeArgs,
    output: LogOutput,
) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_new(&args.log_level).map_err(|e| {
        anyhow::anyhow!("LOG_LEVEL `{}` is not a valid filter: {e}", args.log_level)
    })?;
    let fmt = match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(ServiceStamped(service, output))
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        LogFormat::Pretty => match output {
            LogOutput::Stdout => tracing_subscriber::fmt::layer().compact().boxed(),
            LogOutput::Stderr => tracing_subscriber::fmt::layer()
                .compact()
                .with_writer(std::io::stderr)
                .boxed(),
        },
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (otel, provider) = match &args.otel_exporter_otlp_endpoint {
        Some(endpoint) if !endpoint.trim().is_empty() => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()?;
            let processor =
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service)
                        .build(),
                )
                .build();
            let tracer = provider.tracer(service);
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
        _ => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(fmt)
        .try_init()?;
    tracing::info!(
        service,
        version = env!("CARGO_PKG_VERSION"),
        "telemetry ready"
    );
    Ok(TelemetryGuard { provider })
}

/// W3C `traceparent` of the current span, when it belongs to a sampled OpenTelemetry trace.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = TraceparentCarrier(None);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.0
}

/// The hex trace id of the current span, for log lines and error bodies.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Records the span's OpenTelemetry trace id in its `trace_id` field (declared
/// `tracing::field::Empty`), so JSON log lines carry it. No-op without an OTel layer.
pub fn record_trace_id(span: &tracing::Span) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", sc.trace_id().to_string());
    }
}

/// Makes `span` a child of the trace in the message's `traceparent` header, so that one
/// inbound message is one trace across services.
pub fn set_parent_from_headers(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let Some(tp) = headers
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_owned())
    else {
        return;
    };
    let cx = TraceContextPropagator::new().extract(&TraceparentCarrier(Some(tp)));
    if cx.span().span_context().is_valid() {
        span.record("trace_id", cx.span().span_context().trace_id().to_string());
        let _ = span.set_parent(cx);
    }
}

struct TraceparentCarrier(Option<String>);

impl Injector for TraceparentCarrier {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

impl Extractor for TraceparentCarrier {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent")
            .then_some(self.0.as_deref())
            .flatten()
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Writes JSON log lines to stdout (or stderr) with `"service":"<name>"` as their first field, so that
/// every line names its service (the fmt layer writes each event as one `{…}\n` buffer).
struct ServiceStamped(&'static str, LogOutput);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ServiceStamped {
    type Writer = StampedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        StampedWriter(self.0, self.1)
    }
}

struct StampedWriter(&'static str, LogOutput);

impl std::io::Write for StampedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out: Box<dyn std::io::Write> = match self.1 {
            LogOutput::Stdout => Box::new(std::io::stdout().lock()),
            LogOutput::Stderr => Box::new(std::io::stderr().lock()),
        };
        match buf.split_first() {
            Some((b'{', rest)) => {
                let mut line = Vec::with_capacity(buf.len() + 32);
                line.extend_from_slice(b"{\"service\":\"");
                line.extend_from_slice(self.0.as_bytes());
                line.extend_from_slice(b"\",");
                line.extend_from_slice(rest);
                out.write_all(&line)?;
            }
            _ => out.write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.1 {
            LogOutput::Stdout => std::io::stdout().flush(),
            LogOutput::Stderr => std::io::stderr().flush(),
        }
    }
}
