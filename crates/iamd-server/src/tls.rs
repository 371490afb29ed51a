//! TLS and mutual TLS for the gRPC listener, with the certificate, key and
//! client CA reloaded from disk.
//!
//! [`Tls`] holds the live `rustls` configuration behind an `ArcSwap`; each
//! new connection is accepted with the configuration live at that moment,
//! so a rotated certificate applies to the next handshake while open
//! connections keep theirs. [`Tls::reload`] reads the files again and swaps
//! only when they changed and make a usable configuration: a half-written
//! rotation (a new certificate with the old key) is reported and the last
//! good configuration kept, as for bundles.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::WebPkiClientVerifier;

/// Where the certificate, its key and (for mutual TLS) the client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM: when given, clients must present a certificate
    /// that one of them signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// The TLS files could not make a server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Read(String, #[source] iamd_bundle::regular_file::ReadError),
    /// The certificate file holds no certificate.
    #[error(
        "{0}: no certificate found: give the server's certificate chain in PEM (`-----BEGIN CERTIFICATE-----`), leaf first"
    )]
    NoCertificate(String),
    /// A PEM file could not be parsed.
    #[error("{0}: not valid PEM: {1}")]
    Pem(String, String),
    /// The key file holds no private key.
    #[error(
        "{0}: no private key found: give a PEM private key (`-----BEGIN PRIVATE KEY-----`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)"
    )]
    NoKey(String),
    /// The client CA file holds no usable CA certificate.
    #[error("{0}: the client CA is not usable: {1}")]
    ClientCa(String, String),
    /// rustls refused the certificate and key (most often: they do not
    /// belong together).
    #[error(
        "{cert} with {key}: {reason} (is the key the one the certificate was issued for? a rotation may be half-written)"
    )]
    Config {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls said.
        reason: String,
    },
}

/// The live TLS configuration of the gRPC listener.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    config: ArcSwap<Configs>,
    /// The digest of the files the live configuration was built from.
    digest: Mutex<[u8; 32]>,
}

impl Tls {
    /// Reads the files and builds the first configuration.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let (digest, config) = build(&files)?;
        Ok(Self {
            files,
            config: ArcSwap::from_pointee(Configs::of(config)),
            digest: Mutex::new(digest),
        })
    }

    /// The configuration for the next gRPC handshake (ALPN `h2`).
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.load().grpc.clone()
    }

    /// The same certificate and client CA for an HTTP listener (the AuthZEN
    /// API): ALPN `h2` or `http/1.1`.
    pub fn http_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.load().http.clone()
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Reads the files again: `Ok(true)` if they changed and the new
    /// configuration is live, `Ok(false)` if they did not change, and an
    /// error (the old configuration stays live) if they changed into
    /// something unusable.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let digest = digest(&read_all(&self.files)?);
        if *self.lock() == digest {
            return Ok(false);
        }
        let (digest, config) = build(&self.files)?;
        self.config.store(Arc::new(Configs::of(config)));
        *self.lock() = digest;
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [u8; 32]> {
        self.digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The longest a client may take to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes an accepted connection with `config`, within
/// [`TLS_HANDSHAKE_TIMEOUT`]; a failure is counted in `metrics` and comes
/// back as the sentence to log.
pub async fn handshake(
    config: Arc<rustls::ServerConfig>,
    stream: tokio::net::TcpStream,
    metrics: &crate::admin::Metrics,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let why = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(s)) => return Ok(s),
        Ok(Err(e)) => format!("TLS handshake failed: {e}"),
        Err(_) => "TLS handshake timed out".to_owned(),
    };
    metrics.tls_handshake_failure();
    Err(why)
}

/// The live configuration, for each protocol its listeners speak; made
/// and swapped together.
#[derive(Debug)]
struct Configs {
    grpc: Arc<rustls::ServerConfig>,
    http: Arc<rustls::ServerConfig>,
}

impl Configs {
    /// The gRPC configuration `grpc`, and its HTTP twin.
    fn of(grpc: rustls::ServerConfig) -> Self {
        let mut http = grpc.clone();
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self {
            grpc: Arc::new(grpc),
            http: Arc::new(http),
        }
    }
}

/// Calls [`Tls::reload`] every `interval` until the returned task is
/// aborted, logging what happened and counting it in `metrics`.
pub fn watch(
    tls: Arc<Tls>,
    interval: Duration,
    metrics: Arc<crate::admin::Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let t = tls.clone();
            let result = tokio::task::spawn_blocking(move || t.reload()).await;
            match result {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => {
                    tracing::info!(target: "iamd::tls", "TLS certificate reloaded");
                    metrics.tls_reload(true);
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "iamd::tls",
                        "TLS files changed but cannot be used, keeping the live certificate: {e}"
                    );
                    metrics.tls_reload(false);
                }
                Err(e) => tracing::error!(target: "iamd::tls", "TLS reload task failed: {e}"),
            }
        }
    })
}

struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// A PEM file is a few kilobytes; a chain with many intermediates or a CA
/// bundle a few hundred.
pub(crate) const PEM_BYTES: u64 = 4 << 20;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    iamd_bundle::regular_file::read(path, PEM_BYTES)
        .map_err(|e| TlsError::Read(path.display().to_string(), e))
}

fn read_all(files: &TlsFiles) -> Result<Contents, TlsError> {
    Ok(Contents {
        cert: read(&files.cert)?,
        key: read(&files.key)?,
        client_ca: files.client_ca.as_deref().map(read).transpose()?,
    })
}

fn digest(c: &Contents) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [Some(&c.cert), Some(&c.key), c.client_ca.as_ref()] {
        let part = part.map_or(&[][..], Vec::as_slice);
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(path.display().to_string(), e.to_string()))
}

fn build(files: &TlsFiles) -> Result<([u8; 32], rustls::ServerConfig), TlsError> {
    let contents = read_all(files)?;
    let name = |p: &Path| p.display().to_string();
    let chain = certificates(&files.cert, &contents.cert)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(name(&files.cert)));
    }
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey(name(&files.key)),
        e => TlsError::Pem(name(&files.key), e.to_string()),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config_error = |reason: String| TlsError::Config {
        cert: name(&files.cert),
        key: name(&files.key),
        reason,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let ca_error = |reason: String| TlsError::ClientCa(name(path), reason);
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(path, pem)? {
                roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error(
                    "no certificate found: give the CA certificates that sign client certificates, in PEM".into(),
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error(e.to_string()))?;
    // gRPC is HTTP/2; clients such as tonic's insist on negotiating it.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((digest(&contents), config))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
        fn files(&self, ca: bool) -> TlsFiles {
            TlsFiles {
                cert: self.dir.path().join("tls.crt"),
                key: self.dir.path().join("tls.key"),
                client_ca: ca.then(|| self.dir.path().join("ca.crt")),
            }
        }
    }

    fn issued() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn loads_and_reloads_only_on_change() {
        let f = Files::new();
        let (cert, key) = issued();
        f.write("tls.crt", &cert);
        f.write("tls.key", &key);
        let tls = Tls::load(f.files(false)).unwrap();
        assert!(!tls.mutual());
        assert_eq!(tls.config().alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(
            tls.http_config().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let before = tls.config();
        assert!(!tls.reload().unwrap());
        assert!(Arc::ptr_eq(&before, &tls.config()));
        let (cert, key) = issued();
        f.write("tls.crt", &cert);
        f.write("tls.key", &key);
        assert!(tls.reload().unwrap());
        assert!(!Arc::ptr_eq(&before, &tls.config()));
    }

    #[test]
    fn a_half_written_rotation_keeps_the_live_configuration() {
        let f = Files::new();
        let (cert, key) = issued();
        f.write("tls.crt", &cert);
        f.write("tls.key", &key);
        let tls = Tls::load(f.files(false)).unwrap();
        let before = tls.config();
        let (new_cert, _) = issued();
        f.write("tls.crt", &new_cert);
        let e = tls.reload().unwrap_err().to_string();
        assert!(e.contains("tls.crt with") && e.contains("tls.key"), "{e}");
        assert!(e.contains("half-written"), "{e}");
        assert!(Arc::ptr_eq(&before, &tls.config()));
        // The same bad files are tried again, and the fix is taken.
        assert!(tls.reload().is_err());
        f.write("tls.crt", &cert);
        assert!(!tls.reload().unwrap(), "back to the live files");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let f = Files::new();
        let (cert, key) = issued();
        let e = Tls::load(f.files(false)).unwrap_err().to_string();
        assert!(e.contains("tls.crt: cannot read"), "{e}");
        f.write("tls.crt", "not a certificate\n");
        f.write("tls.key", &key);
        let e = Tls::load(f.files(false)).unwrap_err().to_string();
        assert!(e.contains("tls.crt: no certificate found"), "{e}");
        f.write("tls.crt", &cert);
        f.write("tls.key", &cert);
        let e = Tls::load(f.files(false)).unwrap_err().to_string();
        assert!(e.contains("tls.key: no private key found"), "{e}");
        f.write("tls.key", &key);
        f.write("ca.crt", "");
        let e = Tls::load(f.files(true)).unwrap_err().to_string();
        assert!(
            e.contains("ca.crt: the client CA is not usable: no certificate"),
            "{e}"
        );
        f.write("ca.crt", &cert);
        assert!(Tls::load(f.files(true)).unwrap().mutual());
    }
}
