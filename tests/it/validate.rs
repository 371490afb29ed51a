//! `iamd validate` as a program: formats and exit codes.

use crate::cli::iamd;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_example_bundle_has_warnings_and_no_errors() {
    let out = iamd(&["validate", "examples/bundle"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("examples/bundle/policies/DocsAdmin.json:4:53: warning W002 allow-service-wildcard-on-all-resources: managed policy `DocsAdmin`: statement 0 (`AllDocs`)"),
        "{t}"
    );
    assert!(t.ends_with("0 errors, 3 warnings\n"), "{t}");
    // With --deny-warnings, warnings fail.
    let out = iamd(&["validate", "--deny-warnings", "examples/bundle"], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn errors_fail_and_every_format_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"Version\": \"2012-10-17\", \"Statement\": {\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\", \"Condition\": {\"StringEquals\": {}}, \"Extra\": 1}}",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let out = iamd(&["validate", &bad], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains(&format!("{bad}:1:")), "{}", text(&out));
    assert!(
        text(&out).contains("error E001 does-not-load"),
        "{}",
        text(&out)
    );

    let out = iamd(&["validate", "--format", "json", &bad], "");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["errors"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(json["findings"][0]["severity"], "error");

    let out = iamd(
        &["validate", "--format", "sarif", &bad, "examples/bundle"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["level"] == "error"));
    assert!(results.iter().any(|r| r["ruleId"] == "W005"
        && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "examples/bundle/resources.yaml"));

    let out = iamd(&["validate", "/nonexistent/policy.json"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("/nonexistent/policy.json: error E001 does-not-load: cannot read"),
        "{}",
        text(&out)
    );
    // A usage error is 2.
    let out = iamd(&["validate", "--format", "xml", "examples/bundle"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_aws_managed_policy_validates_without_errors() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-managed-policies");
    let mut paths: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    paths.sort();
    assert!(paths.len() > 1500);
    let mut args = vec!["validate", "--format", "json"];
    args.extend(paths.iter().map(String::as_str));
    let out = iamd(&args, "");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["errors"],
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // AdministratorAccess is the textbook `"Action": "*"`.
    let findings = json["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| {
        f["code"] == "W001"
            && f["file"]
                .as_str()
                .unwrap()
                .ends_with("/AdministratorAccess.json")
    }));
    assert_eq!(out.status.code(), Some(0));
}
