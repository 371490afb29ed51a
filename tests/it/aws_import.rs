//! The output of `aws iam get-account-authorization-details` loads as a
//! bundle as it is: plain and URL-encoded documents, default versions,
//! groups, boundaries, trust policies, tags.

use std::path::PathBuf;

use iamd_bundle as bundle;
use iamd_policy::json::Source;
use iamd_tools::simulate::run_bundle;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/aws/authorization-details.json")
}

fn decide(
    b: &bundle::Bundle,
    principal: &str,
    action: &str,
    resource: &str,
) -> (String, Option<String>) {
    let case = format!(
        r#"{{"request": {{"principal": "{principal}", "action": "{action}", "resource": "{resource}"}}}}"#
    );
    let a = run_bundle(
        &Source::new("case", &case),
        b,
        "2026-01-01T00:00:00Z".parse().unwrap(),
    );
    assert!(a.errors.is_none(), "{:?}", a.errors);
    (a.decision.to_owned(), a.denied_by)
}

#[test]
fn the_authorization_details_load_and_decide() {
    let b = bundle::load(&path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.account(), "111122223333");
    let s = b.stats();
    assert_eq!(
        (s.users, s.groups, s.roles, s.managed_policies),
        (2, 1, 1, 3)
    );
    // An inline policy with a variable, and an AWS managed policy via a group.
    assert_eq!(
        decide(
            &b,
            "user/alice",
            "s3:GetObject",
            "arn:aws:s3:::reports/alice/q1.csv"
        )
        .0,
        "Allowed"
    );
    assert_eq!(
        decide(
            &b,
            "user/alice",
            "s3:PutObject",
            "arn:aws:s3:::reports/alice/q1.csv"
        )
        .0,
        "ImplicitlyDenied"
    );
    // The default version (v2) of a customer managed policy, not v1 (s3:*).
    assert_eq!(
        decide(
            &b,
            "arn:aws:iam::111122223333:user/ops/bob",
            "s3:GetObject",
            "arn:aws:s3:::shared/x"
        )
        .0,
        "Allowed"
    );
    assert_eq!(
        decide(&b, "user/bob", "s3:PutObject", "arn:aws:s3:::shared/x").0,
        "ImplicitlyDenied"
    );
    // A URL-encoded inline policy, cut by the permissions boundary.
    assert_eq!(
        decide(&b, "user/bob", "ec2:DescribeInstances", "*"),
        ("ImplicitlyDenied".into(), Some("boundary".into()))
    );
    // A URL-encoded trust policy.
    assert_eq!(
        decide(
            &b,
            "ec2.amazonaws.com",
            "sts:AssumeRole",
            "arn:aws:iam::111122223333:role/service-role/worker"
        )
        .0,
        "Allowed"
    );
    assert_eq!(
        decide(
            &b,
            "lambda.amazonaws.com",
            "sts:AssumeRole",
            "arn:aws:iam::111122223333:role/service-role/worker"
        )
        .0,
        "ImplicitlyDenied"
    );
    // Role tags are principal tags.
    let worker = b.resolve("role/worker").unwrap();
    assert_eq!(
        worker.entity.tags(),
        &[("app".to_owned(), "worker".to_owned())]
    );
}

#[test]
fn problems_in_the_details_name_their_line() {
    let broken = r#"{
  "UserDetailList": [
    {"UserName": "alice", "Arn": "arn:aws:iam::111122223333:user/alice", "GroupList": ["auditors"],
     "AttachedManagedPolicies": [{"PolicyName": "P", "PolicyArn": "arn:aws:iam::111122223333:policy/P"}]}
  ],
  "Policies": [
    {"PolicyName": "P", "DefaultVersionId": "v2",
     "PolicyVersionList": [{"Document": "%7B%22Statement%22%3A5%7D", "VersionId": "v1", "IsDefaultVersion": false}]},
    {"PolicyName": "Q", "DefaultVersionId": "v1",
     "PolicyVersionList": [{"Document": {"Statement": {"Effect": "Allow", "Action": "x", "Resource": "*"}}, "VersionId": "v1", "IsDefaultVersion": true}]}
  ]
}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("details.json");
    std::fs::write(&file, broken).unwrap();
    let errs = bundle::load(&file).unwrap_err().lines();
    let want = [
        "details.json:3:88: user `alice` is in unknown group `auditors`: the export's `GroupDetailList` does not hold it",
        "details.json:7:20: managed policy `P` has no default version in `PolicyVersionList`",
        "details.json:10:41: managed policy `Q`: statement 0: action `x` has no service prefix",
        "details.json:4:67: unknown managed policy `arn:aws:iam::111122223333:policy/P`: the export's `Policies` does not hold it",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    std::fs::write(&file, "{\"UserDetailList\": 5}").unwrap();
    let errs = bundle::load(&file).unwrap_err().lines();
    assert!(errs[0].starts_with("details.json:1:"), "{errs:#?}");
    assert!(
        errs[0].ends_with("(expected the output of `aws iam get-account-authorization-details`)"),
        "{errs:#?}"
    );
}
