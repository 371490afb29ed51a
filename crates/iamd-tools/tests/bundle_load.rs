//! The bundle loader's behaviour, decided through `iamd simulate` cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on the first surprise"
)]

use std::path::PathBuf;

use iamd_bundle::*;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle")
}

#[test]
fn the_example_bundle_loads() {
    let b = load(&example()).unwrap_or_else(|e| panic!("{e}"));
    let s = b.stats();
    assert_eq!(
        (
            s.users,
            s.groups,
            s.roles,
            s.managed_policies,
            s.resource_policies
        ),
        (2, 2, 1, 4, 1)
    );
    assert_eq!(b.scps().len(), 2);
    assert_eq!(b.revision().label.as_deref(), Some("docs-team-2026-11-28"));
    assert_eq!(b.revision().digest.len(), 64);
    let alice = b.resolve("user/alice").unwrap();
    assert_eq!(
        alice.principal.arn(),
        "arn:aws:iam::123456789012:user/engineering/alice"
    );
    assert!(
        b.resolve("arn:aws:iam::123456789012:user/engineering/alice")
            .is_some()
    );
    assert!(
        b.resolve("arn:aws:iam::123456789012:user/alice").is_none(),
        "the path is part of the ARN"
    );
    assert!(
        b.resolve("arn:aws:sts::123456789012:assumed-role/indexer/s1")
            .is_some()
    );
    assert!(b.resolve("arn:aws:iam::123456789012:root").is_some());
    assert!(b.resolve("123456789012").is_some());
    assert!(b.resolve("arn:aws:iam::999999999999:root").is_none());
    assert!(b.resolve("user/mallory").is_none());
    assert!(
        b.resource_policy("arn:acme:docs:eu-1:123456789012:doc/public/readme")
            .is_some()
    );
    assert!(
        b.resource_policy("arn:acme:docs:eu-1:123456789012:doc/private/x")
            .is_none()
    );
    assert!(
        b.resource_policy("arn:aws:iam::123456789012:role/service/indexer")
            .is_some()
    );
    assert!(
        b.resource_policy("arn:aws:iam::123456789012:role/indexer")
            .is_some()
    );
}

/// Writes a bundle from (path, text) pairs into a temporary directory.
fn write(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let dir = write(files);
    load(dir.path()).unwrap_err().lines()
}

/// The answer to the simulate case `case` against `bundle`, now.
fn decide(bundle: &Bundle, case: &str) -> iamd_tools::simulate::Answer {
    iamd_tools::simulate::run_bundle(
        &iamd_policy::json::Source::new("case", case),
        bundle,
        jiff::Timestamp::now(),
    )
}

const ACCOUNT: (&str, &str) = ("bundle.yaml", "account: \"123456789012\"\n");
const READ: (&str, &str) = (
    "policies/Read.json",
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"docs:Get*","Resource":"*"}]}"#,
);

