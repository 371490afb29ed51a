//! The admin HTTP listener (loopback by default): `/metrics` (Prometheus
//! text), `/healthz`, `/readyz` and `/status` (the same as `GetStatus`, as
//! JSON). Decisions are counted by the gRPC handlers through [`Metrics`];
//! the bundle's and the reloader's figures are read from the [`Store`] at
//! each scrape.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::credentials::CredentialStore;
use crate::decision_log::DecisionLog;
use crate::reload::Store;
use iamd_policy::eval::Outcome;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(
    non_camel_case_types,
    reason = "label values are written as Prometheus spells them"
)]
enum OutcomeValue {
    allow,
    explicit_deny,
    implicit_deny,
    unknown_principal,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    endpoint: &'static str,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignatureLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StsLabels {
    action: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: OutcomeValue,
}

/// What the daemon counts, and the decision log it writes to, if any.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The counters of `iamd_decisions_total`, made at start (allow,
    /// explicit deny, implicit deny, unknown principal): no lookup per
    /// decision.
    decisions: [Counter; 4],
    latency: Histogram,
    batch_sizes: Histogram,
    tls_reloads: Family<ResultLabels, Counter>,
    tls_handshake_failures: Counter,
    authzen_requests: Family<HttpLabels, Counter>,
    signatures: Family<SignatureLabels, Counter>,
    sts_requests: Family<StsLabels, Counter>,
    log: Option<Arc<DecisionLog>>,
}

