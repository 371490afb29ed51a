//! One question to a bundle, as the tools (`iamd simulate --bundle`,
//! `iamd test`, `iamd explain`, `iamd diff`) ask it: the principal is
//! resolved, its facts and tags added, every layer evaluated, and the
//! answer named for people.

use serde::Serialize;

use super::Bundle;
use iamd_policy::context::Context;
use iamd_policy::eval::{self, Determining, Layers, Outcome, Request};
use iamd_policy::policy::{Effect, Policy};

/// A request to a bundle.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// An ARN, or `user/NAME`, `role/NAME`.
    pub principal: String,
    /// `service:Action`.
    pub action: String,
    /// The resource's ARN, or `*`.
    pub resource: String,
    /// The resource's account, when the ARN does not say.
    pub resource_account: Option<String>,
    /// The caller's context keys.
    pub context: Context,
}

/// A policy of a bundle, by identity (for coverage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(usize);

impl PolicyId {
    /// The id of `policy`.
    pub fn of(policy: &Policy) -> Self {
        Self(std::ptr::from_ref(policy) as usize)
    }
}

/// A statement, named for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedStatement {
    /// The policy's name.
    pub policy: String,
    /// `identity`, `resource`, `boundary`, `session` or `scp[N]`.
    pub layer: String,
    /// Position in the policy, from 0.
    pub statement: u32,
    /// The `Sid`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    pub effect: String,
    /// The policy, for coverage.
    #[serde(skip)]
    pub id: Option<PolicyId>,
}

impl std::fmt::Display for NamedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} by {} statement {}",
            self.effect, self.policy, self.statement
        )?;
        if let Some(sid) = &self.sid {
            write!(f, " `{sid}`")?;
        }
        write!(f, " ({})", self.layer)
    }
}

/// Why a request was denied, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explained {
    /// The layer that denied.
    pub layer: Option<String>,
    /// The allow that came closest, for an implicit deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_allow: Option<NamedStatement>,
    /// What failed in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Context keys it needed that the request did not give.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_context_keys: Vec<String>,
}

/// A bundle's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// `ALLOW`, `EXPLICIT_DENY` or `IMPLICIT_DENY`.
    pub decision: &'static str,
    /// The determining statements.
    pub determining: Vec<NamedStatement>,
    /// For an implicit deny: the layer that lacked an allow, or
    /// `principal` for a principal the bundle does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
    /// Why, when no statement says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a deny, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explained>,
}

impl Verdict {
    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.decision == "ALLOW"
    }
}

/// A request's whole evaluation, for `iamd explain`.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The principal's ARN, resolved.
    pub principal: String,
    /// The answer, explained.
    pub verdict: Verdict,
    /// The context as evaluated.
    pub context: Context,
    /// Every statement of every layer, in evaluation order.
    pub statements: Vec<(NamedStatement, eval::StatementTrace)>,
}

/// The name of an outcome, as the gRPC API writes it.
pub fn decision_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "ALLOW",
        Outcome::ExplicitDeny => "EXPLICIT_DENY",
        Outcome::ImplicitDeny => "IMPLICIT_DENY",
    }
}

