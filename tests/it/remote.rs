//! Remote bundles against a real web server: Debian's nginx (installed by
//! the test, started on a loopback port), which sets ETags and answers
//! conditional requests itself. Its access log records each request's
//! status and validators, so that a test sees what the source asked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iamd_bundle::{BundleFiles, ReadLimits};
use iamd_server::reload::{ReloadOutcome, Reloader, Store, Trigger};
use iamd_source::http::{HttpOptions, HttpSource};
use iamd_source::signature::{self, SigningKey};

/// nginx's binary, from Debian's package.
fn nginx() -> Option<PathBuf> {
    let root = crate::debian::package("nginx", "to serve bundles over HTTP")?;
    Some(root.join("usr/sbin/nginx"))
}

/// A running nginx serving `www/` on a loopback port, restartable on it.
pub(crate) struct Nginx {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The HTTPS port: mutual TLS, the server's certificate from
    /// [`Nginx::ca`] for `127.0.0.1`, clients' from [`Nginx::client_ca`].
    tls_port: u16,
    ca: crate::tls::Ca,
    client_ca: crate::tls::Ca,
    child: Option<Child>,
    /// The modification time of the next file published, in seconds: a
    /// second apart each, since nginx's ETag is the time (in seconds) and
    /// the size.
    clock: std::sync::atomic::AtomicU64,
    /// Log lines [`Nginx::last`] has seen.
    seen: std::cell::Cell<usize>,
}

/// The bearer token `/private/` requires.
pub(crate) const TOKEN: &str = "s3cret-token";

impl Nginx {
    pub(crate) fn start() -> Option<Self> {
        let bin = nginx()?;
        let dir = tempfile::tempdir().unwrap();
        for d in ["www/private", "www/noetag", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let (ca, client_ca) = (
            crate::tls::Ca::new("nginx CA"),
            crate::tls::Ca::new("clients"),
        );
        let leaf = ca.issue(&["127.0.0.1"]);
        std::fs::write(dir.path().join("server.crt"), &leaf.cert).unwrap();
        std::fs::write(dir.path().join("server.key"), &leaf.key).unwrap();
        std::fs::write(dir.path().join("clients.crt"), &client_ca.pem).unwrap();
        let mut n = Self {
            bin,
            port: crate::cli::free_port(),
            tls_port: crate::cli::free_port(),
            ca,
            client_ca,
            dir,
            child: None,
            clock: std::sync::atomic::AtomicU64::new(1_800_000_000),
            seen: std::cell::Cell::new(0),
        };
        n.up();
        Some(n)
    }

    fn up(&mut self) {
        let d = self.dir.path().display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  log_format t '$status "$http_if_none_match" "$http_if_modified_since" $request_uri';
  access_log {d}/access.log t;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  default_type application/octet-stream;
  keepalive_timeout 30s;
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    location /private/ {{
      if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
    }}
    location /noetag/ {{ etag off; }}
  }}
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    root {d}/www;
    ssl_certificate {d}/server.crt;
    ssl_certificate_key {d}/server.key;
    ssl_client_certificate {d}/clients.crt;
    ssl_verify_client on;
  }}
}}
"#,
            port = self.port,
            tls_port = self.tls_port,
        );
        let path = self.dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(&self.bin)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-e")
            .arg(self.dir.path().join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.stop();
        self.up();
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn https_url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/{name}", self.tls_port)
    }

    /// Serves `bytes` as `name`, replaced at once (written beside, renamed).
    pub(crate) fn publish(&self, name: &str, bytes: &[u8]) {
        let path = self.dir.path().join("www").join(name);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).unwrap();
        let at = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(at))
            .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// The access log's lines: `STATUS "IF-NONE-MATCH" "IF-MODIFIED-SINCE"
    /// URI`, the quotes inside an ETag (logged as `\x22`) shown as `'`.
    pub(crate) fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.replace("\\x22", "'"))
            .collect()
    }

    /// The last request's line. nginx logs a request just after it has
    /// answered it: this waits for a line not seen yet, then for the log
    /// to be still.
    fn last(&self) -> String {
        let seen = self.seen.get();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = self.log();
        while lines.len() <= seen && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            lines = self.log();
        }
        loop {
            std::thread::sleep(Duration::from_millis(30));
            let now = self.log();
            if now.len() == lines.len() {
                break;
            }
            lines = now;
        }
        self.seen.set(lines.len());
        lines.pop().unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A small bundle whose revision is `label`.