#[test]
fn every_problem_is_reported_with_file_and_line() {
    let errs = errors(&[
        ACCOUNT,
        READ,
        (
            "users.yaml",
            "- name: alice\n  groups: [devs]\n  policies: [Reed]\n- name: Alice\n- name: bad name\n",
        ),
        ("groups.yaml", "- name: developers\n  policies: [Read]\n"),
        (
            "roles.yaml",
            "- name: app\n  trust:\n    Statement:\n      - Effect: Allow\n        Action: sts:AssumeRole\n",
        ),
        (
            "resources.yaml",
            "- resource: doc/1\n  policy:\n    Statement: {Effect: Allow, Principal: '*', Action: 'docs:Get'}\n",
        ),
    ]);
    let want = [
        "users.yaml:2:12: user `alice` is in unknown group `devs`",
        "users.yaml:3:14: unknown managed policy `Reed`: add `policies/Reed.json`",
        "users.yaml:4:9: user `Alice` is defined twice (as `alice` before; IAM names are case-insensitive)",
        "users.yaml:5:9: user name `bad name` is not valid",
        "roles.yaml:3:5: trust policy of role `app`: statement 0: the statement has no `Principal`",
        "resources.yaml:1:13: resource `doc/1` is not an ARN",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

#[test]
fn policy_files_report_their_own_lines() {
    let errs = errors(&[
        ACCOUNT,
        (
            "policies/Bad.json",
            "{\n  \"Statement\": {\n    \"Effect\": \"Alow\", \"Action\": \"a:b\", \"Resource\": \"*\"}\n}",
        ),
    ]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("policies/Bad.json:3:15: statement 0: `Effect` is `Allow` or `Deny`"),
        "{}",
        errs[0]
    );
}

#[test]
fn yaml_errors_have_a_place() {
    let errs = errors(&[ACCOUNT, ("users.yaml", "- name: alice\n  grops: [x]\n")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("users.yaml:2:3: "), "{}", errs[0]);
    assert_eq!(
        errs[0],
        "users.yaml:2:3: unknown field `grops`, expected one of name, path, groups, policies, inline, boundary, tags"
    );
    let errs = errors(&[ACCOUNT, ("users.yaml", "- name: alice\n  name: bob\n")]);
    assert!(errs[0].starts_with("users.yaml:2:"), "{}", errs[0]);
}

#[test]
fn a_bundle_needs_its_account() {
    let errs = errors(&[("users.yaml", "[]")]);
    assert!(errs[0].contains("no `bundle.yaml`"), "{errs:?}");
    let errs = errors(&[("bundle.yaml", "account: \"12\"\n")]);
    assert!(
        errs[0].starts_with("bundle.yaml:1:10: account `12` is not a 12-digit account id"),
        "{errs:?}"
    );
    let errs = errors(&[
        ("bundle.yaml", "account: \"123456789012\"\n"),
        ("bundle.json", "{}"),
    ]);
    assert!(
        errs[0].contains("bundle.yaml and bundle.json give the same part of the bundle"),
        "{errs:?}"
    );
}

#[test]
fn limits_mirror_aws_quotas_and_can_be_raised() {
    let users = "- name: alice\n  policies: [Read, Read, Read]\n  tags: {a: '1', b: '2'}\n";
    let strict = "account: \"123456789012\"\nlimits: {attachedPolicies: 2, tags: 1}\n";
    let errs = errors(&[("bundle.yaml", strict), READ, ("users.yaml", users)]);
    assert!(errs.iter().any(|e| e.contains("attaches 3 managed policies; the limit is 2 (AWS quota: managed policies per user; raise `limits.attachedPolicies`)")), "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("has 2 tags; the limit is 1")),
        "{errs:#?}"
    );
    let dir = write(&[ACCOUNT, READ, ("users.yaml", users)]);
    assert!(load(dir.path()).is_ok());
    let big = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Action":"docs:Get","Resource":"arn:a:docs:::{}"}}]}}"#,
        "x".repeat(7000)
    );
    let errs = errors(&[ACCOUNT, ("policies/Big.json", &big)]);
    assert!(
        errs[0].contains(
            "managed policy `Big` has 7081 characters (white space not counted); the limit is 6144"
        ),
        "{errs:#?}"
    );
}

#[test]
fn managed_policies_by_name_or_arn() {
    let dir = write(&[
        ACCOUNT,
        READ,
        (
            "users.yaml",
            "- name: a\n  policies: [arn:aws:iam::123456789012:policy/team/Read]\n- name: b\n  policies: [arn:aws:iam::aws:policy/Read]\n",
        ),
    ]);
    assert!(load(dir.path()).is_ok());
    let errs = errors(&[
        ACCOUNT,
        READ,
        (
            "users.yaml",
            "- name: a\n  policies: [arn:aws:iam::999999999999:policy/Read, read]\n",
        ),
    ]);
    assert!(
        errs[0].contains("is not a managed policy of this bundle"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("unknown managed policy `read`: did you mean `Read`?"),
        "{errs:#?}"
    );
}

#[test]
fn the_digest_follows_the_content() {
    let dir = write(&[ACCOUNT, READ]);
    let a = BundleFiles::read(dir.path()).unwrap().digest().to_owned();
    assert_eq!(a, BundleFiles::read(dir.path()).unwrap().digest());
    std::fs::write(dir.path().join("users.yaml"), "[]").unwrap();
    let b = BundleFiles::read(dir.path()).unwrap().digest().to_owned();
    assert_ne!(a, b);
    // Files the bundle does not read do not count.
    std::fs::write(dir.path().join("NOTES.md"), "x").unwrap();
    std::fs::create_dir(dir.path().join("..2026_11_28")).unwrap();
    assert_eq!(b, BundleFiles::read(dir.path()).unwrap().digest());
}

#[test]
fn documents_are_given_inline_or_by_path() {
    let role = "- name: app\n  trust: documents/app-trust.json\n  inline:\n    extra: documents/extra.json\n";
    let trust = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
    let extra = r#"{"Statement":{"Sid":"X","Effect":"Allow","Action":"docs:Get","Resource":"*"}}"#;
    let dir = write(&[
        ACCOUNT,
        ("roles.yaml", role),
        ("documents/app-trust.json", trust),
        ("documents/extra.json", extra),
    ]);
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let app = b.resolve("role/app").unwrap();
    assert_eq!(app.entity.identity().policies()[0].name(), "role/app#extra");
    assert!(
        b.resource_policy("arn:aws:iam::123456789012:role/app")
            .is_some()
    );
    // The referenced files are part of the digest.
    let before = b.revision().digest.clone();
    std::fs::write(
        dir.path().join("documents/extra.json"),
        extra.replace("docs:Get", "docs:List"),
    )
    .unwrap();
    assert_ne!(load(dir.path()).unwrap().revision().digest, before);
    // Errors in a referenced file name that file's lines.
    std::fs::write(
        dir.path().join("documents/extra.json"),
        "{\"Statement\": 1}",
    )
    .unwrap();
    let errs = load(dir.path()).unwrap_err().lines();
    assert!(
        errs[0].starts_with(
            "documents/extra.json:1:15: `Statement` is an object or an array of objects"
        ),
        "{errs:#?}"
    );
    let errs = errors(&[
        ACCOUNT,
        ("roles.yaml", "- name: app\n  trust: ../etc/passwd\n"),
    ]);
    assert!(
        errs[0].contains(
            "is not a file of the bundle: give the policy inline, or as `documents/NAME.json`"
        ),
        "{errs:#?}"
    );
}

#[test]
fn large_bundles_split_lists_across_files() {
    let dir = write(&[
        ACCOUNT,
        READ,
        ("users.yaml", "- name: alice\n"),
        ("users.d/team-a.yaml", "- name: bob\n  policies: [Read]\n"),
        ("users.d/team-b.json", r#"[{"name": "carol"}]"#),
        (
            "groups.d/all.yaml",
            "- name: everyone\n  policies: [Read]\n",
        ),
        ("users.d/notes.txt", "not a bundle file"),
    ]);
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.stats().users, b.stats().groups), (3, 1));
    assert!(b.resolve("user/carol").is_some());
    let errs = errors(&[
        ACCOUNT,
        ("users.yaml", "- name: alice\n"),
        (
            "users.d/b.yaml",
            "- name: dave\n- name: ALICE\n  groups: [nope]\n",
        ),
    ]);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("users.d/b.yaml:2:9: user `ALICE` is defined twice")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("users.d/b.yaml:3:12: user `ALICE` is in unknown group `nope`")),
        "{errs:#?}"
    );
}