/// Names a determining statement of `layers`.
pub fn name(layers: &Layers<'_>, m: &Determining) -> NamedStatement {
    let found = layers.statement(m);
    NamedStatement {
        policy: found.map(|(p, _)| p.name().to_owned()).unwrap_or_default(),
        layer: m.layer.to_string(),
        statement: m.statement,
        sid: found.and_then(|(_, s)| s.sid()).map(str::to_owned),
        effect: match m.effect {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
        .to_owned(),
        id: found.map(|(p, _)| PolicyId::of(p)),
    }
}

impl Bundle {
    /// Decides `q` at `now`. The principal's facts (`aws:username`,
    /// `aws:PrincipalTag/*`, the clock...) are added where the caller did
    /// not give them; `explain` adds the explanation of a deny.
    pub fn query(&self, q: &Query, now: jiff::Timestamp, explain: bool) -> Verdict {
        self.query_with_session(q, None, now, explain)
    }

    /// Runs `f` on the layers and the request of `q`: its principal
    /// resolved, its context with the principal's facts and tags added
    /// where the caller did not give them. `None` for a principal the
    /// bundle does not know.
    fn with_request<R>(
        &self,
        q: &Query,
        session: Option<&iamd_policy::eval::StatementSet>,
        now: jiff::Timestamp,
        f: impl FnOnce(&Layers<'_>, &Request<'_>) -> R,
    ) -> Option<R> {
        let resolved = self.resolve(&q.principal)?;
        let mut ctx = q.context.clone();
        ctx.add_facts(resolved.facts(), now, false);
        let request = Request::new(&resolved.principal, &q.action, &q.resource, &ctx)
            .with_resource_account(q.resource_account.as_deref());
        let layers = self.layers(&resolved, &request, session);
        Some(f(&layers, &request))
    }

    /// The statements of every layer that match `q` (action, resource,
    /// principal, conditions), whatever the decision: what a test of `q`
    /// exercises.
    pub fn exercised(&self, q: &Query, now: jiff::Timestamp) -> Vec<(PolicyId, u32)> {
        self.with_request(q, None, now, |layers, request| {
            let mut out = Vec::new();
            eval::matching(layers, request, &mut out);
            out.iter()
                .filter_map(|m| {
                    let (p, _) = layers.statement(m)?;
                    Some((PolicyId::of(p), m.statement))
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The whole evaluation of `q`: the verdict (explained), the context
    /// as evaluated (the caller's keys and the principal's facts), and
    /// every statement of every layer with why it matched or not. `None`
    /// for a principal the bundle does not know.
    pub fn trace(&self, q: &Query, now: jiff::Timestamp) -> Option<Trace> {
        self.with_request(q, None, now, |layers, request| Trace {
            principal: request.principal.arn().to_owned(),
            verdict: verdict(layers, request, true),
            context: request.context.clone(),
            statements: eval::trace(layers, request)
                .into_iter()
                .map(|t| (name(layers, &t.statement), t))
                .collect(),
        })
    }

    /// [`Bundle::query`] with a session policy.
    pub fn query_with_session(
        &self,
        q: &Query,
        session: Option<&iamd_policy::eval::StatementSet>,
        now: jiff::Timestamp,
        explain: bool,
    ) -> Verdict {
        self.with_request(q, session, now, |layers, request| {
            verdict(layers, request, explain)
        })
        .unwrap_or_else(|| Verdict {
            decision: decision_name(Outcome::ImplicitDeny),
            determining: Vec::new(),
            denied_by: Some("principal".into()),
            reason: Some(format!("principal `{}` is not in the bundle", q.principal)),
            explanation: explain.then(|| Explained {
                layer: Some("principal".into()),
                nearest_allow: None,
                failed: Vec::new(),
                missing_context_keys: Vec::new(),
            }),
        })
    }
}

/// Decides `request` against `layers` and names the answer; `explain` adds
/// the explanation of a deny.
fn verdict(layers: &Layers<'_>, request: &Request<'_>, explain: bool) -> Verdict {
    let mut matched = Vec::new();
    let d = eval::evaluate(layers, request, &mut matched);
    let explanation = (explain && d.outcome != Outcome::Allow).then(|| {
        let e = eval::explain(layers, request, &d, &matched);
        Explained {
            layer: e.layer.map(|l| l.to_string()),
            nearest_allow: e.nearest_allow.as_ref().map(|n| name(layers, &n.statement)),
            failed: e.nearest_allow.map(|n| n.failed).unwrap_or_default(),
            missing_context_keys: e.missing_context_keys,
        }
    });
    Verdict {
        decision: decision_name(d.outcome),
        determining: matched.iter().map(|m| name(layers, m)).collect(),
        denied_by: d.implicit_deny_layer.map(|l| l.to_string()),
        reason: None,
        explanation,
    }
}
