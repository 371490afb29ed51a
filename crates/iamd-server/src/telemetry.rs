//! Logs and traces: the `tracing` subscriber of `iamd serve`, and
//! OpenTelemetry traces over OTLP/gRPC when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! variable is set.
//!
//! Off by default and free when off: the one span per call
//! ([`rpc_span`]) has its own target, which the log layer never takes and
//! which only the OpenTelemetry layer enables, so without it the span's
//! callsite is disabled once and every later call skips it.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target of the spans sent to OpenTelemetry (and never logged).
pub const SPAN_TARGET: &str = "iamd::otel";

/// The installed subscriber: keep it until the process ends, then
/// [`Telemetry::shutdown`] to send the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Logging or tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP settings are not usable.
    #[error("OpenTelemetry: {0}")]
    Otlp(String),
    /// A subscriber was already installed.
    #[error("cannot set up logging: {0}")]
    Install(String),
}

/// Whether the environment asks for traces: an OTLP endpoint is set, and
/// neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says
/// otherwise.
pub fn otlp_requested(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    endpoint && !disabled
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// JSON lines.
    Json,
}

/// Installs logging on standard error and, when [`otlp_requested`], the
/// OpenTelemetry layer. Call it inside a Tokio runtime (the exporter's
/// channel lives there).
pub fn init(format: LogFormat, level: tracing::Level) -> Result<Telemetry, TelemetryError> {
    let env = |k: &str| std::env::var(k).ok();
    let fmt = log_layer(format, level);
    let provider = otlp_requested(env).then(|| provider(env)).transpose()?;
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("iamd"))
            .with_filter(Targets::new().with_target(SPAN_TARGET, LevelFilter::TRACE))
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    if provider.is_some() {
        tracing::info!(target: "iamd::telemetry",
            endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
                .unwrap_or_default(),
            "exporting traces over OTLP/gRPC"
        );
    }
    Ok(Telemetry { provider })
}

/// Logs on standard error: the level asked for, never the OpenTelemetry
/// spans.
fn log_layer<S>(format: LogFormat, level: tracing::Level) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal as _;
    let filter = Targets::new()
        .with_default(LevelFilter::from_level(level))
        .with_target(SPAN_TARGET, LevelFilter::OFF);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    }
    .with_filter(filter)
}

fn provider(env: impl Fn(&str) -> Option<String>) -> Result<SdkTracerProvider, TelemetryError> {
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "grpc".into());
    if protocol.trim() != "grpc" {
        return Err(TelemetryError::Otlp(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL is `{protocol}`: iamd exports over gRPC only; set it to `grpc` (or unset it) and point the endpoint at the collector's gRPC port (4317)"
        )));
    }
    let endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_default();
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.trim());
    if endpoint.trim_start().starts_with("https://") {
        let Some(ca) = env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            .or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE"))
        else {
            return Err(TelemetryError::Otlp(format!(
                "the collector `{endpoint}` is TLS: set OTEL_EXPORTER_OTLP_CERTIFICATE to the PEM file of the CA that signed its certificate"
            )));
        };
        let pem = iamd_bundle::regular_file::read(std::path::Path::new(&ca), crate::tls::PEM_BYTES)
            .map_err(|e| {
                TelemetryError::Otlp(format!("OTEL_EXPORTER_OTLP_CERTIFICATE `{ca}`: {e}"))
            })?;
        builder = builder.with_tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        );
    }
    let exporter = builder
        .build()
        .map_err(|e| TelemetryError::Otlp(format!("cannot build the OTLP exporter: {e}")))?;
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the
    // resource builder; the service is `iamd` unless they name another.
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name("iamd");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued (bounded by the exporter's timeout).
    /// Call it from outside the runtime, before the runtime is dropped.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(target: "iamd::telemetry", "OpenTelemetry: the last spans may be lost: {e}");
        }
    }
}

/// The span of one gRPC call, `iamd.v1.Authorizer/METHOD`, a child of the
/// caller's W3C `traceparent` when there is one. Disabled (and nearly free)
/// unless traces are exported. Fields recorded later: `iamd.decision`,
/// `iamd.revision`, `rpc.grpc.status_code`.
pub fn rpc_span(method: &'static str, metadata: &tonic::metadata::MetadataMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "rpc",
        otel.name = method,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = method.split('/').next().unwrap_or(method),
        rpc.method = method.rsplit('/').next().unwrap_or(method),
        iamd.principal = tracing::field::Empty,
        iamd.action = tracing::field::Empty,
        iamd.decision = tracing::field::Empty,
        iamd.revision = tracing::field::Empty,
        iamd.batch_size = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&Metadata(metadata));
        let _ = span.set_parent(parent);
    }
    span
}

/// The span of one AuthZEN request (`POST /access/v1/evaluation`...), a
/// child of the caller's W3C `traceparent` when there is one. Disabled
/// unless traces are exported. Recorded later:
/// `http.response.status_code`.
pub fn http_span(path: &str, headers: &hyper::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "http",
        otel.name = path,
        otel.kind = "server",
        url.path = path,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
    span
}

struct Headers<'a>(&'a hyper::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(hyper::header::HeaderName::as_str)
            .collect()
    }
}

struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_off_unless_an_endpoint_is_set() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!otlp_requested(env(&[])));
        assert!(!otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn other_protocols_and_tls_without_a_ca_are_refused() {
        let e =
            provider(|k| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/protobuf".to_owned()))
                .unwrap_err()
                .to_string();
        assert!(e.contains("exports over gRPC only"), "{e}");
        let e = provider(|k| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "https://collector:4317".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("set OTEL_EXPORTER_OTLP_CERTIFICATE"), "{e}");
    }

    #[test]
    fn without_opentelemetry_the_span_is_disabled_even_at_trace_level() {
        let span = rpc_span("iamd.v1.Authorizer/Authorize", &Default::default());
        assert!(span.is_disabled());
        let logs =
            tracing_subscriber::registry().with(log_layer(LogFormat::Json, tracing::Level::TRACE));
        tracing::subscriber::with_default(logs, || {
            assert!(
                tracing::enabled!(tracing::Level::TRACE),
                "the log layer is on"
            );
            let span = rpc_span("iamd.v1.Authorizer/Authorize", &Default::default());
            assert!(span.is_disabled());
        });
    }
}
