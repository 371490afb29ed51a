//! Raw policy to compiled policy.

use super::condition::{Condition, Operator};
use super::error::Problems;
use super::pattern::{ArnPattern, ArnSyntax, Pattern, Syntax};
use super::principal::Principals;
use super::raw::{RawOperator, RawPolicy, RawStatement, Spanned, StringList};
use super::{Actions, Effect, PolicyKind, ResourcePattern, Resources, Statement, Version};

/// Compiles the statements of a raw policy; problems go to `problems`.
pub(crate) fn compile(
    raw: &RawPolicy,
    kind: PolicyKind,
    problems: &mut Problems,
) -> (Option<Version>, Vec<Statement>) {
    let version = raw.version.as_ref().and_then(|v| match v.v.as_str() {
        "2012-10-17" => Some(Version::V2012_10_17),
        "2008-10-17" => Some(Version::V2008_10_17),
        other => {
            problems.add(
                v.at,
                None,
                format!("unknown `Version` `{other}`: write `2012-10-17`"),
            );
            None
        }
    });
    let variables = version == Some(Version::V2012_10_17);
    let mut statements = Vec::with_capacity(raw.statements.len());
    // A set, not a list: a policy of 100,000 statements with Sids was
    // quadratic to check (seconds of memcmp).
    let mut sids: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
    for (index, s) in raw.statements.iter().enumerate() {
        if let Some(sid) = &s.sid
            && !sid.v.is_empty()
            && !sids.insert(&sid.v)
        {
            problems.add(
                sid.at,
                Some(index),
                format!("`Sid` `{}` is used by an earlier statement: statement ids must be unique in a policy", sid.v),
            );
        }
        if let Some(st) = statement(s, index, kind, variables, problems) {
            statements.push(st);
        }
    }
    (version, statements)
}

/// What a resource control policy may hold (AWS Organizations, "RCP
/// syntax"): only `Deny` (the `Allow` of `RCPFullAWSAccess` is implicit at
/// every level), `Principal` only as `"*"`, no `NotPrincipal`, no
/// `NotAction`.
fn rcp_rules(s: &RawStatement, effect: Option<Effect>, st: Option<usize>, problems: &mut Problems) {
    if effect == Some(Effect::Allow)
        && let Some(e) = &s.effect
    {
        problems.add(e.at, st, "a resource control policy only denies: `\"Effect\": \"Allow\"` is for `RCPFullAWSAccess`, which iamd applies at every level already; write a `Deny`");
    }
    if let Some(p) = &s.principal
        && !matches!(p.v, crate::policy::raw::RawPrincipal::Any)
    {
        problems.add(p.at, st, "a resource control policy takes only `\"Principal\": \"*\"`: narrow who it denies with a `Condition` (`aws:PrincipalOrgID`, `aws:PrincipalAccount`...)");
    }
    if let Some(p) = &s.not_principal {
        problems.add(
            p.at,
            st,
            "`NotPrincipal` is not supported in a resource control policy: use `\"Principal\": \"*\"` with a `Condition`",
        );
    }
    if let Some(a) = &s.not_action {
        problems.add(
            a.at,
            st,
            "`NotAction` is not supported in a resource control policy: list the actions in `Action`",
        );
    }
}

