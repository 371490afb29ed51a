//! `iamd diff OLD NEW`: what a bundle change newly allows and newly denies.
//!
//! Two modes. Over a request set (JSON lines: `iamd simulate` cases with a
//! `request`, or the daemon's decision log), each request is decided by
//! both bundles and the changes are grouped by principal, action and
//! resource, each group with the statements that decided it before and
//! after. Without requests, a summary: for each user and role, every action
//! and resource pattern that either bundle mentions is probed with a
//! request made to match it, and the permissions that changed are listed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use iamd_bundle::Bundle;
use iamd_bundle::catalog::Catalog;
use iamd_bundle::query::{Query, Verdict};
use iamd_policy::context::Context;

/// Reads a request set: one JSON object a line, either a case
/// (`{"request": {...}}`) or a decision-log record (`principal`, `action`,
/// `resource`, `context` at the top). Blank lines are skipped; every bad
/// line is reported with its number.
pub fn read_requests(name: &str, text: &str) -> Result<Vec<Query>, Vec<String>> {
    crate::requests::request_lines(name, text, |_, r| {
        let text = |k: &str| {
            r.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let (Some(principal), Some(action)) = (text("principal"), text("action")) else {
            return Err("a request needs `principal` and `action` (as `{\"request\": {\"principal\": ..., \"action\": ..., \"resource\": ...}}` or a decision-log record)".into());
        };
        let mut context = Context::new();
        for (k, v) in crate::requests::context_values(r) {
            context.set(&k, v);
        }
        Ok(Query {
            principal,
            action,
            resource: text("resource").unwrap_or_else(|| "*".into()),
            resource_account: text("resourceAccount"),
            context,
        })
    })
}

/// Requests with the same principal, action and resource whose decision
/// changed the same way.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The principal as the requests named it.
    pub principal: String,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// How many requests.
    pub requests: usize,
    /// The old bundle's answer to the first of them, explained.
    pub before: Verdict,
    /// The new bundle's answer, explained.
    pub after: Verdict,
}

/// The changes over a request set.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDiff {
    /// Denied before, allowed now.
    pub newly_allowed: Vec<Group>,
    /// Allowed before, denied now.
    pub newly_denied: Vec<Group>,
    /// Requests whose answer did not change between allow and deny.
    pub unchanged: usize,
}

/// Decides each request with both bundles at `now`.
pub fn by_requests(
    old: &Bundle,
    new: &Bundle,
    queries: &[Query],
    now: jiff::Timestamp,
) -> RequestDiff {
    let mut d = RequestDiff::default();
    let mut index: BTreeMap<(bool, &str, &str, &str), usize> = BTreeMap::new();
    for q in queries {
        let before = old.query(q, now, false);
        let after = new.query(q, now, false);
        if before.allowed() == after.allowed() {
            d.unchanged += 1;
            continue;
        }
        let widened = after.allowed();
        let key = (
            widened,
            q.principal.as_str(),
            q.action.as_str(),
            q.resource.as_str(),
        );
        let list = if widened {
            &mut d.newly_allowed
        } else {
            &mut d.newly_denied
        };
        match index.get(&key) {
            Some(&i) => list[i].requests += 1,
            None => {
                index.insert(key, list.len());
                list.push(Group {
                    principal: q.principal.clone(),
                    action: q.action.clone(),
                    resource: q.resource.clone(),
                    requests: 1,
                    before: old.query(q, now, true),
                    after: new.query(q, now, true),
                });
            }
        }
    }
    let order = |g: &Group| (g.principal.clone(), g.action.clone(), g.resource.clone());
    d.newly_allowed.sort_by_key(order);
    d.newly_denied.sort_by_key(order);
    d
}

/// A principal's permission for an action pattern on a resource pattern,
/// with the request context empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Allowed outright.
    Allowed,
    /// Not allowed with an empty context, but an Allow statement about it
    /// has conditions that a request could meet.
    Conditional,
    /// Denied.
    Denied,
    /// The principal is not in this bundle.
    Absent,
}

impl Permission {
    /// As the report writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Conditional => "allowed under conditions",
            Self::Denied => "denied",
            Self::Absent => "absent",
        }
    }

    /// How much it grants, for telling widening from narrowing.
    fn rank(self) -> u8 {
        match self {
            Self::Allowed => 2,
            Self::Conditional => 1,
            Self::Denied | Self::Absent => 0,
        }
    }
}

/// One permission that changed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `user/alice`, `role/deployer`.
    pub principal: String,
    /// The action or action pattern, as a policy writes it.
    pub action: String,
    /// The resource pattern, as a policy writes it.
    pub resource: String,
    /// Before.
    pub before: Permission,
    /// After.
    pub after: Permission,
}

impl Change {
    /// Whether the change grants more.
    pub fn widens(&self) -> bool {
        self.after.rank() > self.before.rank()
    }
}

/// A request that matches `pattern` (a wildcard stands for a made-up
/// name), with `${aws:username}` standing for the principal's name.
fn probe(pattern: &str, principal: &str) -> String {
    let name = principal.rsplit('/').next().unwrap_or(principal);
    let mut out = pattern.replace("${aws:username}", name);
    // Other variables: a made-up value.
    while let Some(start) = out.find("${") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        out.replace_range(start..=start + len, "iamd-probe");
    }
    if out == "*" {
        return out;
    }
    out.replace('*', "iamd-probe").replace('?', "x")
}

