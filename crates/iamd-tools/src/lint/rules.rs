//! The checks. Each reads raw statements (with their offsets) and the
//! catalog; none evaluates a request. Wildcard reasoning is conservative:
//! a statement is said to be covered by another only when that is certain
//! (`*`, a trailing `*`, or the same text), so a warning never claims more
//! than is true.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::rc::Rc;

use super::{Finding, Place, Rule, Severity};
use iamd_bundle::catalog::{Catalog, Document, DocumentRole};
use iamd_policy::json::Source;
use iamd_policy::policy::StatementRef;
use iamd_policy::policy::condition::{Base, Cmp, Operator, SetQualifier};
use iamd_policy::policy::raw::{RawPrincipal, RawStatement, Spanned, read_policy};

const fn warning(code: &'static str, name: &'static str, summary: &'static str) -> Rule {
    Rule {
        code,
        name,
        severity: Severity::Warning,
        summary,
    }
}

pub(super) static LOAD: Rule = Rule {
    code: "E001",
    name: "does-not-load",
    severity: Severity::Error,
    summary: "the bundle or policy would not load (a daemon keeps serving its last good bundle)",
};
pub(super) static ALL_ACTIONS: Rule = warning(
    "W001",
    "allow-all-actions",
    "an Allow with `\"Action\": \"*\"`",
);
pub(super) static SERVICE_WILDCARD: Rule = warning(
    "W002",
    "allow-service-wildcard-on-all-resources",
    "an Allow of every action of a service (`svc:*`) on `\"Resource\": \"*\"`",
);
pub(super) static NOT_ACTION: Rule = warning(
    "W003",
    "allow-with-not-action",
    "an Allow with `NotAction`: it grants every other action, including future ones",
);
pub(super) static NOT_RESOURCE: Rule = warning(
    "W004",
    "allow-with-not-resource",
    "an Allow with `NotResource`: it grants every other resource, including future ones",
);
pub(super) static OPEN_TRUST: Rule = warning(
    "W005",
    "open-to-any-principal",
    "a trust or resource policy that allows any principal (`*`) without a condition",
);
pub(super) static NO_MFA: Rule = warning(
    "W006",
    "sensitive-action-without-mfa",
    "destructive or credential-changing actions allowed without an MFA condition",
);
pub(super) static SHADOWED: Rule = warning(
    "W007",
    "shadowed-by-deny",
    "an Allow that an unconditional Deny always overrides: it never grants anything",
);
pub(super) static CONTRADICTORY: Rule = warning(
    "W008",
    "contradictory-conditions",
    "conditions that no request can satisfy together: the statement never applies",
);
pub(super) static DUPLICATE: Rule = warning(
    "W009",
    "duplicate-statement",
    "a statement identical to another of the same policy (the Sid aside)",
);
pub(super) static REDUNDANT: Rule = warning(
    "W010",
    "redundant-statement",
    "a statement that another unconditional statement of the same policy already covers",
);
pub(super) static OLD_VERSION_VARIABLES: Rule = warning(
    "W011",
    "variables-without-version-2012",
    "`${...}` in a policy whose Version is not 2012-10-17: it is literal text there",
);
pub(super) static SINGLE_ON_MULTI: Rule = warning(
    "W012",
    "single-valued-operator-on-multivalued-key",
    "a plain operator on a multivalued key (use ForAnyValue or ForAllValues)",
);
pub(super) static FOR_ALL_ALLOW: Rule = warning(
    "W013",
    "for-all-values-with-allow",
    "ForAllValues in an Allow: it also matches when the key is absent or empty",
);
pub(super) static UNKNOWN_PRINCIPAL: Rule = warning(
    "W014",
    "unknown-principal",
    "a trust or resource policy names a user or role of this account that the bundle does not define",
);
pub(super) static UNUSED_POLICY: Rule = warning(
    "W015",
    "unused-managed-policy",
    "a managed policy that no user, group or role attaches",
);
pub(super) static UNUSED_GROUP: Rule = warning("W016", "unused-group", "a group without users");

pub(super) static ALL: &[&Rule] = &[
    &LOAD,
    &ALL_ACTIONS,
    &SERVICE_WILDCARD,
    &NOT_ACTION,
    &NOT_RESOURCE,
    &OPEN_TRUST,
    &NO_MFA,
    &SHADOWED,
    &CONTRADICTORY,
    &DUPLICATE,
    &REDUNDANT,
    &OLD_VERSION_VARIABLES,
    &SINGLE_ON_MULTI,
    &FOR_ALL_ALLOW,
    &UNKNOWN_PRINCIPAL,
    &UNUSED_POLICY,
    &UNUSED_GROUP,
];

/// Keys that AWS documents as multivalued.
const MULTIVALUED: &[&str] = &[
    "aws:tagkeys",
    "aws:calledvia",
    "aws:principalorgpaths",
    "aws:principalservicenameslist",
];

const MFA_KEYS: &[&str] = &["aws:multifactorauthpresent", "aws:multifactorauthage"];

/// A document, read again for its positions.
struct Doc<'c> {
    doc: &'c Document,
    /// `Version` is 2012-10-17.
    current_version: bool,
    /// Shared by the documents of the same text (the inline policy that
    /// 100,000 users each carry is read once).
    statements: Rc<Vec<Stmt>>,
}

