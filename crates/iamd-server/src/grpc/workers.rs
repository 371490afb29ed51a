//! More than one serving thread: one event loop per thread.
//!
//! tokio's multi-thread scheduler runs a connection's writer right after
//! each answer, one write and one wake-up of the caller per answer, which
//! made two threads on two cores slower than one thread (docs/benchmarks.md).
//! So `workers: N` runs N threads, each with its own one-thread runtime and
//! its own server, sharing the services (the store, the metrics, the cap on
//! calls in flight). The calling runtime accepts the connections and deals
//! them to the workers in turn; a connection stays on its worker.

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{AdmissionLayer, Listener, ServeError, Services, router, tls_incoming};
use crate::conn::{self, Accepter, Quiet, Slot};
use crate::tls::Tls;

/// A connection accepted by the dealer, handed to a worker's runtime.
pub(super) enum Accepted {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// Serves on `listener` with `workers` threads (at least two) until
/// `shutdown` completes, then lets every worker drain its calls.
pub(super) async fn serve(
    listener: Listener,
    accepter: Accepter,
    tls: Option<Arc<Tls>>,
    services: Services,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let unix = matches!(listener, Listener::Unix(_));
    let admission = services.admission();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut deal = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        deal.push(tx);
        let (services, admission, tls, stop) = (
            services.clone(),
            admission.clone(),
            tls.clone(),
            stop_rx.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("iamd-worker-{i}"))
            .spawn(move || worker(rx, unix, services, admission, tls, stop))
            .map_err(ServeError::Runtime)?;
        threads.push(thread);
    }
    tokio::pin!(shutdown);
    let mut accepted = conn::accepting(listener, accepter);
    let mut next = 0usize;
    loop {
        let conn = tokio::select! {
            () = &mut shutdown => break,
            a = accepted.recv() => match a {
                Some(c) => c,
                None => break,
            },
        };
        let dealt = deal.get(next % workers).map(|tx| tx.send(conn));
        if let Some(Err(_)) = dealt {
            // That worker stopped: its error ends the server (joined below).
            tracing::error!(target: "iamd::server::workers", "serving thread {} stopped: stopping", next % workers);
            break;
        }
        next = next.wrapping_add(1);
    }
    // No more accepts: the accepting task ends, and the listener with it.
    drop(accepted);
    let _ = stop_tx.send(true);
    drop(deal);
    join(threads).await
}

/// Waits for the worker threads, off the runtime; the first error wins.
async fn join(threads: Vec<JoinHandle<Result<(), ServeError>>>) -> Result<(), ServeError> {
    let mut result = Ok(());
    for t in threads {
        let outcome = tokio::task::spawn_blocking(move || t.join())
            .await
            .map_err(|e| ServeError::Worker(e.to_string()))
            .and_then(|joined| joined.map_err(|_| ServeError::Worker("it panicked".into())))
            .and_then(|served| served);
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

/// A dealt TCP connection, registered with the calling runtime's reactor.
fn tcp(a: Accepted) -> Option<tokio::net::TcpStream> {
    match a {
        Accepted::Tcp(s) => tokio::net::TcpStream::from_std(s).ok(),
        Accepted::Unix(_) => None,
    }
}

/// One worker: its own one-thread runtime serving the connections dealt to
/// it, until `stop`.
fn worker(
    rx: mpsc::UnboundedReceiver<(Accepted, Slot)>,
    unix: bool,
    services: Services,
    admission: AdmissionLayer,
    tls: Option<Arc<Tls>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let rt = super::runtime_builder()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let handshake = services.limits.connections.handshake_timeout;
        let tls_services = services.clone();
        let router = router(services, admission).await?;
        // Each stream, made the worker's own (registered with its reactor).
        let connections = UnboundedReceiverStream::new(rx);
        let served = match (unix, tls) {
            (true, _) => {
                let unix = connections.filter_map(move |(a, slot)| match a {
                    Accepted::Unix(s) => tokio::net::UnixStream::from_std(s)
                        .map(|s| Quiet::new(s, handshake, slot))
                        .ok()
                        .map(Ok::<_, std::io::Error>),
                    Accepted::Tcp(_) => None,
                });
                router.serve_with_incoming_shutdown(unix, shutdown).await
            }
            (false, Some(tls)) => {
                // The TLS handshakes take the connections from a channel.
                let (tx, accepted) = mpsc::channel(1);
                tokio::spawn(async move {
                    let mut connections = std::pin::pin!(connections);
                    while let Some((a, slot)) = connections.next().await {
                        if let Some(s) = tcp(a)
                            && tx.send((s, slot)).await.is_err()
                        {
                            return;
                        }
                    }
                });
                let incoming = tls_incoming(accepted, tls, &tls_services);
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            (false, None) => {
                let tcp = connections.filter_map(move |(a, slot)| {
                    tcp(a).map(|s| Ok::<_, std::io::Error>(Quiet::new(s, handshake, slot)))
                });
                router.serve_with_incoming_shutdown(tcp, shutdown).await
            }
        };
        served.map_err(ServeError::Transport)
    })
}
