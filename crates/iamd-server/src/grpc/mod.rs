//! The gRPC daemon: `iamd.v1.Authorizer` over the live bundle, with
//! `grpc.health.v1` (`NOT_SERVING` until a bundle is live) and reflection.
//!
//! The handlers only convert: protobuf in, a question to the
//! [`Decider`] (the one way into a decision), protobuf out. Refusals map to
//! `tonic::Status` in [`status`] only.

mod admission;
mod convert;
pub mod status;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

use iamd_proto::pb;

use self::admission::AdmissionLayer;
use crate::admin::Metrics;
use crate::conn::{self, Accepter, Quiet, Slot};
use crate::decide::{Decider, Refusal};
use crate::limits::{Listen, RequestLimits};
use crate::reload::Store;
use crate::telemetry;
use crate::tls::Tls;

/// The `iamd.v1.Authorizer` service: a thin adapter over the [`Decider`].
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    decider: Decider,
    credentials: Option<Arc<crate::credentials::CredentialStore>>,
}

impl AuthorizerService {
    /// A service answering with `decider`.
    pub fn new(decider: Decider) -> Self {
        Self {
            decider,
            credentials: None,
        }
    }

    /// Verifies the requests' `signed` field with the credentials of
    /// `store`.
    pub fn with_credentials(mut self, store: Arc<crate::credentials::CredentialStore>) -> Self {
        self.credentials = Some(store);
        self
    }

    /// The signer of `r`'s `signed` request, if it has one: `UNAUTHENTICATED`
    /// with AWS's code when its signature cannot be accepted, `UNAVAILABLE`
    /// without credentials, `INVALID_ARGUMENT` with a `principal` beside it.
    fn signer(
        &self,
        r: &pb::AuthorizeRequest,
        now: jiff::Timestamp,
    ) -> Result<Option<convert::Signer>, Status> {
        let Some(signed) = &r.signed else {
            return Ok(None);
        };
        if !r.principal.is_empty() {
            return Err(Status::invalid_argument(
                "`principal` and `signed` both given: the signer of `signed` is the principal; leave `principal` empty",
            ));
        }
        let metrics = self.decider.metrics();
        let Some(credentials) = self.credentials.as_ref().and_then(|c| c.credentials()) else {
            return Err(Status::unavailable(
                "a signed request, and no credentials are loaded (serve --credentials DIR)",
            ));
        };
        let request = iamd_credentials::sigv4::HttpRequest {
            method: &signed.method,
            path: &signed.path,
            headers: &signed.headers,
            body: (!signed.body.is_empty()).then_some(&signed.body[..]),
        };
        match credentials.verify(&request, now) {
            Ok(Some(v)) => {
                metrics.signature("valid");
                let session = match v.session.as_ref().and_then(|s| s.policy.as_deref()) {
                    None => None,
                    Some(text) => Some(
                        self.credentials
                            .as_ref()
                            .map_or_else(|| Err(String::new()), |c| c.session_policy(text))
                            .map_err(|e| {
                                Status::permission_denied(format!(
                                    "AccessDenied: the session's policy does not compile: {}",
                                    iamd_policy::message::shorten(&e)
                                ))
                            })?,
                    ),
                };
                Ok(Some(convert::Signer {
                    facts: crate::credentials::signed_facts(&v, now),
                    session_tags: v.session.map(|s| s.tags).unwrap_or_default(),
                    principal: v.principal,
                    session,
                }))
            }
            Ok(None) => Err(Status::unauthenticated(
                "MissingAuthenticationToken: `signed` carries no AWS Signature Version 4 (an Authorization header, or a presigned URL's X-Amz-* parameters)",
            )),
            Err(e) => {
                metrics.signature(e.code.as_str());
                tracing::debug!(target: "iamd::grpc", "signature refused: {e}");
                Err(Status::unauthenticated(format!(
                    "{}: {}",
                    e.code.as_str(),
                    e.code.message()
                )))
            }
        }
    }

