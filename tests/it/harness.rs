//! The test harness of the daemon tests: the example bundle, a real server
//! on an ephemeral port (plain or TLS, one serving thread or several), and
//! request builders.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iamd_proto::pb;
use iamd_server::admin::Metrics;
use iamd_server::grpc as server;
use iamd_server::limits::RequestLimits;
use iamd_server::reload::{Reloader, Store, Trigger};
use iamd_server::tls::Tls;
use pb::authorizer_client::AuthorizerClient;
use tonic::transport::Channel;

/// The example bundle.
pub(crate) fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/bundle")
}

/// A store serving the example bundle.
pub(crate) fn example_store() -> Arc<Store> {
    let (store, publisher) = Store::new();
    Reloader::for_dir(&example(), publisher).reload(Trigger::Start);
    store
}

/// A running server and what it serves.
pub(crate) struct Daemon {
    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub(crate) addr: String,
    /// The port.
    pub(crate) port: u16,
    /// What it counts.
    pub(crate) metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

impl Daemon {
    pub(crate) async fn start(store: Arc<Store>, limits: RequestLimits) -> Self {
        let metrics = iamd_server::admin::Metrics::new(store.clone());
        Self::start_with(store, limits, metrics).await
    }

    pub(crate) async fn start_with(
        store: Arc<Store>,
        limits: RequestLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::start_workers(store, limits, metrics, 1).await
    }

    /// With `workers` serving threads (`serve_tcp_with_workers`).
    pub(crate) async fn start_workers(
        store: Arc<Store>,
        limits: RequestLimits,
        metrics: Arc<Metrics>,
        workers: usize,
    ) -> Self {
        Self::launch(store, limits, metrics, workers, None).await
    }

    /// Serves `store` on `127.0.0.1:0` with `workers` serving threads,
    /// over `tls` when given.
    pub(crate) async fn launch(
        store: Arc<Store>,
        limits: RequestLimits,
        metrics: Arc<Metrics>,
        workers: usize,
        tls: Option<Arc<Tls>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addr = format!("{scheme}://127.0.0.1:{port}");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let services = server::Services::new(store, limits, metrics.clone());
        let task = tokio::spawn(server::serve_tcp_with_workers(
            listener,
            tls,
            services,
            workers,
            async {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            port,
            metrics,
            stop: Some(tx),
            task,
        }
    }

    pub(crate) async fn with_example() -> Self {
        Self::start(example_store(), RequestLimits::default()).await
    }

    pub(crate) async fn client(&self) -> AuthorizerClient<Channel> {
        AuthorizerClient::connect(self.addr.clone()).await.unwrap()
    }

    /// A connection of its own.
    pub(crate) async fn connection(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Stops the server and waits (at most 10 s) for it to drain.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A request with single-valued context keys.
pub(crate) fn req(
    principal: &str,
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        principal: principal.into(),
        action: action.into(),
        resource: resource.into(),
        context: context
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    pb::ContextValue {
                        kind: Some(pb::context_value::Kind::Single((*v).into())),
                    },
                )
            })
            .collect(),
        resource_account: String::new(),
        explain: false,
        signed: None,
    }
}

/// Copies a directory tree (a bundle to edit in a test).
pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