pub(crate) fn files(label: &str) -> BundleFiles {
    let entries = [
        (
            "bundle.yaml",
            format!("account: \"123456789012\"\nrevision: {label}\n"),
        ),
        (
            "users.yaml",
            "- name: alice\n  policies: [Read]\n".to_owned(),
        ),
        (
            "policies/Read.json",
            r#"{"Statement":{"Effect":"Allow","Action":"docs:Get*","Resource":"*"}}"#.to_owned(),
        ),
    ];
    let entries = entries.map(|(p, t)| (p.to_owned(), t.into_bytes()));
    BundleFiles::from_files("test".as_ref(), entries, &ReadLimits::default()).unwrap()
}

/// The archive of [`files`]`(label)`, signed by `keys`.
pub(crate) fn archive(label: &str, keys: &[SigningKey]) -> Vec<u8> {
    let f = files(label);
    let signed =
        (!keys.is_empty()).then(|| signature::sign(keys, f.digest(), Some(label), None).to_text());
    iamd_source::archive::build(&f, signed.as_deref()).unwrap()
}

/// A tar with a `../evil.json` entry, made by another archiver (Python's
/// tarfile), beside a good bundle's files.
fn evil_archive(dir: &Path) -> Vec<u8> {
    let out = dir.join("evil.tar.gz");
    let script = r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    for name, text in [("bundle.yaml", b'account: "123456789012"\n'), ("../evil.json", b"{}")]:
        info = tarfile.TarInfo(name)
        info.size = len(text)
        t.addfile(info, io.BytesIO(text))
"#;
    crate::python::run(Command::new("python3").args(["-c", script]).arg(&out));
    std::fs::read(out).unwrap()
}

fn label(store: &Store) -> Option<String> {
    store.bundle().and_then(|b| b.revision().label.clone())
}

fn source(options: HttpOptions) -> Box<HttpSource> {
    Box::new(HttpSource::new(options).unwrap())
}

