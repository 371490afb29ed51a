//! TLS and mutual TLS on the gRPC listener: real handshakes on loopback with
//! certificates made for the test, a rotation seen by new connections, and
//! the command line (`serve --tls-*`, `authorize --tls-*`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iamd_proto::pb;
use iamd_server::limits::RequestLimits;
use iamd_server::tls::{Tls, TlsFiles};
use pb::authorizer_client::AuthorizerClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A certificate authority made for one test.
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names, IP addresses or a SPIFFE URI).
    pub(crate) fn issue(&self, names: &[&str]) -> Leaf {
        let mut params = CertificateParams::new(
            names
                .iter()
                .filter(|n| !n.starts_with("spiffe://"))
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for uri in names.iter().filter(|n| n.starts_with("spiffe://")) {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(uri.to_string().try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().pem();
        Leaf {
            cert,
            key: key.serialize_pem(),
        }
    }
}

/// Writes the server's files into `dir`.
pub(crate) fn write_server_files(dir: &Path, leaf: &Leaf, client_ca: Option<&Ca>) -> TlsFiles {
    std::fs::write(dir.join("tls.crt"), &leaf.cert).unwrap();
    std::fs::write(dir.join("tls.key"), &leaf.key).unwrap();
    if let Some(ca) = client_ca {
        std::fs::write(dir.join("ca.crt"), &ca.pem).unwrap();
    }
    TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        client_ca: client_ca.map(|_| dir.join("ca.crt")),
    }
}

/// A TLS daemon serving the example bundle, and its TLS configuration.
struct Daemon {
    inner: crate::harness::Daemon,
    tls: Arc<Tls>,
}

impl Daemon {
    async fn start(files: TlsFiles) -> Self {
        Self::start_workers(files, 1).await
    }

    /// With `workers` serving threads, each handshaking its connections.
    async fn start_workers(files: TlsFiles, workers: usize) -> Self {
        let store = crate::harness::example_store();
        let metrics = iamd_server::admin::Metrics::new(store.clone());
        let tls = Arc::new(Tls::load(files).unwrap());
        let inner = crate::harness::Daemon::launch(
            store,
            RequestLimits::default(),
            metrics,
            workers,
            Some(tls.clone()),
        )
        .await;
        Self { inner, tls }
    }

    /// Asks one question over a new connection trusting `ca`, presenting
    /// `identity` if given.
    async fn ask(&self, ca: &Ca, identity: Option<&Leaf>) -> Result<pb::Decision, String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca.pem))
            .domain_name("localhost");
        if let Some(id) = identity {
            tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
        }
        let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{}", self.inner.port))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .tls_config(tls)
            .unwrap();
        let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
        ask_on(channel).await
    }

    fn metric(&self, line_start: &str) -> String {
        self.inner
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_default()
            .to_owned()
    }

    async fn stop(self) {
        self.inner.stop().await;
    }
}