/// Documents read so far, by their text: `None` for a text that does not
/// read.
type Read<'c> = HashMap<&'c str, Option<(bool, Rc<Vec<Stmt>>)>>;

struct Stmt {
    index: usize,
    raw: RawStatement,
    allow: bool,
    deny: bool,
    ops: Vec<Op>,
}

/// A condition operator of a statement: its place in the raw `Condition`,
/// and the engine's reading of its name.
struct Op {
    /// Position in the raw `Condition`.
    index: usize,
    op: Operator,
}

impl std::ops::Deref for Op {
    type Target = Operator;

    fn deref(&self) -> &Operator {
        &self.op
    }
}

impl Stmt {
    fn sid(&self) -> Option<&str> {
        self.raw.sid.as_ref().map(|s| s.v.as_str())
    }

    fn conditional(&self) -> bool {
        self.raw.condition.as_ref().is_some_and(|c| !c.v.is_empty())
    }

    fn actions(&self) -> &[Spanned<String>] {
        self.raw.action.as_ref().map_or(&[], |a| &a.v)
    }

    fn has_key(&self, keys: &[&str]) -> bool {
        self.raw.condition.iter().flat_map(|c| &c.v).any(|op| {
            op.keys
                .iter()
                .any(|(k, _)| keys.contains(&k.v.to_lowercase().as_str()))
        })
    }

    /// The values of `key` under the operator `op`.
    fn values(&self, op: &Op) -> &[(Spanned<String>, Vec<Spanned<String>>)] {
        self.raw
            .condition
            .as_ref()
            .and_then(|c| c.v.get(op.index))
            .map_or(&[], |o| &o.keys)
    }
}

/// A document's statements as written, read once for all the documents of
/// its text.
fn read<'c>(doc: &'c Document, seen: &mut Read<'c>) -> Option<Doc<'c>> {
    let (current_version, statements) = seen
        .entry(&doc.text)
        .or_insert_with(|| read_text(&doc.text))
        .clone()?;
    Some(Doc {
        doc,
        current_version,
        statements,
    })
}

fn read_text(text: &str) -> Option<(bool, Rc<Vec<Stmt>>)> {
    let value = iamd_policy::json::parse(text).ok()?;
    let mut problems = Default::default();
    let raw = read_policy(&value, &mut problems);
    let current_version = raw.version.as_ref().is_some_and(|v| v.v == "2012-10-17");
    let statements = raw
        .statements
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s.is_object)
        .map(|(index, raw)| {
            let effect = raw.effect.as_ref().map(|e| e.v.as_str());
            let ops = raw
                .condition
                .iter()
                .flat_map(|c| c.v.iter().enumerate())
                // A document that reached the rules loaded: its operator
                // names parse (an unknown one is left out, not guessed at).
                .filter_map(|(index, op)| {
                    Operator::parse(&op.name.v).ok().map(|op| Op { index, op })
                })
                .collect();
            Stmt {
                index,
                allow: effect == Some("Allow"),
                deny: effect == Some("Deny"),
                raw,
                ops,
            }
        })
        .collect();
    Some((current_version, Rc::new(statements)))
}

/// Findings are made per document with its places.
struct Out<'a> {
    dir: &'a Path,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn add(
        &mut self,
        rule: &'static Rule,
        doc: &Doc<'_>,
        at: usize,
        stmt: Option<&Stmt>,
        message: String,
        fix: &str,
    ) {
        let place = place(self.dir, doc.doc, at);
        self.findings.push(Finding {
            rule,
            place,
            policy: Some(doc.doc.label.clone()),
            statement: stmt.map(|s| StatementRef {
                index: s.index,
                sid: s.sid().map(str::to_owned),
            }),
            message,
            fix: Some(fix.to_owned()),
        });
    }
}

/// Where the byte `at` of a document's text is, as its author sees it.
pub(super) fn place(dir: &Path, doc: &Document, at: usize) -> Place {
    match &doc.embedded_at {
        Some(at) => Place {
            file: super::display(dir, &at.file),
            line: at.line,
            column: at.column,
        },
        None => {
            let loc = Source::new(&doc.file, &doc.text).location(at);
            Place {
                file: super::display(dir, &doc.file),
                line: loc.line,
                column: loc.column,
            }
        }
    }
}

/// Where each statement of a document is.
pub(super) fn statement_places(doc: &Document, dir: &Path) -> Vec<Place> {
    let Ok(value) = iamd_policy::json::parse(&doc.text) else {
        return Vec::new();
    };
    let mut problems = Default::default();
    read_policy(&value, &mut problems)
        .statements
        .iter()
        .map(|s| place(dir, doc, s.at))
        .collect()
}

pub(super) fn mentioned(doc: &Document) -> Vec<(Vec<String>, Vec<String>)> {
    let Ok(value) = iamd_policy::json::parse(&doc.text) else {
        return Vec::new();
    };
    let mut problems = Default::default();
    let texts = |l: Option<&Spanned<Vec<Spanned<String>>>>| -> Vec<String> {
        l.map(|l| l.v.iter().map(|s| s.v.clone()).collect())
            .unwrap_or_default()
    };
    read_policy(&value, &mut problems)
        .statements
        .iter()
        .map(|s| {
            let mut actions = texts(s.action.as_ref());
            actions.extend(texts(s.not_action.as_ref()));
            let mut resources = texts(s.resource.as_ref());
            resources.extend(texts(s.not_resource.as_ref()));
            (actions, resources)
        })
        .collect()
}