#[test]
fn a_huge_value_makes_a_short_error() {
    let name = "a".repeat(1_000_000);
    let users = format!("- name: {name}\n  policies: [P{name}]\n");
    let errs = errors(&[ACCOUNT, READ, ("users.yaml", &users)]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    for e in &errs {
        assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..200]);
    }
    assert!(
        errs[0].starts_with(&format!(
            "users.yaml:1:9: user name `{}…` (1000000 bytes) ",
            "a".repeat(iamd_policy::message::QUOTE_CHARS)
        )),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains(&format!(
            "unknown managed policy `P{}…` (1000001 bytes)",
            "a".repeat(iamd_policy::message::QUOTE_CHARS - 1)
        )),
        "{}",
        errs[1]
    );
}

#[test]
fn a_policy_with_errors_is_reported_once_not_as_unknown_everywhere() {
    let broken = (
        "policies/Read.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Alow","Action":"docs:Get*","Resource":"*"}]}"#,
    );
    let scp = (
        "scps/Guard.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*""#,
    );
    let errs = errors(&[
        (
            "bundle.yaml",
            "account: \"123456789012\"\norganization:\n  - [Guard]\n",
        ),
        broken,
        scp,
        (
            "users.yaml",
            "- name: a\n  policies: [Read]\n- name: b\n  boundary: Read\n- name: c\n  policies: [read]\n",
        ),
    ]);
    // The files' own errors, and the reference in another case; never
    // "unknown managed policy `Read`: did you mean `Read`?".
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "policies/Read.json:1:48: statement 0: `Effect` is `Allow` or `Deny`, found `Alow`"
        ),
        "{errs:#?}"
    );
    assert!(errs[1].starts_with("scps/Guard.json:"), "{errs:#?}");
    assert!(
        errs[2].contains("unknown managed policy `read`: did you mean `Read`?"),
        "{errs:#?}"
    );
}