fn statement(
    s: &RawStatement,
    index: usize,
    kind: PolicyKind,
    variables: bool,
    problems: &mut Problems,
) -> Option<Statement> {
    let st = Some(index);
    if !s.is_object {
        return None;
    }
    let before = problems.len();
    let missing = |name: &str| !s.seen.contains(&name);
    let effect = match &s.effect {
        None if !missing("Effect") => None,
        None => {
            problems.add(
                s.at,
                st,
                "the statement has no `Effect`: add `\"Effect\": \"Allow\"` or `\"Deny\"`",
            );
            None
        }
        Some(e) => match e.v.as_str() {
            "Allow" => Some(Effect::Allow),
            "Deny" => Some(Effect::Deny),
            other => {
                let hint =
                    if other.eq_ignore_ascii_case("allow") || other.eq_ignore_ascii_case("deny") {
                        " (the value is case-sensitive)"
                    } else {
                        ""
                    };
                problems.add(
                    e.at,
                    st,
                    format!("`Effect` is `Allow` or `Deny`, found `{other}`{hint}"),
                );
                None
            }
        },
    };

    let actions = match (&s.action, &s.not_action) {
        (Some(_), Some(n)) => {
            problems.add(
                n.at,
                st,
                "a statement has `Action` or `NotAction`, not both",
            );
            None
        }
        (None, None) => {
            problems.add(
                s.at,
                st,
                "the statement has no `Action` or `NotAction`: add the actions it is about",
            );
            None
        }
        (Some(a), None) => actions(a, false, "Action", st, problems),
        (None, Some(n)) => actions(n, true, "NotAction", st, problems),
    };

    let resources = match (&s.resource, &s.not_resource) {
        (Some(_), Some(n)) => {
            problems.add(
                n.at,
                st,
                "a statement has `Resource` or `NotResource`, not both",
            );
            None
        }
        (None, None) => {
            if kind != PolicyKind::Resource && missing("Resource") && missing("NotResource") {
                problems.add(
                    s.at,
                    st,
                    format!("the statement has no `Resource` or `NotResource`: {} policy names the resources it is about (`\"Resource\": \"*\"` for all)", kind.article()),
                );
            }
            None
        }
        (Some(r), None) => resources(r, false, "Resource", st, variables, problems),
        (None, Some(n)) => resources(n, true, "NotResource", st, variables, problems),
    };

    if kind == PolicyKind::Rcp {
        rcp_rules(s, effect, st, problems);
    }
    let names_principals = matches!(kind, PolicyKind::Resource | PolicyKind::Rcp);
    let principals = match (&s.principal, &s.not_principal) {
        (Some(p), None) | (None, Some(p)) if !names_principals => {
            let what = if s.principal.is_some() {
                "Principal"
            } else {
                "NotPrincipal"
            };
            problems.add(
                p.at,
                st,
                format!("`{what}` is not allowed in {} policy: only resource-based policies (and role trust policies) name principals", kind.article()),
            );
            None
        }
        (Some(_), Some(n)) => {
            problems.add(
                n.at,
                st,
                "a statement has `Principal` or `NotPrincipal`, not both",
            );
            None
        }
        (None, None) => {
            if kind == PolicyKind::Rcp && missing("Principal") {
                problems.add(
                    s.at,
                    st,
                    "the statement has no `Principal`: a resource control policy applies to every caller, write `\"Principal\": \"*\"` (and narrow it with a `Condition`)",
                );
            } else if kind == PolicyKind::Resource
                && missing("Principal")
                && missing("NotPrincipal")
            {
                problems.add(
                    s.at,
                    st,
                    "the statement has no `Principal`: a resource-based policy says who it applies to (`\"Principal\": {\"AWS\": \"arn:aws:iam::111122223333:root\"}`)",
                );
            }
            None
        }
        (Some(p), None) => Principals::compile(p, false, st, problems),
        (None, Some(p)) => {
            if effect == Some(Effect::Allow) {
                problems.add(p.at, st, "`NotPrincipal` is supported only with `\"Effect\": \"Deny\"`: use `Principal` with `Allow`");
            }
            Principals::compile(p, true, st, problems)
        }
    };

    let conditions = s
        .condition
        .as_ref()
        .map(|c| conditions(&c.v, st, variables, problems))
        .unwrap_or_default();

    if problems.len() != before {
        return None;
    }
    Some(Statement {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        sid: s
            .sid
            .as_ref()
            .filter(|s| !s.v.is_empty())
            .map(|s| s.v.as_str().into()),
        effect: effect?,
        actions: actions?,
        resources,
        principals,
        conditions: conditions.into(),
    })
}

