//! The `iamd` command as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn iamd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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
