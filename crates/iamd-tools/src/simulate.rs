//! `iamd simulate`: decide one request against policies given inline, the
//! analogue of AWS's `simulate-custom-policy`.
//!
//! A case is a JSON object:
//!
//! ```json
//! {"identityPolicies": [POLICY], "resourcePolicy": POLICY,
//!  "permissionBoundaries": [POLICY], "sessionPolicy": POLICY,
//!  "scps": [[POLICY], [POLICY]], "rcps": [[POLICY], []],
//!  "request": {"principal": "arn:aws:iam::111122223333:user/alice",
//!              "action": "docs:GetDocument",
//!              "resource": "arn:aws:docs:us-east-1:111122223333:doc/1",
//!              "resourceAccount": "111122223333",
//!              "context": {"aws:SourceIp": "203.0.113.7", "aws:TagKeys": ["env"]}}}
//! ```
//!
//! where `POLICY` is a policy document or `{"name": "...", "policy": {...}}`.

use std::sync::Arc;

use serde::Serialize;

use iamd_bundle::Bundle;
use iamd_policy::arn::{Principal, PrincipalKind};
use iamd_policy::context::{self, Context, ContextValue, Values};
use iamd_policy::eval::{self, Decision, Determining, Layers, Outcome, Request, StatementSet};
use iamd_policy::json::{self, Object, Source, Value};
use iamd_policy::policy::{Policy, PolicyKind};

/// A case read and compiled, ready to decide.
#[derive(Debug)]
pub struct Case {
    identity: Option<StatementSet>,
    resource: Option<StatementSet>,
    boundary: Option<StatementSet>,
    session: Option<StatementSet>,
    scps: Vec<StatementSet>,
    rcps: Vec<StatementSet>,
    principal: Principal,
    action: String,
    resource_arn: String,
    resource_account: Option<String>,
    context: Context,
}

/// A case that cannot be decided, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct CaseError {
    /// One line each: `file:line:column: what is wrong`.
    pub errors: Vec<String>,
}

/// The answer to a case, as `iamd simulate` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// `Allowed`, `ExplicitlyDenied`, `ImplicitlyDenied` or `Error`.
    pub decision: &'static str,
    /// The determining statements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<Vec<MatchedStatement>>,
    /// For an implicit deny, the layer that lacked an allow (`identity`,
    /// `resource`, `boundary`, `session`, `scp[N]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
    /// Why, when no statement says it: an unknown principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `Error`, what is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
}

/// A determining statement, named for people (the policy's name is the
/// one given, or `identity[0]`, `resource`, `scp[1][0]`...).
pub type MatchedStatement = iamd_bundle::query::NamedStatement;

impl Answer {
    /// The answer for a case that could not be read.
    pub fn error(e: &CaseError) -> Self {
        Self {
            decision: "Error",
            matched: None,
            denied_by: None,
            reason: None,
            errors: Some(e.errors.clone()),
        }
    }
}

const CASE_KEYS: &[&str] = &[
    "identityPolicies",
    "resourcePolicy",
    "permissionBoundaries",
    "sessionPolicy",
    "scps",
    "rcps",
    "request",
];
const REQUEST_KEYS: &[&str] = &[
    "principal",
    "action",
    "resource",
    "resourceAccount",
    "context",
];

impl Case {
    /// Reads a case from its text.
    pub fn parse(source: &Source<'_>, now: jiff::Timestamp) -> Result<Self, CaseError> {
        let value = json::parse(source.text()).map_err(|e| CaseError {
            errors: vec![format!(
                "{}:{}: invalid JSON: {}",
                source.name(),
                source.location(e.offset),
                e.message
            )],
        })?;
        Self::from_json(&value, source, now)
    }

