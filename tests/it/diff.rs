//! `iamd diff`: a change that widens one permission and narrows another,
//! over a request set and as a summary.

use crate::cli::iamd;

/// The example bundle with bob's boundary no longer forbidding purges
/// (wider) and DocsRead no longer granting ListDocuments (narrower).
fn changed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::harness::copy_dir(std::path::Path::new("examples/bundle"), dir.path());
    std::fs::write(
        dir.path().join("policies/DeveloperBoundary.json"),
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "DocsOnly", "Effect": "Allow", "Action": ["docs:*", "sts:AssumeRole"], "Resource": "*"}]}"#,
    )
    .unwrap();
    let read = dir.path().join("policies/DocsRead.json");
    let text = std::fs::read_to_string(&read).unwrap().replace(
        r#"["docs:GetDocument", "docs:ListDocuments"]"#,
        r#"["docs:GetDocument"]"#,
    );
    std::fs::write(read, text).unwrap();
    let requests = std::fs::read_to_string("examples/bundle/requests.jsonl").unwrap()
        + r#"{"request": {"principal": "user/bob", "action": "docs:PurgeDocuments", "resource": "arn:acme:docs:eu-1:123456789012:doc/guide", "context": {"aws:MultiFactorAuthPresent": "true"}}}
{"request": {"principal": "user/bob", "action": "docs:PurgeDocuments", "resource": "arn:acme:docs:eu-1:123456789012:doc/guide"}}
{"time": "2026-11-28T20:55:01Z", "principal": "role/indexer", "action": "docs:ListDocuments", "resource": "arn:acme:docs:eu-1:123456789012:doc/guide", "context": {"docs:Team": "search"}, "decision": "ALLOW"}
"#;
    std::fs::write(dir.path().join("requests.jsonl"), requests).unwrap();
    dir
}

#[test]
fn over_requests_grouped_and_explained() {
    let dir = changed();
    let new = dir.path().display().to_string();
    let requests = dir.path().join("requests.jsonl").display().to_string();
    let out = iamd(
        &["diff", "examples/bundle", &new, "--requests", &requests],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "widening fails the check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "newly allowed: 1 group (2 requests)
  user/bob docs:PurgeDocuments arn:acme:docs:eu-1:123456789012:doc/guide (2 requests)
    before: EXPLICIT_DENY
      Deny by DeveloperBoundary statement 1 `NoPurge` (boundary)
    after: ALLOW
      Allow by DocsAdmin statement 0 `AllDocs` (identity)
newly denied: 1 group (1 request)
  role/indexer docs:ListDocuments arn:acme:docs:eu-1:123456789012:doc/guide (1 request)
    before: ALLOW
      Allow by DocsRead statement 0 `ReadTeamDocuments` (identity)
    after: IMPLICIT_DENY
      no allow in the identity layer
      no allow statement is about this action
2 newly allowed, 1 newly denied, 7 unchanged
"
    );
    let out = iamd(
        &[
            "diff",
            "examples/bundle",
            &new,
            "--requests",
            &requests,
            "--allow-widening",
            "--format",
            "json",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["newlyAllowed"][0]["requests"], 2);
    assert_eq!(
        json["newlyAllowed"][0]["after"]["determining"][0]["policy"],
        "DocsAdmin"
    );
    assert_eq!(json["newlyDenied"][0]["principal"], "role/indexer");
    assert_eq!(json["unchanged"], 7);
    // Narrowing alone passes.
    let out = iamd(&["diff", &new, &new, "--requests", &requests], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("0 newly allowed, 0 newly denied, 10 unchanged\n")
    );
}

#[test]
fn the_summary_lists_changed_permissions_by_principal() {
    let dir = changed();
    let new = dir.path().display().to_string();
    let out = iamd(&["diff", "examples/bundle", &new], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "role/indexer
  docs:ListDocuments on arn:acme:docs:eu-1:123456789012:doc/*: allowed under conditions -> denied
user/alice
  docs:ListDocuments on arn:acme:docs:eu-1:123456789012:doc/*: allowed under conditions -> denied
user/bob
  docs:PurgeDocuments on *: denied -> allowed  (wider)
1 permission wider, 2 narrower
"
    );
    // The reverse change only narrows.
    let out = iamd(&["diff", &new, "examples/bundle", "--format", "json"], "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the reverse widens ListDocuments"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bob = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["principal"] == "user/bob")
        .unwrap();
    assert_eq!(
        (
            bob["before"].as_str(),
            bob["after"].as_str(),
            bob["wider"].as_bool()
        ),
        (Some("allowed"), Some("denied"), Some(false))
    );
    // No change, nothing to say.
    let out = iamd(&["diff", "examples/bundle", "examples/bundle"], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0 permissions wider, 0 narrower\n"
    );
}

#[test]
fn errors_are_status_2() {
    let out = iamd(&["diff", "examples/bundle", "/nonexistent"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the new bundle does not load"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("r.jsonl");
    std::fs::write(&bad, "{\"request\": {}}\n").unwrap();
    let out = iamd(
        &[
            "diff",
            "examples/bundle",
            "examples/bundle",
            "--requests",
            &bad.display().to_string(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("r.jsonl:1: a request needs `principal` and `action`")
    );
}
