//! Does a decision cache pay? One decision against a 10,000-user bundle
//! (resolve the principal, evaluate) next to a hit in a `moka` cache keyed by
//! the same request (a hash of the revision, principal, action, resource and
//! context), both on the same requests.
//!
//! Run: `cargo bench --bench cache`. The answer is in `docs/benchmarks.md`:
//! a hit costs more than the decision it would save, so iamd has no cache.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, Hasher};
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rustc_hash::FxBuildHasher;

use iamd_bundle as bundle;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{Outcome, Request, evaluate};

fn generate(dir: &std::path::Path, users: usize) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("bundle.yaml"), "account: \"123456789012\"\n").unwrap();
    for p in 0..100 {
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["docs:Get*","docs:List*"],"Resource":"arn:acme:docs:eu-1:123456789012:doc/{p}/*","Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"team{}"}}}}}},{{"Effect":"Deny","Action":"docs:Delete*","Resource":"*","Condition":{{"BoolIfExists":{{"aws:MultiFactorAuthPresent":"false"}}}}}}]}}"#,
            p % 10
        );
        std::fs::write(dir.join(format!("policies/P{p}.json")), doc).unwrap();
    }
    let mut out = String::new();
    for u in 0..users {
        writeln!(
            out,
            "- name: user{u}\n  policies: [P{}, P{}, P{}]\n  tags: {{team: team{}}}",
            u % 100,
            (u + 1) % 100,
            (u + 2) % 100,
            u % 10
        )
        .unwrap();
    }
    std::fs::write(dir.join("users.yaml"), out).unwrap();
}

fn key(revision: &str, principal: &str, action: &str, resource: &str, ctx: &Context) -> u64 {
    let mut h = FxBuildHasher.build_hasher();
    (revision, principal, action, resource).hash(&mut h);
    for (k, v) in ctx.iter() {
        k.hash(&mut h);
        match v {
            ContextValue::Single(s) => s.hash(&mut h),
            ContextValue::Multi(m) => m.hash(&mut h),
        }
    }
    h.finish()
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), 10_000);
    let b = bundle::load(tmp.path()).unwrap();
    let revision = b.revision().digest.clone();
    let requests: Vec<(String, Context)> = (0..256)
        .map(|i| {
            let name = format!("user/user{}", (i * 37) % 10_000);
            let mut ctx = Context::new();
            ctx.insert("aws:SecureTransport", ContextValue::Single("true".into()))
                .unwrap();
            ctx.insert("aws:SourceIp", ContextValue::Single("203.0.113.7".into()))
                .unwrap();
            let now = jiff::Timestamp::now();
            ctx.add_facts(b.resolve(&name).unwrap().facts(), now, true);
            (name, ctx)
        })
        .collect();
    let action = "docs:GetDocument";
    let resource = "arn:acme:docs:eu-1:123456789012:doc/5/x";
    let cache: moka::sync::Cache<u64, Outcome> = moka::sync::Cache::new(100_000);
    let mut matched = Vec::with_capacity(16);
    for (name, ctx) in &requests {
        let r = b.resolve(name).unwrap();
        let req = Request::new(&r.principal, action, resource, ctx);
        let d = evaluate(&b.layers(&r, &req, None), &req, &mut matched);
        cache.insert(key(&revision, name, action, resource, ctx), d.outcome);
    }
    let mut group = c.benchmark_group("cache");
    let mut i = 0usize;
    group.bench_function("decide (resolve + evaluate)", |bch| {
        bch.iter(|| {
            i = (i + 1) % requests.len();
            let (name, ctx) = &requests[i];
            let r = b.resolve(name).unwrap();
            let req = Request::new(&r.principal, action, resource, ctx);
            evaluate(black_box(&b.layers(&r, &req, None)), &req, &mut matched)
        })
    });
    group.bench_function("moka hit (hash request + get)", |bch| {
        bch.iter(|| {
            i = (i + 1) % requests.len();
            let (name, ctx) = &requests[i];
            cache
                .get(&key(&revision, black_box(name), action, resource, ctx))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