    /// Reads a case from a parsed JSON value of `source`. Principal facts
    /// (`aws:username`, `aws:PrincipalArn`, ...) and the clock's keys are
    /// added to the context unless the case gives them.
    pub fn from_json(
        value: &Value<'_>,
        source: &Source<'_>,
        now: jiff::Timestamp,
    ) -> Result<Self, CaseError> {
        let mut r = Reader {
            source,
            errors: Vec::new(),
        };
        let Some(obj) = r.object(value, "a case") else {
            return Err(CaseError { errors: r.errors });
        };
        let fields = r.fields(obj, CASE_KEYS, "case");
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);

        let identity = get("identityPolicies")
            .map(|v| r.policy_list(v, PolicyKind::Identity, "identity"))
            .map(StatementSet::new);
        let resource = get("resourcePolicy")
            .and_then(|v| r.policy(v, PolicyKind::Resource, "resource".into()))
            .map(|p| StatementSet::new([p]));
        let boundary = get("permissionBoundaries").and_then(|v| {
            let list = r.policy_list(v, PolicyKind::Boundary, "boundary");
            if list.len() > 1 {
                r.error(json::start(v), "`permissionBoundaries` lists more than one policy: a user or role has at most one permissions boundary");
            }
            (!list.is_empty()).then(|| StatementSet::new(list))
        });
        let session = get("sessionPolicy")
            .and_then(|v| r.policy(v, PolicyKind::Session, "session".into()))
            .map(|p| StatementSet::new([p]));
        let mut levels = |key: &str, kind: PolicyKind, layer: &str| match get(key) {
            None => Vec::new(),
            Some(Value::Array(levels)) => levels
                .elements
                .iter()
                .enumerate()
                .map(|(i, level)| {
                    StatementSet::new(r.policy_list(level, kind, &format!("{layer}[{i}]")))
                })
                .collect(),
            Some(v) => {
                r.error(
                    json::start(v),
                    format!(
                        "`{key}` is an array of levels (root first), each an array of policies"
                    ),
                );
                Vec::new()
            }
        };
        let scps = levels("scps", PolicyKind::Scp, "scp");
        let rcps = levels("rcps", PolicyKind::Rcp, "rcp");

        let mut request = None;
        match get("request") {
            None => r.error(
                obj.range.start,
                "the case has no `request`: add one with `principal`, `action` and `resource`",
            ),
            Some(v) => request = r.request(v),
        }
        let principal = request
            .as_ref()
            .and_then(|q| match Principal::parse(&q.principal) {
                Ok(p) => Some(p),
                Err(e) => {
                    r.error(q.principal_at, e);
                    None
                }
            });
        let (Some(principal), Some(req)) = (principal, request) else {
            return Err(CaseError { errors: r.errors });
        };
        // A session ARN leaves out its role's path; with inline policies the
        // case's `aws:PrincipalArn` is the only place the path is known, and
        // the session is matched by the role's ARN as it gives it
        // (docs/semantics.md, "Role sessions and role paths").
        let principal = match (principal.kind(), req.context.get("aws:PrincipalArn")) {
            (PrincipalKind::AssumedRole, Some(Values::Single(role_arn))) => {
                match principal.clone().with_role_arn(role_arn) {
                    Ok(p) => p,
                    Err(e) => {
                        r.error(req.principal_at, format!("context key `aws:PrincipalArn` does not name the session's role: {e}"));
                        principal
                    }
                }
            }
            (PrincipalKind::AssumedRole, Some(Values::Multi(_))) => {
                r.error(
                    req.principal_at,
                    "context key `aws:PrincipalArn` is single-valued: give the role's ARN as a string",
                );
                principal
            }
            _ => principal,
        };
        if !r.errors.is_empty() {
            return Err(CaseError { errors: r.errors });
        }
        let RequestParts {
            action,
            resource: resource_arn,
            resource_account,
            mut context,
            ..
        } = req;
        context::add_request_facts(&mut context, &principal, now, false);
        Ok(Self {
            identity,
            resource,
            boundary,
            session,
            scps,
            rcps,
            principal,
            action,
            resource_arn,
            resource_account,
            context,
        })
    }

    fn layers(&self) -> Layers<'_> {
        Layers {
            identity: self.identity.as_ref(),
            resource: self.resource.as_ref(),
            boundary: self.boundary.as_ref(),
            session: self.session.as_ref(),
            scps: &self.scps,
            rcps: &self.rcps,
        }
    }

    /// Decides the case; `matched` is scratch space for the determining
    /// statements.
    pub fn decide(&self, matched: &mut Vec<Determining>) -> Decision {
        eval::evaluate(&self.layers(), &self.request(), matched)
    }

    fn request(&self) -> Request<'_> {
        Request::new(
            &self.principal,
            &self.action,
            &self.resource_arn,
            &self.context,
        )
        .with_resource_account(self.resource_account.as_deref())
    }

    /// Decides the case and names the determining statements.
    pub fn answer(&self) -> Answer {
        answer(&self.layers(), &self.request())
    }
}