    /// Decides one request against the live bundle at `now`, counted and
    /// logged as a call of `Authorize` is: `UNAVAILABLE` without a bundle,
    /// `INVALID_ARGUMENT` for a malformed request.
    pub fn decide_now(
        &self,
        r: &pb::AuthorizeRequest,
        now: jiff::Timestamp,
        trace_id: Option<&str>,
    ) -> Result<pb::AuthorizeResponse, Status> {
        let signer = self.signer(r, now)?;
        convert::question(r, &self.decider, signer.as_ref())
            .and_then(|q| self.decider.decide(&q, now, trace_id, convert::response))
            .map_err(|e| status::refused(&e))
    }
}

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let span = telemetry::rpc_span("iamd.v1.Authorizer/Authorize", request.metadata());
        let _entered = span.enter();
        let r = request.get_ref();
        span.record("iamd.principal", r.principal.as_str());
        span.record("iamd.action", r.action.as_str());
        let answer = self.decide_now(r, jiff::Timestamp::now(), trace_of(&request));
        if let Ok(a) = &answer {
            span.record("iamd.decision", a.decision().as_str_name());
            span.record("iamd.revision", a.revision.as_str());
        }
        traced(&span, answer.map(Response::new))
    }

    async fn authorize_batch(
        &self,
        request: Request<pb::AuthorizeBatchRequest>,
    ) -> Result<Response<pb::AuthorizeBatchResponse>, Status> {
        let span = telemetry::rpc_span("iamd.v1.Authorizer/AuthorizeBatch", request.metadata());
        let _entered = span.enter();
        let answer = self.batch(&request, &span);
        traced(&span, answer)
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let span = telemetry::rpc_span("iamd.v1.Authorizer/GetStatus", request.metadata());
        let _entered = span.enter();
        // One snapshot: `serving` and the report agree.
        let snapshot = self.decider.store().load();
        let serving = snapshot.bundle().is_some();
        traced(
            &span,
            Ok(Response::new(convert::status(serving, snapshot.status()))),
        )
    }
}

impl AuthorizerService {
    fn batch(
        &self,
        request: &Request<pb::AuthorizeBatchRequest>,
        span: &tracing::Span,
    ) -> Result<Response<pb::AuthorizeBatchResponse>, Status> {
        let requests = &request.get_ref().requests;
        let each_revision = !request.get_ref().revision_once;
        let mut table = request
            .get_ref()
            .statement_table
            .then(convert::Table::default);
        span.record("iamd.batch_size", requests.len());
        let refused = |e: Refusal| status::refused(&e);
        self.decider.admit_batch(requests.len()).map_err(refused)?;
        let pinned = self.decider.pin().map_err(refused)?;
        let now = jiff::Timestamp::now();
        let trace_id = trace_of(request);
        let mut responses = Vec::with_capacity(requests.len());
        let mut tally = pinned.tally();
        for (i, r) in requests.iter().enumerate() {
            let signer = self
                .signer(r, now)
                .map_err(|e| Status::new(e.code(), format!("requests[{i}]: {}", e.message())))?;
            let answer = convert::question(r, &self.decider, signer.as_ref())
                .and_then(|q| {
                    pinned.decide_in(&mut tally, &q, now, trace_id, |a| {
                        convert::response_with(a, each_revision, table.as_mut())
                    })
                })
                .map_err(|e| status::refused_in_batch(i, &e))?;
            responses.push(answer);
        }
        span.record("iamd.revision", pinned.revision());
        Ok(Response::new(pb::AuthorizeBatchResponse {
            responses,
            revision: pinned.revision().to_owned(),
            statements: table.map(|t| t.statements).unwrap_or_default(),
        }))
    }
}

/// Records the gRPC status of a call on its span.
fn traced<T>(
    span: &tracing::Span,
    result: Result<Response<T>, Status>,
) -> Result<Response<T>, Status> {
    if !span.is_disabled() {
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        span.record("rpc.grpc.status_code", code as i64);
        if code != tonic::Code::Ok {
            span.record("otel.status_code", "ERROR");
        }
    }
    result
}

/// The W3C trace id of a call, from its `traceparent` metadata.
fn trace_of<T>(request: &Request<T>) -> Option<&str> {
    let header = request.metadata().get("traceparent")?.to_str().ok()?;
    crate::decision_log::trace_id(header)
}

/// The builder of the runtime of each serving thread (and of each load
/// thread of `iamd bench`, and of the benchmarks' empty handler): tokio's
/// current-thread scheduler. On one thread the answers that are ready go
/// out together (one write, one wake-up of the peer); the multi-thread
/// scheduler runs a connection's writer right after each answer (its LIFO
/// slot), one write per answer, which halved the throughput of a core
/// (docs/benchmarks.md). More threads are more such runtimes
/// ([`serve_with_workers`], `iamd_bench::Options::threads`).
pub fn runtime_builder() -> tokio::runtime::Builder {
    tokio::runtime::Builder::new_current_thread()
}

