//! Access keys and AWS Signature Version 4 with real AWS clients: the AWS
//! CLI and boto3 (PyPI, installed by the test) sign; iamd verifies, behind
//! a real Envoy with `examples/credentials/`, in front of a small
//! S3-shaped service. And botocore's own signer against iamd's verifier
//! over random requests.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::free_port;
use crate::envoy::{Killed, envoy_binary, eventually, start_envoy};

const REGION: &str = "eu-west-1";

/// The venv with the AWS CLI, boto3 (botocore's signer) and pyotp.
fn aws_venv() -> Option<PathBuf> {
    crate::python::venv(
        "awscli-1.46.3-pyotp",
        &["awscli==1.46.3", "boto3==1.44.8", "pyotp==2.12.1"],
    )
}

/// oathtool (Debian), unpacked with its library: the program and the
/// directory of its library.
fn oathtool() -> Option<(PathBuf, PathBuf)> {
    let tool = crate::debian::package("oathtool", "to make TOTP codes independently of iamd")?;
    let lib = crate::debian::package("liboath0", "for oathtool")?;
    let dir = walk(&lib)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "liboath.so.0"))
        .and_then(|p| p.parent().map(Path::to_owned))
        .expect("liboath.so.0 in liboath0");
    Some((tool.join("usr/bin/oathtool"), dir))
}

