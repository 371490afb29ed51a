use std::path::PathBuf;

use super::*;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/bundle")
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