/// What the server serves: the store it decides from, its limits, its
/// metrics, and Envoy's `Check` when a mapping is configured.
#[derive(Debug, Clone)]
pub struct Services {
    /// The live bundle.
    pub store: Arc<Store>,
    /// gRPC limits.
    pub limits: RequestLimits,
    /// Counters and the decision log.
    pub metrics: Arc<Metrics>,
    /// `envoy.service.auth.v3.Authorization`, when configured.
    pub envoy: Option<Arc<crate::envoy::Mapping>>,
    /// The credentials Envoy's `Check` verifies SigV4 signatures with.
    pub credentials: Option<Arc<crate::credentials::CredentialStore>>,
    /// How long a shutdown waits for open calls and connections before it
    /// closes them ([`DRAIN_TIMEOUT`] by default).
    pub drain: Duration,
}

/// The default drain deadline: below Kubernetes' 30 s grace period, so that
/// the daemon exits on its own (0, with what was cut logged) before the
/// kubelet kills it.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

impl Services {
    /// `iamd.v1` (and health, reflection) over `store`.
    pub fn new(store: Arc<Store>, limits: RequestLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            limits,
            metrics,
            envoy: None,
            credentials: None,
            drain: DRAIN_TIMEOUT,
        }
    }

    /// Another drain deadline.
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Envoy's `Check` too, with `mapping`.
    pub fn with_envoy(mut self, mapping: Arc<crate::envoy::Mapping>) -> Self {
        self.envoy = Some(mapping);
        self
    }

    /// SigV4 verification in Envoy's `Check`, with the credentials of
    /// `store`.
    pub fn with_credentials(mut self, store: Arc<crate::credentials::CredentialStore>) -> Self {
        self.credentials = Some(store);
        self
    }

    /// The listener's connections: their cap and the accept back-off.
    fn accepter(&self) -> Accepter {
        Accepter::new("grpc", self.limits.connections.max_connections)
    }

    /// The cap on calls in flight and the request timeout, for one server
    /// (its clones share the cap).
    fn admission(&self) -> AdmissionLayer {
        AdmissionLayer::new(
            self.limits.max_concurrent,
            self.limits.request_timeout,
            self.limits.max_message_bytes,
        )
    }
}

/// Serves on `listen` (over TLS when `tls` is given, TCP only) until
/// `shutdown` completes, then drains in-flight calls. Health is
/// `NOT_SERVING` until the store holds a bundle.
pub async fn serve(
    listen: &Listen,
    tls: Option<Arc<Tls>>,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_workers(listen, tls, services, 1, shutdown).await
}

/// [`serve`] with `workers` serving threads: on the calling runtime for
/// one; for more, each thread with a one-thread runtime of its own, the
/// calling runtime accepting the connections and dealing them out in turn
/// (`workers.rs` says why not tokio's multi-thread scheduler).
pub async fn serve_with_workers(
    listen: &Listen,
    tls: Option<Arc<Tls>>,
    services: Services,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = Listener::bind(listen, tls.is_some())?;
    serve_on(listener, tls, services, workers, shutdown).await
}

/// [`serve_with_workers`] on a bound TCP listener (tests bind
/// `127.0.0.1:0`), over TLS when `tls` is given.
pub async fn serve_tcp_with_workers(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<Tls>>,
    services: Services,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_on(Listener::Tcp(listener), tls, services, workers, shutdown).await
}

/// Serves on a bound listener until `shutdown` completes, then drains: the
/// listener closes, open calls finish, and whatever is still open when the
/// drain deadline passes (a peer that never finished its preface, an idle
/// client that ignores GOAWAY, a stream that never sends its body) is cut,
/// with a warning.
async fn serve_on(
    listener: Listener,
    tls: Option<Arc<Tls>>,
    services: Services,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let drain = services.drain;
    let accepter = services.accepter();
    let open = accepter.counter();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let signalled = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let serving = serve_until(
        listener,
        accepter,
        tls,
        services,
        workers,
        signalled(rx.clone()),
    );
    let deadline = async move {
        signalled(rx).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        served = serving => served,
        () = deadline => {
            open.report_cut(drain);
            Ok(())
        }
    }
}

