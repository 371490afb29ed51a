//! The same decision in process with iamd's engine and with `cedar-policy`:
//! a document reader may read a document of their team, and deleting needs
//! MFA. Run with `cargo bench --bench cedar --features cedar`.
//!
//! Both engines get the same facts: the principal's team (an IAM principal
//! tag; a Cedar entity attribute), the document's team (a request context
//! key; a Cedar resource attribute) and MFA (a context key in both). Both
//! answers are checked before anything is timed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark's setup fails loudly"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context as CedarContext, Decision as CedarDecision, Entities, EntityUid, PolicySet,
    Request as CedarRequest,
};
use criterion::{Criterion, criterion_group, criterion_main};
use iamd_policy::arn::Principal;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{Layers, Outcome, Request, StatementSet, evaluate};
use iamd_policy::json::Source;
use iamd_policy::policy::{Policy, PolicyKind};

const IAM: &str = r#"{"Version": "2012-10-17", "Statement": [
  {"Sid": "ReadTeamDocuments", "Effect": "Allow", "Action": ["docs:GetDocument", "docs:ListDocuments"],
   "Resource": "arn:acme:docs:eu-1:123456789012:doc/*",
   "Condition": {"StringEquals": {"docs:Team": "${aws:PrincipalTag/team}"}}},
  {"Sid": "DeleteWithMfa", "Effect": "Allow", "Action": "docs:DeleteDocument",
   "Resource": "arn:acme:docs:eu-1:123456789012:doc/*",
   "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}, "StringEquals": {"docs:Team": "${aws:PrincipalTag/team}"}}}
]}"#;

const CEDAR: &str = r#"
permit (principal, action in [Action::"GetDocument", Action::"ListDocuments"], resource)
when { resource.team == principal.team };
permit (principal, action == Action::"DeleteDocument", resource)
when { context.mfa && resource.team == principal.team };
"#;

const ENTITIES: &str = r#"[
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"team": "docs"}, "parents": []},
  {"uid": {"type": "Document", "id": "guide"}, "attrs": {"team": "docs"}, "parents": []}
]"#;

fn iamd_setup() -> (StatementSet, Principal, Context) {
    let policy = Policy::parse(&Source::new("docs.json", IAM), PolicyKind::Identity).unwrap();
    let set = StatementSet::new([Arc::new(policy)]);
    let alice = Principal::parse("arn:aws:iam::123456789012:user/alice").unwrap();
    let mut ctx = Context::new();
    ctx.set("aws:PrincipalTag/team", ContextValue::Single("docs".into()));
    ctx.set("docs:Team", ContextValue::Single("docs".into()));
    ctx.set(
        "aws:MultiFactorAuthPresent",
        ContextValue::Single("true".into()),
    );
    (set, alice, ctx)
}

fn bench(c: &mut Criterion) {
    // iamd.
    let (set, alice, ctx) = iamd_setup();
    let layers = Layers::identity(&set);
    let resource = "arn:acme:docs:eu-1:123456789012:doc/guide";
    let mut matched = Vec::with_capacity(4);
    for (action, expect) in [
        ("docs:GetDocument", Outcome::Allow),
        ("docs:DeleteDocument", Outcome::Allow),
        ("docs:PutDocument", Outcome::ImplicitDeny),
    ] {
        let d = evaluate(
            &layers,
            &Request::new(&alice, action, resource, &ctx),
            &mut matched,
        );
        assert_eq!(d.outcome, expect, "iamd {action}");
    }
    // Cedar.
    let policies = PolicySet::from_str(CEDAR).unwrap();
    let entities = Entities::from_json_str(ENTITIES, None).unwrap();
    let authorizer = Authorizer::new();
    let user = EntityUid::from_str(r#"User::"alice""#).unwrap();
    let doc = EntityUid::from_str(r#"Document::"guide""#).unwrap();
    let cedar_request = |action: &str| {
        let context = CedarContext::from_json_str(r#"{"mfa": true}"#, None).unwrap();
        CedarRequest::new(
            user.clone(),
            EntityUid::from_str(&format!(r#"Action::"{action}""#)).unwrap(),
            doc.clone(),
            context,
            None,
        )
        .unwrap()
    };
    for (action, expect) in [
        ("GetDocument", CedarDecision::Allow),
        ("DeleteDocument", CedarDecision::Allow),
        ("PutDocument", CedarDecision::Deny),
    ] {
        let r = authorizer.is_authorized(&cedar_request(action), &policies, &entities);
        assert_eq!(r.decision(), expect, "cedar {action}");
    }

    let mut g = c.benchmark_group("same-rule");
    for action in ["GetDocument", "DeleteDocument", "PutDocument"] {
        let iam_action = format!("docs:{action}");
        g.bench_function(format!("iamd/{action}"), |b| {
            b.iter(|| {
                let req = Request::new(&alice, black_box(&iam_action), black_box(resource), &ctx);
                evaluate(&layers, &req, &mut matched)
            })
        });
        // The request is built once, outside the loop, as iamd's is.
        let request = cedar_request(action);
        g.bench_function(format!("cedar/{action}"), |b| {
            b.iter(|| {
                authorizer
                    .is_authorized(black_box(&request), &policies, &entities)
                    .decision()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
