//! The AuthZEN listener: HTTP/1.1 and HTTP/2 (by ALPN over TLS, by the
//! preface in clear), TLS and mutual TLS with the gRPC listener's files,
//! the caller's token, the request cap and timeout, and the same drain.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use tokio::sync::{Semaphore, SemaphorePermit};

/// `X-Request-ID`, echoed; `traceparent`, read for the decision log. Named
/// once: a header looked up by a string is parsed and hashed each time.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
const TRACEPARENT: header::HeaderName = header::HeaderName::from_static("traceparent");

use super::{AuthZen, Endpoint, Reply};
use crate::body::Unread;
use crate::limits::ConnectionLimits;
use crate::tls::Tls;

/// How the listener serves, beside the API itself.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest body read (`limits.maxBodyBytes`); larger: 413.
    pub max_body_bytes: usize,
    /// The tokens a caller may present (`Authorization: Bearer T`, or the
    /// API-key header); none: no check. Never logged.
    pub tokens: Vec<String>,
    /// The header that carries an API key (`x-api-key`), beside
    /// `Authorization`.
    pub api_key_header: Option<header::HeaderName>,
    /// The base URL the metadata names (`https://pdp.example.com`); by
    /// default the scheme and `Host` of the metadata request.
    pub base_url: Option<String>,
    /// Requests in flight at once; more wait.
    pub max_concurrent: usize,
    /// How long a request may take, its body and its wait included.
    pub timeout: Duration,
    /// How long a shutdown waits for open requests and connections.
    pub drain: Duration,
    /// Connections: the cap, streams per connection, the handshake
    /// timeout, keepalive pings (the gRPC listener's settings).
    pub connections: ConnectionLimits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            tokens: Vec::new(),
            api_key_header: None,
            base_url: None,
            max_concurrent: 1024,
            timeout: Duration::from_secs(5),
            drain: crate::grpc::DRAIN_TIMEOUT,
            connections: ConnectionLimits::default(),
        }
    }
}

/// What [`AuthZenServer::admit`] lets through.
enum Admitted {
    Metadata,
    Post(Endpoint),
}

/// One listener's state, shared by its connections.
#[derive(Debug)]
pub struct AuthZenServer {
    api: AuthZen,
    options: ServeOptions,
    permits: Semaphore,
    tls: bool,
    /// `iamd_authzen_requests_total{code="200"}` of each endpoint, made at
    /// start: no lookup per answer.
    ok: Vec<(Endpoint, prometheus_client::metrics::counter::Counter)>,
}

impl AuthZenServer {
    /// A server answering with `api`; `tls` says which scheme the metadata
    /// names by default.
    pub fn new(api: AuthZen, options: ServeOptions, tls: bool) -> Self {
        let metrics = api.decider().metrics();
        let ok = Endpoint::ALL
            .iter()
            .map(|e| (*e, metrics.authzen_counter(e.name(), 200)))
            .collect();
        Self {
            permits: Semaphore::new(options.max_concurrent.max(1)),
            api,
            options,
            tls,
            ok,
        }
    }