fn failed(outcome: ReloadOutcome) -> String {
    match outcome {
        ReloadOutcome::Failed(e) => e.join("\n"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn an_http_source_revalidates_with_etags_and_refuses_what_is_broken() {
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    nginx.publish("b.tar.gz", &archive("r1", &[]));
    let (store, publisher) = Store::new();
    let url = nginx.url("b.tar.gz");
    let mut r = Reloader::new(source(HttpOptions::new(&url)), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("r1"));
    let first = nginx.last();
    assert!(first.starts_with("200 \"-\""), "{first}");
    // Unchanged: a 304, no work.
    assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    let revalidated = nginx.last();
    assert!(revalidated.starts_with("304 \"'"), "{revalidated}");
    let etag_r1 = revalidated.split('"').nth(1).unwrap().to_owned();
    let status = store.status();
    assert_eq!(status.reloads.unchanged, 1);
    assert!(status.freshness.last_success.is_some());
    assert_eq!(status.live.unwrap().source, url);
    // A new bundle.
    nginx.publish("b.tar.gz", &archive("r2", &[]));
    assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("r2"));
    assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    let etag_r2 = nginx.last().split('"').nth(1).unwrap().to_owned();
    assert_ne!(etag_r1, etag_r2);
    // Garbage, a truncated download, a tar with `../`: each refused, r2
    // keeps serving, and the next poll still asks with r2's ETag (a
    // refused bundle's validator is never remembered).
    let good = archive("r3", &[]);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "garbage",
            b"<html>oops</html>".to_vec(),
            "is not a gzipped tar",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "cannot unpack the archive",
        ),
        (
            "../evil",
            evil_archive(tmp.path()),
            "../evil.json: leaves the bundle (`..`): refused (path traversal)",
        ),
    ];
    for (what, bytes, expected) in cases {
        nginx.publish("b.tar.gz", &bytes);
        let e = failed(r.reload(Trigger::Timer));
        assert!(e.contains(expected), "{what}: {e}");
        assert_eq!(label(&store).as_deref(), Some("r2"), "{what}");
        assert_eq!(
            r.reload(Trigger::Timer),
            ReloadOutcome::Unchanged,
            "{what}: reported once"
        );
        let asked = nginx.last();
        assert_eq!(
            asked,
            format!("200 \"{etag_r2}\" \"-\" /b.tar.gz"),
            "{what}"
        );
    }
    let status = store.status();
    assert!(status.freshness.consecutive_failures >= 3, "{status:?}");
    assert!(status.last_failure.is_some());
    // Over the size limit.
    nginx.publish("b.tar.gz", &good);
    let mut small = HttpOptions::new(&url);
    small.client.max_bytes = 100;
    let (_, publisher) = Store::new();
    let e = failed(Reloader::new(source(small), publisher).reload(Trigger::Start));
    assert!(e.contains("is larger than 100 bytes (`maxBytes`)"), "{e}");
    // The server down: refused, r2 stays; back up, the new bundle.
    nginx.stop();
    let e = failed(r.reload(Trigger::Timer));
    assert!(e.contains("cannot connect to `http://127.0.0.1:"), "{e}");
    assert_eq!(label(&store).as_deref(), Some("r2"));
    nginx.restart();
    assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("r3"));
    assert_eq!(store.status().freshness.consecutive_failures, 0);
    // Nothing at the URL.
    let (_, publisher) = Store::new();
    let e = failed(
        Reloader::new(
            source(HttpOptions::new(&nginx.url("none.tar.gz"))),
            publisher,
        )
        .reload(Trigger::Start),
    );
    assert!(e.contains("answered 404"), "{e}");
}

#[test]
fn a_bearer_token_is_sent_from_its_file_and_a_refusal_says_so() {
    let Some(nginx) = Nginx::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    nginx.publish("private/b.tar.gz", &archive("p1", &[]));
    let token = tmp.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut options = HttpOptions::new(&nginx.url("private/b.tar.gz"));
    options.bearer_token_file = Some(token.clone());
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(source(options.clone()), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("p1"));
    // A rotated token is read at the next poll; a wrong one is refused.
    std::fs::write(&token, "wrong").unwrap();
    let e = failed(r.reload(Trigger::Timer));
    assert!(
        e.contains("answered 401: the server refused this daemon's credentials"),
        "{e}"
    );
    assert!(!e.contains("wrong"), "the token is never shown: {e}");
    options.bearer_token_file = None;
    let (_, publisher) = Store::new();
    let e = failed(Reloader::new(source(options), publisher).reload(Trigger::Start));
    assert!(e.contains("answered 401"), "{e}");
}