/// oathtool's code for `secret` (base32) at `offset` (`now`, `now + 30
/// seconds`, or a time).
fn totp(oath: &Path, lib: &Path, secret: &str, offset: &str) -> String {
    let out = Command::new(oath)
        .env("LD_LIBRARY_PATH", lib)
        .args(["--totp", "-b", "-N", offset, secret])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// `iamd mfa ARGS --credentials DIR`: whether it succeeded, its output
/// and its errors.
fn mfa(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .arg("mfa")
        .args(args)
        .arg("--credentials")
        .arg(dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A device made by `iamd mfa enable` is what authenticator apps read
/// (pyotp parses its URI and computes oathtool's code), is activated only
/// by two consecutive codes of an independent generator (oathtool), and
/// gets AWS's serial numbers, the root's too.
#[test]
fn a_virtual_mfa_device_is_activated_with_two_codes_from_an_independent_generator() {
    let Some(venv) = aws_venv() else { return };
    let Some((oath, lib)) = oathtool() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let bundle = ["--bundle", "examples/credentials/bundle"];
    let (ok, out, err) = mfa(&creds, &[&["enable", "user/alice"][..], &bundle].concat());
    assert!(ok, "{err}");
    // A QR code (half blocks), the URI, the serial number.
    assert!(
        out.lines().filter(|l| l.contains('\u{2588}')).count() > 10,
        "{out}"
    );
    let uri = out
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .unwrap();
    assert!(
        out.contains("SerialNumber: arn:aws:iam::123456789012:mfa/alice"),
        "{out}"
    );
    assert!(err.contains("is pending"), "{err}");
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let code = |offset: &str| totp(&oath, &lib, secret, offset);
    // pyotp reads the URI as an app does: issuer, account, and oathtool's
    // code for the same moment.
    let when = jiff::Timestamp::now().as_second();
    let parsed = crate::python::run(Command::new(venv.join("bin/python")).args([
        "-c",
        &format!(
            "import pyotp; t = pyotp.parse_uri({uri:?}); print(t.issuer, t.name, t.digits, t.interval, t.at({when}))"
        ),
    ]));
    let at = jiff::Timestamp::from_second(when).unwrap().to_string();
    assert_eq!(
        parsed.trim(),
        format!("iamd alice@123456789012 6 30 {}", code(&at))
    );
    // Two codes out of order, or the same code twice: refused, pending.
    let (now, next) = (code("now"), code("now + 30 seconds"));
    for (first, second) in [(&next, &now), (&now, &now)] {
        let (ok, _, err) = mfa(
            &creds,
            &["enable", "user/alice", "--code1", first, "--code2", second],
        );
        assert!(
            !ok && err.contains("are not two consecutive codes"),
            "{err}"
        );
    }
    assert!(mfa(&creds, &["list"]).1.contains("user/alice  Pending"));
    // In order: active; a second device is refused.
    let (ok, _, err) = mfa(
        &creds,
        &["enable", "user/alice", "--code1", &now, "--code2", &next],
    );
    assert!(ok && err.contains("is active"), "{err}");
    let listed = mfa(&creds, &["list"]).1;
    assert!(
        listed.starts_with("arn:aws:iam::123456789012:mfa/alice  user/alice  Active  "),
        "{listed}"
    );
    let (ok, _, err) = mfa(&creds, &[&["enable", "user/alice"][..], &bundle].concat());
    assert!(
        !ok && err.contains("already has an active MFA device"),
        "{err}"
    );
    // The root's device; a user the bundle does not have.
    let (ok, out, _) = mfa(&creds, &["enable", "root", "--account", "123456789012"]);
    assert!(
        ok && out.contains("SerialNumber: arn:aws:iam::123456789012:mfa/root-account-mfa-device"),
        "{out}"
    );
    let (ok, _, err) = mfa(&creds, &[&["enable", "user/zed"][..], &bundle].concat());
    assert!(!ok && err.contains("has no user zed"), "{err}");
    // The file never shows up in a listing, the seeds never in the output.
    let file = std::fs::read_to_string(creds.join("credentials.json")).unwrap();
    assert!(file.contains(secret));
    assert!(!mfa(&creds, &["list"]).1.contains(secret));
    let (ok, _, _) = mfa(&creds, &["deactivate", "user/alice"]);
    assert!(ok);
    assert!(!mfa(&creds, &["list"]).1.contains("user/alice"));
}

/// An access key made by `iamd keys create`: its ID and secret.
fn create_key(dir: &Path, user: &str) -> (String, String) {
    let out = crate::python::run(
        Command::new(env!("CARGO_BIN_EXE_iamd"))
            .args(["keys", "create", user, "--credentials"])
            .arg(dir)
            .args(["--bundle", "examples/credentials/bundle"])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let key = &json["AccessKey"];
    (
        key["AccessKeyId"].as_str().unwrap().to_owned(),
        key["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

/// `command` with the AWS environment of `key` and nothing of the host's
/// (no config or credentials files, no instance metadata, no retries).
fn aws_env<'c>(command: &'c mut Command, key: (&str, &str)) -> &'c mut Command {
    aws_session_env(command, key, None)
}

/// [`aws_env`] with a session token, for temporary credentials.
fn aws_session_env<'c>(
    command: &'c mut Command,
    key: (&str, &str),
    token: Option<&str>,
) -> &'c mut Command {
    command.env_clear();
    if let Some(t) = token {
        command.env("AWS_SESSION_TOKEN", t);
    }
    command
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "1")
}

/// botocore's signer and iamd's verifier compute the same canonical request
/// for random methods, paths (dot segments and all for the services that
/// normalize), queries, headers and bodies, for S3 and for other services:
/// every request botocore signs, iamd accepts as its key's user, and the
/// same request with another method, it refuses.
#[test]
fn botocore_and_iamd_agree_on_random_requests() {
    let Some(venv) = aws_venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "user/alice");
    let (file, digest) = iamd_credentials::file::CredentialsFile::read(dir.path()).unwrap();
    let credentials = iamd_credentials::Credentials::new(&file, digest);
    let seed = jiff::Timestamp::now().as_second();
    for (seed, n) in [(2026, 1000), (seed, 1000)] {
        let out = crate::python::run(
            aws_env(&mut Command::new(venv.join("bin/python")), (&key.0, &key.1))
                .arg("tests/python/sigv4.py")
                .args(["vectors", &n.to_string(), &seed.to_string()])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
        );
        let mut failures = Vec::new();
        let mut count = 0;
        for line in out.lines() {
            count += 1;
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let headers: HashMap<String, String> =
                serde_json::from_value(v["headers"].clone()).unwrap();
            let hex = v["body"].as_str().unwrap();
            let body: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let method = v["method"].as_str().unwrap();
            let request = iamd_credentials::sigv4::HttpRequest {
                method,
                path: v["path"].as_str().unwrap(),
                headers: &headers,
                body: (!body.is_empty()).then_some(&body[..]),
            };
            let now = jiff::Timestamp::now();
            match credentials.verify(&request, now) {
                Ok(Some(verified)) if verified.principal == "user/alice" => {}
                other => failures.push(format!("{other:?}: {line}")),
            }
            let other = if method == "GET" { "PUT" } else { "GET" };
            let changed = iamd_credentials::sigv4::HttpRequest {
                method: other,
                ..request
            };
            if !matches!(credentials.verify(&changed, now), Err(e) if e.code == iamd_credentials::sigv4::Code::SignatureDoesNotMatch)
            {
                failures.push(format!("accepted as {other}: {line}"));
            }
        }
        assert_eq!(count, n, "seed {seed}");
        assert!(
            failures.is_empty(),
            "seed {seed}: {} of {n} disagree, first:\n{}",
            failures.len(),
            failures[..failures.len().min(5)].join("\n")
        );
    }
}

/// `aws s3api get-object` of `bucket/object` into `to`, as `key` (with a
/// session token for temporary credentials).
fn get_object(
    venv: &Path,
    endpoint: &str,
    key: (&str, &str),
    token: Option<&str>,
    (bucket, object): (&str, &str),
    to: &Path,
) -> (bool, String, String) {
    let args = [
        "s3api",
        "get-object",
        "--bucket",
        bucket,
        "--key",
        object,
        to.to_str().unwrap(),
    ];
    aws(venv, endpoint, key, token, &args)
}

/// The S3-shaped service: a listing of `reports`, an object's text, and
/// 200 to a PUT.
fn s3_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let end = loop {
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + length {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let target = head.split([' ', '?']).nth(1).unwrap_or("/").to_owned();
                // A listing: a GET of a bucket (one path segment).
                let listing = head.starts_with("get ") && target.matches('/').count() == 1;
                let body = if listing {
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>reports</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>2026/q4.txt</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified><ETag>\"abc\"</ETag><Size>17</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>".to_owned()
                } else if head.starts_with("get ") {
                    format!("quarterly numbers of {target}")
                } else {
                    String::new()
                };
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    port
}

/// The admin listener's `/status`.
fn admin_status(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: iamd\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw
}

/// `aws s3api ARGS --endpoint-url ENDPOINT` as `key`: whether it
/// succeeded, its output and its errors.
fn s3api(venv: &Path, endpoint: &str, key: (&str, &str), args: &[&str]) -> (bool, String, String) {
    aws(venv, endpoint, key, None, &[&["s3api"][..], args].concat())
}

/// `aws ARGS --endpoint-url ENDPOINT` as `key` (with a session token for
/// temporary credentials): whether it succeeded, its output and errors.
fn aws(
    venv: &Path,
    endpoint: &str,
    key: (&str, &str),
    token: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    let out = aws_session_env(&mut Command::new(venv.join("bin/aws")), key, token)
        .args(args)
        .args(["--endpoint-url", endpoint])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// iamd with `examples/credentials/` (its STS too) behind a real Envoy,
/// in front of the S3-shaped service, with keys for alice and bob and a
/// session key.
struct Fixture {
    /// Envoy's listener.
    endpoint: String,
    /// The STS.
    sts: String,
    /// The credentials directory.
    credentials: PathBuf,
    /// The daemon's admin port.
    admin: u16,
    /// The daemon's gRPC address (`http://127.0.0.1:PORT`).
    grpc: String,
    alice: (String, String),
    bob: (String, String),
    dir: tempfile::TempDir,
    _iamd: Killed,
    _envoy: Killed,
}

impl Fixture {
    fn start(venv: &Path, envoy: &Path) -> Self {
        Self::start_with(venv, envoy, tempfile::tempdir().unwrap(), &[])
    }

    /// With iamd's configuration the example's, its STS taking the web
    /// identity tokens of `web_identity` (issuer, JWKS file) if given.
    fn start_with(
        venv: &Path,
        envoy: &Path,
        dir: tempfile::TempDir,
        web_identity: &[(&str, &Path)],
    ) -> Self {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/credentials/iamd.yaml");
        let mut iamd_config = std::fs::read_to_string(example).unwrap();
        if !web_identity.is_empty() {
            let commented = "  # webIdentity:\n  #   - issuer: https://spire.acme.example\n  #     jwksFile: /run/spire/bundle.jwks\n  #     audiences: [iamd]\n";
            assert!(iamd_config.contains(commented));
            let issuers: String = web_identity
                .iter()
                .map(|(issuer, jwks)| {
                    format!(
                        "    - {{issuer: {issuer}, jwksFile: {}, audiences: [iamd]}}\n",
                        jwks.display()
                    )
                })
                .collect();
            iamd_config = iamd_config.replace(commented, &format!("  webIdentity:\n{issuers}"));
        }
        let config_file = dir.path().join("iamd.yaml");
        std::fs::write(&config_file, iamd_config).unwrap();
        let credentials = dir.path().join("credentials");
        let alice = create_key(&credentials, "user/alice");
        let bob = create_key(&credentials, "user/bob");
        crate::python::run(
            Command::new(env!("CARGO_BIN_EXE_iamd"))
                .args(["keys", "rotate-session-key", "--credentials"])
                .arg(&credentials),
        );
        let service = s3_upstream();
        let (listen, iamd_port, envoy_admin) = (free_port(), free_port(), free_port());
        let (admin, sts) = (free_port(), free_port());
        let iamd = Killed(
            Command::new(env!("CARGO_BIN_EXE_iamd"))
                .arg("serve")
                .arg("--config")
                .arg(&config_file)
                .arg("--credentials")
                .arg(&credentials)
                .args(["--listen", &format!("127.0.0.1:{iamd_port}")])
                .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
                .args(["--sts-listen", &format!("127.0.0.1:{sts}")])
                // Everything it says, for the check that no secret is in it.
                .args(["--log-level", "debug"])
                .arg("--decision-log")
                .arg(dir.path().join("decisions.jsonl"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("iamd.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let mut config = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/credentials/envoy.yaml"),
        )
        .unwrap();
        for (from, to) in [
            (10000, listen),
            (8080, service),
            (50051, iamd_port),
            (9901, envoy_admin),
        ] {
            let from = format!("port_value: {from}}}");
            assert_eq!(config.matches(&from).count(), 1, "{from}");
            config = config.replace(&from, &format!("port_value: {to}}}"));
        }
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).unwrap();
        let envoy = start_envoy(envoy, &config_path, listen);
        let f = Self {
            endpoint: format!("http://127.0.0.1:{listen}"),
            sts: format!("http://127.0.0.1:{sts}"),
            credentials,
            admin,
            grpc: format!("http://127.0.0.1:{iamd_port}"),
            alice,
            bob,
            dir,
            _iamd: iamd,
            _envoy: envoy,
        };
        let list = ["list-objects-v2", "--bucket", "reports"];
        eventually("Envoy and iamd answer", Duration::from_secs(30), || {
            s3api(venv, &f.endpoint, f.alice(), &list).0
        });
        f
    }

    fn alice(&self) -> (&str, &str) {
        (&self.alice.0, &self.alice.1)
    }

    /// Fails if the daemon's log (at debug level) or its decision log holds
    /// one of `secrets`.
    fn assert_logs_hold_none_of(&self, secrets: &[&str]) {
        for name in ["iamd.log", "decisions.jsonl"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap();
            assert!(text.len() > 100, "{name} is nearly empty: {text}");
            for secret in secrets {
                assert!(!text.contains(secret), "{name} holds a secret");
            }
        }
    }
}

#[test]
fn the_aws_cli_and_sdk_are_verified_through_envoy() {
    let Some(venv) = aws_venv() else { return };
    let Some(envoy) = envoy_binary() else { return };
    let f = Fixture::start(&venv, &envoy);
    let (dir, endpoint, credentials) = (f.dir.path(), f.endpoint.clone(), f.credentials.clone());
    let (alice, bob, iamd_admin) = (f.alice.clone(), f.bob.clone(), f.admin);
    let alice_key = f.alice();
    let list = ["list-objects-v2", "--bucket", "reports"];

    // alice lists and reads the reports and writes her own uploads, as her
    // group's policies allow; the MFA guardrail denies the restricted
    // ones to a long-term key (no aws:MultiFactorAuthPresent).
    let (ok, out, err) = s3api(&venv, &endpoint, alice_key, &list);
    assert!(ok && out.contains("\"Key\": \"2026/q4.txt\""), "{out}{err}");
    let got = dir.join("q4.txt");
    let (ok, _, err) = s3api(
        &venv,
        &endpoint,
        alice_key,
        &[
            "get-object",
            "--bucket",
            "reports",
            "--key",
            "2026/q4.txt",
            got.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&got).unwrap(),
        "quarterly numbers of /reports/2026/q4.txt"
    );
    let upload = dir.join("upload.txt");
    std::fs::write(&upload, "numbers of 2026\n".repeat(100)).unwrap();
    let put = |user_dir: &str, key: (&str, &str)| {
        let object = format!("uploads/{user_dir}/2026.txt");
        s3api(
            &venv,
            &endpoint,
            key,
            &[
                "put-object",
                "--bucket",
                "reports",
                "--key",
                &object,
                "--body",
                upload.to_str().unwrap(),
            ],
        )
    };
    let (ok, _, err) = put("alice", alice_key);
    assert!(ok, "{err}");
    for (what, (ok, _, err)) in [
        (
            "restricted",
            s3api(
                &venv,
                &endpoint,
                alice_key,
                &[
                    "get-object",
                    "--bucket",
                    "reports",
                    "--key",
                    "restricted/plan.txt",
                    got.to_str().unwrap(),
                ],
            ),
        ),
        ("bob's uploads", put("bob", alice_key)),
        (
            "bob lists",
            s3api(&venv, &endpoint, (&bob.0, &bob.1), &list),
        ),
    ] {
        assert!(!ok && err.contains("(AccessDenied)"), "{what}: {err}");
    }
    // A wrong secret, an unknown key: AWS's error codes.
    let wrong = s3api(
        &venv,
        &endpoint,
        (&alice.0, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        &list,
    );
    assert!(
        !wrong.0 && wrong.2.contains("(SignatureDoesNotMatch)"),
        "{}",
        wrong.2
    );
    let unknown = s3api(&venv, &endpoint, ("AKIAIOSFODNN7EXAMPLE", &alice.1), &list);
    assert!(
        !unknown.0 && unknown.2.contains("(InvalidAccessKeyId)"),
        "{}",
        unknown.2
    );

    // boto3: presigned URLs work until they expire, and only for what was
    // signed; a clock 20 minutes behind is refused, 5 minutes is not.
    let python = |args: &[&str]| {
        crate::python::run(
            aws_env(&mut Command::new(venv.join("bin/python")), alice_key)
                .arg("tests/python/sigv4.py")
                .args(args)
                .current_dir(env!("CARGO_MANIFEST_DIR")),
        )
    };
    let presigned: Vec<serde_json::Value> = python(&["presign", &endpoint])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answer = |name: &str| {
        let v = presigned.iter().find(|v| v["name"] == name).unwrap();
        (
            v["status"].as_u64().unwrap(),
            v["body"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        answer("fresh"),
        (200, "quarterly numbers of /reports/2026/q4.txt".to_owned())
    );
    for (name, code) in [
        (
            "expired",
            "<Code>AccessDenied</Code><Message>Request has expired</Message>",
        ),
        ("tampered", "<Code>SignatureDoesNotMatch</Code>"),
        (
            "restricted",
            "<Code>AccessDenied</Code><Message>Access Denied</Message>",
        ),
    ] {
        let (status, body) = answer(name);
        assert!(
            status == 403 && body.contains(code),
            "{name}: {status} {body}"
        );
    }
    assert_eq!(
        python(&["skewed", &endpoint, "20"]).trim(),
        r#"{"code": "RequestTimeTooSkewed"}"#
    );
    assert_eq!(
        python(&["skewed", &endpoint, "5"]).trim(),
        r#"{"code": null}"#
    );

    // Deactivated with `iamd keys`: refused once the daemon has read the
    // file (it checks every second here), as if it did not exist; active
    // again, accepted again. bob's key was never touched.
    let keys = |args: &[&str]| {
        crate::python::run(
            Command::new(env!("CARGO_BIN_EXE_iamd"))
                .arg("keys")
                .args(args)
                .arg("--credentials")
                .arg(&credentials),
        )
    };
    keys(&["deactivate", &alice.0]);
    eventually(
        "the deactivated key is refused",
        Duration::from_secs(20),
        || {
            s3api(&venv, &endpoint, alice_key, &list)
                .2
                .contains("(InvalidAccessKeyId)")
        },
    );
    keys(&["activate", &alice.0]);
    eventually("the key is active again", Duration::from_secs(20), || {
        s3api(&venv, &endpoint, alice_key, &list).0
    });
    // The daemon's status counts the keys and shows no secret.
    let status = admin_status(iamd_admin);
    assert!(status.contains("\"activeKeys\":2"), "{status}");
    // When alice's key was last used, for what: this replica's view.
    assert!(
        status.contains(&format!("{{\"accessKeyId\":\"{}\",\"at\":", alice.0)),
        "{status}"
    );
    assert!(status.contains("\"service\":\"s3\""), "{status}");
    assert!(
        !status.contains(&alice.1) && !status.contains(&bob.1),
        "{status}"
    );
}

/// The local STS, with the AWS CLI: who am I; a session with MFA (a code
/// from oathtool) opens what the MFA guardrail closes to long-term keys,
/// and a session without MFA does not; a code is good once; a tampered
/// token and a session asking for a session are refused.
#[test]
fn the_local_sts_gives_sessions_that_envoy_verifies_with_their_mfa() {
    let Some(venv) = aws_venv() else { return };
    let Some(envoy) = envoy_binary() else { return };
    let Some((oath, lib)) = oathtool() else {
        return;
    };
    let f = Fixture::start(&venv, &envoy);
    let alice = f.alice();
    let sts = |key: (&str, &str), token: Option<&str>, args: &[&str]| {
        aws(&venv, &f.sts, key, token, &[&["sts"][..], args].concat())
    };
    let json = |out: &str| serde_json::from_str::<serde_json::Value>(out).unwrap();
    let (ok, out, err) = sts(alice, None, &["get-caller-identity"]);
    assert!(ok, "{err}");
    let me = json(&out);
    assert_eq!(me["Arn"], "arn:aws:iam::123456789012:user/alice");
    assert_eq!(me["Account"], "123456789012");
    assert!(me["UserId"].as_str().unwrap().starts_with("AIDA"), "{me}");

    // alice's virtual MFA device, activated with oathtool's codes.
    let (ok, out, err) = mfa(
        &f.credentials,
        &[
            "enable",
            "user/alice",
            "--bundle",
            "examples/credentials/bundle",
        ],
    );
    assert!(ok, "{err}");
    let secret = out
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let code = |offset: &str| totp(&oath, &lib, &secret, offset);
    let (now, next) = (code("now - 30 seconds"), code("now"));
    assert!(
        mfa(
            &f.credentials,
            &["enable", "user/alice", "--code1", &now, "--code2", &next]
        )
        .0
    );
    let serial = "arn:aws:iam::123456789012:mfa/alice";
    // The daemon reads the device with the file (it checks every second).
    let mut session = serde_json::Value::Null;
    eventually("a session with MFA", Duration::from_secs(20), || {
        let (ok, out, _) = sts(
            alice,
            None,
            &[
                "get-session-token",
                "--serial-number",
                serial,
                "--token-code",
                &code("now"),
            ],
        );
        if ok {
            session = json(&out)["Credentials"].clone();
        }
        ok
    });
    let temporary = |s: &serde_json::Value| {
        (
            s["AccessKeyId"].as_str().unwrap().to_owned(),
            s["SecretAccessKey"].as_str().unwrap().to_owned(),
            s["SessionToken"].as_str().unwrap().to_owned(),
        )
    };
    let (id, key, token) = temporary(&session);
    assert!(id.starts_with("ASIA"), "{session}");
    assert!(!token.contains("alice"), "the token is sealed");
    let got = f.dir.path().join("plan.txt");
    let get = |k: (&str, &str), t: Option<&str>| {
        get_object(
            &venv,
            &f.endpoint,
            k,
            t,
            ("reports", "restricted/plan.txt"),
            &got,
        )
    };
    // With the MFA session: allowed. With the long-term key: denied.
    let (ok, _, err) = get((&id, &key), Some(&token));
    assert!(ok, "{err}");
    let (ok, _, err) = get(alice, None);
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    // The session is still alice.
    let (ok, out, err) = sts((&id, &key), Some(&token), &["get-caller-identity"]);
    assert!(
        ok && json(&out)["Arn"] == "arn:aws:iam::123456789012:user/alice",
        "{out}{err}"
    );
    // A role that demands MFA: refused without a code, given with one.
    let glass = |extra: &[&str]| {
        sts(
            alice,
            None,
            &[
                &[
                    "assume-role",
                    "--role-arn",
                    "arn:aws:iam::123456789012:role/break-glass",
                    "--role-session-name",
                    "glass",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let (ok, _, err) = glass(&[]);
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    // (The next step's code: the current one was used, and one step of
    // drift is accepted.)
    let (ok, _, err) = glass(&[
        "--serial-number",
        serial,
        "--token-code",
        &code("now + 30 seconds"),
    ]);
    assert!(ok, "{err}");
    // A session without MFA: aws:MultiFactorAuthPresent is false, denied.
    let (ok, out, err) = sts(
        alice,
        None,
        &["get-session-token", "--duration-seconds", "900"],
    );
    assert!(ok, "{err}");
    let plain = temporary(&json(&out)["Credentials"]);
    let (ok, _, err) = get((&plain.0, &plain.1), Some(&plain.2));
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    // The code just used, again: refused. A wrong code: refused.
    let used = code("now");
    let _ = sts(
        alice,
        None,
        &[
            "get-session-token",
            "--serial-number",
            serial,
            "--token-code",
            &used,
        ],
    );
    for c in [used.as_str(), "000000"] {
        let (ok, _, err) = sts(
            alice,
            None,
            &[
                "get-session-token",
                "--serial-number",
                serial,
                "--token-code",
                c,
            ],
        );
        assert!(
            !ok && err.contains("(AccessDenied)")
                && err.contains("MultiFactorAuthentication failed"),
            "{c}: {err}"
        );
    }
    // A tampered token; a session asking for a session; a duration out
    // of bounds.
    let mut tampered = token.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (ok, _, err) = get((&id, &key), Some(&tampered));
    assert!(!ok && err.contains("(InvalidClientTokenId)"), "{err}");
    // A session that expired (made here with the credentials' own session
    // key, an hour ago for 15 minutes): ExpiredToken, not an allow.
    let (file, _) = iamd_credentials::file::CredentialsFile::read(&f.credentials).unwrap();
    let hour_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let old =
        iamd_credentials::session::Session::new("user/alice".into(), hour_ago, 900, Some(hour_ago))
            .unwrap();
    let old_token = old.seal(&file.session_keys[0]).unwrap();
    let (ok, _, err) = get((&old.access_key_id, old.secret.expose()), Some(&old_token));
    assert!(!ok && err.contains("(ExpiredToken)"), "{err}");
    let (ok, _, err) = sts((&id, &key), Some(&token), &["get-session-token"]);
    assert!(
        !ok && err.contains("Cannot call GetSessionToken with session credentials"),
        "{err}"
    );
    let (ok, _, err) = sts(
        alice,
        None,
        &["get-session-token", "--duration-seconds", "200000"],
    );
    assert!(!ok && err.contains("(ValidationError)"), "{err}");

    // AssumeRole: alice, with the external ID her role's trust policy
    // asks for, gets a session of the auditor role, which reads the audit
    // log that alice cannot.
    let role = "arn:aws:iam::123456789012:role/auditor";
    let assume = |key: (&str, &str), token: Option<&str>, extra: &[&str]| {
        sts(
            key,
            token,
            &[
                &[
                    "assume-role",
                    "--role-arn",
                    role,
                    "--role-session-name",
                    "audit-1",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let (ok, out, err) = assume(alice, None, &["--external-id", "acme-audit"]);
    assert!(ok, "{err}");
    let answer = json(&out);
    assert_eq!(
        answer["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::123456789012:assumed-role/auditor/audit-1"
    );
    assert!(
        answer["AssumedRoleUser"]["AssumedRoleId"]
            .as_str()
            .unwrap()
            .starts_with("AROA")
    );
    let auditor = temporary(&answer["Credentials"]);
    let (ok, out, err) = sts(
        (&auditor.0, &auditor.1),
        Some(&auditor.2),
        &["get-caller-identity"],
    );
    assert!(
        ok && json(&out)["Arn"] == "arn:aws:sts::123456789012:assumed-role/auditor/audit-1",
        "{out}{err}"
    );
    let log = f.dir.path().join("log.txt");
    let read_log = |k: (&str, &str), t: Option<&str>| {
        get_object(&venv, &f.endpoint, k, t, ("audit", "2026/log.txt"), &log)
    };
    let (ok, _, err) = read_log((&auditor.0, &auditor.1), Some(&auditor.2));
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "quarterly numbers of /audit/2026/log.txt"
    );
    let (ok, _, err) = read_log(alice, None);
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    // Without the external ID, or as bob: the trust policy refuses.
    let bob = (f.bob.0.as_str(), f.bob.1.as_str());
    for (who, extra) in [
        (alice, &[][..]),
        (alice, &["--external-id", "wrong"][..]),
        (bob, &["--external-id", "acme-audit"][..]),
    ] {
        let (ok, _, err) = assume(who, None, extra);
        assert!(
            !ok && err.contains("(AccessDenied)")
                && err.contains("is not authorized to perform: sts:AssumeRole"),
            "{err}"
        );
    }
    // Up to the role's maxSessionDuration (7200 s).
    let (ok, _, err) = assume(
        alice,
        None,
        &["--external-id", "acme-audit", "--duration-seconds", "10800"],
    );
    assert!(
        !ok && err.contains("(ValidationError)") && err.contains("MaxSessionDuration"),
        "{err}"
    );
    assert!(
        assume(
            alice,
            None,
            &["--external-id", "acme-audit", "--duration-seconds", "7200"]
        )
        .0
    );
    // A session policy narrows the session: the role may list the audit
    // bucket, a session limited to reading 2026's objects may not.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::audit/2026/*"}]}"#;
    let (ok, out, err) = assume(
        alice,
        None,
        &["--external-id", "acme-audit", "--policy", policy],
    );
    assert!(ok, "{err}");
    let narrow = temporary(&json(&out)["Credentials"]);
    let (ok, _, err) = read_log((&narrow.0, &narrow.1), Some(&narrow.2));
    assert!(ok, "{err}");
    let list_audit = |k: (&str, &str), t: Option<&str>| {
        aws(
            &venv,
            &f.endpoint,
            k,
            t,
            &["s3api", "list-objects-v2", "--bucket", "audit"],
        )
    };
    let (ok, _, err) = list_audit((&narrow.0, &narrow.1), Some(&narrow.2));
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    assert!(
        list_audit((&auditor.0, &auditor.1), Some(&auditor.2)).0,
        "the role itself lists"
    );
    // Session tags: the session's aws:PrincipalTag/project opens that
    // project's files, and only those (the trust policy allows
    // sts:TagSession); without the tag, none.
    let (ok, out, err) = assume(
        alice,
        None,
        &[
            "--external-id",
            "acme-audit",
            "--tags",
            "Key=project,Value=apollo",
        ],
    );
    assert!(ok, "{err}");
    let tagged = temporary(&json(&out)["Credentials"]);
    let plan = f.dir.path().join("plan-apollo.txt");
    let read_project = |k: (&str, &str), t: Option<&str>, project: &str| {
        let object = format!("{project}/plan.txt");
        get_object(&venv, &f.endpoint, k, t, ("projects", &object), &plan)
    };
    assert!(read_project((&tagged.0, &tagged.1), Some(&tagged.2), "apollo").0);
    let (ok, _, err) = read_project((&tagged.0, &tagged.1), Some(&tagged.2), "zeus");
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    let (ok, _, err) = read_project((&auditor.0, &auditor.1), Some(&auditor.2), "apollo");
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    // A source identity: set once (the trust policy allows
    // sts:SetSourceIdentity), it is the session's aws:SourceIdentity.
    let (ok, out, err) = assume(
        alice,
        None,
        &["--external-id", "acme-audit", "--source-identity", "alice"],
    );
    assert!(ok, "{err}");
    let sourced = temporary(&json(&out)["Credentials"]);
    let handoff = |k: (&str, &str), t: Option<&str>, who: &str| {
        let object = format!("{who}/notes.txt");
        get_object(&venv, &f.endpoint, k, t, ("handoffs", &object), &plan)
    };
    assert!(handoff((&sourced.0, &sourced.1), Some(&sourced.2), "alice").0);
    let (ok, _, err) = handoff((&sourced.0, &sourced.1), Some(&sourced.2), "bob");
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    let (ok, _, err) = handoff((&auditor.0, &auditor.1), Some(&auditor.2), "alice");
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
    // A policy that does not compile; managed session policies, which
    // iamd refuses rather than ignores.
    let (ok, _, err) = assume(
        alice,
        None,
        &[
            "--external-id",
            "acme-audit",
            "--policy",
            r#"{"Statement": "all"}"#,
        ],
    );
    assert!(!ok && err.contains("(MalformedPolicyDocument)"), "{err}");
    let (ok, _, err) = assume(
        alice,
        None,
        &[
            "--external-id",
            "acme-audit",
            "--policy-arns",
            "arn=arn:aws:iam::aws:policy/ReadOnlyAccess",
        ],
    );
    assert!(
        !ok && err.contains("does not apply managed session policies"),
        "{err}"
    );
    // No secret reached the logs: the long-term secret, the temporary
    // secrets and tokens, the MFA seed.
    f.assert_logs_hold_none_of(&[
        &f.alice.1, &f.bob.1, &key, &token, &plain.1, &plain.2, &auditor.1, &auditor.2, &secret,
    ]);
}

/// A service that gets requests from the AWS SDKs asks iamd directly over
/// iamd.v1 with the request as signed (here by botocore): the signer is
/// the principal, a bad signature is UNAUTHENTICATED with AWS's code.
#[test]
fn iamd_v1_verifies_a_signed_request_given_with_the_question() {
    use iamd_proto::pb;
    let Some(venv) = aws_venv() else { return };
    let Some(envoy) = envoy_binary() else { return };
    let f = Fixture::start(&venv, &envoy);
    let sign = |key: (&str, &str), url: &str| -> pb::SignedHttpRequest {
        let out = crate::python::run(
            aws_env(&mut Command::new(venv.join("bin/python")), key)
                .arg("tests/python/sigv4.py")
                .args(["sign", "GET", url, "s3"])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        pb::SignedHttpRequest {
            method: v["method"].as_str().unwrap().into(),
            path: v["path"].as_str().unwrap().into(),
            headers: serde_json::from_value(v["headers"].clone()).unwrap(),
            body: Vec::new(),
        }
    };
    let ask = |object: &str, signed: pb::SignedHttpRequest, principal: &str| {
        let mut r = crate::harness::req(
            principal,
            "s3:GetObject",
            &format!("arn:aws:s3:::reports/{object}"),
            &[("aws:RequestedRegion", "us-east-1")],
        );
        r.signed = Some(Box::new(signed));
        let grpc = f.grpc.clone();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let mut c = pb::authorizer_client::AuthorizerClient::connect(grpc)
                    .await
                    .unwrap();
                c.authorize(r).await.map(|a| a.into_inner())
            })
    };
    let url = "http://reports.internal/reports/2026/q4.txt";
    let allowed = ask("2026/q4.txt", sign(f.alice(), url), "").unwrap();
    assert_eq!(allowed.decision(), pb::Decision::Allow, "{allowed:?}");
    // The long-term key has no MFA: the guardrail denies the restricted one.
    let restricted = "http://reports.internal/reports/restricted/plan.txt";
    let denied = ask("restricted/plan.txt", sign(f.alice(), restricted), "").unwrap();
    assert_eq!(denied.decision(), pb::Decision::ExplicitDeny, "{denied:?}");
    // bob's signature decides as bob.
    let bob = ask("2026/q4.txt", sign((&f.bob.0, &f.bob.1), url), "").unwrap();
    assert_eq!(bob.decision(), pb::Decision::ImplicitDeny, "{bob:?}");
    // A changed path, a wrong secret: UNAUTHENTICATED, AWS's code first.
    let mut changed = sign(f.alice(), url);
    changed.path = "/reports/2026/q3.txt".into();
    let wrong = sign(
        (&f.alice.0, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        url,
    );
    for signed in [changed, wrong] {
        let e = ask("2026/q4.txt", signed, "").unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        assert!(e.message().starts_with("SignatureDoesNotMatch: "), "{e:?}");
    }
    // A principal beside the signature is a malformed request.
    let e = ask("2026/q4.txt", sign(f.alice(), url), "user/bob").unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
}

/// A workload's web identity token (an ES256 JWT-SVID of a test issuer,
/// whose keys are a JWKS file) becomes a session of the role that trusts
/// its SPIFFE ID, unsigned, with the AWS CLI, and reads through Envoy what
/// the role may; another namespace's, an expired or a forged token is
/// refused with AWS's code.
#[test]
fn a_workload_s_web_identity_becomes_a_role_session() {
    use base64::Engine as _;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let Some(venv) = aws_venv() else { return };
    let Some(envoy) = envoy_binary() else { return };
    let rng = ring::rand::SystemRandom::new();
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let keypair = || {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    };
    let (key, forger) = (keypair(), keypair());
    let point = key.public_key().as_ref();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "x": enc(&point[1..33]), "y": enc(&point[33..])}]}).to_string(),
    )
    .unwrap();
    let issuer = "https://spire.acme.example";
    let cluster = "https://kubernetes.default.svc";
    let f = Fixture::start_with(&venv, &envoy, dir, &[(issuer, &jwks), (cluster, &jwks)]);
    let now = jiff::Timestamp::now().as_second();
    let token_of = |signer: &EcdsaKeyPair, iss: &str, sub: &str, exp: i64| {
        let claims =
            serde_json::json!({"iss": iss, "sub": sub, "aud": ["iamd"], "exp": exp, "iat": now});
        let input = format!(
            "{}.{}",
            enc(br#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#),
            enc(claims.to_string().as_bytes())
        );
        let sig = signer.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", enc(sig.as_ref()))
    };
    let token = |signer: &EcdsaKeyPair, sub: &str, exp: i64| token_of(signer, issuer, sub, exp);
    let assume_as = |role: &str, t: &str| {
        aws(
            &venv,
            &f.sts,
            ("", ""),
            None,
            &[
                "sts",
                "assume-role-with-web-identity",
                "--role-arn",
                role,
                "--role-session-name",
                "ship-1",
                "--web-identity-token",
                t,
            ],
        )
    };
    let assume = |t: &str| assume_as("arn:aws:iam::123456789012:role/log-shipper", t);
    let shipper = "spiffe://acme.example/ns/audit/sa/shipper";
    let (ok, out, err) = assume(&token(&key, shipper, now + 300));
    assert!(ok, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::123456789012:assumed-role/log-shipper/ship-1"
    );
    assert_eq!(answer["SubjectFromWebIdentityToken"], shipper);
    let c = &answer["Credentials"];
    let (id, secret, session) = (
        c["AccessKeyId"].as_str().unwrap(),
        c["SecretAccessKey"].as_str().unwrap(),
        c["SessionToken"].as_str().unwrap(),
    );
    let log = f.dir.path().join("log.txt");
    let (ok, _, err) = aws(
        &venv,
        &f.endpoint,
        (id, secret),
        Some(session),
        &[
            "s3api",
            "get-object",
            "--bucket",
            "audit",
            "--key",
            "2026/log.txt",
            log.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    for (t, code) in [
        (
            token(
                &key,
                "spiffe://acme.example/ns/billing/sa/shipper",
                now + 300,
            ),
            "(AccessDenied)",
        ),
        (token(&key, shipper, now - 120), "(ExpiredTokenException)"),
        (token(&forger, shipper, now + 300), "(InvalidIdentityToken)"),
    ] {
        let (ok, _, err) = assume(&t);
        assert!(!ok && err.contains(code), "{code}: {err}");
    }
    // A Kubernetes service account's token (an OIDC token of the
    // cluster's issuer, not a SPIFFE ID): the role whose trust policy names
    // the provider's ARN, with `HOST:sub` and `HOST:aud` conditions.
    let reader = "arn:aws:iam::123456789012:role/report-reader";
    let builder = token_of(
        &key,
        cluster,
        "system:serviceaccount:reports:builder",
        now + 300,
    );
    let (ok, out, err) = assume_as(reader, &builder);
    assert!(ok, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::123456789012:assumed-role/report-reader/ship-1"
    );
    assert_eq!(answer["Provider"], cluster);
    let other = token_of(
        &key,
        cluster,
        "system:serviceaccount:reports:intruder",
        now + 300,
    );
    let (ok, _, err) = assume_as(reader, &other);
    assert!(!ok && err.contains("(AccessDenied)"), "{err}");
}

/// The STS has the front doors' request timeout: a caller that sends its
/// headers and never its body is answered 503 `RequestTimeout` when the
/// timeout runs out, not held forever.
#[test]
fn a_silent_sts_caller_is_answered_at_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    crate::python::run(
        Command::new(env!("CARGO_BIN_EXE_iamd"))
            .args(["keys", "rotate-session-key", "--credentials"])
            .arg(&credentials),
    );
    let (grpc, admin, sts) = (free_port(), free_port(), free_port());
    let _iamd = Killed(
        Command::new(env!("CARGO_BIN_EXE_iamd"))
            .args(["serve", "--bundle", "examples/credentials/bundle"])
            .arg("--credentials")
            .arg(&credentials)
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--sts-listen", &format!("127.0.0.1:{sts}")])
            .args(["--request-timeout-ms", "500"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut conn = None;
    eventually("the STS listens", Duration::from_secs(20), || {
        conn = std::net::TcpStream::connect(("127.0.0.1", sts)).ok();
        conn.is_some()
    });
    let mut conn = conn.unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    conn.write_all(b"POST / HTTP/1.1\r\nHost: sts\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = conn.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// `iamd keys`: a key's secret is printed once (and in the console's CSV,
/// a new file of mode 0600), a user gets two keys and no more, a deleted
/// key is gone, and the listing never shows a secret.
#[test]
fn iamd_keys_manages_a_user_s_two_keys() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let csv = dir.path().join("alice.csv");
    let keys = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_iamd"))
            .arg("keys")
            .args(args)
            .arg("--credentials")
            .arg(&creds)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let out = keys(&["create", "user/alice", "--csv", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (
        first["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_owned(),
        first["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text,
        format!("User Name,Access key ID,Secret access key\nalice,{id},{secret}\n")
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&csv).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The CSV is never overwritten: no key is made that nobody has.
    let again = keys(&["create", "user/alice", "--csv", csv.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(keys(&["create", "user/alice"]).status.success());
    let third = keys(&["create", "user/alice"]);
    assert!(!third.status.success());
    assert!(String::from_utf8_lossy(&third.stderr).contains("already has 2 access keys"));
    let listed = String::from_utf8_lossy(&keys(&["list"]).stdout).into_owned();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains(&id) && !listed.contains(&secret),
        "{listed}"
    );
    assert!(keys(&["delete", &id]).status.success());
    let listed = String::from_utf8_lossy(&keys(&["list", "user/alice"]).stdout).into_owned();
    assert!(
        !listed.contains(&id) && listed.lines().count() == 1,
        "{listed}"
    );
    let gone = keys(&["delete", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("is not in the credentials"));
}
