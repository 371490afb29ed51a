//! `iamd serve`: the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use super::built;

/// `iamd serve` options. Each flag can also be set by its environment
/// variable; both override the configuration file, which overrides the
/// defaults shown.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A YAML configuration file (docs/operations.md).
    #[arg(long, env = "IAMD_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Every other flag, and its environment variable.
    #[command(flatten)]
    pub(crate) overrides: iamd_server::config::Overrides,
}

pub(crate) fn run(args: ServeArgs) -> ExitCode {
    use iamd_server::config::{self, ServeConfig};
    let file = match args.config.as_deref().map(config::load).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("iamd: the configuration file is not valid:\n{e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match ServeConfig::resolve(file, args.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iamd: the configuration is not valid:\n{e}");
            return ExitCode::from(2);
        }
    };
    // One thread: it serves the calls, or with `workers` > 1 accepts the
    // connections and deals them to that many serving threads
    // (`iamd_server::grpc::serve_with_workers`).
    let workers = cfg.workers;
    let rt = match built(iamd_server::grpc::runtime_builder()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // The OTLP exporter's channel lives on the runtime.
    let entered = rt.enter();
    let telemetry = match iamd_server::telemetry::init(cfg.log_format, cfg.log_level) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    drop(entered);
    let (store, publisher) = iamd_server::reload::Store::new();
    let (source, verifier) = match cfg.bundle.open() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "iamd", "cannot set up the bundle source: {e}");
            return ExitCode::from(2);
        }
    };
    let mut reloader = iamd_server::reload::Reloader::new(source, publisher)
        .with_settle(cfg.settle)
        .with_max_age(cfg.bundle.max_age);
    if let Some(v) = verifier {
        tracing::info!(target: "iamd",
            keys = %v.ids().collect::<Vec<_>>().join(", "),
            "bundles must be signed by one of these keys"
        );
        reloader = reloader.with_verifier(v);
    }
    if let iamd_server::reload::ReloadOutcome::Failed(_) =
        reloader.reload(iamd_server::reload::Trigger::Start)
    {
        tracing::warn!(target: "iamd",
            "starting without a bundle: every request is denied (UNAVAILABLE) until one loads"
        );
    }
    let options = iamd_server::reload::WatchOptions {
        poll_interval: cfg.poll_interval,
        debounce: cfg.debounce,
        ..iamd_server::reload::WatchOptions::default()
    };
    let _watcher = match iamd_server::reload::watch(reloader, options) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(target: "iamd", "cannot watch the bundle: {e}");
            return ExitCode::from(2);
        }
    };
    // The secret side: loaded before the first call, checked on a timer.
    let (credentials, _credentials_watcher) = match &cfg.credentials {
        None => (None, None),
        Some((dir, every)) => {
            let (mut loader, store) = iamd_server::credentials::CredentialLoader::new(dir);
            // A failure is logged by the loader; signed requests get 503
            // until a good file loads.
            let _ = loader.load();
            match loader.watch(*every) {
                Ok(w) => (Some(store), Some(w)),
                Err(e) => {
                    tracing::error!(target: "iamd", "cannot watch the credentials: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let log = match &cfg.decision_log {
        None => None,
        Some((path, options)) => {
            match iamd_server::decision_log::DecisionLog::open(path, options.clone()) {
                Ok(l) => Some(std::sync::Arc::new(l)),
                Err(e) => {
                    tracing::error!(target: "iamd", "cannot open the decision log `{path}`: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let tls = match &cfg.tls {
        None => None,
        Some((files, _)) => match iamd_server::tls::Tls::load(files.clone()) {
            Ok(t) => Some(std::sync::Arc::new(t)),
            Err(e) => {
                tracing::error!(target: "iamd", "cannot set up TLS: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let tls_interval = cfg.tls.as_ref().map(|(_, every)| *every);
    let ServeConfig {
        listen,
        admin_listen,
        limits,
        envoy,
        drain,
        authzen,
        sts,
        web_identity,
        ..
    } = cfg;
    let result = rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics = iamd_server::admin::Metrics::with_decision_log(store.clone(), log);
        let admin = iamd_server::admin::bind(admin_listen)
            .await
            .map_err(|e| iamd_server::grpc::ServeError::Bind(admin_listen.to_string(), e))?;
        tracing::info!(target: "iamd", listen = %admin_listen, "serving /metrics, /healthz, /readyz, /status");
        tokio::spawn(iamd_server::admin::serve(
            admin,
            store.clone(),
            metrics.clone(),
            credentials.clone(),
            stopped(stop_rx.clone()),
        ));
        if let (Some(tls), Some(every)) = (&tls, tls_interval) {
            iamd_server::tls::watch(tls.clone(), every, metrics.clone());
        }
        let security = match &tls {
            None => "plaintext",
            Some(t) if t.mutual() => "mutual TLS",
            Some(_) => "TLS",
        };
        let authzen = match authzen {
            None => None,
            Some(a) => {
                let listener = tokio::net::TcpListener::bind(a.listen)
                    .await
                    .map_err(|e| iamd_server::grpc::ServeError::Bind(a.listen.to_string(), e))?;
                let decider = iamd_server::decide::Decider::new(
                    store.clone(),
                    limits,
                    metrics.clone(),
                );
                let options = iamd_server::authzen::ServeOptions {
                    max_body_bytes: a.max_body_bytes,
                    tokens: a.tokens,
                    api_key_header: a.api_key_header,
                    base_url: a.base_url,
                    max_concurrent: limits.max_concurrent,
                    timeout: limits.request_timeout,
                    drain,
                    connections: limits.connections,
                };
                let api = iamd_server::authzen::AuthZen::new(decider, a.mapping);
                let server = std::sync::Arc::new(iamd_server::authzen::AuthZenServer::new(
                    api,
                    options,
                    tls.is_some(),
                ));
                tracing::info!(target: "iamd", listen = %a.listen, security, "serving the AuthZEN API");
                Some(tokio::spawn(iamd_server::authzen::serve(
                    listener,
                    tls.clone(),
                    server,
                    stopped(stop_rx.clone()),
                )))
            }
        };
        let sts = match (sts, &credentials) {
            (Some(addr), Some(c)) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| iamd_server::grpc::ServeError::Bind(addr.to_string(), e))?;
                let decider =
                    iamd_server::decide::Decider::new(store.clone(), limits, metrics.clone());
                let api = std::sync::Arc::new(
                    iamd_server::sts::Sts::new(c.clone(), decider).with_web_identity(web_identity),
                );
                tracing::info!(target: "iamd", listen = %addr, security, "serving the STS");
                Some(tokio::spawn(iamd_server::sts::serve(
                    listener,
                    tls.clone(),
                    api,
                    limits,
                    drain,
                    metrics.clone(),
                    stopped(stop_rx.clone()),
                )))
            }
            _ => None,
        };
        let mut services =
            iamd_server::grpc::Services::new(store, limits, metrics).with_drain(drain);
        if let Some(c) = credentials {
            services = services.with_credentials(c);
        }
        if let Some(mapping) = envoy {
            services = services.with_envoy(mapping);
            tracing::info!(target: "iamd", listen = %listen, "serving envoy.service.auth.v3.Authorization");
        }
        tracing::info!(target: "iamd", listen = %listen, security, "serving iamd.v1.Authorizer");
        let served =
            iamd_server::grpc::serve_with_workers(&listen, tls, services, workers, stopped(stop_rx))
                .await;
        if let Some(task) = authzen {
            let _ = task.await;
        }
        if let Some(task) = sts {
            let _ = task.await;
        }
        served
    });
    telemetry.shutdown();
    match result {
        Ok(()) => {
            tracing::info!(target: "iamd", "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(target: "iamd", "{e}");
            ExitCode::from(1)
        }
    }
}

/// Completes on SIGTERM or SIGINT: the server then stops accepting, drains
/// in-flight calls and returns.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "iamd", "cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(target: "iamd", "SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!(target: "iamd", "SIGINT: draining"),
    }
}