#[test]
fn the_persisted_copy_serves_at_a_start_while_the_server_is_down() {
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let persist = tmp.path().join("state");
    nginx.publish("b.tar.gz", &archive("kept", &[]));
    let mut options = HttpOptions::new(&nginx.url("b.tar.gz"));
    options.persist = Some(persist.clone());
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(source(options.clone()), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert!(persist.join("bundle.tar.gz").is_file());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(persist.join("bundle.json")).unwrap()).unwrap();
    assert!(
        record["etag"].as_str().is_some_and(|e| e.starts_with('"')),
        "{record}"
    );
    assert!(!store.status().live.unwrap().persisted);
    drop(r);
    // A new daemon, the server down: the copy serves, reported as such.
    nginx.stop();
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(source(options.clone()), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("kept"));
    let status = store.status();
    assert!(status.live.unwrap().persisted);
    assert_eq!(status.freshness.last_success, None, "never confirmed");
    // The server back: confirmed, no longer "persisted".
    nginx.restart();
    assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    let status = store.status();
    assert!(!status.live.unwrap().persisted);
    assert!(status.freshness.last_success.is_some());
    // A new daemon with the server up: the copy's ETag asks, a 304 says
    // the copy is current, and it serves without a download.
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(source(options.clone()), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert!(nginx.last().starts_with("304 \"'"), "{}", nginx.last());
    assert!(!store.status().live.unwrap().persisted);
    drop(r);
    // A corrupt copy is ignored: with the server down, nothing serves.
    nginx.stop();
    std::fs::write(persist.join("bundle.tar.gz"), b"\x1f\x8b broken").unwrap();
    let (store, publisher) = Store::new();
    let e = failed(Reloader::new(source(options), publisher).reload(Trigger::Start));
    assert!(e.contains("cannot connect"), "{e}");
    assert!(!store.serving());
}

/// `iamd serve --config FILE` on free ports, its log in `log`: the child,
/// the gRPC address and the admin address.
fn serve(config: &Path, log: &Path) -> (Child, String, std::net::SocketAddr) {
    let addr = format!("127.0.0.1:{}", crate::cli::free_port());
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", crate::cli::free_port())
        .parse()
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &addr, "--admin-listen", &admin.to_string()])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    (child, addr, admin)
}

/// `/status` as JSON, or `None` while the admin listener is not up.
fn try_status(admin: std::net::SocketAddr) -> Option<serde_json::Value> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nHost: iamd\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (_, body) = raw.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

fn status(admin: std::net::SocketAddr) -> serde_json::Value {
    try_status(admin).expect("/status")
}

