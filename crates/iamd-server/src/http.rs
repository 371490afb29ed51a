//! The HTTP listeners' one serving loop (AuthZEN, STS): HTTP/1.1 and
//! HTTP/2 (by ALPN over TLS, by the preface in clear), TLS and mutual TLS
//! with the gRPC listener's files, the connection cap and limits, the
//! connection age, and the drain.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

use crate::admin::Metrics;
use crate::conn::{Accepter, Quiet, serve_for};
use crate::limits::ConnectionLimits;
use crate::tls::Tls;

/// A front door's answer to one HTTP request.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// How a listener serves, beside its handler.
pub(crate) struct Listening {
    /// Its name in logs and metrics (`authzen`, `sts`).
    pub(crate) name: &'static str,
    /// Connections: the cap, streams, handshake timeout, keepalive, age.
    pub(crate) connections: ConnectionLimits,
    /// How long a shutdown waits for open requests and connections.
    pub(crate) drain: Duration,
    /// TLS, if the listener has it.
    pub(crate) tls: Option<Arc<Tls>>,
    /// Where TLS handshake failures are counted.
    pub(crate) metrics: Arc<Metrics>,
}

/// Serves `handler` on `listener` until `shutdown` completes, then drains:
/// open requests finish, and what is still open after the drain deadline
/// is cut, with a warning.
pub(crate) async fn serve<H: Handler>(
    listener: tokio::net::TcpListener,
    how: Listening,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stopping = crate::conn::Stopping::new();
    let c = how.connections;
    let accepter = Accepter::new(how.name, c.max_connections);
    let open = accepter.counter();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(c.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(c.max_streams)
        .keep_alive_interval(c.keepalive_interval)
        .keep_alive_timeout(c.keepalive_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut accepted = crate::conn::accepting(listener, accepter);
    loop {
        let (stream, slot) = tokio::select! {
            () = &mut shutdown => break,
            next = accepted.recv() => match next {
                Some(c) => c,
                None => break,
            },
        };
        let handler = handler.clone();
        let mut stop = stopping.watcher();
        let tls = how.tls.clone();
        let metrics = how.metrics.clone();
        let builder = builder.clone();
        let name = how.name;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                // Boxed: hyper moves the service's future as it queues and
                // polls the stream, and a decision's state is a kilobyte.
                async move { Ok::<_, Infallible>(Box::pin(handler.handle(req)).await) }
            });
            let age = (c.max_age, crate::conn::AGE_GRACE);
            match tls {
                None => {
                    let io = Quiet::new(stream, c.handshake_timeout, slot);
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    serve_for(conn, |c| c.graceful_shutdown(), age, stop.stopped()).await;
                }
                Some(tls) => match crate::tls::handshake(tls.http_config(), stream, &metrics).await
                {
                    Ok(s) => {
                        let io = Quiet::new(s, c.handshake_timeout, slot);
                        let conn = builder.serve_connection(TokioIo::new(io), service);
                        serve_for(conn, |c| c.graceful_shutdown(), age, stop.stopped()).await;
                    }
                    Err(why) => tracing::debug!(target: "iamd::http", listener = name, "{why}"),
                },
            }
        });
    }
    // No more accepts: the accepting task ends, and the listener with it.
    drop(accepted);
    tokio::select! {
        () = stopping.shutdown() => {}
        () = tokio::time::sleep(how.drain) => open.report_cut(how.drain),
    }
}