fn permission(bundle: &Bundle, q: &Query, now: jiff::Timestamp) -> Permission {
    let Some(t) = bundle.trace(q, now) else {
        return Permission::Absent;
    };
    if t.verdict.allowed() {
        return Permission::Allowed;
    }
    if t.verdict.decision == "EXPLICIT_DENY" {
        return Permission::Denied;
    }
    // An Allow about this action and resource in the layer that lacked
    // one, held back only by its conditions.
    let layer = t.verdict.denied_by.as_deref().unwrap_or_default();
    let conditional = t.statements.iter().any(|(name, st)| {
        name.layer == layer
            && name.effect == "Allow"
            && st.action
            && st.resource
            && st.principal != Some(false)
            && !st.conditions.is_empty()
    });
    if conditional {
        Permission::Conditional
    } else {
        Permission::Denied
    }
}

/// The request-free summary: every user and role of either bundle, probed
/// on every (action, resource) pair that a statement of either bundle
/// names, with an empty context.
pub fn summary(
    old: (&Bundle, &Catalog),
    new: (&Bundle, &Catalog),
    now: jiff::Timestamp,
) -> Vec<Change> {
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    let mut principals: BTreeSet<String> = BTreeSet::new();
    for catalog in [old.1, new.1] {
        principals.extend(catalog.principals.iter().map(|p| p.name.clone()));
        for doc in &catalog.documents {
            for (actions, resources) in crate::lint::mentioned(doc) {
                let resources = if resources.is_empty() {
                    vec!["*".to_owned()]
                } else {
                    resources
                };
                for a in &actions {
                    for r in &resources {
                        pairs.insert((a.clone(), r.clone()));
                    }
                }
            }
        }
    }
    let mut changes = Vec::new();
    for principal in &principals {
        for (action, resource) in &pairs {
            let q = Query {
                principal: principal.clone(),
                action: probe(action, principal),
                resource: probe(resource, principal),
                resource_account: None,
                context: Context::new(),
            };
            let before = permission(old.0, &q, now);
            let after = permission(new.0, &q, now);
            if before != after {
                changes.push(Change {
                    principal: principal.clone(),
                    action: action.clone(),
                    resource: resource.clone(),
                    before,
                    after,
                });
            }
        }
    }
    changes
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The request diff for people: each group with both answers explained,
/// then the counts.
pub fn render_requests(d: &RequestDiff, out: &mut impl std::io::Write) -> std::io::Result<()> {
    for (title, groups) in [
        ("newly allowed", &d.newly_allowed),
        ("newly denied", &d.newly_denied),
    ] {
        let requests: usize = groups.iter().map(|g| g.requests).sum();
        if groups.is_empty() {
            writeln!(out, "{title}: none")?;
            continue;
        }
        writeln!(
            out,
            "{title}: {} ({})",
            plural(groups.len(), "group"),
            plural(requests, "request")
        )?;
        for g in groups {
            writeln!(
                out,
                "  {} {} {} ({})",
                g.principal,
                g.action,
                g.resource,
                plural(g.requests, "request")
            )?;
            for (when, v) in [("before", &g.before), ("after", &g.after)] {
                writeln!(out, "    {when}: {}", v.decision)?;
                for line in crate::suite::render::explain(v) {
                    writeln!(out, "      {line}")?;
                }
            }
        }
    }
    let count = |gs: &[Group]| gs.iter().map(|g| g.requests).sum::<usize>();
    writeln!(
        out,
        "{} newly allowed, {} newly denied, {} unchanged",
        count(&d.newly_allowed),
        count(&d.newly_denied),
        d.unchanged
    )
}

/// The summary for people, by principal.
pub fn render_summary(changes: &[Change], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut principal = None;
    for c in changes {
        if principal != Some(&c.principal) {
            principal = Some(&c.principal);
            writeln!(out, "{}", c.principal)?;
        }
        writeln!(
            out,
            "  {} on {}: {} -> {}{}",
            c.action,
            c.resource,
            c.before.name(),
            c.after.name(),
            if c.widens() { "  (wider)" } else { "" }
        )?;
    }
    let wider = changes.iter().filter(|c| c.widens()).count();
    writeln!(
        out,
        "{} wider, {} narrower",
        plural(wider, "permission"),
        changes.len() - wider
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_match_their_patterns() {
        assert_eq!(probe("docs:Get*", "user/alice"), "docs:Getiamd-probe");
        assert_eq!(probe("*", "user/alice"), "*");
        assert_eq!(
            probe(
                "arn:acme:docs:eu-1:1:doc/drafts/${aws:username}/*",
                "user/alice"
            ),
            "arn:acme:docs:eu-1:1:doc/drafts/alice/iamd-probe"
        );
        assert_eq!(
            probe("arn:a:s3:::b/${aws:PrincipalTag/team}?", "role/x"),
            "arn:a:s3:::b/iamd-probex"
        );
    }

    #[test]
    fn request_lines_in_both_shapes_and_errors_with_line_numbers() {
        let text = r#"{"request": {"principal": "user/alice", "action": "docs:GetDocument", "resource": "arn:x", "context": {"k": "v", "m": ["a", "b"]}}}

{"time": "2026-11-28T20:55:01Z", "principal": "user/bob", "action": "docs:PutDocument", "resource": "arn:y", "decision": "ALLOW"}"#;
        let q = read_requests("r.jsonl", text).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].context.len(), 2);
        assert_eq!(q[1].principal, "user/bob");
        let e = read_requests(
            "r.jsonl",
            "{\"request\": {\"action\": \"a:b\"}}\nnot json\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(
            e[0].starts_with("r.jsonl:1: a request needs `principal` and `action`"),
            "{e:?}"
        );
        assert!(e[1].starts_with("r.jsonl:2: not JSON"), "{e:?}");
    }
}
