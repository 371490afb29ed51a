use std::sync::Arc;

use super::*;
use crate::json::Source;
use crate::policy::{Policy, PolicyKind};

fn set(kind: PolicyKind, docs: &[&str]) -> StatementSet {
    StatementSet::new(docs.iter().enumerate().map(|(i, d)| {
        let name = format!("p{i}");
        Arc::new(Policy::parse(&Source::new(&name, d), kind).unwrap())
    }))
}

fn decide(
    layers: &Layers<'_>,
    principal: &str,
    action: &str,
    resource: &str,
) -> (Decision, Vec<Determining>) {
    let p = Principal::parse(principal).unwrap();
    let ctx = Context::new();
    let req = Request::new(&p, action, resource, &ctx);
    let mut out = Vec::new();
    let d = evaluate(layers, &req, &mut out);
    (d, out)
}

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

#[test]
fn the_index_visits_each_candidate_once() {
    let s = set(
        PolicyKind::Identity,
        &[r#"{"Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","S3:getobject","s3:Get*"],"Resource":"*"},
            {"Effect":"Allow","Action":["s3:PutObject","ec2:RunInstances"],"Resource":"*"},
            {"Effect":"Deny","NotAction":"iam:*","Resource":"*"},
            {"Effect":"Allow","Action":"*","Resource":"*"}
        ]}"#],
    );
    let stats = s.stats();
    assert_eq!(stats.statements, 4);
    assert_eq!(stats.exact_actions, 2);
    assert_eq!(stats.services, 1);
    assert_eq!(stats.global, 2);
    let mut seen = Vec::new();
    s.for_each_candidate("s3:getobject", &index::Probe::new(None), |_, st, _| {
        seen.push(st.index())
    });
    seen.sort();
    assert_eq!(seen, vec![0, 2, 3]);
}

#[test]
fn explicit_deny_wins_and_reports_the_deny() {
    let id = set(
        PolicyKind::Identity,
        &[
            r#"{"Statement":{"Effect":"Allow","Action":"docs:*","Resource":"*"}}"#,
            r#"{"Statement":{"Sid":"NoDelete","Effect":"Deny","Action":"docs:Delete*","Resource":"*"}}"#,
        ],
    );
    let layers = Layers::identity(&id);
    let (d, m) = decide(
        &layers,
        ALICE,
        "docs:DeleteDocument",
        "arn:acme:docs:eu-1:111122223333:doc/1",
    );
    assert_eq!(d.outcome, Outcome::ExplicitDeny);
    assert_eq!(
        m,
        vec![Determining {
            layer: Layer::Identity,
            policy: 1,
            statement: 0,
            effect: Effect::Deny
        }]
    );
    let (d, m) = decide(
        &layers,
        ALICE,
        "docs:GetDocument",
        "arn:acme:docs:eu-1:111122223333:doc/1",
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(m.len(), 1);
    let (d, m) = decide(&layers, ALICE, "files:GetFile", "*");
    assert_eq!(d, Decision::implicit(Layer::Identity));
    assert!(m.is_empty());
}

#[test]
fn root_is_allowed_by_default_but_not_past_an_scp() {
    let scps = [set(
        PolicyKind::Scp,
        &[r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#],
    )];
    let layers = Layers {
        scps: &scps,
        ..Layers::default()
    };
    let (d, _) = decide(
        &layers,
        "arn:aws:iam::111122223333:root",
        "s3:GetObject",
        "*",
    );
    assert_eq!(d.outcome, Outcome::Allow);
    let (d, _) = decide(
        &layers,
        "arn:aws:iam::111122223333:root",
        "ec2:RunInstances",
        "*",
    );
    assert_eq!(d, Decision::implicit(Layer::Scp(0)));
}

#[test]
fn lowercase_action_folds_without_allocating_when_it_fits() {
    let mut buf = [0u8; 128];
    assert!(matches!(
        index::lowercase_action("S3:GetObject", &mut buf),
        std::borrow::Cow::Borrowed("s3:getobject")
    ));
    let long = "s".repeat(200);
    assert!(matches!(
        index::lowercase_action(&long, &mut buf),
        std::borrow::Cow::Owned(_)
    ));
}

#[test]
fn the_prefilter_skips_only_statements_that_cannot_match() {
    let s = set(
        PolicyKind::Identity,
        &[r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"d:Get","Resource":"arn:a:d:r:1:doc/team1/*"},
            {"Effect":"Allow","Action":"d:Get","Resource":"arn:a:d:r:1:doc/a-very-long-literal/*"},
            {"Effect":"Allow","Action":"d:Get","Resource":"arn:a:d:*:1:doc/x"},
            {"Effect":"Allow","Action":"d:Get","Resource":"arn:a:d:r:1:${aws:username}"},
            {"Effect":"Allow","Action":"d:Get","NotResource":"arn:a:d:r:1:doc/team1/*"},
            {"Effect":"Allow","Action":"d:Get","Resource":["arn:a:d:r:1:doc/team1/*","*"]}
        ]}"#],
    );
    let seen = |resource: &str| {
        let arn = crate::arn::Arn::parse(resource);
        let mut seen = Vec::new();
        s.for_each_candidate("d:get", &index::Probe::new(arn.as_ref()), |_, st, _| {
            seen.push(st.index())
        });
        seen.sort();
        seen
    };
    assert_eq!(seen("arn:a:d:r:1:doc/team1/x"), vec![0, 2, 3, 4, 5]);
    assert_eq!(
        seen("arn:a:d:r:1:doc/a-very-long-literal/x"),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(seen("arn:a:d:r:1:doc/a-very-"), vec![1, 2, 3, 4, 5]);
    assert_eq!(seen("arn:a:d:r:1:doc/"), vec![2, 3, 4, 5]);
    assert_eq!(seen("arn:a:d:r:2:doc/team1/x"), vec![2, 4, 5]);
    assert_eq!(seen("not-an-arn"), vec![2, 4, 5]);
}

#[test]
fn merged_and_per_policy_indexes_find_the_same_candidates() {
    let docs: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"Statement":[{{"Effect":"Allow","Action":["s{}:Get*","s{}:Put"],"Resource":"arn:a:s:r:1:t/{i}/*"}},{{"Effect":"Deny","NotAction":"x:*","Resource":"*"}}]}}"#,
                i % 3,
                i % 4
            )
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let merged = set(PolicyKind::Identity, &refs);
    assert!(merged.is_merged());
    let few = |range: std::ops::Range<usize>| set(PolicyKind::Identity, &refs[range]);
    for action in ["s1:getthing", "s0:put", "x:any", "s3:put"] {
        for resource in ["arn:a:s:r:1:t/4/x", "arn:a:s:r:1:t/13/x", "*"] {
            let probe = index::Probe::new(crate::arn::Arn::parse(resource).as_ref());
            let mut all = Vec::new();
            merged.for_each_candidate(action, &probe, |p, st, m| all.push((p, st.index(), m)));
            all.sort();
            let mut parts = Vec::new();
            for (offset, part) in [(0, few(0..10)), (10, few(10..20))] {
                assert!(!part.is_merged());
                part.for_each_candidate(action, &probe, |p, st, m| {
                    parts.push((p + offset, st.index(), m))
                });
            }
            parts.sort();
            assert_eq!(all, parts, "{action} {resource}");
        }
    }
}