/// Every check over a catalog; files are named under `dir`.
pub(super) fn check(catalog: &Catalog, dir: &Path) -> Vec<Finding> {
    let mut seen = Read::new();
    let docs: Vec<Option<Doc<'_>>> = catalog
        .documents
        .iter()
        .map(|d| read(d, &mut seen))
        .collect();
    drop(seen);
    let mut out = Out {
        dir,
        findings: Vec::new(),
    };
    // Guardrails (SCPs, permissions boundaries) cap what others grant:
    // broad Allows there are the norm, not a grant.
    let boundaries: BTreeSet<usize> = catalog
        .principals
        .iter()
        .filter_map(|p| p.boundary)
        .collect();
    let identities: BTreeSet<usize> = catalog
        .principals
        .iter()
        .flat_map(|p| p.identity.iter().copied())
        .collect();
    let guardrail = |id: usize, doc: &Doc<'_>| {
        matches!(doc.doc.role, DocumentRole::Scp | DocumentRole::Rcp)
            || doc.doc.kind == iamd_policy::policy::PolicyKind::Boundary
            || (boundaries.contains(&id) && !identities.contains(&id))
    };
    for (id, doc) in docs.iter().enumerate() {
        let Some(doc) = doc else { continue };
        let guardrail = guardrail(id, doc);
        for s in doc.statements.iter() {
            if !guardrail {
                broad(&mut out, doc, s);
            }
            variables(&mut out, doc, s);
            conditions(&mut out, doc, s);
            if matches!(doc.doc.role, DocumentRole::Trust | DocumentRole::Resource) {
                principals(&mut out, doc, s, catalog);
            }
        }
        within(&mut out, doc);
    }
    let holders = Holders::new(catalog);
    shadowed(&mut out, catalog, &holders, &docs);
    mfa(&mut out, &holders, &docs, |id, doc| guardrail(id, doc));
    unused(&mut out, catalog, &docs);
    out.findings
}

/// W001–W004: broad grants.
fn broad(out: &mut Out<'_>, doc: &Doc<'_>, s: &Stmt) {
    if !s.allow {
        return;
    }
    let all_resources = s
        .raw
        .resource
        .as_ref()
        .is_some_and(|r| r.v.iter().any(|v| v.v == "*"));
    if let Some(a) = s.actions().iter().find(|a| a.v == "*" || a.v == "*:*") {
        out.add(
            &ALL_ACTIONS,
            doc,
            a.at,
            Some(s),
            format!("allows every action (`{}`)", a.v),
            "list the actions this statement needs (`iamd simulate` and the decision log show which are asked for)",
        );
    } else if all_resources && let Some(a) = s.actions().iter().find(|a| a.v.ends_with(":*")) {
        out.add(
            &SERVICE_WILDCARD,
            doc,
            a.at,
            Some(s),
            format!(
                "allows every `{}` action on every resource",
                a.v.trim_end_matches(":*")
            ),
            "list the actions needed, or narrow `Resource` to the ARNs they apply to",
        );
    }
    if let Some(n) = &s.raw.not_action {
        out.add(
            &NOT_ACTION,
            doc,
            n.at,
            Some(s),
            "allows every action except those listed in `NotAction`, including actions added later"
                .into(),
            "write the allowed actions in `Action`; to carve out exceptions, add a Deny statement",
        );
    }
    if let Some(n) = &s.raw.not_resource {
        out.add(
            &NOT_RESOURCE,
            doc,
            n.at,
            Some(s),
            "allows every resource except those listed in `NotResource`, including resources created later".into(),
            "write the allowed resources in `Resource`; to carve out exceptions, add a Deny statement",
        );
    }
}

/// W011: policy variables where they are literal text.
fn variables(out: &mut Out<'_>, doc: &Doc<'_>, s: &Stmt) {
    if !doc.current_version {
        let variable = s
            .raw
            .resource
            .iter()
            .flat_map(|r| &r.v)
            .chain(
                s.raw
                    .condition
                    .iter()
                    .flat_map(|c| &c.v)
                    .flat_map(|op| &op.keys)
                    .flat_map(|(_, vs)| vs),
            )
            .find(|v| v.v.contains("${"));
        if let Some(v) = variable {
            out.add(
                &OLD_VERSION_VARIABLES,
                doc,
                v.at,
                Some(s),
                format!(
                    "`{}` is read as literal text: policy variables need `\"Version\": \"2012-10-17\"`",
                    v.v
                ),
                "add `\"Version\": \"2012-10-17\"` to the policy",
            );
        }
    }
}

