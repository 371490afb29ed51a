//! A reload that reuses kept work makes the bundle a full compile makes:
//! the same revision, statistics, names and answers, decision by decision,
//! and the same errors; over random edits of a small bundle of every kind
//! of file.

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;

use crate::query::Query;
use crate::{Bundle, BundleFiles, Cache, ReadLimits};

const ACTIONS: [&str; 6] = [
    "svc:Get",
    "svc:Put",
    "svc:*",
    "docs:Read",
    "docs:Delete",
    "*",
];

#[derive(Debug, Clone)]
struct User {
    name: String,
    groups: Vec<usize>,
    policies: Vec<usize>,
    team: usize,
    action: usize,
    document: bool,
}

#[derive(Debug, Clone)]
struct Role {
    name: String,
    policies: Vec<usize>,
    trusted: usize,
}

/// A bundle, as what its files say.
#[derive(Debug, Clone)]
struct Model {
    users: Vec<User>,
    groups: Vec<Vec<usize>>,
    /// Each managed policy: allows (or denies) this action of `ACTIONS`.
    managed: Vec<(bool, usize)>,
    roles: Vec<Role>,
    document: usize,
    organization: bool,
    /// A comment before this user (moves no entry but changes its text).
    comment: Option<usize>,
    /// `users.yaml` ends with an entry that does not parse.
    broken: bool,
}

