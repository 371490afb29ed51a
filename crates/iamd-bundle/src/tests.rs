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

#[test]
fn the_same_document_given_many_times_is_compiled_once_and_named_for_each_use() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("bundle.yaml", "account: \"123456789012\"\n");
    let own = "  inline:\n    own:\n      Version: '2012-10-17'\n      Statement:\n        - {Effect: Allow, Action: 'docs:*', Resource: 'arn:acme:docs:eu-1:123456789012:doc/${aws:username}/*'}\n";
    let other = "  inline:\n    own:\n      Statement:\n        - {Effect: Allow, Action: 'docs:Get*', Resource: '*'}\n";
    write(
        "users.yaml",
        &format!(
            "- name: ann\n{own}- name: bob\n{own}- name: cy\n{other}- name: dee\n  inline:\n    fromfile: documents/D.json\n- name: eve\n  inline:\n    fromfile: documents/D.json\n"
        ),
    );
    write(
        "documents/D.json",
        r#"{"Statement": {"Effect": "Allow", "Action": "docs:List*", "Resource": "*"}}"#,
    );
    let b = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let policy = |user: &str| {
        let e = b.entities.get(format!("user/{user}").as_str()).unwrap();
        e.identity().policies()[0].clone()
    };
    let (ann, bob, cy, dee, eve) = (
        policy("ann"),
        policy("bob"),
        policy("cy"),
        policy("dee"),
        policy("eve"),
    );
    assert!(ann.shares_body(&bob), "the same text: one compiled body");
    assert!(!ann.shares_body(&cy), "another text: its own");
    assert!(dee.shares_body(&eve), "the same file: one compiled body");
    // Each use keeps its own name, which answers and explanations show.
    assert_eq!((ann.name(), bob.name()), ("user/ann#own", "user/bob#own"));
    assert_eq!(
        (dee.name(), eve.name()),
        ("user/dee#fromfile", "user/eve#fromfile")
    );
    // And the variable is still each user's own, and the answer names
    // the user's own policy.
    let ask = |user: &str, owner: &str| {
        let q = crate::query::Query {
            principal: format!("user/{user}"),
            action: "docs:Get".into(),
            resource: format!("arn:acme:docs:eu-1:123456789012:doc/{owner}/x"),
            ..crate::query::Query::default()
        };
        b.query(&q, jiff::Timestamp::UNIX_EPOCH, false)
    };
    let v = ask("bob", "bob");
    assert!(v.allowed(), "{v:?}");
    assert_eq!(v.determining[0].policy, "user/bob#own", "{v:?}");
    assert!(!ask("bob", "ann").allowed());
    assert!(ask("ann", "ann").allowed());
}

/// The catalog of [`BundleFiles::catalog_only`] is the one
/// [`BundleFiles::catalog`] makes, and so are its errors.
#[test]
fn a_catalog_without_principals_is_the_catalog_and_finds_the_same_errors() {
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let summary = |c: &Catalog| {
        let documents: Vec<_> = c
            .documents
            .iter()
            .map(|d| (&d.label, d.role, d.kind, &d.file, &d.text, &d.embedded_at))
            .map(|d| format!("{d:?}"))
            .collect();
        let principals: Vec<_> = c
            .principals
            .iter()
            .map(|p| format!("{} {} {:?} {:?}", p.label, p.name, p.identity, p.boundary))
            .collect();
        let groups: Vec<_> = c.groups.iter().map(|g| format!("{g:?}")).collect();
        let managed: Vec<_> = c.managed.iter().map(|m| format!("{m:?}")).collect();
        let mut names: Vec<_> = c.names.iter().cloned().collect();
        names.sort();
        (
            documents,
            principals,
            groups,
            managed,
            c.scps.clone(),
            names,
            c.account.clone(),
        )
    };
    for dir in ["bundle", "authzen/bundle", "aws/authorization-details.json"] {
        let files = BundleFiles::read(&examples.join(dir)).unwrap_or_else(|e| panic!("{e}"));
        let (_, full) = files.catalog().unwrap_or_else(|e| panic!("{e}"));
        let only = files.catalog_only().unwrap_or_else(|e| panic!("{e}"));
        assert!(!only.principals.is_empty() && !only.documents.is_empty());
        assert_eq!(summary(&full), summary(&only), "{dir}");
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("bundle.yaml", "account: \"123456789012\"\n");
    write(
        "users.yaml",
        "- name: a\n  groups: [nope]\n  policies: [Missing]\n- name: a\n",
    );
    let files = BundleFiles::read(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let full = files.catalog().map(|_| ()).unwrap_err().lines();
    assert_eq!(files.catalog_only().map(|_| ()).unwrap_err().lines(), full);
    assert_eq!(full.len(), 3, "{full:?}");
}