/// Decides `req` against `layers` and names the determining statements.
fn answer(layers: &Layers<'_>, req: &Request<'_>) -> Answer {
    let mut matched = Vec::new();
    let d = eval::evaluate(layers, req, &mut matched);
    let decision = match d.outcome {
        Outcome::Allow => "Allowed",
        Outcome::ExplicitDeny => "ExplicitlyDenied",
        Outcome::ImplicitDeny => "ImplicitlyDenied",
    };
    Answer {
        decision,
        matched: Some(
            matched
                .iter()
                .map(|m| iamd_bundle::query::name(layers, m))
                .collect(),
        ),
        denied_by: d.implicit_deny_layer.map(|l| l.to_string()),
        reason: None,
        errors: None,
    }
}

/// Decides one case given as text: the answer, or an `Error` answer.
pub fn run(source: &Source<'_>, now: jiff::Timestamp) -> Answer {
    match Case::parse(source, now) {
        Ok(case) => case.answer(),
        Err(e) => Answer::error(&e),
    }
}

const BUNDLE_CASE_KEYS: &[&str] = &["sessionPolicy", "request"];

/// Decides one case against a bundle: the case gives the `request` (the
/// principal by ARN or as `user/NAME`, `role/NAME`) and optionally a
/// `sessionPolicy`; the bundle gives every other layer and the principal's
/// tags. An unknown principal is denied, with the reason.
pub fn run_bundle(source: &Source<'_>, bundle: &Bundle, now: jiff::Timestamp) -> Answer {
    let value = match json::parse(source.text()) {
        Ok(v) => v,
        Err(e) => {
            let errors = vec![format!(
                "{}:{}: invalid JSON: {}",
                source.name(),
                source.location(e.offset),
                e.message
            )];
            return Answer::error(&CaseError { errors });
        }
    };
    let mut r = Reader {
        source,
        errors: Vec::new(),
    };
    let Some(obj) = r.object(&value, "a case") else {
        return Answer::error(&CaseError { errors: r.errors });
    };
    let fields = r.fields(
        obj,
        BUNDLE_CASE_KEYS,
        "case (the bundle gives the policies)",
    );
    let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let session = get("sessionPolicy")
        .and_then(|v| r.policy(v, PolicyKind::Session, "session".into()))
        .map(|p| StatementSet::new([p]));
    let request = match get("request") {
        None => {
            r.error(
                obj.range.start,
                "the case has no `request`: add one with `principal`, `action` and `resource`",
            );
            None
        }
        Some(v) => r.request(v),
    };
    let Some(req) = request.filter(|_| r.errors.is_empty()) else {
        return Answer::error(&CaseError { errors: r.errors });
    };
    let query = iamd_bundle::query::Query {
        principal: req.principal,
        action: req.action,
        resource: req.resource,
        resource_account: req.resource_account,
        context: req.context,
    };
    let v = bundle.query_with_session(&query, session.as_ref(), now, false);
    Answer {
        decision: match v.decision {
            "ALLOW" => "Allowed",
            "EXPLICIT_DENY" => "ExplicitlyDenied",
            _ => "ImplicitlyDenied",
        },
        matched: Some(v.determining),
        denied_by: v.denied_by,
        reason: v.reason,
        errors: None,
    }
}