impl Model {
    fn new(users: usize) -> Self {
        Self {
            users: (0..users)
                .map(|u| User {
                    name: format!("u{u}"),
                    groups: vec![u % 3],
                    policies: vec![u % 4],
                    team: u % 2,
                    action: u % ACTIONS.len(),
                    document: u % 3 == 0,
                })
                .collect(),
            groups: vec![vec![0], vec![1, 2], vec![]],
            managed: vec![(true, 0), (true, 1), (false, 4), (true, 3)],
            roles: (0..3)
                .map(|r| Role {
                    name: format!("r{r}"),
                    policies: vec![r % 4],
                    trusted: r,
                })
                .collect(),
            document: 3,
            organization: false,
            comment: None,
            broken: false,
        }
    }

    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut add = |name: &str, text: String| files.push((name.to_owned(), text.into_bytes()));
        let mut bundle = String::from("account: \"123456789012\"\n");
        if self.organization {
            bundle.push_str("organizationId: o-a1b2c3d4e5\n");
        }
        add("bundle.yaml", bundle);
        for (i, (allow, action)) in self.managed.iter().enumerate() {
            let effect = if *allow { "Allow" } else { "Deny" };
            add(
                &format!("policies/P{i}.json"),
                format!(
                    r#"{{"Statement": [{{"Effect": "{effect}", "Action": "{}", "Resource": "*", "Condition": {{"StringEquals": {{"aws:PrincipalTag/team": "t{}"}}}}}}]}}"#,
                    ACTIONS[*action],
                    i % 2
                ),
            );
        }
        add(
            "documents/D.json",
            format!(
                r#"{{"Statement": {{"Effect": "Allow", "Action": "{}", "Resource": "*"}}}}"#,
                ACTIONS[self.document]
            ),
        );
        let list = |v: &[usize], prefix: &str| {
            v.iter()
                .map(|i| format!("{prefix}{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut groups = String::new();
        for (i, g) in self.groups.iter().enumerate() {
            let _ = writeln!(groups, "- name: g{i}\n  policies: [{}]", list(g, "P"));
        }
        add("groups.yaml", groups);
        let mut users = String::from("# users\n");
        for (i, u) in self.users.iter().enumerate() {
            if self.comment == Some(i) {
                users.push_str("# a comment\n\n");
            }
            let _ = writeln!(
                users,
                "- name: {}\n  groups: [{}]\n  policies: [{}]\n  tags: {{team: t{}}}\n  inline:\n    own:\n      Version: '2012-10-17'\n      Statement:\n        - {{Effect: Allow, Action: '{}', Resource: 'arn:acme:docs:eu-1:123456789012:doc/${{aws:username}}/*'}}",
                u.name,
                list(&u.groups, "g"),
                list(&u.policies, "P"),
                u.team,
                ACTIONS[u.action]
            );
            if u.document {
                users.push_str("    doc: documents/D.json\n");
            }
        }
        if self.broken {
            users.push_str("- name: [broken\n");
        }
        add("users.yaml", users);
        let mut roles = String::new();
        for r in &self.roles {
            let _ = writeln!(
                roles,
                "- name: {}\n  policies: [{}]\n  trust:\n    Statement:\n      - {{Effect: Allow, Principal: {{AWS: 'arn:aws:iam::123456789012:user/u{}'}}, Action: 'sts:AssumeRole'}}",
                r.name,
                list(&r.policies, "P"),
                r.trusted
            );
        }
        add("roles.yaml", roles);
        files
    }

    fn read(&self) -> BundleFiles {
        BundleFiles::from_files(Path::new("model"), self.files(), &ReadLimits::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every principal the answers are compared for: the model's, and
    /// some it may not have.
    fn principals(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .users
            .iter()
            .map(|u| format!("user/{}", u.name))
            .chain(self.roles.iter().map(|r| format!("role/{}", r.name)))
            .collect();
        out.extend(["user/u0", "user/new", "role/r0"].map(String::from));
        out
    }
}

#[derive(Debug, Clone)]
enum Edit {
    UserAction(usize, usize),
    UserGroups(usize, Vec<usize>),
    UserPolicies(usize, Vec<usize>),
    UserTeam(usize, usize),
    UserDocument(usize),
    Rename(usize, usize),
    Add(usize),
    Remove(usize),
    Swap(usize, usize),
    Managed(usize, bool, usize),
    Group(usize, Vec<usize>),
    RoleTrust(usize, usize),
    RolePolicies(usize, Vec<usize>),
    Document(usize),
    Organization,
    Comment(usize),
    Break,
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = 0usize..12;
    let refs = |n: usize| proptest::collection::vec(0..n, 0..3);
    prop_oneof![
        (i.clone(), 0..ACTIONS.len()).prop_map(|(u, a)| Edit::UserAction(u, a)),
        (i.clone(), refs(4)).prop_map(|(u, g)| Edit::UserGroups(u, g)),
        (i.clone(), refs(5)).prop_map(|(u, p)| Edit::UserPolicies(u, p)),
        (i.clone(), 0..3usize).prop_map(|(u, t)| Edit::UserTeam(u, t)),
        i.clone().prop_map(Edit::UserDocument),
        (i.clone(), 0..12usize).prop_map(|(u, n)| Edit::Rename(u, n)),
        (0..20usize).prop_map(Edit::Add),
        i.clone().prop_map(Edit::Remove),
        (i.clone(), i.clone()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (0..4usize, any::<bool>(), 0..ACTIONS.len()).prop_map(|(p, e, a)| Edit::Managed(p, e, a)),
        (0..3usize, refs(5)).prop_map(|(g, p)| Edit::Group(g, p)),
        (0..3usize, 0..8usize).prop_map(|(r, u)| Edit::RoleTrust(r, u)),
        (0..3usize, refs(4)).prop_map(|(r, p)| Edit::RolePolicies(r, p)),
        (0..ACTIONS.len()).prop_map(Edit::Document),
        Just(Edit::Organization),
        i.prop_map(Edit::Comment),
        Just(Edit::Break),
    ]
}

impl Model {
    /// Applies `edit`; some make a bundle with errors (an unknown group or
    /// policy, a name given twice, a broken file), as edits do.
    fn apply(&mut self, edit: &Edit) {
        let n = self.users.len().max(1);
        match edit.clone() {
            Edit::UserAction(u, a) => {
                if let Some(u) = self.users.get_mut(u % n) {
                    u.action = a;
                }
            }
            Edit::UserGroups(u, g) => {
                if let Some(u) = self.users.get_mut(u % n) {
                    u.groups = g;
                }
            }
            Edit::UserPolicies(u, p) => {
                if let Some(u) = self.users.get_mut(u % n) {
                    u.policies = p;
                }
            }
            Edit::UserTeam(u, t) => {
                if let Some(u) = self.users.get_mut(u % n) {
                    u.team = t;
                }
            }
            Edit::UserDocument(u) => {
                if let Some(u) = self.users.get_mut(u % n) {
                    u.document = !u.document;
                }
            }
            Edit::Rename(u, name) => {
                if let Some(u) = self.users.get_mut(u % n) {
                    u.name = format!("u{name}");
                }
            }
            Edit::Add(name) => self.users.push(User {
                name: format!("u{name}"),
                groups: vec![name % 3],
                policies: vec![],
                team: name % 2,
                action: name % ACTIONS.len(),
                document: false,
            }),
            Edit::Remove(u) => {
                if !self.users.is_empty() {
                    self.users.remove(u % n);
                }
            }
            Edit::Swap(a, b) => {
                if !self.users.is_empty() {
                    self.users.swap(a % n, b % n);
                }
            }
            Edit::Managed(p, allow, a) => self.managed[p] = (allow, a),
            Edit::Group(g, p) => self.groups[g] = p,
            Edit::RoleTrust(r, u) => self.roles[r].trusted = u,
            Edit::RolePolicies(r, p) => self.roles[r].policies = p,
            Edit::Document(a) => self.document = a,
            Edit::Organization => self.organization = !self.organization,
            Edit::Comment(u) => self.comment = Some(u % n),
            Edit::Break => self.broken = !self.broken,
        }
    }
}

/// Everything a bundle answers, as text: revision, statistics, names,
/// and every decision of a grid of principals, actions and resources.
fn answers(b: &Bundle, model: &Model) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", b.revision()),
        format!("{:?}", b.stats()),
        format!("{:?}", b.known().principals),
    ];
    let resources = [
        "arn:acme:svc:eu-1:123456789012:thing/1",
        "arn:acme:docs:eu-1:123456789012:doc/u1/x",
        "arn:aws:iam::123456789012:role/r0",
        "arn:aws:iam::123456789012:role/r2",
        "*",
    ];
    let actions = [
        "svc:Get",
        "svc:Put",
        "docs:Read",
        "docs:Delete",
        "sts:AssumeRole",
    ];
    for principal in model.principals() {
        for action in actions {
            for resource in resources {
                let q = Query {
                    principal: principal.clone(),
                    action: action.into(),
                    resource: resource.into(),
                    ..Query::default()
                };
                let v = b.query(&q, jiff::Timestamp::UNIX_EPOCH, false);
                out.push(without_ids(&format!(
                    "{principal} {action} {resource}: {v:?}"
                )));
            }
        }
    }
    // A role's trust policy, as the resource policy of its ARN.
    for r in 0..3 {
        out.push(format!(
            "trust r{r}: {:?}",
            b.resource_policy(&format!("arn:aws:iam::123456789012:role/r{r}"))
                .map(|s| s.policies().len())
        ));
    }
    out
}

/// `text` without the numbers of `PolicyId(...)` (addresses, which differ
/// from one compile to the next).
fn without_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("PolicyId(") {
        out.push_str(&rest[..i + 9]);
        rest = rest[i + 9..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// Compiles `model` with the cache and afresh, and asserts they agree.
fn check(model: &Model, cache: &mut Cache) -> Result<(), TestCaseError> {
    let files = model.read();
    let fresh = files.compile();
    let cached = files.compile_cached(cache);
    match (&fresh, &cached) {
        (Ok(a), Ok(b)) => {
            // Every user and role was either reused or compiled.
            let (reused, built) = cache.last_load();
            prop_assert_eq!(reused + built, b.stats().users + b.stats().roles);
            let (a, b) = (answers(a, model), answers(b, model));
            for (a, b) in a.iter().zip(&b) {
                prop_assert_eq!(a, b);
            }
            prop_assert_eq!(a.len(), b.len());
        }
        (Err(a), Err(b)) => prop_assert_eq!(a.lines(), b.lines()),
        _ => prop_assert!(
            false,
            "a full compile gave {:?}, the cached one {:?}",
            fresh.as_ref().map(|_| ()).map_err(|e| e.lines()),
            cached.as_ref().map(|_| ()).map_err(|e| e.lines())
        ),
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("IAMD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn a_cached_compile_answers_as_a_full_compile(
        users in 0usize..10,
        edits in proptest::collection::vec(edit(), 1..10),
    ) {
        let mut model = Model::new(users);
        let mut cache = Cache::new();
        check(&model, &mut cache)?;
        for e in &edits {
            model.apply(e);
            check(&model, &mut cache)?;
        }
    }
}

#[test]
fn a_change_of_one_user_compiles_that_user_only() {
    let mut model = Model::new(10);
    let mut cache = Cache::new();
    model.read().compile_cached(&mut cache).unwrap();
    assert_eq!(cache.last_load(), (0, 13), "everything compiled at first");
    assert_eq!(cache.entries(), 13);
    model.apply(&Edit::UserAction(4, 5));
    let b = model.read().compile_cached(&mut cache).unwrap();
    assert_eq!(cache.last_load(), (12, 1), "one user compiled again");
    let q = Query {
        principal: "user/u4".into(),
        action: "docs:Read".into(),
        resource: "arn:acme:docs:eu-1:123456789012:doc/u4/x".into(),
        ..Query::default()
    };
    assert!(b.query(&q, jiff::Timestamp::UNIX_EPOCH, false).allowed());
    // A managed policy: only the users and roles attaching it, directly or
    // through a group (P1: u1, u5, u9 and the users of g1; role r1).
    model.apply(&Edit::Managed(1, false, 0));
    model.read().compile_cached(&mut cache).unwrap();
    let users_of_p1: Vec<_> = model
        .users
        .iter()
        .filter(|u| u.policies.contains(&1) || u.groups.contains(&1))
        .map(|u| u.name.clone())
        .collect();
    assert_eq!(
        cache.last_load(),
        (13 - users_of_p1.len() - 1, users_of_p1.len() + 1),
        "{users_of_p1:?}"
    );
    // The account's settings: everything again.
    model.apply(&Edit::Organization);
    model.read().compile_cached(&mut cache).unwrap();
    assert_eq!(cache.last_load(), (0, 13));
}

#[test]
fn a_bad_bundle_leaves_the_cache_as_it_was_and_reports_a_full_compile_errors() {
    let mut model = Model::new(6);
    let mut cache = Cache::new();
    model.read().compile_cached(&mut cache).unwrap();
    model.apply(&Edit::UserGroups(2, vec![3]));
    let e = model.read().compile_cached(&mut cache).unwrap_err();
    assert_eq!(e.lines(), model.read().compile().unwrap_err().lines());
    assert!(
        e.lines()[0].starts_with("users.yaml:"),
        "the error is at its place: {e}"
    );
    assert_eq!(cache.last_load(), (0, 9), "the cache of the last good load");
    model.apply(&Edit::UserGroups(2, vec![0]));
    model.read().compile_cached(&mut cache).unwrap();
    assert_eq!(cache.last_load().1, 1, "only the user fixed is compiled");
}

#[test]
fn a_large_users_file_parsed_in_chunks_makes_the_bundle_of_a_full_compile() {
    // The tests' chunks are small: 40 users make several, on every CPU.
    let mut model = Model::new(40);
    let mut cache = Cache::new();
    check(&model, &mut cache).unwrap();
    assert_eq!(cache.last_load(), (0, 43));
    // A broken entry in the middle: the load runs again in one piece, and
    // the errors are a full compile's, at their places.
    model.users[20].groups = vec![7];
    let mut cache = Cache::new();
    let e = model.read().compile_cached(&mut cache).unwrap_err();
    assert_eq!(e.lines(), model.read().compile().unwrap_err().lines());
    assert!(e.lines()[0].starts_with("users.yaml:"), "{e}");
}

#[test]
fn an_entry_cut_in_two_is_parsed_in_one_piece() {
    // A quoted tag value over two lines, the second at column 0 looking
    // like an entry: the cut has one piece too many.
    let model = Model::new(40);
    let mut files = model.files();
    let (_, users) = files.iter_mut().find(|(n, _)| n == "users.yaml").unwrap();
    let text = String::from_utf8(users.clone()).unwrap();
    let cut = "  tags: {team: t1, note: \"a\n- b\"}\n";
    let text = text.replacen("  tags: {team: t1}\n", cut, 1);
    assert!(text.contains(cut));
    *users = text.into_bytes();
    let files = BundleFiles::from_files(Path::new("model"), files, &ReadLimits::default()).unwrap();
    let mut cache = Cache::new();
    let full = files.compile().unwrap_or_else(|e| panic!("{e}"));
    let cached = files
        .compile_cached(&mut cache)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answers(&full, &model), answers(&cached, &model));
    assert_eq!(cache.last_load(), (0, 43));
}
