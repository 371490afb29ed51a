//! `iamd test`: the example bundle's own suite, a failing suite in every
//! format, and the exit codes.

use crate::cli::iamd;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_example_bundle_passes_its_own_suite_with_full_coverage() {
    let out = iamd(&["test", "examples/bundle"], "");
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(
            "examples/bundle/tests/docs.yaml\n  ok    alice reads a document of her team\n"
        ),
        "{text}"
    );
    assert!(text.contains("15 passed, 0 failed\n"), "{text}");
    assert!(
        text.ends_with("coverage: 12 of 12 statements exercised (100%)\n"),
        "{text}"
    );
}

const FAILING: &str = r#"
fixtures:
  context: {team: {docs:Team: docs}}
cases:
  - name: passes
    principal: user/alice
    action: docs:GetDocument
    resource: arn:acme:docs:eu-1:123456789012:doc/guide
    context: team
    expect: allow
  - name: <wrong> decision
    principal: user/alice
    action: docs:GetDocument
    resource: arn:acme:docs:eu-1:123456789012:doc/guide
    expect: allow
  - name: wrong statement
    principal: user/bob
    action: docs:PurgeDocuments
    resource: arn:acme:docs:eu-1:123456789012:doc/guide
    expect: deny
    determining: [DocsAdmin]
  - name: broken
    principal: user/bob
    action: docs:X
    context: [missing]
    expect: allowed-maybe
"#;

#[test]
fn failures_are_explained_in_every_format_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.yaml");
    std::fs::write(&suite, FAILING).unwrap();
    let suite = suite.display().to_string();

    let out = iamd(&["test", "examples/bundle", &suite, "--coverage"], "");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for expected in [
        "  ok    passes\n",
        &format!(
            "  FAIL  <wrong> decision ({suite}:11)\n        expected ALLOW, got IMPLICIT_DENY\n        no allow in the identity layer\n        nearest allow: Allow by DocsRead statement 0 `ReadTeamDocuments` (identity)\n          failed: condition `StringEquals` on `docs:Team`: the key is absent\n        missing context keys: docs:Team\n"
        ),
        "        EXPLICIT_DENY as expected, but not by DocsAdmin\n        Deny by DeveloperBoundary statement 1 `NoPurge` (boundary)\n",
        &format!(
            "error: {suite}:22: case `broken`: no context fixture `missing` (fixtures: team)\n"
        ),
        "`expect: allowed-maybe`: write `allow`, `deny`, `explicit-deny` or `implicit-deny`",
        "1 passed, 4 failed\n",
        "  not exercised: examples/bundle/users.yaml:8:7: inline policy `own-drafts` of user `alice`: statement 0 (`WriteOwnDrafts`)\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let out = iamd(&["test", "examples/bundle", &suite, "--format", "json"], "");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["passed"].as_u64(), json["failed"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(json["cases"][1]["verdict"]["decision"], "IMPLICIT_DENY");
    assert_eq!(
        json["cases"][1]["verdict"]["explanation"]["missingContextKeys"][0],
        "docs:Team"
    );
    assert_eq!(
        json["cases"][0]["verdict"]["determining"][0]["sid"],
        "ReadTeamDocuments"
    );
    assert_eq!(json["errors"].as_array().unwrap().len(), 2);
    assert!(json["coverage"]["exercised"].as_u64() < json["coverage"]["total"].as_u64());

    let out = iamd(
        &["test", "examples/bundle", &suite, "--format", "junit"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"iamd\" tests=\"5\" failures=\"2\" errors=\"2\">"), "{xml}");
    assert!(
        xml.contains("<testcase name=\"&lt;wrong&gt; decision\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected ALLOW, got IMPLICIT_DENY\">"),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase").count(), 5, "{xml}");
    assert!(xml.trim_end().ends_with("</testsuites>"));
}

#[test]
fn a_bundle_that_does_not_load_or_no_suite_is_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = iamd(&["test", &dir.path().display().to_string()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the bundle does not load"));
    let copy = dir.path().join("b");
    std::fs::create_dir(&copy).unwrap();
    for f in ["bundle.yaml", "users.yaml"] {
        std::fs::copy(format!("examples/bundle/{f}"), copy.join(f)).unwrap();
    }
    std::fs::write(copy.join("bundle.yaml"), "account: \"123456789012\"\n").unwrap();
    std::fs::write(copy.join("users.yaml"), "- name: alice\n").unwrap();
    let out = iamd(&["test", &copy.display().to_string()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no suites: write"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