#[test]
fn policy_errors_are_reported_beside_a_broken_bundle_yaml() {
    let broken = (
        "policies/Read.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Alow","Action":"docs:Get*","Resource":"*"}]}"#,
    );
    let errs = errors(&[
        ("bundle.yaml", "acount: \"123456789012\"\n"),
        broken,
        ("users.yaml", "- name: a\n  groups: 5\n"),
    ]);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("bundle.yaml:1:1: unknown field `acount`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("users.yaml:2:11: ")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("policies/Read.json:1:48: ")),
        "{errs:#?}"
    );
}

#[test]
fn a_policy_at_the_size_quota_may_be_all_policy_variables() {
    // 375 variables in one Resource: the document is just under the
    // 6,144-character quota of a managed policy.
    let path = "/${aws:username}".repeat(375);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"docs:GetDocument","Resource":"arn:acme:docs:eu-1:123456789012:doc{path}"}}]}}"#
    );
    assert!(
        policy.len() <= 6144 && policy.len() > 6000,
        "{}",
        policy.len()
    );
    let dir = write(&[
        ACCOUNT,
        ("policies/Own.json", &policy),
        ("users.yaml", "- name: alice\n  policies: [Own]\n"),
    ]);
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let ask = |resource: &str| {
        let case = format!(
            r#"{{"request":{{"principal":"user/alice","action":"docs:GetDocument","resource":"{resource}"}}}}"#
        );
        decide(&b, &case).decision
    };
    let own = format!(
        "arn:acme:docs:eu-1:123456789012:doc{}",
        "/alice".repeat(375)
    );
    assert_eq!(ask(&own), "Allowed");
    let other = format!("{}/bob", &own[..own.len() - 6]);
    assert_eq!(ask(&other), "ImplicitlyDenied");
}

#[test]
fn rcps_guard_the_accounts_own_resources_by_level() {
    let perimeter = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Perimeter","Effect":"Deny","Principal":"*","Action":"docs:*","Resource":"*","Condition":{"StringNotEqualsIfExists":{"aws:PrincipalOrgID":"o-acme"}}}]}"#;
    let public = "- resource: arn:acme:docs:eu-1:123456789012:doc/public/*\n  policy:\n    Statement: {Effect: Allow, Principal: '*', Action: 'docs:GetDocument'}\n";
    let dir = write(&[
        (
            "bundle.yaml",
            "account: \"123456789012\"\nresourceControls:\n  - []\n  - [Perimeter]\n",
        ),
        ("rcps/Perimeter.json", perimeter),
        READ,
        ("users.yaml", "- name: alice\n  policies: [Read]\n"),
        ("resources.yaml", public),
    ]);
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.rcps().len(), 2);
    let ask = |principal: &str, resource: &str, org: Option<&str>| {
        let context = org.map_or_else(String::new, |o| {
            format!(r#","context":{{"aws:PrincipalOrgID":"{o}"}}"#)
        });
        let case = format!(
            r#"{{"request":{{"principal":"{principal}","action":"docs:GetDocument","resource":"{resource}"{context}}}}}"#
        );
        let a = decide(&b, &case);
        (a.decision, a.denied_by.unwrap_or_default())
    };
    let own = "arn:acme:docs:eu-1:123456789012:doc/public/x";
    assert_eq!(ask("user/alice", own, Some("o-acme")).0, "Allowed");
    assert_eq!(
        ask("user/alice", own, Some("o-other")).0,
        "ExplicitlyDenied"
    );
    // The headline case: a public resource, an anonymous caller.
    assert_eq!(ask("*", own, None).0, "ExplicitlyDenied");
    // Another account's resource meets that account's RCPs, not these:
    // no explicit deny, only the missing grant of the other account.
    let theirs = "arn:acme:docs:eu-1:999988887777:doc/x";
    assert_eq!(
        ask("user/alice", theirs, Some("o-other")),
        ("ImplicitlyDenied", "resource".to_owned())
    );

    let errs = errors(&[
        (
            "bundle.yaml",
            "account: \"123456789012\"\nresourceControls:\n  - [Perimetre]\n",
        ),
        ("rcps/Perimeter.json", perimeter),
        (
            "rcps/Grant.json",
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
        ),
    ]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "rcps/Grant.json:1:24: statement 0: a resource control policy only denies"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("bundle.yaml:3:6: unknown RCP `Perimetre`: add `rcps/Perimetre.json`"),
        "{errs:#?}"
    );
}

