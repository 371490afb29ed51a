//! Properties of the compiled evaluator, checked on random policies:
//! it agrees with a tiny reference evaluator written here from the rules,
//! statement order never matters, adding a Deny never turns a deny into an
//! allow, and no input makes the parser or the simulator panic.

use std::sync::Arc;

use proptest::prelude::*;

use iamd_policy::arn::Principal;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{Layers, Outcome, Request, StatementSet, evaluate};
use iamd_policy::json::Source;
use iamd_policy::policy::{Policy, PolicyKind};

// === random policies ===

#[derive(Debug, Clone)]
struct Stmt {
    allow: bool,
    not_action: bool,
    actions: Vec<&'static str>,
    not_resource: bool,
    resources: Vec<&'static str>,
    condition: Option<(&'static str, &'static str, Vec<&'static str>)>,
}

const ACTIONS: &[&str] = &[
    "*", "a:*", "a:Get*", "a:G?t", "a:get", "b:Put", "b:*Item", "*:Get", "A:GET",
];
const REQUEST_ACTIONS: &[&str] = &[
    "a:Get",
    "a:get",
    "a:GetItem",
    "a:Got",
    "b:Put",
    "b:PutItem",
    "c:Get",
    "A:GETITEM",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:p:s:r:1:doc/*",
    "arn:p:s:*:1:doc/?",
    "arn:p:s:r:1:doc/x",
    "arn:p:s:r:*:*",
    "arn:p:s:r:1:doc/*/y",
    "arn:p:t:r:1:*",
];
const REQUEST_RESOURCES: &[&str] = &[
    "arn:p:s:r:1:doc/x",
    "arn:p:s:q:1:doc/y",
    "arn:p:s:r:1:doc/a/y",
    "arn:p:s:r:1:doc/a:b",
    "arn:p:t:r:1:doc/x",
    "arn:p:s:r:1:other",
];
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
];
const KEYS: &[&str] = &["k:a", "k:b"];
const VALUES: &[&str] = &["x", "y", "x*", "?"];
const REQUEST_VALUES: &[&str] = &["x", "y", "xy", "z", "?"];

fn stmt() -> impl Strategy<Value = Stmt> {
    (
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::collection::vec(prop::sample::select(ACTIONS), 1..3),
        prop::bool::weighted(0.2),
        prop::collection::vec(prop::sample::select(RESOURCES), 1..3),
        prop::option::weighted(
            0.4,
            (
                prop::sample::select(OPERATORS),
                prop::sample::select(KEYS),
                prop::collection::vec(prop::sample::select(VALUES), 1..3),
            ),
        ),
    )
        .prop_map(
            |(allow, not_action, actions, not_resource, resources, condition)| Stmt {
                allow,
                not_action,
                actions,
                not_resource,
                resources,
                condition,
            },
        )
}

