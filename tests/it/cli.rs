//! The `iamd` command as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub(crate) fn iamd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading its input closes the pipe early.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// Waits (at most 30 s) for a child to exit; kills it and fails past that.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn json(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn simulate_decides_the_bundled_example() {
    let out = iamd(
        &[
            "simulate",
            "examples/simulate/alice-reads-her-document.json",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = &json(&out)[0];
    assert_eq!(answer["decision"], "Allowed");
    assert_eq!(answer["matched"][0]["sid"], "ReadOwnDocuments");
    assert_eq!(answer["matched"][0]["policy"], "DocsReadOwn");
}

#[test]
fn simulate_reports_errors_with_a_non_zero_exit() {
    let out = iamd(
        &["simulate", "-"],
        r#"{"request": {"principal": "alice", "action": "a:b", "resource": "*"}}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    let answer = &json(&out)[0];
    assert_eq!(answer["decision"], "Error");
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("<stdin>:1:27: principal `alice` is not valid"),
        "{answer}"
    );
    let missing = iamd(&["simulate", "no/such/file.json"], "");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read `no/such/file.json`"));
}

#[test]
fn batch_answers_each_line_in_order() {
    let ok = r#"{"identityPolicies": [{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "a:*", "Resource": "*"}}], "request": {"principal": "arn:aws:iam::111122223333:user/u", "action": "a:b", "resource": "*"}}"#;
    let denied = ok.replace("\"a:b\"", "\"c:d\"");
    let broken = ok.replace("\"Allow\"", "\"Alow\"");
    let input = format!("{ok}\n{broken}\n\n{denied}\n");
    let out = iamd(&["simulate", "--batch"], &input);
    assert_eq!(out.status.code(), Some(1));
    let answers = json(&out);
    let decisions: Vec<&str> = answers
        .iter()
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["Allowed", "Error", "Error", "ImplicitlyDenied"]);
    assert!(
        answers[1]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("<stdin>:2:"),
        "{}",
        answers[1]
    );
    assert!(
        answers[2]["errors"][0]
            .as_str()
            .unwrap()
            .contains("<stdin>:3: empty line")
    );
    assert_eq!(answers[3]["deniedBy"], "identity");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 4 cases could not be decided"));
}

