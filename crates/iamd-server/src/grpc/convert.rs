//! Protobuf to engine and back.

use crate::reload::Status as ReloadStatus;
use iamd_bundle::Bundle;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{self, Determining, Layers, Outcome, Request};
use iamd_policy::policy::Effect;

use iamd_proto::pb;

/// A request the server cannot decide, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub String);

/// Decides one request against `bundle`.
pub(crate) fn decide(
    bundle: &Bundle,
    req: &pb::AuthorizeRequest,
    now: jiff::Timestamp,
    limits: &super::Limits,
) -> Result<pb::AuthorizeResponse, InvalidRequest> {
    let bad = |m: String| Err(InvalidRequest(m));
    if req.principal.is_empty() {
        return bad("`principal` is empty: give an ARN or `user/NAME`, `role/NAME`".into());
    }
    if req.action != "*"
        && !req
            .action
            .split_once(':')
            .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty())
    {
        return bad(format!(
            "`action` `{}` is not `service:Action` (e.g. `docs:GetDocument`)",
            req.action
        ));
    }
    if req.resource.is_empty() {
        return bad("`resource` is empty: give the resource's ARN, or `*`".into());
    }
    if req.context.len() > limits.max_context_keys {
        return bad(format!(
            "the context has {} keys; the server accepts at most {} (`limits.maxContextKeys`)",
            req.context.len(),
            limits.max_context_keys
        ));
    }
    let values: usize = req
        .context
        .values()
        .map(|v| match &v.kind {
            Some(pb::context_value::Kind::Multi(list)) => list.values.len(),
            _ => 1,
        })
        .sum();
    if values > limits.max_context_values {
        return bad(format!(
            "the context has {values} values; the server accepts at most {} (`limits.maxContextValues`)",
            limits.max_context_values
        ));
    }
    let mut keys = Vec::with_capacity(req.context.len());
    for (key, value) in &req.context {
        let value = match &value.kind {
            Some(pb::context_value::Kind::Single(s)) => ContextValue::Single(s.clone()),
            Some(pb::context_value::Kind::Multi(list)) => ContextValue::Multi(list.values.clone()),
            None => {
                return bad(format!(
                    "context key `{key}` has no value: set `single`, or `multi` (possibly empty)"
                ));
            }
        };
        if key.is_empty() {
            return bad("a context key is empty".into());
        }
        keys.push((key.as_str(), value));
    }
    let mut ctx = Context::from_keys(keys).map_err(|e| InvalidRequest(e.to_string()))?;
    let revision = bundle.revision_text().to_owned();
    let Some(resolved) = bundle.resolve(&req.principal) else {
        return Ok(pb::AuthorizeResponse {
            decision: pb::Decision::ImplicitDeny.into(),
            revision,
            determining: Vec::new(),
            denied_by: "principal".into(),
            reason: iamd_policy::message::shorten(&format!(
                "principal `{}` is not in the bundle",
                req.principal
            ))
            .into_owned(),
            explanation: req.explain.then(|| pb::Explanation {
                layer: "principal".into(),
                ..Default::default()
            }),
        });
    };
    // The server knows the principal's facts better than the caller.
    ctx.add_facts(resolved.facts(), now, true);
    let request = Request::new(&resolved.principal, &req.action, &req.resource, &ctx)
        .with_resource_account(Some(req.resource_account.as_str()).filter(|a| !a.is_empty()));
    let layers = bundle.layers(&resolved, &request, None);
    // The determining statements' scratch space, kept by the thread from
    // one decision to the next (no allocation per call).
    thread_local! {
        static MATCHED: std::cell::Cell<Vec<Determining>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut matched = MATCHED.take();
    let d = eval::evaluate(&layers, &request, &mut matched);
    let decision = match d.outcome {
        Outcome::Allow => pb::Decision::Allow,
        Outcome::ExplicitDeny => pb::Decision::ExplicitDeny,
        Outcome::ImplicitDeny => pb::Decision::ImplicitDeny,
    };
    let explanation = (req.explain && d.outcome != Outcome::Allow).then(|| {
        let e = eval::explain(&layers, &request, &d, &matched);
        pb::Explanation {
            layer: e.layer.map(|l| l.name().into_owned()).unwrap_or_default(),
            nearest_allow: e
                .nearest_allow
                .as_ref()
                .map(|n| determining(&layers, &n.statement)),
            failed: e.nearest_allow.map(|n| n.failed).unwrap_or_default(),
            missing_context_keys: e.missing_context_keys,
        }
    });
    let determining = matched.iter().map(|m| determining(&layers, m)).collect();
    MATCHED.set(matched);
    Ok(pb::AuthorizeResponse {
        decision: decision.into(),
        revision,
        determining,
        denied_by: d
            .implicit_deny_layer
            .map(|l| l.name().into_owned())
            .unwrap_or_default(),
        reason: String::new(),
        explanation,
    })
}

fn determining(layers: &Layers<'_>, m: &Determining) -> pb::DeterminingStatement {
    let found = layers.statement(m);
    pb::DeterminingStatement {
        policy: found.map(|(p, _)| p.name().to_owned()).unwrap_or_default(),
        layer: m.layer.name().into_owned(),
        index: m.statement,
        sid: found
            .and_then(|(_, s)| s.sid())
            .unwrap_or_default()
            .to_owned(),
        effect: match m.effect {
            Effect::Allow => pb::Effect::Allow,
            Effect::Deny => pb::Effect::Deny,
        }
        .into(),
    }
}

/// The reloader's status as `GetStatus` reports it.
pub(crate) fn status(serving: bool, s: &ReloadStatus) -> pb::GetStatusResponse {
    pb::GetStatusResponse {
        serving,
        live: s.live.as_ref().map(|l| pb::LiveBundle {
            revision: l.revision.to_string(),
            digest: l.revision.digest.clone(),
            loaded_at: l.loaded_at.to_string(),
            source: l.source.display().to_string(),
            users: l.stats.users as u64,
            groups: l.stats.groups as u64,
            roles: l.stats.roles as u64,
            managed_policies: l.stats.managed_policies as u64,
            resource_policies: l.stats.resource_policies as u64,
            statements: l.stats.statements as u64,
        }),
        last_failure: s.last_failure.as_ref().map(|f| pb::ReloadFailure {
            at: f.at.to_string(),
            errors: f.errors.clone(),
        }),
        reloads: Some(pb::ReloadCounts {
            loaded: s.reloads.loaded,
            unchanged: s.reloads.unchanged,
            failed: s.reloads.failed,
        }),
    }
}
