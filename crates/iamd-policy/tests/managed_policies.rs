//! Every AWS managed policy of the corpus parses and compiles, with the
//! statement count that the corpus index records.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test fails loudly")]

use std::collections::HashMap;
use std::path::PathBuf;

use iamd_policy::json::Source;
use iamd_policy::policy::{Policy, PolicyKind};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/aws-managed-policies")
}

#[test]
fn all_managed_policies_compile_with_their_statement_counts() {
    let index = std::fs::read_to_string(corpus().join("index.tsv")).unwrap();
    let expected: HashMap<String, usize> = index
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_owned(), cols[5].parse().unwrap())
        })
        .collect();
    assert_eq!(expected.len(), 1523);
    let mut failures = Vec::new();
    let mut compiled = 0;
    for (name, statements) in &expected {
        let path = corpus().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        match Policy::parse(&Source::new(name, &text), PolicyKind::Identity) {
            Ok(p) => {
                assert_eq!(p.statements().len(), *statements, "{name}");
                compiled += 1;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} policies failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(compiled, 1523);
}

#[test]
fn administrator_access_allows_everything_and_read_only_does_not_write() {
    use iamd_policy::arn::Principal;
    use iamd_policy::context::Context;
    use iamd_policy::eval::{Layers, Outcome, Request, StatementSet, evaluate};
    use std::sync::Arc;

    let load = |name: &str| {
        let text = std::fs::read_to_string(corpus().join(format!("{name}.json"))).unwrap();
        Arc::new(Policy::parse(&Source::new(name, &text), PolicyKind::Identity).unwrap())
    };
    let alice = Principal::parse("arn:aws:iam::111122223333:user/alice").unwrap();
    let ctx = Context::new();
    let decide = |set: &StatementSet, action: &str, resource: &str| {
        let layers = Layers::identity(set);
        let req = Request::new(&alice, action, resource, &ctx);
        evaluate(&layers, &req, &mut Vec::new()).outcome
    };
    let admin = StatementSet::new([load("AdministratorAccess")]);
    assert_eq!(
        decide(
            &admin,
            "iam:DeleteUser",
            "arn:aws:iam::111122223333:user/bob"
        ),
        Outcome::Allow
    );
    let s3_read = StatementSet::new([load("AmazonS3ReadOnlyAccess")]);
    assert_eq!(
        decide(&s3_read, "s3:GetObject", "arn:aws:s3:::bucket/key"),
        Outcome::Allow
    );
    assert_eq!(
        decide(&s3_read, "s3:PutObject", "arn:aws:s3:::bucket/key"),
        Outcome::ImplicitDeny
    );
}