/// W008, W012, W013: conditions.
fn conditions(out: &mut Out<'_>, doc: &Doc<'_>, s: &Stmt) {
    for op in &s.ops {
        for (key, _) in s.values(op) {
            let lower = key.v.to_lowercase();
            if op.qualifier.is_none()
                && op.base != Base::Null
                && MULTIVALUED.contains(&lower.as_str())
            {
                out.add(
                    &SINGLE_ON_MULTI,
                    doc,
                    key.at,
                    Some(s),
                    format!(
                        "`{}` is multivalued, but `{}` compares a single value",
                        key.v,
                        name_of(s, op)
                    ),
                    "write `ForAnyValue:` (any value matches) or `ForAllValues:` (every value matches) before the operator",
                );
            }
            if op.qualifier == Some(SetQualifier::ForAllValues)
                && s.allow
                && !requires_present(s, &lower)
            {
                out.add(
                    &FOR_ALL_ALLOW,
                    doc,
                    key.at,
                    Some(s),
                    format!(
                        "`ForAllValues` on `{}` is also true when the request has no `{}` or an empty one, so this Allow applies then too",
                        key.v, key.v
                    ),
                    &format!(
                        "add `\"Null\": {{\"{}\": \"false\"}}` to require the key, or use `ForAnyValue`",
                        key.v
                    ),
                );
            }
        }
    }
    if let Some(why) = contradiction(s) {
        let at = s.raw.condition.as_ref().map_or(s.raw.at, |c| c.at);
        out.add(
            &CONTRADICTORY,
            doc,
            at,
            Some(s),
            format!(
                "no request can satisfy these conditions: {why}, so the statement never applies"
            ),
            "remove the condition that contradicts the other, or split the statement",
        );
    }
}

fn name_of(s: &Stmt, op: &Op) -> String {
    s.raw
        .condition
        .as_ref()
        .and_then(|c| c.v.get(op.index))
        .map_or_else(String::new, |o| o.name.v.clone())
}

/// The statement has `"Null": {key: "false"}`.
fn requires_present(s: &Stmt, key: &str) -> bool {
    s.ops.iter().any(|op| {
        op.base == Base::Null
            && s.values(op).iter().any(|(k, vs)| {
                k.v.eq_ignore_ascii_case(key)
                    && vs.iter().all(|v| v.v.eq_ignore_ascii_case("false"))
            })
    })
}

