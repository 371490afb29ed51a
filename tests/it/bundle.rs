//! `iamd simulate --bundle`: requests against the example bundle, each
//! answer checked against the bundle's intent (see examples/bundle).

use std::path::PathBuf;

use iamd_bundle::{self as bundle, Bundle};
use iamd_policy::json::Source;
use iamd_tools::simulate::run_bundle;

fn example() -> Bundle {
    bundle::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/bundle")).unwrap()
}

fn ask(b: &Bundle, case: &str) -> (String, Vec<String>, Option<String>) {
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    let a = run_bundle(&Source::new("case", case), b, now);
    assert!(a.errors.is_none(), "{case}: {:?}", a.errors);
    let matched = a
        .matched
        .unwrap_or_default()
        .iter()
        .map(|m| format!("{}:{}", m.policy, m.sid.clone().unwrap_or_default()))
        .collect();
    (a.decision.to_owned(), matched, a.denied_by)
}

fn req(principal: &str, action: &str, resource: &str, context: &str) -> String {
    format!(
        r#"{{"request": {{"principal": "{principal}", "action": "{action}", "resource": "{resource}", "context": {context}}}}}"#
    )
}

const DOC: &str = "arn:acme:docs:eu-1:123456789012:doc/x";

#[test]
fn group_policies_and_principal_tags_apply() {
    let b = example();
    // DocsRead (via the developers group) compares docs:Team with the
    // principal's own tag, which the bundle fills.
    let (d, m, _) = ask(
        &b,
        &req(
            "user/alice",
            "docs:GetDocument",
            DOC,
            r#"{"docs:Team": "docs"}"#,
        ),
    );
    assert_eq!(
        (d.as_str(), m),
        ("Allowed", vec!["DocsRead:ReadTeamDocuments".to_owned()])
    );
    let (d, _, by) = ask(
        &b,
        &req(
            "user/alice",
            "docs:GetDocument",
            DOC,
            r#"{"docs:Team": "platform"}"#,
        ),
    );
    assert_eq!(
        (d.as_str(), by.as_deref()),
        ("ImplicitlyDenied", Some("identity"))
    );
    // The full ARN with its path names the same user.
    let (d, _, _) = ask(
        &b,
        &req(
            "arn:aws:iam::123456789012:user/engineering/alice",
            "docs:GetDocument",
            DOC,
            r#"{"docs:Team": "docs"}"#,
        ),
    );
    assert_eq!(d, "Allowed");
}

#[test]
fn inline_policies_use_variables() {
    let b = example();
    let (d, m, _) = ask(
        &b,
        &req(
            "user/alice",
            "docs:PutDocument",
            "arn:acme:docs:eu-1:123456789012:doc/drafts/alice/1",
            "{}",
        ),
    );
    assert_eq!(
        (d.as_str(), m),
        (
            "Allowed",
            vec!["user/alice#own-drafts:WriteOwnDrafts".to_owned()]
        )
    );
    let (d, _, _) = ask(
        &b,
        &req(
            "user/alice",
            "docs:PutDocument",
            "arn:acme:docs:eu-1:123456789012:doc/drafts/bob/1",
            "{}",
        ),
    );
    assert_eq!(d, "ImplicitlyDenied");
}

#[test]
fn boundaries_scps_and_explicit_denies_apply() {
    let b = example();
    // bob is an admin (docs:*), within his DeveloperBoundary.
    assert_eq!(
        ask(&b, &req("user/bob", "docs:PutDocument", DOC, "{}")).0,
        "Allowed"
    );
    // Nothing grants files:*.
    let (d, _, by) = ask(&b, &req("user/bob", "files:GetFile", "*", "{}"));
    assert_eq!(
        (d.as_str(), by.as_deref()),
        ("ImplicitlyDenied", Some("identity"))
    );
    // The boundary allows docs:* and sts:AssumeRole only: bob's admin
    // rights on the indexer role's trust would be cut, were any granted.
    let (d, _, by) = ask(
        &b,
        &req(
            "user/bob",
            "docs:GetDocument",
            DOC,
            r#"{"docs:Team": "platform"}"#,
        ),
    );
    assert_eq!((d.as_str(), by), ("Allowed", None));
    // The boundary's explicit deny.
    let (d, m, _) = ask(&b, &req("user/bob", "docs:PurgeDocuments", DOC, "{}"));
    assert_eq!(
        (d.as_str(), m),
        (
            "ExplicitlyDenied",
            vec!["DeveloperBoundary:NoPurge".to_owned()]
        )
    );
    // The SCP protects the audit folder from everyone but security.
    let (d, m, _) = ask(
        &b,
        &req(
            "user/bob",
            "docs:PutDocument",
            "arn:acme:docs:eu-1:123456789012:doc/audit/1",
            "{}",
        ),
    );
    assert_eq!(
        (d.as_str(), m),
        (
            "ExplicitlyDenied",
            vec!["ProtectAuditLog:OnlySecurityTouchesAudit".to_owned()]
        )
    );
    // MFA guard from the developers group.
    let (d, _, _) = ask(
        &b,
        &req(
            "user/bob",
            "docs:DeleteDocument",
            DOC,
            r#"{"aws:MultiFactorAuthPresent": "false"}"#,
        ),
    );
    assert_eq!(d, "ExplicitlyDenied");
    assert_eq!(
        ask(
            &b,
            &req(
                "user/bob",
                "docs:DeleteDocument",
                DOC,
                r#"{"aws:MultiFactorAuthPresent": "true"}"#
            )
        )
        .0,
        "Allowed"
    );
    // The root user: allowed by default, still under the SCPs.
    assert_eq!(
        ask(&b, &req("123456789012", "files:GetFile", "*", "{}")).0,
        "Allowed"
    );
    assert_eq!(
        ask(
            &b,
            &req(
                "123456789012",
                "docs:PutDocument",
                "arn:acme:docs:eu-1:123456789012:doc/audit/1",
                "{}"
            )
        )
        .0,
        "ExplicitlyDenied"
    );
}

