use super::*;

#[test]
fn a_dismantled_bundle_is_freed_with_a_pace_point_per_entity() {
    let b =
        load(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle"))
            .unwrap_or_else(|e| panic!("{e}"));
    let (entities, resources) = (b.entities.len(), b.exact_resources.len());
    assert!(entities >= 3, "{entities}");
    assert_eq!(
        crate::pace::points_in_background(move || b.dismantle()),
        (entities + resources) as u64
    );
}

#[test]
fn search_knows_the_principals_resources_and_actions_sorted_and_declared_ones_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "bundle.yaml",
        "account: \"123456789012\"\nsearch:\n  resources: [arn:acme:docs:eu-1:123456789012:doc/b, arn:acme:docs:eu-1:123456789012:doc/a]\n  actions: [docs:Archive]\n",
    );
    write(
        "users.yaml",
        "- name: zed\n  inline:\n    p:\n      Statement:\n        - {Effect: Allow, Action: [docs:Get, 'docs:List*'], Resource: '*'}\n- name: amy\n",
    );
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let k = b.known();
    let strs = |v: &[Box<str>]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(strs(&k.principals), ["user/amy", "user/zed"]);
    assert_eq!(
        strs(&k.resources),
        [
            "arn:acme:docs:eu-1:123456789012:doc/a",
            "arn:acme:docs:eu-1:123456789012:doc/b"
        ]
    );
    assert_eq!(
        strs(&k.actions),
        ["docs:Archive", "docs:Get"],
        "no wildcard names"
    );
    write(
        "bundle.yaml",
        "account: \"123456789012\"\nsearch:\n  resources: ['arn:acme:docs:eu-1:123456789012:doc/*', nope]\n  actions: ['docs:*', Get]\n",
    );
    let e = load(dir.path()).unwrap_err().lines().join("\n");
    assert_eq!(e.matches("is not a resource ARN").count(), 2, "{e}");
    assert_eq!(e.matches("is not an action").count(), 2, "{e}");
    assert!(e.contains("bundle.yaml:3:"), "{e}");
}