/// Waits (at most 20 s) until `/status` satisfies `done`; the last one.
fn until(
    admin: std::net::SocketAddr,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = try_status(admin);
        if let Some(s) = &s
            && done(s)
        {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "{what}: {s:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn live_label(s: &serde_json::Value) -> &str {
    s["live"]["revision"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or_default()
}

fn failure(s: &serde_json::Value) -> String {
    s["lastFailure"]["errors"].to_string()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_serves_only_signed_remote_bundles_goes_stale_and_restarts_from_its_copy() {
    use iamd_proto::pb;
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let (private, public) = SigningKey::generate().unwrap();
        let p = tmp.path().join(format!("{name}.pub"));
        std::fs::write(tmp.path().join(format!("{name}.key")), private).unwrap();
        std::fs::write(&p, public).unwrap();
        (
            SigningKey::read(&tmp.path().join(format!("{name}.key"))).unwrap(),
            p,
        )
    };
    let (old, old_pub) = key("old");
    let (new, new_pub) = key("new");
    let (stranger, _) = key("stranger");
    nginx.publish("b.tar.gz", &archive("r1", std::slice::from_ref(&old)));
    let persist = tmp.path().join("state");
    // The same daemon settings, with a staleness policy of 2 s or without.
    let config = |stale: bool| {
        let path = tmp.path().join(format!("iamd-{stale}.yaml"));
        let staleness = if stale {
            "  staleness: {maxAgeSeconds: 2}\n"
        } else {
            ""
        };
        std::fs::write(
            &path,
            format!(
                "bundle:\n  source: {}\n  pollMinSeconds: 0\n  pollMaxSeconds: 0\n  maxBackoffSeconds: 1\n  persistDir: {}\n  verify: {{keys: [{}, {}]}}\n{staleness}",
                nginx.url("b.tar.gz"),
                persist.display(),
                old_pub.display(),
                new_pub.display()
            ),
        )
        .unwrap();
        path
    };
    let (config, stale_config) = (config(false), config(true));
    let log = tmp.path().join("iamd.log");
    let (mut daemon, addr, admin) = serve(&config, &log);
    crate::cli::wait_serving(&mut daemon, &addr);
    let s = status(admin);
    assert_eq!(live_label(&s), "r1");
    assert_eq!(s["live"]["signedBy"], old.id());
    // Calls all along: every answer from a good bundle, never an error.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop_load = stop_load.clone();
        let mut client = pb::authorizer_client::AuthorizerClient::new(channel);
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<String, u64>::new();
            while !stop_load.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .authorize(crate::harness::req(
                        "user/alice",
                        "docs:GetDocument",
                        "doc/1",
                        &[],
                    ))
                    .await;
                let key = match r {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert_eq!(r.decision(), pb::Decision::Allow);
                        r.revision.split(' ').next().unwrap_or_default().to_owned()
                    }
                    Err(e) => format!("error {:?}", e.code()),
                };
                *seen.entry(key).or_default() += 1;
            }
            seen
        })
    };
    // Unsigned, signed by a stranger, a signature altered, files altered
    // after signing: each refused, r1 answering throughout.
    let sign_r2 = || {
        signature::sign(
            std::slice::from_ref(&old),
            files("r2").digest(),
            Some("r2"),
            None,
        )
    };
    let mut tampered = sign_r2();
    tampered.revision = Some("r9".into());
    let build = |label: &str, signatures: &str| {
        iamd_source::archive::build(&files(label), Some(signatures)).unwrap()
    };
    let bad: [(&str, Vec<u8>, &str); 4] = [
        (
            "unsigned",
            archive("r2", &[]),
            "unsigned: this daemon trusts only bundles signed by",
        ),
        (
            "a stranger",
            archive("r2", std::slice::from_ref(&stranger)),
            "signed only by unknown keys",
        ),
        (
            "tampered",
            build("r2", &tampered.to_text()),
            "bad signature by trusted key",
        ),
        (
            "altered",
            build("rX", &sign_r2().to_text()),
            "the signature is for other files",
        ),
    ];
    for (what, bytes, expected) in bad {
        nginx.publish("b.tar.gz", &bytes);
        let s = until(admin, what, |s| failure(s).contains(expected));
        assert_eq!(live_label(&s), "r1", "{what}");
        assert!(s["serving"].as_bool().unwrap());
    }
    let (_, metrics) = crate::daemon::get(admin, "/metrics").await;
    assert!(metrics.contains("iamd_reload_failing 1"), "{metrics}");
    assert!(
        !metrics.contains("iamd_bundle_consecutive_failures 0"),
        "{metrics}"
    );
    // Rotation: the new key signs r3 alone.
    nginx.publish("b.tar.gz", &archive("r3", std::slice::from_ref(&new)));
    let s = until(admin, "r3", |s| live_label(s) == "r3");
    assert_eq!(s["live"]["signedBy"], new.id());
    assert_eq!(s["lastFailure"], serde_json::Value::Null);
    // GetStatus says the same.
    let mut client = pb::authorizer_client::AuthorizerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let reported = client
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let live = reported.live.unwrap();
    assert_eq!((live.signed_by.as_str(), live.persisted), (new.id(), false));
    let freshness = reported.freshness.unwrap();
    assert_eq!(freshness.consecutive_failures, 0);
    assert!(!freshness.last_success.is_empty() && !freshness.stale);
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = load.await.unwrap();
    assert!(seen.keys().all(|k| k == "r1" || k == "r3"), "{seen:?}");
    assert!(seen.get("r1").is_some_and(|n| *n > 10), "{seen:?}");
    stop(&mut daemon);
    // With a staleness policy: the server goes away, and after 2 s
    // unconfirmed nothing is served.
    let log = tmp.path().join("iamd-stale.log");
    let (mut daemon, addr, admin) = serve(&stale_config, &log);
    crate::cli::wait_serving(&mut daemon, &addr);
    nginx.stop();
    let s = until(admin, "stale", |s| !s["freshness"]["stale"].is_null());
    assert_eq!(s["serving"], false);
    assert_eq!(s["freshness"]["stale"]["maxAgeSeconds"], 2);
    assert!(s["freshness"]["consecutiveFailures"].as_u64().unwrap() > 0);
    // Health follows the store within 50 ms.
    let health = || {
        let out = crate::cli::iamd(&["health", "--addr", &addr], "");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while health() != "NOT_SERVING\n" {
        assert!(Instant::now() < deadline, "health: {}", health());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = pb::authorizer_client::AuthorizerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let e = client
        .authorize(crate::harness::req(
            "user/alice",
            "docs:GetDocument",
            "doc/1",
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let (_, metrics) = crate::daemon::get(admin, "/metrics").await;
    assert!(metrics.contains("iamd_bundle_stale 1"), "{metrics}");
    // Back: served again.
    nginx.restart();
    let s = until(admin, "fresh again", |s| s["serving"] == true);
    assert_eq!(live_label(&s), "r3");
    assert_eq!(s["freshness"]["stale"], serde_json::Value::Null);
    stop(&mut daemon);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("no longer serving it"), "{logs}");
    assert!(
        logs.contains("confirmed the bundle again: serving it again"),
        "{logs}"
    );
    // A restart with the server down: the persisted copy, verified again.
    nginx.stop();
    let log = tmp.path().join("iamd-restarted.log");
    let (mut daemon, addr, admin) = serve(&config, &log);
    crate::cli::wait_serving(&mut daemon, &addr);
    let s = status(admin);
    assert_eq!(live_label(&s), "r3");
    assert_eq!(s["live"]["persisted"], true);
    assert_eq!(s["live"]["signedBy"], new.id());
    stop(&mut daemon);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("serving the persisted copy saved at"),
        "{logs}"
    );
    // A corrupt copy: ignored with a log line, and nothing is served.
    std::fs::write(persist.join("bundle.tar.gz"), b"\x1f\x8bbroken").unwrap();
    let log2 = tmp.path().join("iamd2.log");
    let (mut daemon, _addr, admin) = serve(&config, &log2);
    let s = until(admin, "a failure", |s| !s["lastFailure"].is_null());
    assert_eq!(s["serving"], false);
    stop(&mut daemon);
    let logs = std::fs::read_to_string(&log2).unwrap();
    assert!(logs.contains("the persisted bundle is ignored"), "{logs}");
}

#[test]
fn https_with_a_custom_ca_and_a_client_certificate_and_last_modified_without_an_etag() {
    let Some(nginx) = Nginx::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = write("ca.crt", &nginx.ca.pem);
    let me = nginx.client_ca.issue(&["iamd"]);
    let (cert, key) = (write("me.crt", &me.cert), write("me.key", &me.key));
    nginx.publish("b.tar.gz", &archive("tls", &[]));
    let mut options = HttpOptions::new(&nginx.https_url("b.tar.gz"));
    options.client.ca_file = Some(ca);
    options.client.client_cert = Some(cert);
    options.client.client_key = Some(key);
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(source(options.clone()), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("tls"));
    assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    assert!(nginx.last().starts_with("304 "), "{:?}", nginx.log());
    // No client certificate: nginx refuses.
    let mut anonymous = options.clone();
    anonymous.client.client_cert = None;
    anonymous.client.client_key = None;
    let (_, publisher) = Store::new();
    let e = failed(Reloader::new(source(anonymous), publisher).reload(Trigger::Start));
    assert!(e.contains("answered 400"), "{e}");
    // The system's roots do not know the test's CA.
    let mut system = options;
    system.client.ca_file = None;
    let (_, publisher) = Store::new();
    match HttpSource::new(system) {
        Err(e) => assert!(e.contains("no trusted CA certificates"), "{e}"),
        Ok(s) => {
            let e = failed(Reloader::new(Box::new(s), publisher).reload(Trigger::Start));
            assert!(
                e.contains("TLS with `https://127.0.0.1:") && e.contains("UnknownIssuer"),
                "{e}"
            );
        }
    }
    // A server without ETags: Last-Modified and If-Modified-Since.
    nginx.publish("noetag/b.tar.gz", &archive("lm", &[]));
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(
        source(HttpOptions::new(&nginx.url("noetag/b.tar.gz"))),
        publisher,
    );
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("lm"));
    assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    let asked = nginx.last();
    assert!(
        asked.starts_with("304 \"-\" \"") && asked.contains("GMT"),
        "{asked}"
    );
}
