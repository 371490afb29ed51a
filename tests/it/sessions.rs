//! Role sessions of a role with a path, against a bundle: the session ARN
//! leaves the path out, and every `Principal`/`NotPrincipal` element names
//! the role with it (issue: a Deny naming the role's ARN missed its
//! sessions, which were then allowed).

use std::path::{Path, PathBuf};

use iamd_bundle as bundle;
use iamd_policy::json::Source;
use iamd_tools::simulate::run_bundle;

/// The example bundle (role `indexer` has the path `/service/`) with a
/// resource policy denying the indexer's role ARN `doc/secret`, a Deny with
/// `NotPrincipal` on `doc/internal/*`, and a role `publisher` whose trust
/// policy lets the indexer (by its role ARN) assume it.
pub(crate) fn pathed_bundle() -> tempfile::TempDir {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/bundle");
    let dir = tempfile::tempdir().unwrap();
    copy(&example, dir.path());
    let resources = dir.path().join("resources.yaml");
    let mut text = std::fs::read_to_string(&resources).unwrap();
    text.push_str(
        r#"
- resource: arn:acme:docs:eu-1:123456789012:doc/secret
  policy:
    Version: "2012-10-17"
    Statement:
      - Sid: DenyIndexer
        Effect: Deny
        Principal: {AWS: arn:aws:iam::123456789012:role/service/indexer}
        Action: docs:GetDocument
- resource: arn:acme:docs:eu-1:123456789012:doc/internal/*
  policy:
    Version: "2012-10-17"
    Statement:
      - Sid: OnlyTheIndexersFirstSession
        Effect: Deny
        NotPrincipal:
          AWS:
            - "123456789012"
            - arn:aws:iam::123456789012:role/service/indexer
            - arn:aws:sts::123456789012:assumed-role/indexer/s1
        Action: docs:GetDocument
"#,
    );
    std::fs::write(&resources, text).unwrap();
    let roles = dir.path().join("roles.yaml");
    let mut text = std::fs::read_to_string(&roles).unwrap();
    text.push_str(
        r#"- name: publisher
  policies: [DocsRead]
  trust:
    Version: "2012-10-17"
    Statement:
      - Sid: TrustIndexer
        Effect: Allow
        Principal: {AWS: arn:aws:iam::123456789012:role/service/indexer}
        Action: sts:AssumeRole
      - Sid: NotTheIndexersSecondSession
        Effect: Deny
        Principal: {AWS: arn:aws:sts::123456789012:assumed-role/indexer/s2}
        Action: sts:AssumeRole
"#,
    );
    std::fs::write(&roles, text).unwrap();
    dir
}

fn copy(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub(crate) const SECRET: &str = "arn:acme:docs:eu-1:123456789012:doc/secret";

fn ask(b: &bundle::Bundle, principal: &str, action: &str, resource: &str) -> (String, Vec<String>) {
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    let case = format!(
        r#"{{"request": {{"principal": "{principal}", "action": "{action}", "resource": "{resource}", "context": {{"docs:Team": "search"}}}}}}"#
    );
    let a = run_bundle(&Source::new("case", &case), b, now);
    assert!(a.errors.is_none(), "{case}: {:?}", a.errors);
    let sids = a
        .matched
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.sid.clone())
        .collect();
    (a.decision.to_owned(), sids)
}

#[test]
fn a_deny_naming_a_pathed_role_denies_its_sessions() {
    let dir = pathed_bundle();
    let b = bundle::load(dir.path()).unwrap();
    for who in [
        "role/indexer",
        "arn:aws:iam::123456789012:role/service/indexer",
        "arn:aws:sts::123456789012:assumed-role/indexer/s1",
        "arn:aws:sts::123456789012:assumed-role/indexer/another",
    ] {
        assert_eq!(
            ask(&b, who, "docs:GetDocument", SECRET),
            (
                "ExplicitlyDenied".to_owned(),
                vec!["DenyIndexer".to_owned()]
            ),
            "{who}"
        );
    }
    // The session takes its role's path: aws:PrincipalArn says so too.
    let r = b
        .resolve("arn:aws:sts::123456789012:assumed-role/indexer/s1")
        .unwrap();
    assert_eq!(
        r.principal.principal_arn(),
        "arn:aws:iam::123456789012:role/service/indexer"
    );
    // A role ARN without the role's path is nobody in this bundle.
    assert!(
        b.resolve("arn:aws:iam::123456789012:role/indexer")
            .is_none()
    );
    // The same for a user named without its path, and a federated-user
    // session (no entity: never rebuilt into the user).
    assert!(
        b.resolve("arn:aws:iam::123456789012:user/engineering/alice")
            .is_some()
    );
    assert!(b.resolve("arn:aws:iam::123456789012:user/alice").is_none());
    assert!(
        b.resolve("arn:aws:sts::123456789012:federated-user/alice")
            .is_none()
    );
}

#[test]
fn not_principal_leaves_out_a_session_only_with_its_role_and_account() {
    let dir = pathed_bundle();
    let b = bundle::load(dir.path()).unwrap();
    let doc = "arn:acme:docs:eu-1:123456789012:doc/internal/plan";
    let s1 = ask(
        &b,
        "arn:aws:sts::123456789012:assumed-role/indexer/s1",
        "docs:GetDocument",
        doc,
    );
    assert_eq!(s1.0, "Allowed", "{s1:?}");
    let s2 = ask(
        &b,
        "arn:aws:sts::123456789012:assumed-role/indexer/s2",
        "docs:GetDocument",
        doc,
    );
    assert_eq!(
        s2,
        (
            "ExplicitlyDenied".to_owned(),
            vec!["OnlyTheIndexersFirstSession".to_owned()]
        )
    );
}

#[test]
fn a_trust_policy_naming_a_pathed_role_trusts_its_sessions() {
    let dir = pathed_bundle();
    let b = bundle::load(dir.path()).unwrap();
    let publisher = "arn:aws:iam::123456789012:role/publisher";
    let (d, sids) = ask(
        &b,
        "arn:aws:sts::123456789012:assumed-role/indexer/s1",
        "sts:AssumeRole",
        publisher,
    );
    assert_eq!(d, "Allowed", "{sids:?}");
    assert!(sids.contains(&"TrustIndexer".to_owned()), "{sids:?}");
    assert_eq!(
        ask(
            &b,
            "arn:aws:sts::123456789012:assumed-role/indexer/s2",
            "sts:AssumeRole",
            publisher
        ),
        (
            "ExplicitlyDenied".to_owned(),
            vec!["NotTheIndexersSecondSession".to_owned()]
        )
    );
    // Another role's session is not trusted.
    assert_eq!(
        ask(
            &b,
            "arn:aws:sts::123456789012:assumed-role/publisher/x",
            "sts:AssumeRole",
            publisher
        )
        .0,
        "ImplicitlyDenied"
    );
}
