//! Why a request was denied: the layer that denied, the nearest allow that
//! failed and what failed in it, and the context keys it needed that the
//! request did not have. Off the hot path: it reads every statement of the
//! layer and allocates.

use super::{Decision, Determining, Layer, Layers, Outcome, Request, principal_match};
use crate::arn::Arn;

/// An explanation of a deny.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Explanation {
    /// The layer that denied: of the first matching `Deny` for an explicit
    /// deny, the layer that lacked an allow for an implicit one.
    pub layer: Option<Layer>,
    /// For an implicit deny, the `Allow` statement of that layer about the
    /// request's action that came closest, and what failed in it.
    pub nearest_allow: Option<NearestAllow>,
    /// Condition keys of the nearest allow's failing conditions that the
    /// request did not give, as the policy writes them.
    pub missing_context_keys: Vec<String>,
}

/// The allow that came closest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearestAllow {
    /// The statement.
    pub statement: Determining,
    /// What failed, one sentence each.
    pub failed: Vec<String>,
}

/// Explains `decision`, made by [`super::evaluate`] on the same layers and
/// request with the determining statements `matched`.
pub fn explain(
    layers: &Layers<'_>,
    req: &Request<'_>,
    decision: &Decision,
    matched: &[Determining],
) -> Explanation {
    match decision.outcome {
        Outcome::Allow => Explanation::default(),
        Outcome::ExplicitDeny => Explanation {
            layer: matched.first().map(|m| m.layer),
            ..Explanation::default()
        },
        Outcome::ImplicitDeny => {
            let Some(layer) = decision.implicit_deny_layer else {
                return Explanation::default();
            };
            let (nearest_allow, missing_context_keys) = nearest(layers, req, layer);
            Explanation {
                layer: Some(layer),
                nearest_allow,
                missing_context_keys,
            }
        }
    }
}

fn nearest(
    layers: &Layers<'_>,
    req: &Request<'_>,
    layer: Layer,
) -> (Option<NearestAllow>, Vec<String>) {
    let Some(set) = layers.set(layer) else {
        return (None, Vec::new());
    };
    let arn = Arn::parse(req.resource);
    let has_boundary = layers.boundary.is_some();
    let mut best: Option<(usize, NearestAllow, Vec<String>)> = None;
    for (p, policy) in set.policies().iter().enumerate() {
        for st in policy.statements() {
            if st.effect() != crate::policy::Effect::Allow || !st.matches_action(req.action) {
                continue;
            }
            let mut failed = Vec::new();
            let mut missing = Vec::new();
            // A statement about another resource or principal is farther
            // than one whose conditions fail: those weigh two.
            let mut score = 0;
            if !st.matches_resource(arn.as_ref(), req.context) {
                failed.push(format!(
                    "resource `{}` is not one of the statement's resources",
                    req.resource
                ));
                score += 2;
            }
            if matches!(
                principal_match(st, req.principal, has_boundary),
                super::PrincipalMatch::No
            ) {
                failed.push(format!(
                    "principal `{}` is not named by the statement",
                    req.principal
                ));
                score += 2;
            }
            for c in st.failing_conditions(req.context) {
                let (operator, key) = c.label();
                let absent = req.context.get_folded(c.key()).is_none();
                if absent {
                    missing.push(key.to_owned());
                    failed.push(format!(
                        "condition `{operator}` on `{key}`: the key is absent"
                    ));
                } else {
                    failed.push(format!("condition `{operator}` on `{key}` does not hold"));
                }
            }
            score += st.failing_conditions(req.context).count();
            if best.as_ref().is_none_or(|(b, _, _)| score < *b) {
                let statement = Determining {
                    layer,
                    policy: p as u32,
                    statement: st.index(),
                    effect: crate::policy::Effect::Allow,
                };
                best = Some((score, NearestAllow { statement, failed }, missing));
            }
        }
    }
    match best {
        Some((_, n, missing)) => (Some(n), missing),
        None => (None, Vec::new()),
    }
}

/// One condition of a statement, evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionTrace {
    /// The operator, as written.
    pub operator: String,
    /// The key, as written.
    pub key: String,
    /// The policy's values, as written.
    pub expected: Vec<String>,
    /// The request's values; `None` when the key is absent.
    pub actual: Option<Vec<String>>,
    /// Whether it holds.
    pub holds: bool,
}