#[test]
fn simulate_against_a_bundle() {
    let lines = [
        r#"{"request": {"principal": "user/alice", "action": "docs:GetDocument", "resource": "arn:acme:docs:eu-1:123456789012:doc/1", "context": {"docs:Team": "docs"}}}"#,
        r#"{"request": {"principal": "user/nobody", "action": "docs:GetDocument", "resource": "*"}}"#,
    ];
    let out = iamd(
        &["simulate", "--bundle", "examples/bundle", "--batch"],
        &(lines.join("\n") + "\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers = json(&out);
    assert_eq!(answers[0]["decision"], "Allowed");
    assert_eq!(answers[1]["decision"], "ImplicitlyDenied");
    assert_eq!(
        answers[1]["reason"],
        "principal `user/nobody` is not in the bundle"
    );
    let broken = iamd(&["simulate", "--bundle", "src"], lines[0]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("no `bundle.yaml`"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}

/// Starts `iamd serve` on the example bundle, on a free port (and the admin
/// listener on an ephemeral one), with `extra` arguments; stderr piped.
pub(crate) fn spawn_daemon(extra: &[&str]) -> (std::process::Child, String) {
    spawn_daemon_with_env(extra, &[])
}

/// [`spawn_daemon`] with environment variables.
pub(crate) fn spawn_daemon_with_env(
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(["serve", "--bundle", "examples/bundle", "--listen", &addr])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (server, addr)
}

#[test]
fn serve_then_authorize_then_sigterm() {
    serve_authorize_sigterm(&[]);
}

#[test]
fn serve_with_several_workers_then_authorize_then_sigterm() {
    serve_authorize_sigterm(&["--workers", "2"]);
}

/// The daemon (with `extra` flags) answers, reports health, and drains on
/// SIGTERM.
fn serve_authorize_sigterm(extra: &[&str]) {
    let mut flags = vec!["--log-format", "json"];
    flags.extend_from_slice(extra);
    let (mut server, addr) = spawn_daemon(&flags);
    let ask = |extra: &[&str]| {
        let mut args = vec![
            "authorize",
            "--addr",
            &addr,
            "--principal",
            "user/alice",
            "--action",
            "docs:GetDocument",
        ];
        args.extend_from_slice(&["--resource", "arn:acme:docs:eu-1:123456789012:doc/x"]);
        args.extend_from_slice(extra);
        iamd(&args, "")
    };
    // Wait (bounded) for the daemon to accept calls.
    let mut out = ask(&["--context", "docs:Team=docs"]);
    for _ in 0..100 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        out = ask(&["--context", "docs:Team=docs"]);
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("ALLOW  (bundle docs-team-2026-11-28 (sha256:"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Allow by DocsRead statement 0 `ReadTeamDocuments` (identity)"),
        "{text}"
    );
    // The health probe of the container image.
    let health = iamd(&["health", "--addr", &addr], "");
    assert_eq!(health.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&health.stdout), "SERVING\n");
    let health = iamd(
        &["health", "--addr", &addr, "--service", "iamd.v1.Authorizer"],
        "",
    );
    assert_eq!(health.status.code(), Some(0));
    let out = ask(&["--context", "docs:Team=other", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["decision"], "IMPLICIT_DENY");
    assert_eq!(answer["deniedBy"], "identity");
    stop(&mut server);
    let gone = iamd(&["health", "--addr", &addr], "");
    assert_eq!(
        gone.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    let mut logs = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("\"message\":\"bundle loaded\""), "{logs}");
    assert!(logs.contains("SIGTERM: draining"), "{logs}");
    // The log targets are stable names, not the code's module paths.
    assert!(logs.contains("\"target\":\"iamd::reload\""), "{logs}");
    assert!(logs.contains("\"target\":\"iamd\""), "{logs}");
}

/// Waits (up to 30 s: a loaded CI machine starts slowly) until the daemon
/// at `addr` reports SERVING; fails with the daemon's standard error (when
/// piped) if it exited first, e.g. because another process took the port.
pub(crate) fn wait_serving(server: &mut std::process::Child, addr: &str) {
    for _ in 0..600 {
        if iamd(&["health", "--addr", addr], "").status.success() {
            return;
        }
        if let Ok(Some(status)) = server.try_wait() {
            let mut err = String::new();
            if let Some(e) = server.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(e, &mut err);
            }
            panic!("the daemon exited ({status}) before serving on {addr}: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the daemon did not report SERVING on {addr} within 30 s");
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM: the daemon drains and exits 0.
pub(crate) fn stop(server: &mut std::process::Child) {
    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_exit(server);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn serve_refuses_a_bad_configuration_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iamd.yaml");
    std::fs::write(&cfg, "listen: nowhere\nlimits: {maxBatch: 0}\n").unwrap();
    let out = iamd(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--log-level",
            "loud",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "no bundle: give `--bundle PATH`",
        "listen: `nowhere` is not an address",
        "maxBatch is 0",
        "log level `loud`",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
    std::fs::write(&cfg, "bundle: examples/bundle\nlimit: {}\n").unwrap();
    let out = iamd(&["serve", "--config", cfg.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("iamd.yaml:2:1: unknown field `limit`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM while clients keep calling: every call the server decided (it
/// logs each decision before answering) reached its client, the only client
/// errors are calls that were refused or never sent once shutdown began, and
/// the process exits 0. Bounded: 4 clients, at most 20,000 calls each, at
/// most 20 seconds.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_no_answered_request() {
    use iamd_proto::pb;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let cfg = dir.path().join("iamd.yaml");
    std::fs::write(
        &cfg,
        format!("decisionLog: {{path: {}, queue: 1000000}}\n", log.display()),
    )
    .unwrap();
    let (mut server, addr) =
        spawn_daemon(&["--log-level", "warn", "--config", cfg.to_str().unwrap()]);
    let url = format!("http://{addr}");
    let mut channel = None;
    for _ in 0..200 {
        if let Ok(c) = tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let channel = channel.expect("the daemon did not start");
    let answered = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = pb::authorizer_client::AuthorizerClient::new(channel.clone());
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = 0u64;
            for _ in 0..20_000 {
                if tokio::time::Instant::now() > deadline {
                    break;
                }
                let r = pb::AuthorizeRequest {
                    principal: "user/alice".into(),
                    action: "docs:GetDocument".into(),
                    resource: "arn:acme:docs:eu-1:123456789012:doc/x".into(),
                    context: Default::default(),
                    resource_account: String::new(),
                    explain: false,
                    signed: None,
                };
                match c.authorize(r).await {
                    Ok(a) => {
                        assert_eq!(a.into_inner().decision(), pb::Decision::ImplicitDeny);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) => {
                        // Refused (a stream after the server's GOAWAY) or
                        // cancelled before being sent: a transport error,
                        // never a status from the service itself.
                        assert!(std::error::Error::source(&s).is_some(), "{s:?}");
                        failures += 1;
                        if failures > 20 {
                            break;
                        }
                    }
                }
            }
        }));
    }
    while answered.load(Ordering::Relaxed) < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon answered too few calls"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let pid = server.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for c in clients {
        c.await.unwrap();
    }
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut server))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let decided = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    let answered = answered.load(Ordering::Relaxed);
    assert!(answered >= 500);
    assert_eq!(
        decided, answered,
        "the server decided {decided} calls, the clients got {answered} answers"
    );
}

#[test]
fn health_says_not_serving_without_a_bundle() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args([
            "serve",
            "--bundle",
            "/nonexistent/bundle",
            "--listen",
            &addr,
        ])
        .args(["--admin-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = iamd(&["health", "--addr", &addr], "");
    for _ in 0..100 {
        if out.status.code() != Some(2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        out = iamd(&["health", "--addr", &addr], "");
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "NOT_SERVING\n");
    stop(&mut server);
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    // Enough answers that the writer outlives a reader of one line.
    let line = r#"{"request": {"principal": "user/alice", "action": "docs:GetDocument", "resource": "arn:acme:docs:eu-1:123456789012:doc/x", "context": {"docs:Team": "docs"}}}"#;
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    std::fs::write(&requests, format!("{line}\n").repeat(50_000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(["simulate", "--bundle", "examples/bundle", "--batch"])
        .arg(&requests)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    // The reader goes away, as `| head -1` does.
    drop(child.stdout.take());
    let status = wait_exit(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_closed_pipe_is_no_panic_for_printed_answers() {
    let (mut server, addr) = spawn_daemon(&[]);
    wait_serving(&mut server, &addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(["authorize", "--addr", &addr, "--principal", "user/alice"])
        .args(["--action", "docs:GetDocument", "--explain"])
        .args(["--resource", "arn:acme:docs:eu-1:123456789012:doc/x"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the answer comes back: its first line meets no reader.
    drop(child.stdout.take());
    let status = wait_exit(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    stop(&mut server);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}

/// A peer that holds a connection open (half an HTTP/2 preface) does not
/// hold up a shutdown past the drain deadline: the daemon says so and
/// exits 0.
#[test]
fn a_held_connection_does_not_hold_up_a_shutdown() {
    let (mut server, addr) = spawn_daemon(&["--drain-timeout-ms", "500"]);
    wait_serving(&mut server, &addr);
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    held.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    // Without the deadline the daemon waits for this peer forever, and
    // `wait_exit` fails after 30 s.
    let status = {
        let pid = server.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        wait_exit(&mut server)
    };
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("the drain deadline passed"), "{logs}");
    assert!(logs.contains("closing 1 grpc connection(s)"), "{logs}");
    drop(held);
}

/// The HTTP/2 client preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame, and its acknowledgement.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
const SETTINGS_ACK: &[u8] = &[0, 0, 0, 4, 1, 0, 0, 0, 0];
/// A PING frame.
const PING: &[u8] = &[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];

/// A peer that opens a connection and says nothing (half an HTTP/2
/// preface) is disconnected at the handshake timeout, on one serving
/// thread and on two; connections past `maxConnections` wait until one
/// closes. Before: the half preface held its connection for good.
#[test]
fn silent_connections_are_cut_and_the_cap_holds_the_rest() {
    use std::io::Read;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("iamd.yaml");
    std::fs::write(
        &config,
        "limits:\n  handshakeTimeoutMs: 300\n  maxConnections: 3\n  maxStreamsPerConnection: 7\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // What the server sent (its SETTINGS first) within `wait`.
    let first_bytes = |c: &mut std::net::TcpStream, wait: Duration| {
        c.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    };
    let answered = |c: &mut std::net::TcpStream, wait: Duration| !first_bytes(c, wait).is_empty();
    for workers in ["1", "2"] {
        let (mut server, addr) = spawn_daemon(&["--config", config, "--workers", workers]);
        wait_serving(&mut server, &addr);

        // Silent: cut at the timeout (the read sees the end, or a reset).
        let mut silent = std::net::TcpStream::connect(&addr).unwrap();
        silent.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut cut = false;
        for _ in 0..4 {
            match silent.read(&mut buf) {
                Ok(0) | Err(_) => {
                    cut = true;
                    break;
                }
                // The server's SETTINGS may come first.
                Ok(_) => {}
            }
        }
        assert!(
            cut,
            "workers {workers}: the silent connection is still open"
        );

        // Three that spoke fill the cap; a fourth waits for a place. The
        // server's SETTINGS advertise the stream limit.
        let mut open: Vec<_> = (0..3)
            .map(|_| {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.write_all(PREFACE).unwrap();
                c.write_all(SETTINGS).unwrap();
                let settings = first_bytes(&mut c, Duration::from_secs(10));
                assert_eq!(settings.get(3), Some(&4), "a SETTINGS frame: {settings:?}");
                let len = usize::from(settings[2]) | usize::from(settings[1]) << 8;
                let advertised: Vec<(u16, u32)> = settings[9..(9 + len).min(settings.len())]
                    .chunks_exact(6)
                    .map(|p| {
                        (
                            u16::from_be_bytes([p[0], p[1]]),
                            u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                        )
                    })
                    .collect();
                assert!(
                    advertised.contains(&(3, 7)),
                    "SETTINGS_MAX_CONCURRENT_STREAMS 7 advertised: {advertised:?}"
                );
                c
            })
            .collect();
        let mut fourth = std::net::TcpStream::connect(&addr).unwrap();
        fourth.write_all(PREFACE).unwrap();
        fourth.write_all(SETTINGS).unwrap();
        assert!(
            !answered(&mut fourth, Duration::from_millis(1_000)),
            "workers {workers}: a fourth connection was served past maxConnections: 3"
        );
        open.pop();
        assert!(
            answered(&mut fourth, Duration::from_secs(10)),
            "workers {workers}: the fourth connection was not served once a place was free"
        );
        drop(open);
        drop(fourth);
        stop(&mut server);
    }
}

/// Out of file descriptors, a listener backs off and says so once, instead
/// of spinning (one worker, no log) or warning every 50 ms (two workers);
/// once descriptors are free again it serves. Before: 100% CPU and
/// `/healthz` timing out.
#[test]
fn out_of_file_descriptors_the_listener_backs_off_and_recovers() {
    use std::time::Duration;
    for workers in ["1", "2"] {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut server = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_iamd"))
            .args(["serve", "--bundle", "examples/bundle", "--listen", &addr])
            .args(["--admin-listen", "127.0.0.1:0", "--workers", workers])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_serving(&mut server, &addr);
        // More connections than the daemon has descriptors left.
        let held: Vec<_> = (0..80)
            .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
            .collect();
        assert!(held.len() >= 64, "only {} connections made", held.len());
        std::thread::sleep(Duration::from_secs(3));
        drop(held);
        // Served again (the pause is at most a second).
        wait_serving(&mut server, &addr);
        stop(&mut server);
        let mut logs = String::new();
        std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut logs).unwrap();
        let warnings = logs
            .lines()
            .filter(|l| l.contains("cannot accept connections on the grpc listener"))
            .collect::<Vec<_>>();
        assert_eq!(warnings.len(), 1, "workers {workers}: {logs}");
        assert!(
            warnings[0].contains("out of file descriptors"),
            "{}",
            warnings[0]
        );
    }
}

/// A `CheckRequest` whose `attributes` are not a message.
#[derive(Clone, PartialEq, prost::Message)]
struct RawCheck {
    #[prost(bytes = "vec", tag = "1")]
    attributes: Vec<u8>,
}

/// A `Check` whose message does not decode is `INVALID_ARGUMENT`, as an
/// `Authorize` of the same kind is (before: tonic's `INTERNAL`).
#[tokio::test]
async fn a_check_that_does_not_decode_is_an_invalid_argument() {
    let (mut server, addr) = spawn_daemon(&[
        "--config",
        "deploy/envoy/iamd.yaml",
        "--drain-timeout-ms",
        "500",
    ]);
    wait_serving(&mut server, &addr);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/envoy.service.auth.v3.Authorization/Check",
    );
    let codec = tonic_prost::ProstCodec::<RawCheck, RawCheck>::default();
    let bad = RawCheck {
        attributes: vec![0xff, 0xff, 0xff],
    };
    let e = grpc
        .unary(tonic::Request::new(bad), path, codec)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert!(
        e.message()
            .starts_with("the message does not decode as its protobuf type: "),
        "{}",
        e.message()
    );
    drop(grpc);
    stop(&mut server);
}

/// A client that holds an HTTP/2 connection open and only pings it (as a
/// pooled client does, or one that means to keep a place) is asked to close
/// at `limits.maxConnectionAgeMs` (a GOAWAY frame), and the connection
/// ends: on the gRPC listener with one serving thread and with two, and on
/// the AuthZEN listener. Before: such a connection stayed open for good,
/// holding a place under `maxConnections`.
#[test]
fn a_connection_that_only_pings_is_closed_at_its_age() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("iamd.yaml");
    std::fs::write(&config, "limits:\n  maxConnectionAgeMs: 600\n").unwrap();
    let config = config.to_str().unwrap();
    // Pings every 100 ms and answers the server's pings, as a live client
    // does; the frame types the server sent, and how long the connection
    // lasted (at most 10 s).
    let ping_until_closed = |addr: &str| {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(PREFACE).unwrap();
        c.write_all(SETTINGS).unwrap();
        c.write_all(SETTINGS_ACK).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let started = Instant::now();
        let mut pinged = started - Duration::from_secs(1);
        let (mut pending, mut types) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 4096];
        'connection: while started.elapsed() < Duration::from_secs(10) {
            if pinged.elapsed() >= Duration::from_millis(100) {
                pinged = Instant::now();
                if c.write_all(PING).is_err() {
                    break;
                }
            }
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            while pending.len() >= 9 {
                let len = usize::from(pending[0]) << 16
                    | usize::from(pending[1]) << 8
                    | usize::from(pending[2]);
                if pending.len() < 9 + len {
                    break;
                }
                let frame: Vec<u8> = pending.drain(..9 + len).collect();
                types.push(frame[3]);
                if frame[3] == 6 && frame[4] & 1 == 0 {
                    let mut ack = frame.clone();
                    ack[4] = 1;
                    if c.write_all(&ack).is_err() {
                        break 'connection;
                    }
                }
            }
        }
        (types, started.elapsed())
    };
    for workers in ["1", "2"] {
        let authzen = format!("127.0.0.1:{}", free_port());
        let (mut server, addr) = spawn_daemon(&[
            "--config",
            config,
            "--workers",
            workers,
            "--authzen-listen",
            &authzen,
        ]);
        wait_serving(&mut server, &addr);
        for (listener, at) in [("grpc", &addr), ("authzen", &authzen)] {
            let (types, lasted) = ping_until_closed(at);
            assert!(
                types.contains(&7),
                "{listener}, workers {workers}: a GOAWAY among the frames {types:?}"
            );
            assert!(
                types.iter().filter(|t| **t == 6).count() >= 3,
                "{listener}: the pings were answered until then: {types:?}"
            );
            assert!(
                lasted >= Duration::from_millis(500) && lasted < Duration::from_secs(5),
                "{listener}, workers {workers}: closed after {lasted:?}"
            );
        }
        stop(&mut server);
    }
}