/// Serves on a bound listener: on the calling runtime for one worker, on
/// `workers` threads for more.
async fn serve_until(
    listener: Listener,
    accepter: Accepter,
    tls: Option<Arc<Tls>>,
    services: Services,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    match (listener, tls) {
        (listener, tls) if workers > 1 => {
            workers::serve(listener, accepter, tls, services, workers, shutdown).await
        }
        (Listener::Tcp(listener), Some(tls)) => {
            let accepted = conn::accepting(listener, accepter);
            let incoming = tls_incoming(accepted, tls, &services);
            serve_incoming(services, incoming, shutdown).await
        }
        (Listener::Tcp(listener), None) => {
            let incoming = quiet(conn::accepting(listener, accepter), &services);
            serve_incoming(services, incoming, shutdown).await
        }
        // `Listener::bind` refused TLS on a Unix socket.
        (Listener::Unix(listener), _) => {
            let incoming = quiet(conn::accepting(listener, accepter), &services);
            serve_incoming(services, incoming, shutdown).await
        }
    }
}

/// The connections of `accepted` as the server takes them: each closed if
/// it says nothing within the handshake timeout (the timer made on the
/// runtime that serves it).
fn quiet<S: Send + 'static>(
    accepted: tokio::sync::mpsc::Receiver<(S, Slot)>,
    services: &Services,
) -> impl tokio_stream::Stream<Item = std::io::Result<Quiet<S>>> + Send + 'static {
    let handshake = services.limits.connections.handshake_timeout;
    tokio_stream::StreamExt::map(ReceiverStream::new(accepted), move |(s, slot)| {
        Ok(Quiet::new(s, handshake, slot))
    })
}

/// Serves the connections of `incoming` on the calling runtime until
/// `shutdown` completes.
async fn serve_incoming<IO, IE>(
    services: Services,
    incoming: impl tokio_stream::Stream<Item = Result<IO, IE>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let admission = services.admission();
    router(services, admission)
        .await?
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}

/// A bound listener.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Binds `listen` (on the calling runtime); TLS applies to TCP only.
    fn bind(listen: &Listen, tls: bool) -> Result<Self, ServeError> {
        let bind_error = |e| ServeError::Bind(listen.to_string(), e);
        match listen {
            Listen::Tcp(addr) => {
                let std = std::net::TcpListener::bind(addr).map_err(bind_error)?;
                std.set_nonblocking(true).map_err(bind_error)?;
                tokio::net::TcpListener::from_std(std)
                    .map(Self::Tcp)
                    .map_err(bind_error)
            }
            Listen::Unix(_) if tls => Err(ServeError::TlsOnUnix),
            Listen::Unix(path) => {
                // A stale socket from a previous run would make bind fail.
                if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
                    let _ = std::fs::remove_file(path);
                }
                tokio::net::UnixListener::bind(path)
                    .map(Self::Unix)
                    .map_err(bind_error)
            }
        }
    }
}

impl conn::Accept for Listener {
    type Stream = workers::Accepted;

    /// The next connection, made a plain (blocking-free) stream that any
    /// runtime can take over; TCP ones without Nagle's delay.
    async fn accept(&self) -> std::io::Result<workers::Accepted> {
        match self {
            Self::Tcp(l) => conn::Accept::accept(l)
                .await?
                .into_std()
                .map(workers::Accepted::Tcp),
            Self::Unix(l) => conn::Accept::accept(l)
                .await?
                .into_std()
                .map(workers::Accepted::Unix),
        }
    }
}

/// Serves on a bound TCP listener (tests bind `127.0.0.1:0`).
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let incoming = quiet(conn::accepting(listener, services.accepter()), &services);
    serve_incoming(services, incoming, shutdown).await
}

/// Serves TLS (mutual TLS when `tls` has a client CA) on a bound TCP
/// listener. Each connection is handshaken, within
/// [`TLS_HANDSHAKE_TIMEOUT`], with the configuration live when it was
/// accepted; failed handshakes are logged at debug level and counted.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<Tls>,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let accepted = conn::accepting(listener, services.accepter());
    let incoming = tls_incoming(accepted, tls, &services);
    serve_incoming(services, incoming, shutdown).await
}

/// The connections of `listener`, without Nagle's delay: answers are small
/// and latency is the point (with the peer's delayed ACKs, the delay held
/// answers back by up to 40 ms). The benchmarks' empty gRPC handler's (the
/// daemon's own listeners accept through [`conn::accepting`], which does
/// the same).
pub fn without_nagle(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |s| {
        if let Ok(s) = &s {
            let _ = s.set_nodelay(true);
        }
        s
    })
}