fn to_json(stmts: &[Stmt]) -> String {
    let statements: Vec<serde_json::Value> = stmts
        .iter()
        .map(|s| {
            let mut o = serde_json::Map::new();
            o.insert(
                "Effect".into(),
                (if s.allow { "Allow" } else { "Deny" }).into(),
            );
            o.insert(
                (if s.not_action { "NotAction" } else { "Action" }).into(),
                s.actions.clone().into(),
            );
            o.insert(
                (if s.not_resource {
                    "NotResource"
                } else {
                    "Resource"
                })
                .into(),
                s.resources.clone().into(),
            );
            if let Some((op, key, values)) = &s.condition {
                o.insert(
                    "Condition".into(),
                    serde_json::json!({ *op: { *key: values } }),
                );
            }
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

#[derive(Debug, Clone)]
struct Req {
    action: &'static str,
    resource: &'static str,
    context: Vec<(&'static str, &'static str)>,
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(REQUEST_ACTIONS),
        prop::sample::select(REQUEST_RESOURCES),
        prop::collection::vec(
            (
                prop::sample::select(KEYS),
                prop::sample::select(REQUEST_VALUES),
            ),
            0..2,
        ),
    )
        .prop_map(|(action, resource, mut context)| {
            context.sort();
            context.dedup_by_key(|(k, _)| *k);
            Req {
                action,
                resource,
                context,
            }
        })
}

// === the reference evaluator ===

fn glob(p: &[char], t: &[char]) -> bool {
    match (p.split_first(), t.split_first()) {
        (None, None) => true,
        (Some(('*', rest)), _) => glob(rest, t) || (!t.is_empty() && glob(p, &t[1..])),
        (Some(('?', rest)), Some((_, trest))) => glob(rest, trest),
        (Some((c, rest)), Some((d, trest))) if c == d => glob(rest, trest),
        _ => false,
    }
}

fn glob_str(p: &str, t: &str) -> bool {
    glob(
        &p.chars().collect::<Vec<_>>(),
        &t.chars().collect::<Vec<_>>(),
    )
}

fn ref_action(pattern: &str, action: &str) -> bool {
    glob_str(&pattern.to_lowercase(), &action.to_lowercase())
}

fn ref_resource(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let r: Vec<&str> = resource.splitn(6, ':').collect();
    p.len() == 6 && r.len() == 6 && p.iter().zip(&r).all(|(a, b)| glob_str(a, b))
}

fn ref_condition(op: &str, key: &str, values: &[&str], r: &Req) -> bool {
    let got = r.context.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let like = op.contains("Like");
    let hit = |v: &str| {
        values
            .iter()
            .any(|p| if like { glob_str(p, v) } else { *p == v })
    };
    match (op.contains("Not"), got) {
        (false, None) => false,
        (true, None) => true,
        (false, Some(v)) => hit(v),
        (true, Some(v)) => !hit(v),
    }
}

fn ref_applies(s: &Stmt, r: &Req) -> bool {
    let action = s.actions.iter().any(|p| ref_action(p, r.action)) != s.not_action;
    let resource = s.resources.iter().any(|p| ref_resource(p, r.resource)) != s.not_resource;
    let condition = s
        .condition
        .as_ref()
        .is_none_or(|(op, key, values)| ref_condition(op, key, values, r));
    action && resource && condition
}

fn reference(policies: &[Vec<Stmt>], r: &Req) -> Outcome {
    let all: Vec<&Stmt> = policies.iter().flatten().collect();
    if all.iter().any(|s| !s.allow && ref_applies(s, r)) {
        Outcome::ExplicitDeny
    } else if all.iter().any(|s| s.allow && ref_applies(s, r)) {
        Outcome::Allow
    } else {
        Outcome::ImplicitDeny
    }
}

// === the compiled evaluator ===

fn compiled(policies: &[Vec<Stmt>], r: &Req) -> Outcome {
    let set = StatementSet::new(policies.iter().enumerate().map(|(i, stmts)| {
        let text = to_json(stmts);
        let name = format!("p{i}");
        Arc::new(Policy::parse(&Source::new(&name, &text), PolicyKind::Identity).unwrap())
    }));
    let principal = Principal::parse("arn:p:iam::1:user/u").unwrap();
    let mut ctx = Context::new();
    for (k, v) in &r.context {
        ctx.insert(*k, ContextValue::Single((*v).into())).unwrap();
    }
    let layers = Layers::identity(&set);
    let request = Request::new(&principal, r.action, r.resource, &ctx);
    evaluate(&layers, &request, &mut Vec::new()).outcome
}

fn policies() -> impl Strategy<Value = Vec<Vec<Stmt>>> {
    prop::collection::vec(prop::collection::vec(stmt(), 0..5), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn compiled_agrees_with_the_reference(ps in policies(), r in req()) {
        prop_assert_eq!(compiled(&ps, &r), reference(&ps, &r));
    }

    #[test]
    fn statement_and_policy_order_never_matter(ps in policies(), r in req(), seed in any::<u64>()) {
        let mut shuffled = ps.clone();
        shuffled.reverse();
        for (i, p) in shuffled.iter_mut().enumerate() {
            let n = p.len().max(1);
            p.rotate_left((seed as usize + i) % n);
            p.reverse();
        }
        prop_assert_eq!(compiled(&ps, &r), compiled(&shuffled, &r));
    }

    #[test]
    fn adding_a_deny_never_turns_a_deny_into_an_allow(ps in policies(), extra in stmt(), r in req()) {
        let before = compiled(&ps, &r);
        let mut more = ps;
        more.push(vec![Stmt { allow: false, ..extra }]);
        let after = compiled(&more, &r);
        if before != Outcome::Allow {
            prop_assert_ne!(after, Outcome::Allow);
        }
        if before == Outcome::ExplicitDeny {
            prop_assert_eq!(after, Outcome::ExplicitDeny);
        }
    }
}

// === no panics ===

/// `n` cases in CI; `IAMD_FUZZ_CASES` for a longer campaign
/// (docs/operations.md, "Fuzzing").
pub(crate) fn cases(n: u32) -> u32 {
    std::env::var("IAMD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
}

fn mutate(text: &str, cuts: &[(usize, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(at, b) in cuts {
        if bytes.is_empty() {
            break;
        }
        let i = at % bytes.len();
        match b % 3 {
            0 => {
                bytes.remove(i);
            }
            1 => bytes.insert(i, b"{}[]\":,*?${}'\\ x0"[usize::from(b) % 17]),
            _ => bytes[i] = b"{}[]\":,*?${}'\\ x0"[usize::from(b) % 17],
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_on_any_text(text in ".{0,200}") {
        for kind in [PolicyKind::Identity, PolicyKind::Resource, PolicyKind::Scp] {
            let _ = Policy::parse(&Source::new("fuzz", &text), kind);
        }
    }

    #[test]
    fn the_parser_never_panics_on_broken_policies(ps in prop::collection::vec(stmt(), 1..4), cuts in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let text = mutate(&to_json(&ps), &cuts);
        let _ = Policy::parse(&Source::new("fuzz", &text), PolicyKind::Identity);
        let case = format!(r#"{{"identityPolicies": [{text}], "request": {{"principal": "arn:aws:iam::1:user/u", "action": "a:Get", "resource": "*"}}}}"#);
        let _ = iamd_tools::simulate::run(&Source::new("fuzz", &case), jiff::Timestamp::UNIX_EPOCH);
    }

    #[test]
    fn the_simulator_never_panics_on_broken_cases(cuts in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let base = include_str!("../../examples/simulate/alice-reads-her-document.json");
        let text = mutate(base, &cuts);
        let _ = iamd_tools::simulate::run(&Source::new("fuzz", &text), jiff::Timestamp::UNIX_EPOCH);
    }
}

// === role sessions: matched by their role's ARN or their own ===

/// The ARNs a `Principal`/`NotPrincipal` entry may name, for a session
/// `s1` of the role `arn:aws:iam::111122223333:role{path}app`.
fn named(path: &str) -> Vec<String> {
    vec![
        format!("arn:aws:iam::111122223333:role{path}app"),
        "arn:aws:sts::111122223333:assumed-role/app/s1".to_owned(),
        "111122223333".to_owned(),
        // Near misses: another path, another session, another role, another
        // account.
        "arn:aws:iam::111122223333:role/app".to_owned(),
        "arn:aws:iam::111122223333:role/x/app".to_owned(),
        "arn:aws:sts::111122223333:assumed-role/app/s2".to_owned(),
        format!("arn:aws:iam::111122223333:role{path}other"),
        "444455556666".to_owned(),
    ]
}

const ROLE_PATHS: &[&str] = &["/", "/team/", "/a/b/"];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    /// A session is named by exactly the entries that name its role's full
    /// ARN or its own session ARN (or, for a Deny, its account);
    /// `NotPrincipal` leaves it out only
    /// when the account, the role's ARN and the session's ARN are all
    /// listed.
    #[test]
    fn a_session_is_matched_by_its_role_arn_or_its_session_arn(
        path in prop::sample::select(ROLE_PATHS),
        stmts in prop::collection::vec((any::<bool>(), any::<bool>(), prop::collection::vec(0usize..8, 1..4)), 1..5),
    ) {
        let names = named(path);
        let role_arn = &names[0];
        let session_arn = &names[1];
        let mut json = vec![r#"{"Sid": "Base", "Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "*", "Resource": "*"}"#.to_owned()];
        let mut want_denies = std::collections::BTreeSet::new();
        let mut want_allows = std::collections::BTreeSet::new();
        for (deny, negated, picks) in &stmts {
            // An Allow naming the account defers to identity policies (none
            // here): Allows name ARNs only.
            let list: Vec<&String> = picks
                .iter()
                .filter(|&&p| *deny || p != 2)
                .map(|&p| &names[p])
                .collect();
            if list.is_empty() {
                continue;
            }
            let has = |s: &str| list.iter().any(|x| *x == s);
            // NotPrincipal is Deny only.
            let negated = *negated && *deny;
            let applies = if negated {
                !(has("111122223333") && has(role_arn) && has(session_arn))
            } else {
                // A Deny naming the account applies to everyone in it.
                has(role_arn) || has(session_arn) || (*deny && has("111122223333"))
            };
            if applies {
                let at = json.len();
                if *deny { want_denies.insert(at) } else { want_allows.insert(at) };
            }
            json.push(format!(
                r#"{{"Effect": "{}", "{}": {{"AWS": {}}}, "Action": "*", "Resource": "*"}}"#,
                if *deny { "Deny" } else { "Allow" },
                if negated { "NotPrincipal" } else { "Principal" },
                serde_json::to_string(&list).unwrap(),
            ));
        }
        let text = format!(r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#, json.join(","));
        let policy = Policy::parse(&Source::new("resource", &text), PolicyKind::Resource).unwrap();
        let set = StatementSet::new([Arc::new(policy)]);
        let session = Principal::parse(session_arn).unwrap().with_role_arn(role_arn).unwrap();
        let ctx = Context::new();
        let request = Request::new(&session, "docs:GetDocument", "arn:acme:docs:eu-1:111122223333:doc/1", &ctx);
        let layers = Layers { resource: Some(&set), ..Layers::default() };
        let mut matched = Vec::new();
        let decision = evaluate(&layers, &request, &mut matched);
        let got: std::collections::BTreeSet<usize> = matched.iter().map(|m| m.statement as usize).collect();
        if !want_denies.is_empty() {
            prop_assert_eq!(decision.outcome, Outcome::ExplicitDeny);
            prop_assert_eq!(got, want_denies);
        } else if !want_allows.is_empty() {
            prop_assert_eq!(decision.outcome, Outcome::Allow);
            prop_assert_eq!(got, want_allows);
        } else {
            prop_assert_eq!(decision.outcome, Outcome::ImplicitDeny);
        }
    }
}

// === no panics: bundles and the configuration ===

/// The example bundle's files, as a source hands them over.
/// `base` mutated by `cuts`, written as `name` in a directory of its own
/// (kept while the directory lives).
fn mutated_file(
    name: &str,
    base: &str,
    cuts: &[(usize, u8)],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, mutate(base, cuts)).unwrap();
    (dir, path)
}

/// A refused bundle says why: at least one diagnostic, each naming a file
/// and saying what is wrong.
fn named_diagnostics(e: &iamd_bundle::BundleError) -> Result<(), TestCaseError> {
    prop_assert!(!e.diagnostics.is_empty());
    for d in &e.diagnostics {
        prop_assert!(!d.file.is_empty() && !d.message.is_empty(), "{:?}", d);
    }
    Ok(())
}

fn example_bundle_files() -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bundle");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// A bundle with one file broken (YAML or JSON, any of them) loads or
    /// is refused with a diagnostic that names the file and says what is
    /// wrong; it never panics.
    #[test]
    fn a_broken_bundle_file_is_refused_with_a_diagnostic_never_a_panic(
        which in any::<usize>(),
        cuts in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut files = example_bundle_files();
        let i = which % files.len();
        let text = String::from_utf8_lossy(&files[i].1).into_owned();
        files[i].1 = mutate(&text, &cuts).into_bytes();
        let origin = std::path::Path::new("fuzz");
        let read = iamd_bundle::BundleFiles::from_files(origin, files, &iamd_bundle::ReadLimits::default());
        if let Ok(read) = read
            && let Err(e) = read.compile()
        {
            named_diagnostics(&e)?;
        }
    }

    /// A broken `aws iam get-account-authorization-details` export loads or
    /// is refused with diagnostics that name the file; never a panic.
    #[test]
    fn a_broken_aws_export_is_refused_with_a_diagnostic_never_a_panic(
        cuts in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let base = include_str!("../../examples/aws/authorization-details.json");
        let (_dir, path) = mutated_file("authorization-details.json", base, &cuts);
        match iamd_bundle::BundleFiles::read(&path).and_then(|f| f.compile()) {
            Ok(_) => {}
            Err(e) => named_diagnostics(&e)?,
        }
    }

    /// A broken configuration file is refused with a message, or read and
    /// resolved; never a panic.
    #[test]
    fn a_broken_configuration_is_refused_never_a_panic(
        cuts in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let base = include_str!("../../deploy/envoy/iamd.yaml");
        let (_dir, path) = mutated_file("iamd.yaml", base, &cuts);
        match iamd_server::config::load(&path) {
            Ok(file) => {
                let _ = iamd_server::config::ServeConfig::resolve(file, iamd_server::config::Overrides::default());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(500), ..ProptestConfig::default() })]

    /// An archive altered anywhere (a byte changed, the end cut off, bytes
    /// inserted) and a signature file altered anywhere are refused with a
    /// message or read as some bundle; never a panic, and a signed bundle
    /// whose bytes changed is never verified for other files.
    #[test]
    fn a_broken_archive_or_signature_never_panics_and_never_verifies_other_files(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
        sig_edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let (key, verifier) = &*SIGNER;
        let files = crate::remote::files("fuzz");
        let mut text = iamd_source::signature::sign(std::slice::from_ref(key), files.digest(), Some("fuzz"), None).to_text();
        if !sig_edits.is_empty() {
            text = mutate(&text, &sig_edits);
        }
        let mut bytes = iamd_source::archive::build(&files, Some(&text)).unwrap();
        for &(at, b, how) in &edits {
            if bytes.is_empty() {
                break;
            }
            let i = at % bytes.len();
            match how {
                0 => bytes[i] = b,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, b),
            }
        }
        if let Ok(fetched) = iamd_source::archive::read("fuzz.tar.gz", &bytes, &iamd_bundle::ReadLimits::default())
            && verifier.verify(fetched.signatures.as_deref(), fetched.files.digest()).is_ok()
        {
            // Verified: then these are the files that were signed.
            prop_assert_eq!(fetched.files.digest(), files.digest());
        }
    }
}

/// One signing key for the archive property, and a verifier trusting it.
static SIGNER: std::sync::LazyLock<(
    iamd_source::signature::SigningKey,
    iamd_source::signature::Verifier,
)> = std::sync::LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = iamd_source::signature::SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("k.key"), private).unwrap();
    std::fs::write(dir.path().join("k.pub"), public).unwrap();
    (
        iamd_source::signature::SigningKey::read(&dir.path().join("k.key")).unwrap(),
        iamd_source::signature::Verifier::read(&[dir.path().join("k.pub")]).unwrap(),
    )
});
