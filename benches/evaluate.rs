//! Criterion benchmarks of the engine: one decision on small and large
//! policy sets (allow, explicit deny, implicit deny, heavy conditions),
//! compiling the AWS managed-policy corpus, and the server's work for one
//! `Authorize` call without the transport (checks, context, resolution,
//! decision, answer, counters) on the example bundle.
//!
//! Run: `cargo bench --bench evaluate` (results in `docs/benchmarks.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark's setup fails loudly"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

use iamd_policy::arn::Principal;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{Layers, Outcome, Request, StatementSet, evaluate};
use iamd_policy::json::Source;
use iamd_policy::policy::{Policy, PolicyKind};

fn policy(name: &str, text: &str) -> Arc<Policy> {
    Arc::new(Policy::parse(&Source::new(name, text), PolicyKind::Identity).unwrap())
}

/// A small, realistic set: a team's read access, an MFA guard, own-folder
/// write access with a variable, a network fence.
fn small() -> StatementSet {
    StatementSet::new([policy(
        "team",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Read","Effect":"Allow","Action":["docs:Get*","docs:List*"],"Resource":"arn:acme:docs:eu-1:123456789012:doc/*"},
            {"Sid":"OwnWrite","Effect":"Allow","Action":"docs:PutDocument","Resource":"arn:acme:docs:eu-1:123456789012:doc/${aws:username}/*"},
            {"Sid":"DeleteNeedsMfa","Effect":"Deny","Action":"docs:DeleteDocument","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}},
            {"Sid":"Fence","Effect":"Deny","Action":"docs:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","203.0.113.0/24"]}}}
            ]}"#,
    )])
}

/// About 50 candidate statements for `docs:GetDocument`, each with
/// conditions, none of which allows the benchmark's request until the last.
fn fifty_candidates() -> StatementSet {
    let mut stmts = Vec::new();
    for i in 0..49 {
        stmts.push(format!(
            r#"{{"Sid":"S{i}","Effect":"Allow","Action":["docs:Get*","docs:List*"],"Resource":"arn:acme:docs:eu-1:123456789012:doc/team{i}/*","Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"team{i}"}},"Bool":{{"aws:SecureTransport":"true"}}}}}}"#
        ));
    }
    stmts.push(r#"{"Sid":"Mine","Effect":"Allow","Action":"docs:GetDocument","Resource":"arn:acme:docs:eu-1:123456789012:doc/${aws:username}/*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"},"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}}"#.to_owned());
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        stmts.join(",")
    );
    StatementSet::new([policy("fifty", &text)])
}

/// `n` statements over `n / 20` services, in policies of 100 statements:
/// every action has about 20 candidates whatever `n` is, and the index keeps
/// the other statements out of the decision.
fn large(n: usize) -> StatementSet {
    let services = n / 20;
    let mut policies = Vec::new();
    for p in 0..n / 100 {
        let mut stmts = Vec::new();
        for s in 0..100 {
            let svc = (p * 100 + s) % services;
            stmts.push(format!(
                r#"{{"Effect":"Allow","Action":["svc{svc}:Get*","svc{svc}:Put{s}"],"Resource":"arn:acme:svc{svc}:eu-1:123456789012:thing/{p}/*"}}"#
            ));
        }
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            stmts.join(",")
        );
        policies.push(policy(&format!("p{p}"), &text));
    }
    StatementSet::new(policies)
}

fn context() -> Context {
    let mut ctx = Context::new();
    for (k, v) in [
        ("aws:username", "alice"),
        ("aws:SourceIp", "203.0.113.7"),
        ("aws:MultiFactorAuthPresent", "true"),
        ("aws:MultiFactorAuthAge", "120"),
        ("aws:SecureTransport", "true"),
        ("aws:PrincipalTag/team", "none"),
    ] {
        ctx.insert(k, ContextValue::Single(v.into())).unwrap();
    }
    ctx
}

fn bench_evaluate(c: &mut Criterion) {
    let alice = Principal::parse("arn:aws:iam::123456789012:user/alice").unwrap();
    let ctx = context();
    let small = small();
    let fifty = fifty_candidates();
    let sizes = [1_000, 10_000, 100_000].map(|n| (n, large(n)));
    let mut out = Vec::with_capacity(32);
    let mut cases: Vec<(String, &StatementSet, &str, &str, Outcome)> = vec![
        (
            "small/allow".into(),
            &small,
            "docs:GetDocument",
            "arn:acme:docs:eu-1:123456789012:doc/alice/1",
            Outcome::Allow,
        ),
        (
            "small/implicit-deny".into(),
            &small,
            "files:GetFile",
            "arn:acme:files:eu-1:123456789012:f/1",
            Outcome::ImplicitDeny,
        ),
        (
            "fifty-candidates/allow".into(),
            &fifty,
            "docs:GetDocument",
            "arn:acme:docs:eu-1:123456789012:doc/alice/1",
            Outcome::Allow,
        ),
    ];
    for (n, set) in &sizes {
        // Policy 0 holds one statement of `svc42` (statement 42): one of
        // the ~20 candidates matches the resource, the others are filtered.
        cases.push((
            format!("statements-{n}/allow"),
            set,
            "svc42:GetThing",
            "arn:acme:svc42:eu-1:123456789012:thing/0/x",
            Outcome::Allow,
        ));
        cases.push((
            format!("statements-{n}/implicit-deny"),
            set,
            "svc42:DeleteThing",
            "arn:acme:svc42:eu-1:123456789012:thing/0/x",
            Outcome::ImplicitDeny,
        ));
    }
    let mut group = c.benchmark_group("evaluate");
    for (name, set, action, resource, want) in cases {
        let layers = Layers::identity(set);
        let req = Request::new(&alice, action, resource, &ctx);
        assert_eq!(evaluate(&layers, &req, &mut out).outcome, want, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(&layers), black_box(&req), &mut out))
        });
    }
    let mut no_mfa = context();
    no_mfa.set(
        "aws:MultiFactorAuthPresent",
        ContextValue::Single("false".into()),
    );
    let layers = Layers::identity(&small);
    let req = Request::new(
        &alice,
        "docs:DeleteDocument",
        "arn:acme:docs:eu-1:123456789012:doc/alice/1",
        &no_mfa,
    );
    assert_eq!(
        evaluate(&layers, &req, &mut out).outcome,
        Outcome::ExplicitDeny
    );
    group.bench_function("small/explicit-deny", |b| {
        b.iter(|| evaluate(black_box(&layers), black_box(&req), &mut out))
    });
    group.finish();
}

fn bench_compile(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-managed-policies");
    let mut docs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    docs.sort();
    assert_eq!(docs.len(), 1523);
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("aws-managed-policies-1523", |b| {
        b.iter(|| {
            let policies: Vec<Arc<Policy>> = docs
                .iter()
                .map(|(name, text)| {
                    Arc::new(Policy::parse(&Source::new(name, text), PolicyKind::Identity).unwrap())
                })
                .collect();
            StatementSet::new(policies)
        })
    });
    group.finish();
}

/// What the gRPC handler does for one call once the request is decoded:
/// the transport's share is measured by `iamd bench` (docs/benchmarks.md).
fn bench_server(c: &mut Criterion) {
    use iamd_proto::pb;
    use iamd_server::grpc::AuthorizerService;
    use iamd_server::limits::RequestLimits;
    use iamd_server::reload::{Reloader, Store, Trigger};
    let bundle = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/bundle");
    let (store, publisher) = Store::new();
    Reloader::for_dir(&bundle, publisher).reload(Trigger::Start);
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let decider = iamd_server::decide::Decider::new(store, RequestLimits::default(), metrics);
    let service = AuthorizerService::new(decider);
    let single = |s: &str| pb::ContextValue {
        kind: Some(pb::context_value::Kind::Single(s.into())),
    };
    let request = pb::AuthorizeRequest {
        principal: "user/alice".into(),
        action: "docs:GetDocument".into(),
        resource: "arn:acme:docs:eu-1:123456789012:doc/guide".into(),
        context: [("docs:Team".to_owned(), single("docs"))].into(),
        ..Default::default()
    };
    let now = jiff::Timestamp::now();
    let answer = service.decide_now(&request, now, None).unwrap();
    assert_eq!(answer.decision(), pb::Decision::Allow);
    let mut group = c.benchmark_group("server");
    group.bench_function("decide_now/allow", |b| {
        b.iter(|| service.decide_now(black_box(&request), now, None))
    });
    group.finish();
}

criterion_group!(benches, bench_evaluate, bench_compile, bench_server);
criterion_main!(benches);