pub use crate::tls::TLS_HANDSHAKE_TIMEOUT;

/// Handshaken connections from `accepted` ones (already without Nagle's
/// delay), each then closed if it sends nothing within the handshake
/// timeout. Handshakes run in their own tasks, so a slow client holds up no
/// one; the loop ends when the server drops the stream or `accepted` ends.
fn tls_incoming(
    mut accepted: tokio::sync::mpsc::Receiver<(tokio::net::TcpStream, Slot)>,
    tls: Arc<Tls>,
    services: &Services,
) -> ReceiverStream<std::io::Result<Quiet<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>>
{
    let metrics = services.metrics.clone();
    let handshake = services.limits.connections.handshake_timeout;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, slot) = tokio::select! {
                () = tx.closed() => return,
                next = accepted.recv() => match next {
                    None => return,
                    Some(s) => s,
                },
            };
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string());
            let config = tls.config();
            let (tx, metrics) = (tx.clone(), metrics.clone());
            tokio::spawn(async move {
                match crate::tls::handshake(config, stream, &metrics).await {
                    Ok(s) => {
                        let _ = tx.send(Ok(Quiet::new(s, handshake, slot))).await;
                    }
                    Err(why) => tracing::debug!(target: "iamd::server", %peer, "{why}"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The server stack: a global limit on calls in flight and the request
/// timeout around every service.
type Stack = tower::layer::util::Stack<AdmissionLayer, tower::layer::util::Identity>;

async fn router(
    services: Services,
    admission: AdmissionLayer,
) -> Result<tonic::transport::server::Router<Stack>, ServeError> {
    let Services {
        store,
        limits,
        metrics,
        envoy,
        credentials,
        drain: _,
    } = services;
    const ENVOY: &str = "envoy.service.auth.v3.Authorization";
    let with_envoy = envoy.is_some();
    let (reporter, health) = tonic_health::server::health_reporter();
    type Server = pb::authorizer_server::AuthorizerServer<AuthorizerService>;
    reporter.set_not_serving::<Server>().await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    // Health follows the store: SERVING once a bundle is live.
    let watched = store.clone();
    tokio::spawn(async move {
        let mut serving = false;
        loop {
            let now = watched.serving();
            if now != serving {
                serving = now;
                let s = if now {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status("", s).await;
                reporter
                    .set_service_status(<Server as tonic::server::NamedService>::NAME, s)
                    .await;
                if with_envoy {
                    reporter.set_service_status(ENVOY, s).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Reflection in both versions: v1, and v1alpha for the clients that
    // know only it (grpcurl before 1.9, Python's grpcio-reflection).
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let decider = Decider::new(store, limits, metrics);
    let credentials_for_authorizer = credentials.clone();
    let ext_authz = envoy.map(|mapping| {
        let mut check = crate::envoy::ExtAuthz::new(decider.clone(), mapping);
        if let Some(store) = credentials {
            check = check.with_credentials(store);
        }
        envoy_types::ext_authz::v3::pb::AuthorizationServer::new(check)
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes)
    });
    let mut service = AuthorizerService::new(decider);
    if let Some(store) = credentials_for_authorizer {
        service = service.with_credentials(store);
    }
    let authorizer = pb::authorizer_server::AuthorizerServer::new(service)
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let c = limits.connections;
    Ok(tonic::transport::Server::builder()
        .max_concurrent_streams(c.max_streams)
        .http2_keepalive_interval(Some(c.keepalive_interval))
        .http2_keepalive_timeout(Some(c.keepalive_timeout))
        // Without a grace: tonic's grace replaces the GOAWAY at the age by a
        // cut at age + grace. The calls that remain end at the request
        // timeout.
        .max_connection_age(c.max_age)
        .layer(admission)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(authorizer)
        .add_optional_service(ext_authz))
}

/// The server could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener could not be bound.
    #[error("cannot listen on `{0}`: {1}")]
    Bind(String, #[source] std::io::Error),
    /// TLS was asked for on a Unix socket.
    #[error(
        "TLS applies to TCP listeners: a Unix socket is protected by its file permissions; listen on a TCP address or drop the TLS settings"
    )]
    TlsOnUnix,
    /// The reflection service could not be built.
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
    /// The transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[source] tonic::transport::Error),
    /// A serving thread could not start.
    #[error("cannot start a serving thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// A serving thread ended abnormally.
    #[error("a serving thread failed: {0}")]
    Worker(String),
}