impl Metrics {
    /// The metrics of a daemon serving from `store`.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Self::with_decision_log(store, None)
    }

    /// The metrics of a daemon serving from `store` and logging its
    /// decisions to `log`.
    pub fn with_decision_log(store: Arc<Store>, log: Option<Arc<DecisionLog>>) -> Arc<Self> {
        let mut registry = Registry::default();
        let family = Family::<OutcomeLabels, Counter>::default();
        registry.register("iamd_decisions", "Decisions by outcome", family.clone());
        let decisions = [
            OutcomeValue::allow,
            OutcomeValue::explicit_deny,
            OutcomeValue::implicit_deny,
            OutcomeValue::unknown_principal,
        ]
        .map(|outcome| family.get_or_create(&OutcomeLabels { outcome }).clone());
        // 1 µs to ~16 ms, doubling.
        let latency = Histogram::new((0..15).map(|i| 1e-6 * f64::from(1u32 << i)));
        registry.register(
            "iamd_decision_duration_seconds",
            "Time to decide one request, in the handler",
            latency.clone(),
        );
        let batch_sizes = Histogram::new((0..11).map(|i| f64::from(1u32 << i)));
        registry.register(
            "iamd_batch_size",
            "Requests per AuthorizeBatch call",
            batch_sizes.clone(),
        );
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "iamd_tls_reloads",
            "Changed TLS files seen, by result (success: the new certificate is live; failure: the old one stays)",
            tls_reloads.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "iamd_tls_handshake_failures",
            "TLS connections refused or failed before the first request (no or untrusted client certificate, plaintext, timeout)",
            tls_handshake_failures.clone(),
        );
        let authzen_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "iamd_authzen_requests",
            "AuthZEN API requests by endpoint and HTTP status (a deny is 200)",
            authzen_requests.clone(),
        );
        let signatures = Family::<SignatureLabels, Counter>::default();
        registry.register(
            "iamd_signatures",
            "SigV4 signatures checked in Envoy's Check and the STS, by result (valid, or AWS's error code)",
            signatures.clone(),
        );
        let sts_requests = Family::<StsLabels, Counter>::default();
        registry.register(
            "iamd_sts_requests",
            "STS requests by action and result (OK, or AWS's error code)",
            sts_requests.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(store, log.clone())));
        Arc::new(Self {
            registry,
            decisions,
            latency,
            batch_sizes,
            tls_reloads,
            tls_handshake_failures,
            authzen_requests,
            signatures,
            sts_requests,
            log,
        })
    }

    /// Counts one decision and its time.
    pub fn decision(&self, outcome: Option<Outcome>, seconds: f64) {
        self.decisions[Self::outcome_index(outcome)].inc();
        self.latency.observe(seconds);
    }

    /// Where an outcome is counted (`None`: an unknown principal), in the
    /// order of [`Metrics::decisions`]' counts.
    pub fn outcome_index(outcome: Option<Outcome>) -> usize {
        match outcome {
            Some(Outcome::Allow) => 0,
            Some(Outcome::ExplicitDeny) => 1,
            Some(Outcome::ImplicitDeny) => 2,
            None => 3,
        }
    }

    /// Counts the decisions of a batch at once: `counts` by outcome
    /// ([`Metrics::outcome_index`]), decided in `seconds` together; each
    /// is observed in the duration histogram as the batch's mean (the
    /// clock is read once a batch).
    pub fn decisions(&self, counts: [u64; 4], seconds: f64) {
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return;
        }
        for (counter, c) in self.decisions.iter().zip(counts) {
            if c > 0 {
                counter.inc_by(c);
            }
        }
        let mean = seconds / n as f64;
        for _ in 0..n {
            self.latency.observe(mean);
        }
    }

    /// Writes one decision to the decision log, if there is one.
    pub fn log(
        &self,
        question: &crate::decide::Question<'_>,
        decision: &crate::decide::Answer<'_>,
        trace_id: Option<&str>,
    ) {
        if let Some(log) = &self.log {
            log.record(question, decision, trace_id);
        }
    }

    /// Counts one change of the TLS files, used or not.
    pub fn tls_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.tls_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts one failed TLS handshake.
    pub fn tls_handshake_failure(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Counts one AuthZEN request to `endpoint` answered with `code`.
    pub fn authzen_request(&self, endpoint: &'static str, code: u16) {
        self.authzen_counter(endpoint, code).inc();
    }

    /// The counter of AuthZEN requests to `endpoint` answered with `code`,
    /// for a listener to keep (no lookup per answer).
    pub fn authzen_counter(&self, endpoint: &'static str, code: u16) -> Counter {
        self.authzen_requests
            .get_or_create(&HttpLabels { endpoint, code })
            .clone()
    }

    /// Counts one SigV4 signature checked: `valid`, or AWS's error code.
    pub fn signature(&self, result: &'static str) {
        self.signatures
            .get_or_create(&SignatureLabels { result })
            .inc();
    }

    /// Counts one STS request: its action (`GetSessionToken`... or
    /// `unknown`) and its result (`OK`, or AWS's error code).
    pub fn sts(&self, action: &'static str, code: &'static str) {
        self.sts_requests
            .get_or_create(&StsLabels { action, code })
            .inc();
    }

    /// Counts one batch.
    pub fn batch(&self, size: usize) {
        self.batch_sizes.observe(size as f64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The bundle and the reloader, read at each scrape.
#[derive(Debug)]
struct StoreCollector(Arc<Store>, Option<Arc<DecisionLog>>);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // One snapshot: the gauges agree with each other.
        let snapshot = self.0.load();
        let status = snapshot.status();
        let serving = ConstGauge::new(i64::from(snapshot.bundle().is_some()));
        serving.encode(encoder.encode_descriptor(
            "iamd_serving",
            "1 while a bundle is live",
            None,
            serving.metric_type(),
        )?)?;
        let reloads = [
            ("loaded", status.reloads.loaded),
            ("unchanged", status.reloads.unchanged),
            ("failed", status.reloads.failed),
        ];
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family =
            encoder.encode_descriptor("iamd_reloads", "Bundle reloads by result", None, kind)?;
        for (result, n) in reloads {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        if let Some(log) = &self.1 {
            let dropped = ConstCounter::new(log.dropped());
            dropped.encode(encoder.encode_descriptor(
                "iamd_decision_log_dropped",
                "Decision log records dropped because the writer fell behind",
                None,
                dropped.metric_type(),
            )?)?;
        }
        let failing = ConstGauge::new(i64::from(status.last_failure.is_some()));
        failing.encode(encoder.encode_descriptor(
            "iamd_reload_failing",
            "1 while the last reload failed (the previous bundle, if any, keeps serving)",
            None,
            failing.metric_type(),
        )?)?;
        let failures = ConstGauge::new(
            i64::try_from(status.freshness.consecutive_failures).unwrap_or(i64::MAX),
        );
        failures.encode(encoder.encode_descriptor(
            "iamd_bundle_consecutive_failures",
            "Reads of the bundle source in a row that failed (unreachable, or the bundle refused)",
            None,
            failures.metric_type(),
        )?)?;
        let stale = ConstGauge::new(i64::from(status.freshness.stale.is_some()));
        stale.encode(encoder.encode_descriptor(
            "iamd_bundle_stale",
            "1 while the bundle is withdrawn by the staleness policy (nothing is served)",
            None,
            stale.metric_type(),
        )?)?;
        if let Some(at) = status.freshness.last_success {
            let g = ConstGauge::new(at.as_second());
            g.encode(encoder.encode_descriptor(
                "iamd_bundle_last_success_timestamp_seconds",
                "When a read last found the source's bundle live: published, unchanged or not modified (Unix time)",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(live) = &status.live {
            // How long the live bundle has gone unconfirmed: what the
            // staleness policy measures.
            let since = status
                .freshness
                .last_success
                .unwrap_or(live.loaded_at)
                .max(live.loaded_at);
            let age = jiff::Timestamp::now().as_second() - since.as_second();
            let g = ConstGauge::new(age.max(0));
            g.encode(encoder.encode_descriptor(
                "iamd_bundle_age_seconds",
                "Seconds since the source last confirmed the live bundle (or since it was loaded, if later): the age the staleness policy measures",
                None,
                g.metric_type(),
            )?)?;
            let persisted = ConstGauge::new(i64::from(live.persisted));
            persisted.encode(encoder.encode_descriptor(
                "iamd_bundle_persisted",
                "1 while the live bundle is the persisted copy (the source could not be reached)",
                None,
                persisted.metric_type(),
            )?)?;
            let info = ConstGauge::new(1i64);
            let label = live.revision.label.clone().unwrap_or_default();
            let labels = [
                ("digest", live.revision.digest.as_str()),
                ("label", label.as_str()),
            ];
            let mut family = encoder.encode_descriptor(
                "iamd_bundle_info",
                "The live bundle's revision",
                None,
                info.metric_type(),
            )?;
            info.encode(family.encode_family(&labels)?)?;
            let loaded = ConstGauge::new(live.loaded_at.as_second());
            loaded.encode(encoder.encode_descriptor(
                "iamd_bundle_loaded_timestamp_seconds",
                "When the live bundle was loaded (Unix time)",
                None,
                loaded.metric_type(),
            )?)?;
            let statements =
                ConstGauge::new(i64::try_from(live.stats.statements).unwrap_or(i64::MAX));
            statements.encode(encoder.encode_descriptor(
                "iamd_bundle_statements",
                "Statements in the live bundle's identity sets",
                None,
                statements.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Serves the admin endpoints on `addr` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    credentials: Option<Arc<CredentialStore>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let limits = crate::limits::ConnectionLimits::default();
    let handshake = limits.handshake_timeout;
    let accepter = crate::conn::Accepter::new("admin", ADMIN_MAX_CONNECTIONS);
    let mut accepted = crate::conn::accepting(listener, accepter);
    loop {
        let (stream, slot) = tokio::select! {
            next = accepted.recv() => match next {
                Some(c) => c,
                None => return,
            },
            () = &mut shutdown => return,
        };
        let (store, metrics, credentials) = (store.clone(), metrics.clone(), credentials.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = handle(&req, &store, &metrics, credentials.as_deref());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let io = crate::conn::Quiet::new(stream, handshake, slot);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(handshake)
                .serve_connection(hyper_util::rt::TokioIo::new(io), service);
            // A scraper's keep-alive connection is renewed now and then,
            // as every listener's is; a stop ends the task with the runtime.
            let age = (limits.max_age, crate::conn::AGE_GRACE);
            let stop = std::future::pending();
            crate::conn::serve_for(conn, |c| c.graceful_shutdown(), age, stop).await;
        });
    }
}

/// Connections open at once on the admin listener (probes and a scraper
/// need a handful); more wait in the kernel's backlog.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

fn handle(
    req: &hyper::Request<Incoming>,
    store: &Store,
    metrics: &Metrics,
    credentials: Option<&CredentialStore>,
) -> Response<Full<Bytes>> {
    let text = |code: StatusCode, content_type: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        if let Ok(v) = content_type.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            if store.serving() {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "no bundle loaded\n".into(),
                )
            }
        }
        "/status" => {
            let snapshot = store.load();
            let s = snapshot.status();
            let body = serde_json::json!({
                "serving": snapshot.bundle().is_some(),
                "live": s.live.as_ref().map(|l| serde_json::json!({
                    "revision": l.revision.to_string(),
                    "digest": l.revision.digest,
                    "loadedAt": l.loaded_at.to_string(),
                    "source": l.source,
                    "users": l.stats.users, "groups": l.stats.groups, "roles": l.stats.roles,
                    "managedPolicies": l.stats.managed_policies,
                    "resourcePolicies": l.stats.resource_policies,
                    "statements": l.stats.statements,
                    "persisted": l.persisted,
                    "signedBy": l.signed_by,
                })),
                "freshness": {
                    "lastSuccess": s.freshness.last_success.map(|t| t.to_string()),
                    "consecutiveFailures": s.freshness.consecutive_failures,
                    "stale": s.freshness.stale.as_ref().map(|st| serde_json::json!({
                        "since": st.since.to_string(),
                        "maxAgeSeconds": st.max_age.as_secs(),
                    })),
                },
                "lastFailure": s.last_failure.as_ref().map(|f| serde_json::json!({"at": f.at.to_string(), "errors": f.errors})),
                "reloads": {"loaded": s.reloads.loaded, "unchanged": s.reloads.unchanged, "failed": s.reloads.failed},
                "credentials": credentials.map(|c| {
                    let c = c.status();
                    serde_json::json!({
                        "dir": c.dir.display().to_string(),
                        "digest": c.digest,
                        "keys": c.keys.0,
                        "activeKeys": c.keys.1,
                        "loadedAt": c.loaded_at.map(|t| t.to_string()),
                        "lastFailure": c.last_failure.map(|(at, e)| serde_json::json!({"at": at.to_string(), "error": e})),
                        "loads": {"loaded": c.loads.0, "failed": c.loads.1},
                        // Key IDs are not secrets (AWS's own view); the
                        // times are this replica's.
                        "lastUsed": credentials.and_then(|s| s.credentials()).map(|live| {
                            live.last_used()
                                .into_iter()
                                .map(|(id, user, u)| serde_json::json!({
                                    "accessKeyId": id,
                                    "userName": user,
                                    "at": u.at.to_string(),
                                    "service": u.service,
                                    "region": u.region,
                                }))
                                .collect::<Vec<_>>()
                        }),
                    })
                }),
            });
            text(StatusCode::OK, "application/json", format!("{body}\n"))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz, /readyz or /status\n".into(),
        ),
    }
}