fn actions(
    list: &StringList,
    negated: bool,
    what: &str,
    st: Option<usize>,
    problems: &mut Problems,
) -> Option<Actions> {
    if list.v.is_empty() {
        problems.add(
            list.at,
            st,
            format!("`{what}` is empty: list at least one action"),
        );
        return None;
    }
    let syntax = Syntax {
        wildcards: true,
        variables: false,
        fold: true,
    };
    let mut patterns = Vec::with_capacity(list.v.len());
    for a in &list.v {
        if a.v != "*" {
            match a.v.split_once(':') {
                Some((service, name)) if !service.is_empty() && !name.is_empty() => {}
                _ => {
                    problems.add(
                        a.at,
                        st,
                        format!("action `{}` has no service prefix: write `service:Action` (e.g. `s3:GetObject`, `docs:*`) or `*`", a.v),
                    );
                    continue;
                }
            }
        }
        match Pattern::new(&a.v, syntax) {
            Ok(p) => patterns.push(p),
            Err(e) => problems.add(a.at, st, format!("action `{}`: {e}", a.v)),
        }
    }
    let texts = list.v.iter().map(|a| a.v.as_str().into()).collect();
    Some(Actions {
        negated,
        patterns: patterns.into(),
        texts,
    })
}

fn resources(
    list: &StringList,
    negated: bool,
    what: &str,
    st: Option<usize>,
    variables: bool,
    problems: &mut Problems,
) -> Option<Resources> {
    if list.v.is_empty() {
        problems.add(
            list.at,
            st,
            format!("`{what}` is empty: list at least one resource ARN, or `*`"),
        );
        return None;
    }
    let syntax = ArnSyntax {
        variables,
        variables_anywhere: false,
        literal_service: true,
    };
    let mut patterns = Vec::with_capacity(list.v.len());
    for r in &list.v {
        if r.v == "*" {
            patterns.push(ResourcePattern::Any);
            continue;
        }
        match ArnPattern::new(&r.v, syntax) {
            Ok(p) => patterns.push(ResourcePattern::Arn(p)),
            Err(e) => problems.add(r.at, st, format!("resource `{}`: {e}", r.v)),
        }
    }
    Some(Resources {
        negated,
        patterns: patterns.into(),
    })
}

fn conditions(
    ops: &[RawOperator],
    st: Option<usize>,
    variables: bool,
    problems: &mut Problems,
) -> Vec<Condition> {
    let mut out = Vec::new();
    for op in ops {
        let operator = match Operator::parse(&op.name.v) {
            Ok(o) => o,
            Err(e) => {
                problems.add(op.name.at, st, e);
                continue;
            }
        };
        if op.keys.is_empty() {
            problems.add(
                op.name.at,
                st,
                format!(
                    "condition operator `{}` has no keys: remove it or add a key",
                    op.name.v
                ),
            );
        }
        for (key, values) in &op.keys {
            if !valid_key(&key.v) {
                problems.add(
                    key.at,
                    st,
                    format!("condition key `{}` has no prefix: write `prefix:name` (e.g. `aws:SourceIp`, `docs:Owner`)", key.v),
                );
                continue;
            }
            let texts: Vec<&str> = values.iter().map(|v| v.v.as_str()).collect();
            match Condition::new(operator, &key.v, &texts, variables) {
                Ok(c) => out.push(c.named(&op.name.v)),
                Err(e) => {
                    let at = values.first().map_or(key.at, |v: &Spanned<String>| v.at);
                    problems.add(at, st, format!("`{}` `{}`: {e}", op.name.v, key.v));
                }
            }
        }
    }
    out
}

fn valid_key(key: &str) -> bool {
    key.split_once(':')
        .is_some_and(|(p, n)| !p.is_empty() && !n.is_empty())
}