struct Reader<'s, 'a> {
    source: &'s Source<'a>,
    errors: Vec<String>,
}

/// A request as read: the principal's text (and where it is) is resolved
/// by the mode, against inline policies or a bundle.
struct RequestParts {
    principal: String,
    principal_at: usize,
    action: String,
    resource: String,
    resource_account: Option<String>,
    context: Context,
}

impl Reader<'_, '_> {
    fn error(&mut self, at: usize, message: impl std::fmt::Display) {
        self.errors.push(format!(
            "{}:{}: {message}",
            self.source.name(),
            self.source.location(at)
        ));
    }

    fn object<'v, 'a>(&mut self, v: &'v Value<'a>, what: &str) -> Option<&'v Object<'a>> {
        match v {
            Value::Object(o) => Some(o),
            other => {
                self.error(
                    json::start(other),
                    format!("{what} is a JSON object, found {}", json::type_name(other)),
                );
                None
            }
        }
    }

    fn fields<'v, 'a>(
        &mut self,
        obj: &'v Object<'a>,
        known: &[&'static str],
        what: &str,
    ) -> Vec<(&'static str, &'v Value<'a>)> {
        let mut out: Vec<(&'static str, &'v Value<'a>)> = Vec::new();
        for prop in &obj.properties {
            let name = prop.name.as_str();
            match known.iter().find(|k| **k == name) {
                None => self.error(
                    prop.range.start,
                    format!(
                        "unknown field `{name}` in the {what}: expected {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(k) if out.iter().any(|(n, _)| n == k) => {
                    self.error(prop.range.start, format!("`{k}` appears twice: keep one"));
                }
                Some(k) => out.push((k, &prop.value)),
            }
        }
        out
    }

    fn policy(
        &mut self,
        v: &Value<'_>,
        kind: PolicyKind,
        default_name: String,
    ) -> Option<Arc<Policy>> {
        let (name, doc) = match v {
            Value::Object(o)
                if o.properties.iter().any(|p| p.name.as_str() == "policy")
                    && !o.properties.iter().any(|p| p.name.as_str() == "Statement") =>
            {
                let mut name = default_name;
                let mut doc = None;
                for prop in &o.properties {
                    match (prop.name.as_str(), &prop.value) {
                        ("name", Value::StringLit(s)) => name = s.value.to_string(),
                        ("policy", d) => doc = Some(d),
                        (other, value) => self.error(
                            json::start(value),
                            format!("a named policy is `{{\"name\": \"...\", \"policy\": {{...}}}}`: unexpected `{other}`"),
                        ),
                    }
                }
                (name, doc?)
            }
            _ => (default_name, v),
        };
        match Policy::from_json(doc, self.source, kind, &name, Some(&name)) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                self.errors
                    .extend(e.diagnostics.iter().map(ToString::to_string));
                None
            }
        }
    }

    fn policy_list(&mut self, v: &Value<'_>, kind: PolicyKind, prefix: &str) -> Vec<Arc<Policy>> {
        let Value::Array(arr) = v else {
            self.error(
                json::start(v),
                format!(
                    "expected an array of policies, found {}",
                    json::type_name(v)
                ),
            );
            return Vec::new();
        };
        arr.elements
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.policy(p, kind, format!("{prefix}[{i}]")))
            .collect()
    }

    fn string(&mut self, v: Option<&Value<'_>>, what: &str, at: usize) -> Option<String> {
        match v {
            Some(Value::StringLit(s)) => Some(s.value.to_string()),
            Some(other) => {
                self.error(
                    json::start(other),
                    format!("`{what}` is a string, found {}", json::type_name(other)),
                );
                None
            }
            None => {
                self.error(at, format!("the request has no `{what}`"));
                None
            }
        }
    }

