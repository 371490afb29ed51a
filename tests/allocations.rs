//! The decision allocates nothing: a heap profiler counts the blocks
//! allocated while many decisions run (allowed, explicitly denied and
//! implicitly denied, with variables, IP, numeric, date and ARN conditions, a
//! resource policy, a boundary and SCPs). Its own binary, without the test
//! harness, because the profiler is the whole program's allocator.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test fails loudly")]

use std::sync::Arc;

use iamd_policy::arn::Principal;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{Layers, Outcome, Request, StatementSet, evaluate};
use iamd_policy::json::Source;
use iamd_policy::policy::{Policy, PolicyKind};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn set(kind: PolicyKind, text: &str) -> StatementSet {
    StatementSet::new([Arc::new(
        Policy::parse(&Source::new("p", text), kind).unwrap(),
    )])
}

fn main() {
    let identity = set(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["docs:Get*","docs:List*"],"Resource":"arn:acme:docs:eu-1:123456789012:doc/${aws:username}/*",
         "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"},"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"},
                      "DateGreaterThan":{"aws:EpochTime":"1700000000.5"},"ArnLike":{"docs:Parent":"arn:acme:docs:*:${aws:PrincipalAccount}:folder/*"},
                      "ForAnyValue:StringLike":{"aws:TagKeys":["env*","team"]},"StringEqualsIgnoreCase":{"aws:PrincipalTag/team":"${docs:Team, 'Red'}"}}},
        {"Effect":"Deny","Action":"docs:Delete*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}
        ]}"#,
    );
    let resource = set(
        PolicyKind::Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"docs:*"},
        {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:user/mallory"},"Action":"docs:*"}]}"#,
    );
    let boundary = set(
        PolicyKind::Boundary,
        r#"{"Statement":{"Effect":"Allow","Action":"docs:*","Resource":"*"}}"#,
    );
    let scps = [set(
        PolicyKind::Scp,
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    )];
    // An RCP level whose Deny does not apply to this caller.
    let rcps = [set(
        PolicyKind::Rcp,
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"docs:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}}}"#,
    )];
    let layers = Layers {
        identity: Some(&identity),
        resource: Some(&resource),
        boundary: Some(&boundary),
        session: None,
        scps: &scps,
        rcps: &rcps,
    };
    let alice = Principal::parse("arn:aws:iam::123456789012:user/alice").unwrap();
    let mut ctx = Context::new();
    for (k, v) in [
        ("aws:username", "alice"),
        ("aws:PrincipalAccount", "123456789012"),
        ("aws:SourceIp", "203.0.113.9"),
        ("aws:MultiFactorAuthAge", "60"),
        ("aws:MultiFactorAuthPresent", "false"),
        ("aws:EpochTime", "1767225600.25"),
        ("docs:Parent", "arn:acme:docs:eu-1:123456789012:folder/x"),
        ("aws:PrincipalTag/team", "RED"),
    ] {
        ctx.insert(k, ContextValue::Single(v.into())).unwrap();
    }
    ctx.insert("aws:TagKeys", ContextValue::Multi(vec!["envx".into()]))
        .unwrap();
    let requests = [
        (
            "docs:GetDocument",
            "arn:acme:docs:eu-1:123456789012:doc/alice/1",
            Outcome::Allow,
        ),
        (
            "docs:DeleteDocument",
            "arn:acme:docs:eu-1:123456789012:doc/alice/1",
            Outcome::ExplicitDeny,
        ),
        (
            "docs:GetDocument",
            "arn:acme:docs:eu-1:123456789012:doc/bob/1",
            Outcome::ImplicitDeny,
        ),
        ("files:GetFile", "not-an-arn", Outcome::ImplicitDeny),
    ];
    let mut matched = Vec::with_capacity(16);

    let profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..1000 {
        for (action, resource, want) in requests {
            let req = Request::new(&alice, action, resource, &ctx);
            let got = evaluate(&layers, &req, &mut matched).outcome;
            if got != want {
                panic!("{action} on {resource}: {got:?}, expected {want:?}");
            }
        }
    }
    let allocated = dhat::HeapStats::get().total_blocks - before;
    drop(profiler);
    if allocated != 0 {
        panic!("4000 decisions allocated {allocated} blocks; expected none");
    }
    println!("allocations: 4000 decisions, 0 blocks allocated");
    println!("1 passed, 0 failed");
}