#[test]
fn an_aws_export_takes_its_organization_policies_from_the_directory() {
    let export = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/aws/authorization-details.json"),
    )
    .unwrap();
    let tls_only = r#"{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:SecureTransport":"false"}}}]}"#;
    let dir = write(&[
        (
            "bundle.yaml",
            "account: \"111122223333\"\nresourceControls:\n  - [TlsOnly]\n",
        ),
        ("aws-export.json", &export),
        ("rcps/TlsOnly.json", tls_only),
    ]);
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.rcps().len(), 1);
    let ask = |tls: &str| {
        let case = format!(
            r#"{{"request":{{"principal":"user/alice","action":"s3:GetObject","resource":"arn:aws:s3:::reports/alice/q1.csv","context":{{"aws:SecureTransport":"{tls}"}}}}}}"#
        );
        decide(&b, &case).decision
    };
    // alice's own inline policy, from the export; the RCP, from the
    // directory.
    assert_eq!(ask("true"), "Allowed");
    assert_eq!(ask("false"), "ExplicitlyDenied");

    let errs = errors(&[
        ("bundle.yaml", "account: \"123456789012\"\n"),
        ("aws-export.json", &export),
        ("users.yaml", "- name: carol\n"),
    ]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("aws-export.json: the bundle also has users")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(
            "bundle.yaml:1:10: account `123456789012` is not the export's account `111122223333`"
        )),
        "{errs:#?}"
    );
}

#[test]
fn the_bundles_organization_is_a_fact_of_its_principals_only() {
    let dir = write(&[
        (
            "bundle.yaml",
            "account: \"123456789012\"\norganizationId: o-acme123456\n",
        ),
        ("users.yaml", "- name: alice\n"),
        (
            "roles.yaml",
            "- name: app\n  trust: {Statement: {Effect: Allow, Principal: {AWS: '123456789012'}, Action: 'sts:AssumeRole'}}\n",
        ),
    ]);
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let org_of = |who: &str| {
        let resolved = b.resolve(who).unwrap();
        let mut ctx = iamd_policy::context::Context::new();
        // What a caller claims is dropped: the server owns the fact.
        ctx.insert(
            "aws:PrincipalOrgID",
            iamd_policy::context::ContextValue::Single("o-claimed0000".into()),
        )
        .unwrap();
        ctx.add_facts(resolved.facts(), jiff::Timestamp::now(), true);
        ctx.get("aws:PrincipalOrgID").map(|v| format!("{v:?}"))
    };
    let acme = Some(format!(
        "{:?}",
        iamd_policy::context::Values::Single("o-acme123456")
    ));
    assert_eq!(org_of("user/alice"), acme);
    assert_eq!(
        org_of("arn:aws:sts::123456789012:assumed-role/app/s1"),
        acme
    );
    assert_eq!(org_of("123456789012"), acme);
    // An anonymous caller or a service: none, and none it can claim.
    assert_eq!(org_of("*"), None);
    assert_eq!(org_of("ec2.amazonaws.com"), None);

    let errs = errors(&[(
        "bundle.yaml",
        "account: \"123456789012\"\norganizationId: acme\n",
    )]);
    assert!(
        errs[0].starts_with("bundle.yaml:2:17: organizationId `acme` is not an organization id"),
        "{errs:#?}"
    );
}
