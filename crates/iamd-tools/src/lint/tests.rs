//! Each rule with a policy that triggers it and one that does not, the
//! bundle-wide rules on a bundle written for the test, and the renderers.

use super::*;

/// The codes (with lines) that `policy` gets as `kind`.
fn codes(kind: LoneKind, policy: &str) -> Vec<(&'static str, u32)> {
    policy_findings(kind, policy)
        .iter()
        .map(|f| (f.rule.code, f.place.line))
        .collect()
}

fn policy_findings(kind: LoneKind, policy: &str) -> Vec<Finding> {
    super::policy("p.json", policy, kind)
}

fn statement(body: &str) -> String {
    format!("{{\"Version\": \"2012-10-17\", \"Statement\": [\n{body}\n]}}")
}

/// (name, kind, statements, expected codes; the statements start on line 2).
const CASES: &[(&str, LoneKind, &str, &[&str])] = &[
    (
        "allow star",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}"#,
        &["W001", "W006"],
    ),
    (
        "deny star is fine",
        LoneKind::Identity,
        r#"{"Effect": "Deny", "Action": "*", "Resource": "*"}"#,
        &[],
    ),
    (
        "service star on all",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}"#,
        &["W002"],
    ),
    (
        "service star on some",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}"#,
        &[],
    ),
    (
        "not action",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}"#,
        &["W003"],
    ),
    (
        "not resource",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}"#,
        &["W004"],
    ),
    (
        "a boundary may be broad",
        LoneKind::Boundary,
        r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#,
        &[],
    ),
    (
        "an SCP may be broad",
        LoneKind::Scp,
        r#"{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}"#,
        &[],
    ),
    (
        "an RCP denies everyone outside the organization without a warning",
        LoneKind::Rcp,
        r#"{"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-acme"}}}"#,
        &[],
    ),
    (
        "an RCP that allows does not load",
        LoneKind::Rcp,
        r#"{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}"#,
        &["E001"],
    ),
    (
        "open trust",
        LoneKind::Trust,
        r#"{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}"#,
        &["W005"],
    ),
    (
        "open trust with a condition",
        LoneKind::Trust,
        r#"{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}"#,
        &[],
    ),
    (
        "open resource policy",
        LoneKind::Resource,
        r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}"#,
        &["W005"],
    ),
    (
        "delete without mfa",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": ["docs:GetDocument", "docs:DeleteDocument"], "Resource": "*"}"#,
        &["W006"],
    ),
    (
        "delete wildcard without mfa",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "docs:Del*", "Resource": "*"}"#,
        &["W006"],
    ),
    (
        "access keys without mfa",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "iam:CreateAccessKey", "Resource": "*"}"#,
        &["W006"],
    ),
    (
        "policy change without mfa",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "iam:AttachUserPolicy", "Resource": "*"}"#,
        &["W006"],
    ),
    (
        "reading keys is fine",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": ["iam:ListAccessKeys", "iam:GetPolicy"], "Resource": "*"}"#,
        &[],
    ),
    (
        "delete with mfa",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "docs:DeleteDocument", "Resource": "*", "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}}"#,
        &[],
    ),
    (
        "delete guarded by a deny",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "docs:Delete*", "Resource": "*"},
        {"Effect": "Deny", "Action": "docs:*", "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}"#,
        &[],
    ),
    (
        "every destructive verb of a wildcard guarded",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "docs:Del*", "Resource": "*"},
        {"Effect": "Deny", "Action": "docs:Delete*", "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}"#,
        &[],
    ),
    (
        "one destructive verb of a wildcard guarded, not the others",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "docs:*", "Resource": "arn:acme:docs:eu-1:123456789012:doc/*"},
        {"Effect": "Deny", "Action": "docs:Delete*", "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}"#,
        &["W006"],
    ),
    (
        "shadowed",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/x"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}"#,
        &["W007"],
    ),
    (
        "a conditional deny does not shadow",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/x"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}"#,
        &[],
    ),
    (
        "a narrower deny does not shadow",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/x"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}"#,
        &[],
    ),
    (
        "null true against a present key",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"Null": {"aws:SourceIp": "true"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}"#,
        &["W008"],
    ),
    (
        "null true with IfExists is fine",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"Null": {"aws:SourceIp": "true"}, "IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}}"#,
        &[],
    ),
    (
        "equals and not equals",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "docs"}, "StringNotEquals": {"aws:PrincipalTag/team": ["docs", "ops"]}}}"#,
        &["W008"],
    ),
    (
        "equals and not equals, overlapping only",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["docs", "web"]}, "StringNotEquals": {"aws:PrincipalTag/team": "docs"}}}"#,
        &[],
    ),
    (
        "bool both ways",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}, "BoolIfExists": {"aws:SecureTransport": "false"}}}"#,
        &["W008"],
    ),
    (
        "empty numeric range",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"NumericLessThan": {"s3:max-keys": "10"}, "NumericGreaterThanEquals": {"s3:max-keys": "10"}}}"#,
        &["W008"],
    ),
    (
        "a numeric range",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}, "NumericGreaterThanEquals": {"s3:max-keys": "10"}}}"#,
        &[],
    ),
    (
        "equal and not equal, ignoring case",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEqualsIgnoreCase": {"aws:PrincipalTag/team": "Red"}, "StringNotEqualsIgnoreCase": {"aws:PrincipalTag/team": ["red", "blue"]}}}"#,
        &["W008"],
    ),
    (
        "absent, and a negated operator (true when absent)",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"Null": {"aws:SourceIp": "true"}, "NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}"#,
        &[],
    ),
    (
        "absent, and a positive operator (true only when present)",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"Null": {"aws:SourceArn": "true"}, "ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}}"#,
        &["W008"],
    ),
    (
        "equal and like are different operators",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEquals": {"s3:prefix": "a"}, "StringLike": {"s3:prefix": "b*"}}}"#,
        &[],
    ),
    (
        "duplicate",
        LoneKind::Identity,
        r#"{"Sid": "A", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "arn:aws:s3:::b"},
        {"Sid": "B", "Effect": "Allow", "Action": ["s3:listbucket", "s3:GetObject"], "Resource": "arn:aws:s3:::b"}"#,
        &["W009"],
    ),
    (
        "redundant",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/reports/*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}"#,
        &["W010"],
    ),
    (
        "a narrower unconditional allow does not cover",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/x"}"#,
        &[],
    ),
    (
        "variables without version",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}/*"}"#,
        &["W011"],
    ),
    (
        "plain operator on a multivalued key",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": "*", "Condition": {"StringEquals": {"aws:TagKeys": "team"}}}"#,
        &["W012"],
    ),
    (
        "qualified operator on a multivalued key",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": "*", "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}}"#,
        &[],
    ),
    (
        "for all values with allow",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": "*", "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}}"#,
        &["W013"],
    ),
    (
        "for all values with the key required",
        LoneKind::Identity,
        r#"{"Effect": "Allow", "Action": "s3:PutObjectTagging", "Resource": "*", "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}, "Null": {"aws:TagKeys": "false"}}}"#,
        &[],
    ),
];

#[test]
fn each_rule_fires_where_it_should_and_only_there() {
    let mut seen = std::collections::BTreeSet::new();
    for (name, kind, body, expected) in CASES {
        // Version 2008 for the variables case, 2012 otherwise.
        let text = if name.starts_with("variables") {
            format!("{{\"Version\": \"2008-10-17\", \"Statement\": [\n{body}\n]}}")
        } else {
            statement(body)
        };
        let got: Vec<&str> = codes(*kind, &text).into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            &got,
            expected,
            "{name}: {:#?}",
            policy_findings(*kind, &text)
        );
        seen.extend(got);
    }
    // Every statement-level warning has a case.
    for code in [
        "W001", "W002", "W003", "W004", "W005", "W006", "W007", "W008", "W009", "W010", "W011",
        "W012", "W013",
    ] {
        assert!(seen.contains(code), "no case for {code}");
    }
}

#[test]
fn a_finding_names_its_line_statement_and_fix() {
    let text = statement(
        r#"{"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
{"Sid": "Wipe", "Effect": "Allow",
 "Action": "s3:DeleteBucket", "Resource": "*"}"#,
    );
    let f = policy_findings(LoneKind::Identity, &text);
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert_eq!(
        (f.rule.code, f.rule.name),
        ("W006", "sensitive-action-without-mfa")
    );
    assert_eq!(f.place.to_string(), "p.json:4:12");
    assert_eq!(
        f.statement.as_ref().map(ToString::to_string).as_deref(),
        Some("statement 1 (`Wipe`)")
    );
    assert_eq!(f.policy.as_deref(), Some("policy `p.json`"));
    assert!(
        f.message.contains("`s3:DeleteBucket` (destructive)"),
        "{}",
        f.message
    );
    assert!(
        f.fix
            .as_deref()
            .unwrap_or_default()
            .contains("aws:MultiFactorAuthPresent")
    );
}

#[test]
fn a_policy_that_does_not_load_is_an_error_with_its_place() {
    let f = policy_findings(
        LoneKind::Identity,
        "{\"Statement\": [{\"Effect\": \"allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}]}",
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule.code, "E001");
    assert_eq!(f[0].rule.severity, Severity::Error);
    assert_eq!(f[0].place.to_string(), "p.json:1:27");
    assert!(
        f[0].message.contains("`Effect` is `Allow` or `Deny`"),
        "{}",
        f[0].message
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A bundle with one problem of each bundle-wide kind.
fn bundle_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "bundle.yaml",
        "account: \"123456789012\"\norganization: [[Guard]]\n",
    );
    write(
        d,
        "scps/Guard.json",
        r#"{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "*", "Resource": "*"},
  {"Effect": "Deny", "Action": "billing:*", "Resource": "*"}]}"#,
    );
    write(
        d,
        "policies/Billing.json",
        r#"{"Version": "2012-10-17", "Statement": [
  {"Sid": "SeeBills", "Effect": "Allow", "Action": "billing:ViewBilling", "Resource": "*"}]}"#,
    );
    write(
        d,
        "policies/ReadDocs.json",
        r#"{"Version": "2012-10-17", "Statement": [
  {"Sid": "Read", "Effect": "Allow", "Action": "docs:GetDocument", "Resource": "*"}]}"#,
    );
    write(
        d,
        "policies/NoDocs.json",
        r#"{"Version": "2012-10-17", "Statement": [
  {"Effect": "Deny", "Action": "docs:*", "Resource": "*"}]}"#,
    );
    write(
        d,
        "policies/Orphan.json",
        r#"{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "docs:GetDocument", "Resource": "*"}]}"#,
    );
    write(
        d,
        "groups.yaml",
        "- name: readers\n  policies: [ReadDocs, Billing]\n- name: nobody\n  policies: [ReadDocs]\n",
    );
    // alice reads; bob reads too but NoDocs shadows ReadDocs for him only.
    write(
        d,
        "users.yaml",
        "- name: alice\n  groups: [readers]\n- name: bob\n  groups: [readers]\n  policies: [NoDocs]\n",
    );
    write(
        d,
        "roles.yaml",
        r#"- name: deployer
  trust:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Principal: {AWS: ["arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/carol", "arn:aws:iam::999999999999:user/x"]}
        Action: sts:AssumeRole
"#,
    );
    dir
}

#[test]
fn bundle_wide_rules() {
    let dir = bundle_dir();
    let findings = bundle(dir.path());
    let got: Vec<(&str, String, String)> = findings
        .iter()
        .map(|f| {
            let file = f
                .place
                .file
                .strip_prefix(&format!("{}/", dir.path().display()))
                .unwrap_or(&f.place.file)
                .to_owned();
            (
                f.rule.code,
                format!("{file}:{}", f.place.line),
                f.message.clone(),
            )
        })
        .collect();
    let codes: Vec<(&str, &str)> = got.iter().map(|(c, at, _)| (*c, at.as_str())).collect();
    assert_eq!(
        codes,
        [
            ("W016", "groups.yaml:3"),
            ("W007", "policies/Billing.json:2"),
            ("W015", "policies/Orphan.json:2"),
            ("W014", "roles.yaml:3"),
        ],
        "{findings:#?}"
    );
    assert!(
        got[1].2.contains("statement 1 of SCP `Guard`"),
        "{}",
        got[1].2
    );
    assert!(got[3].2.contains("names user `carol`"), "{}", got[3].2);
    // ReadDocs is shadowed for bob but not for alice: no W007 there.
    assert!(
        !got.iter()
            .any(|(_, at, _)| at.starts_with("policies/ReadDocs"))
    );
}

#[test]
fn a_bundle_that_does_not_load_gives_every_error_with_its_place() {
    let dir = bundle_dir();
    write(
        dir.path(),
        "users.yaml",
        "- name: alice\n  groups: [readerz]\n  policies: [Nope]\n",
    );
    let findings = bundle(dir.path());
    let lines: Vec<String> = findings
        .iter()
        .map(|f| format!("{} {}", f.rule.code, f.place))
        .collect();
    let users = dir.path().join("users.yaml").display().to_string();
    assert_eq!(
        lines,
        [format!("E001 {users}:2:12"), format!("E001 {users}:3:14")],
        "{findings:#?}"
    );
    assert!(
        findings[0].message.contains("unknown group `readerz`"),
        "{}",
        findings[0].message
    );
}

#[test]
fn renderers() {
    let text = statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#);
    let findings = policy_findings(LoneKind::Identity, &text);
    let mut human = Vec::new();
    render::human(&findings, &mut human).unwrap();
    let human = String::from_utf8(human).unwrap();
    assert!(human.starts_with("p.json:2:31: warning W001 allow-all-actions: policy `p.json`: statement 0: allows every action (`*`)\n  fix: "), "{human}");
    assert!(human.ends_with("0 errors, 2 warnings\n"), "{human}");
    let json = render::json(&findings);
    assert_eq!(json["warnings"], 2);
    assert_eq!(json["findings"][0]["code"], "W001");
    assert_eq!(json["findings"][0]["line"], 2);
    assert_eq!(json["findings"][0]["statement"]["index"], 0);
    let sarif = render::sarif(&findings);
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().unwrap().len(),
        rules().len()
    );
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "W001");
    assert_eq!(result["level"], "warning");
    assert_eq!(
        run["tool"]["driver"]["rules"][result["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "W001"
    );
    let region = &result["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(2), Some(31))
    );
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "p.json"
    );
}

#[test]
fn codes_are_unique_and_stable() {
    let codes: Vec<&str> = rules().iter().map(|r| r.code).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), codes.len());
    assert_eq!(codes.first(), Some(&"E001"));
    assert_eq!(codes.last(), Some(&"W016"));
}

#[test]
fn a_wildcard_warning_names_a_destructive_verb_no_guard_covers() {
    let f = policy_findings(
        LoneKind::Identity,
        &statement(
            r#"{"Effect": "Allow", "Action": "docs:*", "Resource": "arn:acme:docs:eu-1:123456789012:doc/*"},
            {"Effect": "Deny", "Action": ["docs:Delete*", "docs:Terminate*"], "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}"#,
        ),
    );
    let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "allows `docs:*`, which includes destructive actions (`docs:Remove*`) without requiring MFA"
        ],
    );
}

#[test]
fn documents_of_the_same_text_are_each_reported_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bundle.yaml", "account: \"123456789012\"\n");
    let user = |name: &str| {
        format!(
            "- name: {name}\n  inline:\n    own:\n      Version: \"2012-10-17\"\n      Statement:\n        - {{Effect: Allow, Action: '*', Resource: 'arn:acme:docs:eu-1:123456789012:doc/${{aws:username}}/*'}}\n"
        )
    };
    write(
        d,
        "users.yaml",
        &format!("{}{}", user("alice"), user("bob")),
    );
    let f = bundle(d);
    let w001: Vec<_> = f
        .iter()
        .filter(|f| f.rule.code == "W001")
        .map(|f| (f.place.line, f.policy.clone().unwrap_or_default()))
        .collect();
    assert_eq!(w001.len(), 2, "{f:?}");
    assert_ne!(w001[0].0, w001[1].0, "{w001:?}");
    assert!(
        w001[0].1.contains("alice") && w001[1].1.contains("bob"),
        "{w001:?}"
    );
}