async fn ask_on(channel: tonic::transport::Channel) -> Result<pb::Decision, String> {
    let mut client = AuthorizerClient::new(channel);
    let request = crate::harness::req(
        "user/alice",
        "docs:GetDocument",
        "arn:acme:docs:eu-1:123456789012:doc/x",
        &[("docs:Team", "docs")],
    );
    client
        .authorize(request)
        .await
        .map(|r| r.into_inner().decision())
        .map_err(|s| format!("{s:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_trusting_clients_and_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("iamd test CA");
    let files = write_server_files(dir.path(), &ca.issue(&["localhost", "127.0.0.1"]), None);
    let d = Daemon::start(files).await;
    assert!(!d.tls.mutual());
    assert_eq!(d.ask(&ca, None).await, Ok(pb::Decision::Allow));
    // A client that trusts another CA refuses the server.
    let stranger = Ca::new("another CA");
    let e = d.ask(&stranger, None).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // A plaintext client gets no answer.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", d.inner.port))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    assert!(ask_on(plain).await.is_err());
    // Both failures are handshakes the server counted.
    let failures = async {
        loop {
            if d.metric("iamd_tls_handshake_failures_total")
                == "iamd_tls_handshake_failures_total 2"
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), failures)
        .await
        .unwrap_or_else(|_| panic!("{}", d.metric("iamd_tls_handshake")));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    mutual_tls(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_on_two_serving_threads() {
    // Each question is a new connection: the two threads take turns.
    mutual_tls(2).await;
}

async fn mutual_tls(workers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = write_server_files(
        dir.path(),
        &server_ca.issue(&["localhost"]),
        Some(&client_ca),
    );
    let d = Daemon::start_workers(files, workers).await;
    assert!(d.tls.mutual());
    let workload = client_ca.issue(&["spiffe://acme.example/ns/docs/sa/reader"]);
    assert_eq!(
        d.ask(&server_ca, Some(&workload)).await,
        Ok(pb::Decision::Allow)
    );
    // No certificate: refused.
    assert!(d.ask(&server_ca, None).await.is_err());
    // A certificate from a CA the server does not trust: refused.
    let rogue = Ca::new("rogue CA").issue(&["spiffe://acme.example/ns/docs/sa/reader"]);
    assert!(d.ask(&server_ca, Some(&rogue)).await.is_err());
    assert_eq!(
        d.ask(&server_ca, Some(&workload)).await,
        Ok(pb::Decision::Allow),
        "refused handshakes leave the server answering"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_certificate_is_used_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let files = write_server_files(dir.path(), &old_ca.issue(&["localhost"]), None);
    let d = Daemon::start(files).await;
    let _watch = iamd_server::tls::watch(
        d.tls.clone(),
        Duration::from_millis(50),
        d.inner.metrics.clone(),
    );
    // A connection opened before the rotation.
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{}", d.inner.port))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&old_ca.pem))
                .domain_name("localhost"),
        )
        .unwrap();
    let open = endpoint.connect().await.unwrap();
    assert_eq!(ask_on(open.clone()).await, Ok(pb::Decision::Allow));
    // cert-manager renews with a new CA: the key first, then the
    // certificate; the half-written state is refused and the old
    // certificate served meanwhile.
    let new_ca = Ca::new("new CA");
    let renewed = new_ca.issue(&["localhost"]);
    std::fs::write(dir.path().join("tls.key"), &renewed.key).unwrap();
    let refused = async {
        while d
            .metric("iamd_tls_reloads_total{result=\"failure\"}")
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .unwrap();
    assert_eq!(d.ask(&old_ca, None).await, Ok(pb::Decision::Allow));
    std::fs::write(dir.path().join("tls.crt"), &renewed.cert).unwrap();
    let swapped = async {
        loop {
            if d.ask(&new_ca, None).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), swapped)
        .await
        .unwrap();
    assert_eq!(
        d.metric("iamd_tls_reloads_total{result=\"success\"}"),
        "iamd_tls_reloads_total{result=\"success\"} 1"
    );
    // New connections get the new certificate; the open one goes on.
    assert!(d.ask(&old_ca, None).await.is_err());
    assert_eq!(ask_on(open).await, Ok(pb::Decision::Allow));
    d.stop().await;
}

#[test]
fn serve_and_authorize_over_mutual_tls_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let files = write_server_files(
        dir.path(),
        &server_ca.issue(&["localhost"]),
        Some(&client_ca),
    );
    let client = client_ca.issue(&["spiffe://acme.example/ns/docs/sa/reader"]);
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let server_ca_file = path("server-ca.crt", &server_ca.pem);
    let client_cert = path("client.crt", &client.cert);
    let client_key = path("client.key", &client.key);
    let (mut server, addr) = crate::cli::spawn_daemon(&[
        "--tls-cert",
        &files.cert.display().to_string(),
        "--tls-key",
        &files.key.display().to_string(),
        "--tls-client-ca",
        &files.client_ca.unwrap().display().to_string(),
    ]);
    let https = format!("https://{addr}");
    let ask = |identity: bool| {
        let mut args = vec![
            "authorize",
            "--addr",
            &https,
            "--tls-ca",
            &server_ca_file,
            "--tls-server-name",
            "localhost",
            "--principal",
            "user/alice",
            "--action",
            "docs:GetDocument",
            "--resource",
            "arn:acme:docs:eu-1:123456789012:doc/x",
            "--context",
            "docs:Team=docs",
        ];
        if identity {
            args.extend_from_slice(&["--tls-client-cert", &client_cert]);
            args.extend_from_slice(&["--tls-client-key", &client_key]);
        }
        crate::cli::iamd(&args, "")
    };
    let mut out = ask(true);
    for _ in 0..100 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        out = ask(true);
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("ALLOW"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ask(false);
    assert_eq!(out.status.code(), Some(2));
    let plain = crate::cli::iamd(
        &[
            "authorize",
            "--addr",
            &https,
            "--principal",
            "user/alice",
            "--action",
            "docs:GetDocument",
        ],
        "",
    );
    let e = String::from_utf8_lossy(&plain.stderr);
    assert!(e.contains("is TLS: give `--tls-ca FILE`"), "{e}");
    crate::cli::stop(&mut server);
    let mut logs = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("security=\"mutual TLS\""), "{logs}");
}