    /// Answers one HTTP request. A search runs on a blocking thread: its
    /// page is up to ten thousand evaluations (about 10 ms), and the first
    /// search on a bundle also sorts its names (170 ms for 110,000), while
    /// the serving thread answers everyone else.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        let (parts, endpoint, reply) = match self.admit(&parts) {
            Err((e, reply)) => (parts, e, reply),
            Ok(Admitted::Metadata) => {
                let reply = self.api.metadata(&self.base_url(&parts));
                (parts, Some(Endpoint::Metadata), reply)
            }
            Ok(Admitted::Post(endpoint)) => match self.read(body).await {
                Err(reply) => (parts, Some(endpoint), reply),
                Ok((body, permit)) if endpoint.searches() => {
                    let this = self.clone();
                    let searched = tokio::task::spawn_blocking(move || {
                        let reply = this.answer(endpoint, &parts, &body);
                        (parts, reply)
                    })
                    .await;
                    drop(permit);
                    match searched {
                        Ok((parts, reply)) => (parts, Some(endpoint), reply),
                        // The search panicked: the request's parts went with
                        // it, so the answer has no request id.
                        Err(_) => {
                            let reply = Reply::error(500, "the search failed");
                            return self.respond(None, Some(endpoint), reply);
                        }
                    }
                }
                Ok((body, _permit)) => {
                    let reply = self.answer(endpoint, &parts, &body);
                    (parts, Some(endpoint), reply)
                }
            },
        };
        self.respond(Some(&parts), endpoint, reply)
    }

    /// What can be said of a request before its body is read: its
    /// endpoint, method, token and content type.
    fn admit(
        &self,
        parts: &hyper::http::request::Parts,
    ) -> Result<Admitted, (Option<Endpoint>, Reply)> {
        let path = parts.uri.path();
        let Some(endpoint) = Endpoint::at(path) else {
            let message = format!(
                "no AuthZEN endpoint at `{path}`: the API is at `/access/v1/evaluation`, `/access/v1/evaluations`, `/access/v1/search/{{subject,resource,action}}` and `/.well-known/authzen-configuration`"
            );
            return Err((None, Reply::error(404, &message)));
        };
        let e = Some(endpoint);
        if parts.method.as_str() != endpoint.method() {
            let message = format!("`{}` takes {}", endpoint.path(), endpoint.method());
            return Err((e, Reply::error(405, &message)));
        }
        if endpoint == Endpoint::Metadata {
            return Ok(Admitted::Metadata);
        }
        if !self.authorized(&parts.headers) {
            let message = "this PDP needs a token: send `Authorization: Bearer TOKEN`";
            return Err((e, Reply::error(401, message)));
        }
        if let Err(m) = json_content(&parts.headers) {
            return Err((e, Reply::error(400, &m)));
        }
        Ok(Admitted::Post(endpoint))
    }

    /// The body, within the size limit and the timeout, then a permit (the
    /// cap counts requests being decided, not peers that are slow to send).
    /// A body that is already there (nearly all of them) is taken on the
    /// first poll, and the timer is armed only when it is not.
    async fn read<B>(&self, body: B) -> Result<(Bytes, SemaphorePermit<'_>), Reply>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let late = || {
            Reply::error(
                408,
                &format!(
                    "the request took longer than {} ms (`limits.requestTimeoutMs`)",
                    self.options.timeout.as_millis()
                ),
            )
        };
        let mut deadline = None;
        let mut deadline =
            || *deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.options.timeout);
        let collect = crate::body::whole(body, self.options.max_body_bytes);
        let mut collect = std::pin::pin!(collect);
        let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
        let collected = match first {
            Poll::Ready(r) => r,
            Poll::Pending => tokio::time::timeout_at(deadline(), collect)
                .await
                .map_err(|_| late())?,
        };
        let body = collected.map_err(|e| match e {
            Unread::TooLarge => Reply::error(
                413,
                &format!(
                    "the body is larger than {} bytes (`authzen.maxBodyBytes`)",
                    self.options.max_body_bytes
                ),
            ),
            Unread::Failed(why) => Reply::error(400, &format!("cannot read the body: {why}")),
        })?;
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout_at(deadline(), self.permits.acquire())
                .await
                .map_err(|_| late())?
                .map_err(|_| late())?,
        };
        Ok((body, permit))
    }

    /// Decides a read request, in its span.
    fn answer(
        &self,
        endpoint: Endpoint,
        parts: &hyper::http::request::Parts,
        body: &[u8],
    ) -> Reply {
        let span = crate::telemetry::http_span(parts.uri.path(), &parts.headers);
        let _entered = span.enter();
        let Ok(text) = std::str::from_utf8(body) else {
            return Reply::error(400, "the body is not UTF-8 JSON");
        };
        let trace = parts
            .headers
            .get(TRACEPARENT)
            .and_then(|t| t.to_str().ok())
            .and_then(crate::decision_log::trace_id);
        let reply = self
            .api
            .answer(endpoint, text, jiff::Timestamp::now(), trace);
        span.record("http.response.status_code", reply.status);
        reply
    }

    /// The HTTP response of `reply`, counted.
    fn respond(
        &self,
        parts: Option<&hyper::http::request::Parts>,
        endpoint: Option<Endpoint>,
        reply: Reply,
    ) -> Response<Full<Bytes>> {
        if let Some(e) = endpoint {
            let ok = self.ok.iter().find(|(x, _)| *x == e);
            match (reply.status, ok) {
                (200, Some((_, counter))) => {
                    counter.inc();
                }
                _ => self
                    .api
                    .decider()
                    .metrics()
                    .authzen_request(e.name(), reply.status),
            }
        }
        let mut response = Response::new(Full::new(Bytes::from(reply.body)));
        *response.status_mut() =
            hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(id) = parts.and_then(|p| p.headers.get(REQUEST_ID)) {
            headers.insert(REQUEST_ID, id.clone());
        }
        match reply.status {
            401 => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"iamd\""),
                );
            }
            405 => {
                let allow = endpoint.map_or("POST", Endpoint::method);
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }

    /// Whether the request carries one of the tokens (always, when none is
    /// configured). The comparison takes the same time wherever two tokens
    /// differ.
    fn authorized(&self, headers: &hyper::HeaderMap) -> bool {
        if self.options.tokens.is_empty() {
            return true;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let key = self
            .options
            .api_key_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok());
        [bearer, key].into_iter().flatten().any(|given| {
            self.options
                .tokens
                .iter()
                .any(|t| same(t.as_bytes(), given.trim().as_bytes()))
        })
    }

    fn base_url(&self, parts: &hyper::http::request::Parts) -> String {
        if let Some(base) = &self.options.base_url {
            return base.trim_end_matches('/').to_owned();
        }
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "localhost".into());
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}")
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request's content type must be JSON (`application/json`, any
/// parameters).
fn json_content(headers: &hyper::HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err("`Content-Type` is missing: send `application/json`".into());
    };
    let bytes = value.as_bytes();
    let media = bytes
        .iter()
        .position(|b| *b == b';')
        .map_or(bytes, |end| &bytes[..end])
        .trim_ascii();
    if media.eq_ignore_ascii_case(b"application/json") {
        Ok(())
    } else {
        Err(format!(
            "`Content-Type` is `{}`: send `application/json`",
            String::from_utf8_lossy(bytes)
        ))
    }
}

/// Serves the AuthZEN API on `listener` until `shutdown`, then drains
/// (the HTTP front doors' one serving loop, `http.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<Tls>>,
    server: Arc<AuthZenServer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let how = crate::http::Listening {
        name: "authzen",
        connections: server.options.connections,
        drain: server.options.drain,
        tls,
        metrics: server.api.decider().metrics().clone(),
    };
    crate::http::serve(listener, how, server, shutdown).await;
}

impl crate::http::Handler for AuthZenServer {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        AuthZenServer::handle(self, req)
    }
}