    fn request(&mut self, v: &Value<'_>) -> Option<RequestParts> {
        let obj = self.object(v, "`request`")?;
        let at = obj.range.start;
        let fields = self.fields(obj, REQUEST_KEYS, "request");
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let principal_text = self.string(get("principal"), "principal", at);
        let action = self.string(get("action"), "action", at);
        let resource = self.string(get("resource"), "resource", at);
        let resource_account = match get("resourceAccount") {
            None => None,
            some => self.string(some, "resourceAccount", at),
        };
        let principal_at = get("principal").map_or(at, json::start);
        if let (Some(a), Some(v)) = (&action, get("action"))
            && a != "*"
            && !a
                .split_once(':')
                .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty())
        {
            self.error(
                json::start(v),
                format!("action `{a}` is not `service:Action`"),
            );
        }
        let context = match get("context") {
            None => Some(Context::new()),
            Some(v) => self.context(v),
        };
        Some(RequestParts {
            principal: principal_text?,
            principal_at,
            action: action?,
            resource: resource?,
            resource_account,
            context: context?,
        })
    }

    fn context(&mut self, v: &Value<'_>) -> Option<Context> {
        let obj = self.object(v, "`context`")?;
        // Each key with its value and where it was written; the context is
        // built once from all of them (sorted once: a key at a time would
        // be quadratic in the keys).
        let mut entries: Vec<(String, ContextValue, usize)> =
            Vec::with_capacity(obj.properties.len());
        let mut ok = true;
        for prop in &obj.properties {
            let key = prop.name.as_str();
            let value = match &prop.value {
                Value::Array(a) => {
                    let mut values = Vec::with_capacity(a.elements.len());
                    for e in &a.elements {
                        match json::scalar_text(e) {
                            Some(t) => values.push(t.into_owned()),
                            None => {
                                self.error(
                                    json::start(e),
                                    format!(
                                        "context key `{key}`: a list holds strings, found {}",
                                        json::type_name(e)
                                    ),
                                );
                                ok = false;
                            }
                        }
                    }
                    ContextValue::Multi(values)
                }
                other => match json::scalar_text(other) {
                    Some(t) => ContextValue::Single(t.into_owned()),
                    None => {
                        self.error(
                            json::start(other),
                            format!("context key `{key}` is a string or a list of strings, found {} (leave an absent key out)", json::type_name(other)),
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            entries.push((key.to_owned(), value, prop.range.start));
        }
        // Keys are case-insensitive: each key equal to an earlier one is an
        // error at its place, in the order written.
        let folded: Vec<String> = entries.iter().map(|(k, ..)| k.to_lowercase()).collect();
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|a, b| folded[*a].cmp(&folded[*b]));
        let mut first_of: Vec<Option<usize>> = vec![None; entries.len()];
        let mut group = None;
        for w in order.windows(2) {
            if folded[w[0]] == folded[w[1]] {
                let first = *group.get_or_insert(w[0]);
                first_of[w[1]] = Some(first);
            } else {
                group = None;
            }
        }
        for (i, first) in first_of.iter().enumerate() {
            if let Some(first) = first {
                let e = iamd_policy::context::DuplicateKeyError {
                    first: entries[*first].0.clone(),
                    second: entries[i].0.clone(),
                };
                self.error(entries[i].2, e);
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        match Context::from_keys(entries.into_iter().map(|(k, v, _)| (k, v))) {
            Ok(ctx) => Some(ctx),
            Err(e) => {
                self.error(obj.range.start, e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_767_225_600).unwrap()
    }

    /// Fifty thousand context keys, two of them given again in another
    /// case: each repeat is an error at its own line, in the order written,
    /// naming the key it repeats; without repeats the case decides, every
    /// key present. (Read a key at a time, the context was quadratic.)
    #[test]
    fn many_context_keys_are_read_at_once_and_each_repeat_named() {
        let case = |keys: &str| {
            format!(
                r#"{{"identityPolicies": [{{"name": "Docs", "policy": {{"Version": "2012-10-17",
            "Statement": {{"Effect": "Allow", "Action": "docs:GetDocument", "Resource": "*",
            "Condition": {{"StringEquals": {{"docs:k49999": "v"}}}}}}}}}}],
            "request": {{"principal": "arn:aws:iam::111122223333:user/alice", "action": "docs:GetDocument",
            "resource": "arn:acme:docs:eu-1:111122223333:doc/1", "context": {{{keys}}}}}}}"#
            )
        };
        let mut keys: Vec<String> = (0..50_000)
            .map(|i| format!("\"docs:k{i}\": \"v\""))
            .collect();
        let a = run(&Source::new("c.json", &case(&keys.join(","))), now());
        assert_eq!(a.decision, "Allowed", "{:?}", a.errors);
        keys.push("\n\"DOCS:K7\": \"w\"".into());
        keys.push("\n\"docs:K123\": \"w\"".into());
        let e = Case::parse(&Source::new("c.json", &case(&keys.join(","))), now()).unwrap_err();
        assert_eq!(e.errors.len(), 2, "{:?}", e.errors);
        assert!(
            e.errors[0].contains("context key `DOCS:K7` is the same key as `docs:k7`"),
            "{}",
            e.errors[0]
        );
        assert!(e.errors[1].contains("`docs:K123` is the same key as `docs:k123`"));
        assert!(
            e.errors[0].starts_with("c.json:6:1:") && e.errors[1].starts_with("c.json:7:1:"),
            "{:?}",
            e.errors
        );
    }

    #[test]
    fn a_case_is_decided_and_named() {
        let text = r#"{"identityPolicies": [{"name": "Docs", "policy": {"Version": "2012-10-17",
            "Statement": {"Sid": "Own", "Effect": "Allow", "Action": "docs:GetDocument",
            "Resource": "arn:acme:docs:eu-1:111122223333:doc/${aws:username}/*"}}}],
            "request": {"principal": "arn:aws:iam::111122223333:user/alice", "action": "docs:GetDocument",
            "resource": "arn:acme:docs:eu-1:111122223333:doc/alice/1"}}"#;
        let a = run(&Source::new("c.json", text), now());
        assert_eq!(a.decision, "Allowed");
        let m = &a.matched.unwrap()[0];
        assert_eq!(
            (m.policy.as_str(), m.sid.as_deref(), m.layer.as_str()),
            ("Docs", Some("Own"), "identity")
        );
    }

    #[test]
    fn errors_name_their_place_in_the_case() {
        let text = "{\"identityPolicies\": [{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"x\", \"Resource\": \"*\"}}],\n \"request\": {\"principal\": \"bob\", \"action\": \"a:b\", \"resource\": \"*\", \"extra\": 1}}";
        let e = Case::parse(&Source::new("c.json", text), now()).unwrap_err();
        assert_eq!(e.errors.len(), 3, "{e}");
        assert!(
            e.errors[0].starts_with(
                "c.json:1:67: policy `identity[0]`: statement 0: action `x` has no service prefix"
            ),
            "{}",
            e.errors[0]
        );
        assert!(
            e.errors
                .iter()
                .any(|x| x.starts_with("c.json:2:") && x.contains("unknown field `extra`")),
            "{e}"
        );
        assert!(
            e.errors
                .iter()
                .any(|x| x.contains("principal `bob` is not valid")),
            "{e}"
        );
    }

    #[test]
    fn principal_facts_are_filled_unless_given() {
        let text = r#"{"request": {"principal": "arn:aws:iam::111122223333:user/alice", "action": "a:b",
            "resource": "*", "context": {"aws:EpochTime": "5"}}}"#;
        let c = Case::parse(&Source::new("c.json", text), now()).unwrap();
        assert_eq!(
            c.context.get("aws:username"),
            Some(context::Values::Single("alice"))
        );
        assert_eq!(
            c.context.get("aws:PrincipalType"),
            Some(context::Values::Single("User"))
        );
        assert_eq!(
            c.context.get("aws:EpochTime"),
            Some(context::Values::Single("5"))
        );
        assert_eq!(
            c.context.get("aws:CurrentTime"),
            Some(context::Values::Single("2026-01-01T00:00:00Z"))
        );
    }
}