/// One statement, evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementTrace {
    /// The statement (layer, policy, position, effect).
    pub statement: Determining,
    /// Its Sid.
    pub sid: Option<String>,
    /// Whether it is about the action.
    pub action: bool,
    /// Whether it is about the resource.
    pub resource: bool,
    /// Whether it is about the principal; `None` when it names none.
    pub principal: Option<bool>,
    /// Each condition.
    pub conditions: Vec<ConditionTrace>,
}

impl StatementTrace {
    /// Whether the statement applies to the request.
    pub fn matched(&self) -> bool {
        self.action
            && self.resource
            && self.principal != Some(false)
            && self.conditions.iter().all(|c| c.holds)
    }
}

/// Every statement of every layer (SCP levels, RCP levels, resource, identity,
/// boundary, session), evaluated against `req`, in evaluation order.
pub fn trace(layers: &Layers<'_>, req: &Request<'_>) -> Vec<StatementTrace> {
    let arn = Arn::parse(req.resource);
    let has_boundary = layers.boundary.is_some();
    let mut out = Vec::new();
    for (layer, set) in layers.in_order() {
        for (p, policy) in set.policies().iter().enumerate() {
            for st in policy.statements() {
                let conditions = st
                    .conditions()
                    .iter()
                    .map(|c| {
                        let (operator, key) = c.label();
                        ConditionTrace {
                            operator: operator.to_owned(),
                            key: key.to_owned(),
                            expected: c.written().iter().map(|v| v.to_string()).collect(),
                            actual: req.context.get_folded(c.key()).map(|v| match v {
                                crate::context::Values::Single(s) => vec![s.to_owned()],
                                crate::context::Values::Multi(m) => m.to_vec(),
                            }),
                            holds: c.eval(req.context),
                        }
                    })
                    .collect();
                out.push(StatementTrace {
                    statement: Determining {
                        layer,
                        policy: p as u32,
                        statement: st.index(),
                        effect: st.effect(),
                    },
                    sid: st.sid().map(str::to_owned),
                    action: st.matches_action(req.action),
                    resource: st.matches_resource(arn.as_ref(), req.context),
                    principal: st.names_principals().then(|| {
                        !matches!(
                            principal_match(st, req.principal, has_boundary),
                            super::PrincipalMatch::No
                        )
                    }),
                    conditions,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::arn::Principal;
    use crate::context::{Context, ContextValue};
    use crate::eval::{StatementSet, evaluate};
    use crate::json::Source;
    use crate::policy::{Policy, PolicyKind};

    #[test]
    fn the_nearest_allow_and_the_missing_keys() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Far","Effect":"Allow","Action":"docs:GetDocument","Resource":"arn:a:docs:r:1:other/*","Condition":{"StringEquals":{"docs:Team":"red"}}},
            {"Sid":"Near","Effect":"Allow","Action":"docs:Get*","Resource":"*","Condition":{"StringEquals":{"docs:Team":"red"},"Bool":{"aws:SecureTransport":"true"}}},
            {"Sid":"OtherAction","Effect":"Allow","Action":"docs:Put*","Resource":"*"}
        ]}"#;
        let set = StatementSet::new([Arc::new(
            Policy::parse(&Source::new("p", doc), PolicyKind::Identity).unwrap(),
        )]);
        let layers = Layers::identity(&set);
        let alice = Principal::parse("arn:aws:iam::1:user/alice").unwrap();
        let mut ctx = Context::new();
        ctx.insert("docs:Team", ContextValue::Single("blue".into()))
            .unwrap();
        let req = Request::new(&alice, "docs:GetDocument", "arn:a:docs:r:1:doc/1", &ctx);
        let mut matched = Vec::new();
        let d = evaluate(&layers, &req, &mut matched);
        let e = explain(&layers, &req, &d, &matched);
        assert_eq!(e.layer, Some(Layer::Identity));
        let n = e.nearest_allow.unwrap();
        assert_eq!(n.statement.statement, 1);
        assert_eq!(
            n.failed,
            [
                "condition `StringEquals` on `docs:Team` does not hold",
                "condition `Bool` on `aws:SecureTransport`: the key is absent"
            ]
        );
        assert_eq!(e.missing_context_keys, ["aws:SecureTransport"]);
    }
}