/// Why the conditions of `s` cannot hold together, if they cannot.
fn contradiction(s: &Stmt) -> Option<String> {
    // Each plain (unqualified) key: (operator name, base, if_exists, values).
    let mut by_key: Vec<(String, String, &Op, Vec<String>)> = Vec::new();
    for op in s.ops.iter().filter(|o| o.qualifier.is_none()) {
        for (k, vs) in s.values(op) {
            let folded = op.ignores_case();
            let values = vs
                .iter()
                .map(|v| {
                    if folded {
                        v.v.to_lowercase()
                    } else {
                        v.v.clone()
                    }
                })
                .collect();
            by_key.push((k.v.to_lowercase(), name_of(s, op), op, values));
        }
    }
    for (i, (key, name_a, a, va)) in by_key.iter().enumerate() {
        for (key_b, name_b, b, vb) in &by_key[i + 1..] {
            if key != key_b {
                continue;
            }
            for (x, name_x, vx, y, name_y, vy) in [
                (a, name_a, va, b, name_b, vb),
                (b, name_b, vb, a, name_a, va),
            ] {
                // Null true needs the key absent; a positive operator
                // without IfExists needs it present.
                if x.base == Base::Null
                    && vx.iter().all(|v| v.eq_ignore_ascii_case("true"))
                    && y.needs_the_key()
                    && !y.if_exists
                {
                    return Some(format!(
                        "`{name_x}` requires `{key}` to be absent and `{name_y}` requires it present"
                    ));
                }
                let equality = |o: &Op| {
                    !o.negated
                        && matches!(
                            o.base,
                            Base::StringEquals | Base::StringEqualsIgnoreCase | Base::Bool
                        )
                };
                // Equal to one of V and different from each of W, V ⊆ W.
                if !x.if_exists
                    && matches!(x.base, Base::StringEquals | Base::StringEqualsIgnoreCase)
                    && !x.negated
                    && y.negated
                    && y.base == x.base
                    && vx.iter().all(|v| vy.contains(v))
                {
                    return Some(format!(
                        "`{name_x}` requires `{key}` to be one of {} and `{name_y}` excludes each of them",
                        list(vx)
                    ));
                }
                // Two equalities with no value in common.
                if equality(x)
                    && x.base == y.base
                    && y.negated == x.negated
                    && !x.if_exists
                    && vx.iter().all(|v| !vy.contains(v))
                {
                    return Some(format!(
                        "`{name_x}` and `{name_y}` require `{key}` to equal values they do not share ({} and {})",
                        list(vx),
                        list(vy)
                    ));
                }
            }
            if let Some(why) = empty_range(key, (name_a, a, va), (name_b, b, vb)) {
                return Some(why);
            }
        }
    }
    None
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A numeric lower bound above an upper bound on the same key.
fn empty_range(
    key: &str,
    (name_a, a, va): (&String, &Op, &Vec<String>),
    (name_b, b, vb): (&String, &Op, &Vec<String>),
) -> Option<String> {
    if a.if_exists && b.if_exists {
        return None;
    }
    // Several values are alternatives: the loosest bound counts.
    let bound = |op: &Op, vs: &[String]| -> Option<(bool, bool, f64)> {
        let nums: Option<Vec<f64>> = vs.iter().map(|v| v.parse::<f64>().ok()).collect();
        let nums = nums?;
        let (upper, strict) = match op.base {
            Base::Numeric(Cmp::Lt) => (true, true),
            Base::Numeric(Cmp::Le) => (true, false),
            Base::Numeric(Cmp::Gt) => (false, true),
            Base::Numeric(Cmp::Ge) => (false, false),
            _ => return None,
        };
        let v = if upper {
            nums.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        } else {
            nums.iter().copied().fold(f64::INFINITY, f64::min)
        };
        Some((upper, strict, v))
    };
    let (ua, sa, xa) = bound(a, va)?;
    let (ub, sb, xb) = bound(b, vb)?;
    let ((hi_name, hi_strict, hi), (lo_name, lo_strict, lo)) = match (ua, ub) {
        (true, false) => ((name_a, sa, xa), (name_b, sb, xb)),
        (false, true) => ((name_b, sb, xb), (name_a, sa, xa)),
        _ => return None,
    };
    let empty = lo > hi || (lo == hi && (hi_strict || lo_strict));
    empty.then(|| format!("`{lo_name}` needs `{key}` at least {lo} and `{hi_name}` at most {hi}"))
}

/// W005, W014: who a trust or resource policy lets in.
fn principals(out: &mut Out<'_>, doc: &Doc<'_>, s: &Stmt, catalog: &Catalog) {
    if !s.allow {
        return;
    }
    let Some(p) = &s.raw.principal else { return };
    let (open, values): (bool, Vec<&Spanned<String>>) = match &p.v {
        RawPrincipal::Any => (true, Vec::new()),
        RawPrincipal::Map(entries) => {
            let aws: Vec<&Spanned<String>> = entries
                .iter()
                .filter(|(t, _)| t.v == "AWS")
                .flat_map(|(_, vs)| vs)
                .collect();
            (aws.iter().any(|v| v.v == "*"), aws)
        }
    };
    if open && !s.conditional() {
        let (what, fix) = if doc.doc.role == DocumentRole::Trust {
            (
                "anyone, in any account, may assume this role",
                "name the principals that may assume it (an account, role or user ARN), or add a condition such as `aws:PrincipalOrgID` (set by the server from `organizationId` in bundle.yaml, never by a caller) or `sts:ExternalId`",
            )
        } else {
            (
                "anyone, in any account or anonymous, is allowed",
                "name the principals, or add a condition such as `aws:PrincipalOrgID` (set by the server from `organizationId` in bundle.yaml, never by a caller), `aws:SourceVpce` or `aws:SourceIp`",
            )
        };
        out.add(&OPEN_TRUST, doc, p.at, Some(s), what.into(), fix);
    }
    if catalog.account.is_empty() {
        return;
    }
    for v in values {
        let Some([_, _, "iam", "", account, resource]) = iamd_policy::arn::split(&v.v) else {
            continue;
        };
        if account != catalog.account {
            continue;
        }
        let Some((kind, rest)) = resource.split_once('/') else {
            continue;
        };
        if !matches!(kind, "user" | "role") || rest.contains('*') {
            continue;
        }
        let name = rest.rsplit('/').next().unwrap_or(rest);
        if !catalog
            .names
            .contains(&format!("{kind}/{}", name.to_lowercase()))
        {
            out.add(
                &UNKNOWN_PRINCIPAL,
                doc,
                v.at,
                Some(s),
                format!(
                    "`{}` names {kind} `{name}`, which this bundle does not define",
                    v.v
                ),
                &format!("define {kind} `{name}` in the bundle, or correct the ARN"),
            );
        }
    }
}

/// W009, W010: statements of one policy that repeat or cover each other.
fn within(out: &mut Out<'_>, doc: &Doc<'_>) {
    let keys: Vec<String> = doc.statements.iter().map(canonical).collect();
    let mut first_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let outers = ByAction::new(doc.statements.iter().enumerate());
    for (j, s) in doc.statements.iter().enumerate() {
        let first = *first_of.entry(keys[j].as_str()).or_insert(j);
        if first != j {
            out.add(
                &DUPLICATE,
                doc,
                s.raw.at,
                Some(s),
                format!("repeats {}", describe(&doc.statements[first])),
                "delete one of the two",
            );
            continue;
        }
        let cover = outers.candidates(s).into_iter().find_map(|i| {
            let t = doc.statements.get(i)?;
            (i != j
                && keys[i] != keys[j]
                && (s.allow && t.allow || s.deny && t.deny)
                && same_principals(s, t)
                && covers(t, s, true)
                // Of two statements covering each other, keep the first.
                && !(covers(s, t, true) && i > j))
                .then_some(t)
        });
        if let Some(t) = cover {
            out.add(
                &REDUNDANT,
                doc,
                s.raw.at,
                Some(s),
                format!("{} already covers it, with no condition", describe(t)),
                "delete it, or narrow the other statement",
            );
        }
    }
}

/// Statements indexed by the literal start of their action patterns, so
/// that the rules asking "which statement covers this one" look only at
/// statements that could (asking every statement of a policy for every
/// other made `iamd validate` quadratic: 11 s for one policy of 8,000
/// statements). A statement is found under each of its actions' keys: `*`
/// under the empty key, `svc:get*` under `svc:get`, any other pattern
/// under itself; an action is covered ([`pattern_covers`]) only by a
/// pattern whose key is one of its prefixes.
struct ByAction {
    keys: std::collections::HashMap<String, Vec<usize>>,
    /// The longest key, in bytes: no prefix beyond it needs a lookup.
    longest: usize,
}

impl ByAction {
    /// Indexes `statements` (index, statement), in ascending index order.
    fn new<'s>(statements: impl Iterator<Item = (usize, &'s Stmt)>) -> Self {
        let mut keys: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, s) in statements {
            for a in s.actions() {
                let lower = a.v.to_lowercase();
                let key = match lower.strip_suffix('*') {
                    _ if lower == "*" => "",
                    Some(prefix) if !prefix.contains(['*', '?']) => prefix,
                    _ => lower.as_str(),
                };
                let list = keys.entry(key.to_owned()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        let longest = keys.keys().map(String::len).max().unwrap_or(0);
        Self { keys, longest }
    }

    /// The indexes of the statements that may cover every action of
    /// `inner`, ascending, each once: those that may cover its first
    /// action (none when it names no `Action`: it cannot be covered).
    fn candidates(&self, inner: &Stmt) -> Vec<usize> {
        inner
            .actions()
            .first()
            .map(|a| self.for_action(&a.v.to_lowercase()))
            .unwrap_or_default()
    }

    /// The statements that may cover `action` (lowercase), ascending.
    fn for_action(&self, action: &str) -> Vec<usize> {
        let mut found: Vec<usize> = (0..=action.len().min(self.longest))
            .filter(|&k| action.is_char_boundary(k))
            .filter_map(|k| self.keys.get(&action[..k]))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

fn describe(s: &Stmt) -> String {
    match s.sid() {
        Some(sid) => format!("statement {} (`{sid}`)", s.index),
        None => format!("statement {}", s.index),
    }
}

fn same_principals(a: &Stmt, b: &Stmt) -> bool {
    principal_text(a.raw.principal.as_ref()) == principal_text(b.raw.principal.as_ref())
        && principal_text(a.raw.not_principal.as_ref())
            == principal_text(b.raw.not_principal.as_ref())
}

fn principal_text(p: Option<&Spanned<RawPrincipal>>) -> String {
    match p.map(|p| &p.v) {
        None => String::new(),
        Some(RawPrincipal::Any) => "*".into(),
        Some(RawPrincipal::Map(entries)) => {
            let set: BTreeSet<String> = entries
                .iter()
                .flat_map(|(t, vs)| vs.iter().map(move |v| format!("{}={}", t.v, v.v)))
                .collect();
            set.into_iter().collect::<Vec<_>>().join(",")
        }
    }
}

/// The statement without its Sid, with lists as sets.
fn canonical(s: &Stmt) -> String {
    let set = |l: Option<&Spanned<Vec<Spanned<String>>>>, fold: bool| {
        l.map(|l| {
            l.v.iter()
                .map(|v| {
                    if fold {
                        v.v.to_lowercase()
                    } else {
                        v.v.clone()
                    }
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    let conditions: BTreeSet<String> = s
        .raw
        .condition
        .iter()
        .flat_map(|c| &c.v)
        .flat_map(|op| {
            op.keys.iter().map(move |(k, vs)| {
                let values: BTreeSet<&str> = vs.iter().map(|v| v.v.as_str()).collect();
                format!("{}|{}|{values:?}", op.name.v, k.v.to_lowercase())
            })
        })
        .collect();
    format!(
        "{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{conditions:?}",
        s.raw.effect.as_ref().map(|e| &e.v),
        principal_text(s.raw.principal.as_ref()),
        principal_text(s.raw.not_principal.as_ref()),
        set(s.raw.action.as_ref(), true),
        set(s.raw.not_action.as_ref(), true),
        set(s.raw.resource.as_ref(), false),
        set(s.raw.not_resource.as_ref(), false),
    )
}

/// Whether every request that `inner` matches (conditions aside), `outer`
/// matches too, with `outer` unconditional. `same_document`: an absent
/// `Resource` (the resource the policy is attached to) covers.
fn covers(outer: &Stmt, inner: &Stmt, same_document: bool) -> bool {
    if outer.conditional()
        || outer.raw.not_action.is_some()
        || inner.raw.not_action.is_some()
        || outer.raw.not_resource.is_some()
        || inner.raw.not_resource.is_some()
        || outer.raw.not_principal.is_some()
    {
        return false;
    }
    let actions = inner.actions().iter().all(|a| {
        outer
            .actions()
            .iter()
            .any(|o| pattern_covers(&o.v.to_lowercase(), &a.v.to_lowercase(), 0))
    });
    let resources = match (&outer.raw.resource, &inner.raw.resource) {
        (None, _) => same_document,
        (Some(o), None) => o.v.iter().any(|o| o.v == "*"),
        (Some(o), Some(i)) => {
            i.v.iter()
                .all(|r| o.v.iter().any(|o| pattern_covers(&o.v, &r.v, 5)))
        }
    };
    !inner.actions().is_empty() && actions && resources
}

/// Whether pattern `outer` matches every string `inner` matches, when that
/// is certain: `*`, the same text, or a trailing `*` (after `colons`
/// colons, so that it stays in the last ARN component) over a prefix of
/// `inner`.
fn pattern_covers(outer: &str, inner: &str, colons: usize) -> bool {
    if outer == "*" || outer == inner {
        return true;
    }
    let Some(prefix) = outer.strip_suffix('*') else {
        return false;
    };
    !prefix.contains(['*', '?'])
        && prefix.matches(':').count() >= colons
        && inner.starts_with(prefix)
}

/// W007: Allow statements that an unconditional Deny always overrides: in
/// the same policy, in an SCP, or in every identity set the policy is in.
fn shadowed(out: &mut Out<'_>, catalog: &Catalog, holders: &Holders<'_>, docs: &[Option<Doc<'_>>]) {
    let scp_denies: Vec<(&Doc<'_>, &Stmt)> = catalog
        .scps
        .iter()
        .filter_map(|&i| docs.get(i)?.as_ref())
        .flat_map(|d| d.statements.iter().filter(|s| s.deny).map(move |s| (d, s)))
        .collect();
    let scp_index = ByAction::new(scp_denies.iter().map(|(_, d)| *d).enumerate());
    let denies = Denies::new(docs, |d| d.deny);
    for (id, doc) in docs.iter().enumerate() {
        let Some(doc) = doc else { continue };
        if matches!(doc.doc.role, DocumentRole::Scp | DocumentRole::Rcp) {
            continue;
        }
        let sets = holders.sets(id);
        for s in doc.statements.iter().filter(|s| s.allow) {
            let same = denies
                .covering(id, s)
                .find(|d| same_principals(d, s) && covers(d, s, true))
                .map(|d| format!("{} of this policy", describe(d)));
            let scp = || {
                scp_index
                    .candidates(s)
                    .into_iter()
                    .filter_map(|i| scp_denies.get(i))
                    .find(|(_, d)| covers(d, s, false))
                    .map(|(sd, d)| format!("{} of {}", describe(d), sd.doc.label))
            };
            let everywhere = || {
                // A Deny in another policy of every principal that has this one.
                let mut found = None;
                for set in &sets {
                    let hit = set.iter().filter(|&&j| j != id).find_map(|&j| {
                        let other = docs.get(j)?.as_ref()?;
                        denies
                            .covering(j, s)
                            .find(|d| covers(d, s, false))
                            .map(|d| format!("{} of {}", describe(d), other.doc.label))
                    });
                    match hit {
                        Some(h) => found = found.or(Some(h)),
                        None => return None,
                    }
                }
                found
            };
            if let Some(by) = same.or_else(scp).or_else(everywhere) {
                out.add(
                    &SHADOWED,
                    doc,
                    s.raw.at,
                    Some(s),
                    format!("never grants anything: {by} denies all of it, with no condition"),
                    "delete the Allow, or narrow the Deny (or give it a condition)",
                );
            }
        }
    }
}

/// For each document, the statements of one kind (its Denies, its Denies
/// with an MFA condition), indexed by action when first asked for.
struct Denies<'d, 'c> {
    docs: &'d [Option<Doc<'c>>],
    kind: fn(&Stmt) -> bool,
    indexes: Vec<std::cell::OnceCell<ByAction>>,
}

impl<'d, 'c> Denies<'d, 'c> {
    fn new(docs: &'d [Option<Doc<'c>>], kind: fn(&Stmt) -> bool) -> Self {
        Self {
            docs,
            kind,
            indexes: docs.iter().map(|_| std::cell::OnceCell::new()).collect(),
        }
    }

    fn statements(&self, id: usize) -> &'d [Stmt] {
        self.docs
            .get(id)
            .and_then(Option::as_ref)
            .map_or(&[], |d| d.statements.as_slice())
    }

    fn index(&self, id: usize) -> Option<&ByAction> {
        let statements = self.statements(id);
        let kind = self.kind;
        Some(
            self.indexes.get(id)?.get_or_init(|| {
                ByAction::new(statements.iter().enumerate().filter(|(_, s)| kind(s)))
            }),
        )
    }

    /// Document `id`'s statements of this kind that may cover `inner`, in
    /// order.
    fn covering(&self, id: usize, inner: &Stmt) -> impl Iterator<Item = &'d Stmt> {
        self.pick(id, |x| x.candidates(inner))
    }

    /// Document `id`'s statements of this kind that may cover `action`
    /// (lowercase), in order.
    fn for_action(&self, id: usize, action: &str) -> impl Iterator<Item = &'d Stmt> {
        self.pick(id, |x| x.for_action(action))
    }

    /// Document `id`'s statements at the positions its index gives.
    fn pick(
        &self,
        id: usize,
        find: impl FnOnce(&ByAction) -> Vec<usize>,
    ) -> impl Iterator<Item = &'d Stmt> {
        let statements = self.statements(id);
        self.index(id)
            .map(find)
            .unwrap_or_default()
            .into_iter()
            .filter_map(move |i| statements.get(i))
    }
}

/// For each document, the identity sets (document ids of a user or role)
/// that hold it: built once, so that the rules that ask for every
/// document stay linear in the bundle (asking the principals each time
/// took 1.5 s on 10,000 users).
struct Holders<'c> {
    catalog: &'c Catalog,
    /// Document id to the indexes of the principals holding it, each once.
    of: Vec<Vec<usize>>,
}

impl<'c> Holders<'c> {
    fn new(catalog: &'c Catalog) -> Self {
        let mut of = vec![Vec::new(); catalog.documents.len()];
        for (i, p) in catalog.principals.iter().enumerate() {
            for &id in &p.identity {
                // A principal's pushes to one document are consecutive.
                if let Some(holders) = of.get_mut(id).filter(|h| h.last() != Some(&i)) {
                    holders.push(i);
                }
            }
        }
        Self { catalog, of }
    }

    /// The identity sets that hold document `id`.
    fn sets(&self, id: usize) -> Vec<&'c [usize]> {
        self.of
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.catalog.principals.get(i))
            .map(|p| p.identity.as_slice())
            .collect()
    }
}

/// The sensitive actions an Allow pattern can match: each with what the
/// warning says of it and the lowercase action pattern that a guard must
/// cover (the pattern itself, or `service:verb*` for each destructive verb
/// a wildcard includes, so that a warning names a verb no guard covers).
fn sensitive(pattern: &str) -> Vec<(String, String)> {
    const VERBS: &[&str] = &[
        "delete",
        "terminate",
        "remove",
        "destroy",
        "purge",
        "drop",
        "revoke",
        "disable",
        "deactivate",
        "detach",
    ];
    const NOUNS: &[&str] = &[
        "accesskey",
        "loginprofile",
        "password",
        "credential",
        "signingcertificate",
        "sshpublickey",
        "mfadevice",
    ];
    const READS: &[&str] = &[
        "get", "list", "describe", "generate", "simulate", "view", "read",
    ];
    let lower = pattern.to_lowercase();
    let (_, name) = lower.split_once(':').unwrap_or(("*", lower.as_str()));
    let literal = name.split(['*', '?']).next().unwrap_or("");
    let wild = literal.len() < name.len();
    let example = |what: &str| vec![(format!("`{pattern}` ({what})"), lower.clone())];
    if VERBS.iter().any(|v| name.starts_with(v)) {
        return example("destructive");
    }
    if wild {
        let service = pattern.split_once(':').map_or("*", |(s, _)| s);
        return VERBS
            .iter()
            .filter(|v| v.starts_with(literal))
            .map(|v| {
                let verb: String = v
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
                    .collect();
                (
                    format!(
                        "`{pattern}`, which includes destructive actions (`{service}:{verb}*`)"
                    ),
                    format!("{}:{v}*", service.to_lowercase()),
                )
            })
            .collect();
    }
    if !wild
        && !READS.iter().any(|r| name.starts_with(r))
        && (NOUNS.iter().any(|n| name.contains(n))
            || (name.ends_with("policy")
                && ["put", "attach", "create", "update", "set", "replace"]
                    .iter()
                    .any(|v| name.starts_with(v))))
    {
        return example("changes credentials or permissions");
    }
    Vec::new()
}

/// W006: Allows of sensitive actions with no MFA condition, unless a Deny
/// with an MFA condition in the same policy or set guards them.
fn mfa(
    out: &mut Out<'_>,
    holders: &Holders<'_>,
    docs: &[Option<Doc<'_>>],
    guardrail: impl Fn(usize, &Doc<'_>) -> bool,
) {
    let mfa_denies = Denies::new(docs, |g| g.deny && g.has_key(MFA_KEYS));
    let guards = |id: usize, action: &str| {
        mfa_denies.for_action(id, action).any(|g| {
            g.actions()
                .iter()
                .any(|ga| pattern_covers(&ga.v.to_lowercase(), action, 0))
        })
    };
    for (id, doc) in docs.iter().enumerate() {
        let Some(doc) = doc else { continue };
        if !matches!(doc.doc.role, DocumentRole::Managed | DocumentRole::Inline)
            || guardrail(id, doc)
        {
            continue;
        }
        // A guard counts in this policy, or in every identity set that
        // holds it.
        let sets = holders.sets(id);
        let guarded = |action: &str| {
            guards(id, action)
                || (!sets.is_empty()
                    && sets
                        .iter()
                        .all(|set| set.iter().any(|&j| guards(j, action))))
        };
        for s in doc
            .statements
            .iter()
            .filter(|s| s.allow && !s.has_key(MFA_KEYS))
        {
            let hit = s.actions().iter().find_map(|a| {
                let (what, _) = sensitive(&a.v)
                    .into_iter()
                    .find(|(_, action)| !guarded(action))?;
                Some((a, what))
            });
            if let Some((a, what)) = hit {
                out.add(
                    &NO_MFA,
                    doc,
                    a.at,
                    Some(s),
                    format!("allows {what} without requiring MFA"),
                    "add `\"Condition\": {\"Bool\": {\"aws:MultiFactorAuthPresent\": \"true\"}}` (or `NumericLessThan` on `aws:MultiFactorAuthAge`), or deny these actions with `BoolIfExists` `aws:MultiFactorAuthPresent` `false` in a separate statement",
                );
            }
        }
    }
}

/// W015, W016: managed policies and groups nobody uses.
fn unused(out: &mut Out<'_>, catalog: &Catalog, docs: &[Option<Doc<'_>>]) {
    for m in catalog.managed.iter().filter(|m| m.uses == 0) {
        let Some(Some(doc)) = docs.get(m.document) else {
            continue;
        };
        let at = doc.statements.first().map_or(0, |s| s.raw.at);
        out.add(
            &UNUSED_POLICY,
            doc,
            at,
            None,
            format!("no user, group or role attaches `{}`", m.name),
            "attach it where it is meant to apply, or delete it",
        );
    }
    for g in catalog.groups.iter().filter(|g| g.members == 0) {
        let place = Place {
            file: super::display(out.dir, &g.at.file),
            line: g.at.line,
            column: g.at.column,
        };
        out.findings.push(Finding {
            rule: &UNUSED_GROUP,
            place,
            policy: None,
            statement: None,
            message: format!(
                "group `{}` has no users: its policies apply to no one",
                g.name
            ),
            fix: Some("add users to it (`groups:` of a user), or delete it".into()),
        });
    }
}
