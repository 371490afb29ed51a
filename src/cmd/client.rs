//! How the commands that talk to a running daemon reach it.

use std::path::PathBuf;

/// How to reach a running daemon.
#[derive(Debug, clap::Args)]
pub(crate) struct DaemonArgs {
    /// The daemon: `http://HOST:PORT` (or `HOST:PORT`).
    #[arg(long, env = "IAMD_ADDR", default_value = "http://127.0.0.1:50051")]
    pub(crate) addr: String,
    /// Connect over TLS and trust this CA (PEM) for the daemon's
    /// certificate; `--addr` then takes `https://`.
    #[arg(long, env = "IAMD_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM), for mutual TLS.
    #[arg(
        long,
        env = "IAMD_TLS_CLIENT_CERT",
        value_name = "FILE",
        requires = "tls_client_key"
    )]
    pub(crate) tls_client_cert: Option<PathBuf>,
    /// The private key of `--tls-client-cert` (PEM).
    #[arg(
        long,
        env = "IAMD_TLS_CLIENT_KEY",
        value_name = "FILE",
        requires = "tls_client_cert"
    )]
    pub(crate) tls_client_key: Option<PathBuf>,
    /// The name the daemon's certificate must carry, when it is not the
    /// host of `--addr`.
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,
}

impl DaemonArgs {
    /// `--addr` with its scheme.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        if self.addr.contains("://") {
            self.addr.clone()
        } else {
            format!("{scheme}://{}", self.addr)
        }
    }

    /// The daemon's endpoint, with TLS when `--tls-ca` is given.
    pub(crate) fn endpoint(&self) -> Result<tonic::transport::Endpoint, String> {
        endpoint(&self.url(), self)
    }
}

/// The endpoint at `addr`, with TLS when `--tls-ca` is given.
pub(crate) fn endpoint(
    addr: &str,
    args: &DaemonArgs,
) -> Result<tonic::transport::Endpoint, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let endpoint =
        Endpoint::from_shared(addr.to_owned()).map_err(|e| format!("`--addr {addr}`: {e}"))?;
    let https = addr.starts_with("https://");
    let Some(ca) = &args.tls_ca else {
        return if https {
            Err(format!(
                "`{addr}` is TLS: give `--tls-ca FILE`, the CA that signed the daemon's certificate"
            ))
        } else {
            Ok(endpoint)
        };
    };
    if !https {
        return Err(format!(
            "`--tls-ca` is TLS but `{addr}` is not: write `https://`"
        ));
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let (Some(cert), Some(key)) = (&args.tls_client_cert, &args.tls_client_key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(name) = &args.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    endpoint
        .tls_config(tls)
        .map_err(|e| format!("TLS settings: {e}"))
}