#[test]
fn roles_trust_policies_and_sessions() {
    let b = example();
    let role = "arn:aws:iam::123456789012:role/service/indexer";
    let (d, m, _) = ask(
        &b,
        &req(
            "user/alice",
            "sts:AssumeRole",
            role,
            r#"{"aws:MultiFactorAuthPresent": "true"}"#,
        ),
    );
    assert_eq!(
        (d.as_str(), m),
        ("Allowed", vec!["role/indexer#trust:".to_owned()])
    );
    let (d, _, by) = ask(&b, &req("user/alice", "sts:AssumeRole", role, "{}"));
    assert_eq!(
        (d.as_str(), by.as_deref()),
        ("ImplicitlyDenied", Some("resource"))
    );
    let (d, _, by) = ask(
        &b,
        &req(
            "user/bob",
            "sts:AssumeRole",
            role,
            r#"{"aws:MultiFactorAuthPresent": "true"}"#,
        ),
    );
    assert_eq!(
        (d.as_str(), by.as_deref()),
        ("ImplicitlyDenied", Some("resource"))
    );
    // A session of the role has the role's policies and tags (team=search).
    let session = "arn:aws:sts::123456789012:assumed-role/indexer/job-1";
    assert_eq!(
        ask(
            &b,
            &req(
                session,
                "docs:GetDocument",
                DOC,
                r#"{"docs:Team": "search"}"#
            )
        )
        .0,
        "Allowed"
    );
    assert_eq!(
        ask(
            &b,
            &req(
                "role/indexer",
                "docs:GetDocument",
                DOC,
                r#"{"docs:Team": "search"}"#
            )
        )
        .0,
        "Allowed"
    );
    // A session policy narrows the session.
    let narrowed = format!(
        r#"{{"sessionPolicy": {{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Action": "docs:ListDocuments", "Resource": "*"}}}}, "request": {{"principal": "{session}", "action": "docs:GetDocument", "resource": "{DOC}", "context": {{"docs:Team": "search"}}}}}}"#
    );
    let (d, _, by) = ask(&b, &narrowed);
    assert_eq!(
        (d.as_str(), by.as_deref()),
        ("ImplicitlyDenied", Some("session"))
    );
}

#[test]
fn resource_policies_and_unknown_principals() {
    let b = example();
    let public = "arn:acme:docs:eu-1:123456789012:doc/public/readme";
    let (d, m, _) = ask(&b, &req("*", "docs:GetDocument", public, "{}"));
    assert_eq!(
        (d.as_str(), m),
        (
            "Allowed",
            vec![format!(
                "resource/arn:acme:docs:eu-1:123456789012:doc/public/*:PublicRead"
            )]
        )
    );
    assert_eq!(
        ask(&b, &req("*", "docs:GetDocument", DOC, "{}")).0,
        "ImplicitlyDenied"
    );
    for unknown in [
        "user/mallory",
        "arn:aws:iam::999999999999:user/eve",
        "arn:aws:iam::123456789012:user/alice",
    ] {
        let (d, _, by) = ask(&b, &req(unknown, "docs:GetDocument", public, "{}"));
        assert_eq!(
            (d.as_str(), by.as_deref()),
            ("ImplicitlyDenied", Some("principal")),
            "{unknown}"
        );
    }
}

#[test]
fn bundle_cases_reject_inline_policies() {
    let b = example();
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    let a = run_bundle(
        &Source::new(
            "case",
            r#"{"identityPolicies": [], "request": {"principal": "user/alice", "action": "a:b", "resource": "*"}}"#,
        ),
        &b,
        now,
    );
    assert_eq!(a.decision, "Error");
    assert!(
        a.errors.unwrap()[0].contains(
            "unknown field `identityPolicies` in the case (the bundle gives the policies)"
        )
    );
}
