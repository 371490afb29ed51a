//! The policy language: JSON policy documents read into raw types with
//! source locations (`raw`), then compiled (`compile`) into statements
//! whose patterns and condition operands are ready to match.

pub mod compile;
pub mod condition;
mod error;
pub mod index;
pub mod pattern;
pub mod principal;
pub mod raw;

use std::fmt;
use std::sync::Arc;

pub use error::{Diagnostic, PolicyError, Problems, StatementRef};
pub use principal::Grant;

use crate::context::Context;
use crate::json::{self, Source, Value};
use condition::Condition;
use pattern::{ArnPattern, Pattern};
use principal::Principals;

/// Where a policy is attached, which decides the elements it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A user's, group's or role's permissions policy (managed or inline).
    Identity,
    /// A resource-based policy or a role trust policy: it names principals,
    /// and `Resource` is optional (the resource it is attached to).
    Resource,
    /// A permissions boundary.
    Boundary,
    /// A session policy.
    Session,
    /// A service control policy (organization guardrail on principals).
    Scp,
    /// A resource control policy (organization guardrail on resources):
    /// `Deny` statements with `"Principal": "*"`.
    Rcp,
}

impl PolicyKind {
    fn article(self) -> &'static str {
        match self {
            Self::Identity => "an identity",
            Self::Resource => "a resource-based",
            Self::Boundary => "a permissions boundary",
            Self::Session => "a session",
            Self::Scp => "a service control",
            Self::Rcp => "a resource control",
        }
    }
}

/// The `Version` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: policy variables are read.
    V2012_10_17,
    /// `2008-10-17`: `${...}` is literal text.
    V2008_10_17,
}

/// A statement's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
        })
    }
}

/// A compiled policy document: a name, and its compiled body, which
/// policies of the same text share (a bundle's identical inline policies
/// are one body; [`Policy::renamed`]).
#[derive(Debug, Clone)]
pub struct Policy {
    name: Box<str>,
    kind: PolicyKind,
    body: Arc<Body>,
}

/// What a policy's text compiles to, whatever the policy is called.
#[derive(Debug)]
struct Body {
    version: Option<Version>,
    statements: Box<[Statement]>,
    index: index::PolicyIndex,
}

impl Policy {
    /// Parses and compiles the policy document in `source`. The policy is
    /// named after the source.
    pub fn parse(source: &Source<'_>, kind: PolicyKind) -> Result<Self, PolicyError> {
        let value = json::parse(source.text()).map_err(|e| {
            let mut problems = Problems::default();
            problems.add(e.offset, None, format!("invalid JSON: {}", e.message));
            problems.into_error(source, None, &[])
        })?;
        Self::from_json(&value, source, kind, source.name(), None)
    }

    /// Compiles a policy document already parsed from `source` (for example
    /// one embedded in a larger document). `label` names the policy in
    /// diagnostics when it is not the whole source.
    pub fn from_json(
        value: &Value<'_>,
        source: &Source<'_>,
        kind: PolicyKind,
        name: &str,
        label: Option<&str>,
    ) -> Result<Self, PolicyError> {
        let mut problems = Problems::default();
        let raw = raw::read_policy(value, &mut problems);
        let (version, statements) = compile::compile(&raw, kind, &mut problems);
        if !problems.is_empty() {
            let sids: Vec<Option<String>> = raw
                .statements
                .iter()
                .map(|s| s.sid.as_ref().map(|s| s.v.clone()))
                .collect();
            return Err(problems.into_error(source, label, &sids));
        }
        let index = index::PolicyIndex::build(&statements);
        Ok(Self {
            name: name.into(),
            kind,
            body: Arc::new(Body {
                version,
                statements: statements.into(),
                index,
            }),
        })
    }

    /// The same policy under another name (a managed policy is named after
    /// its file's stem, not its path).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The same compiled body under another name: no copy of the
    /// statements or the index.
    pub fn renamed(&self, name: &str) -> Self {
        Self {
            name: name.into(),
            kind: self.kind,
            body: self.body.clone(),
        }
    }

    /// How many policies share this one's compiled body (itself
    /// included): a cache of bodies drops those only it holds.
    pub fn uses(&self) -> usize {
        Arc::strong_count(&self.body)
    }

    /// Whether two policies share one compiled body.
    pub fn shares_body(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.body, &other.body)
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the policy may be attached.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The `Version` element, if any.
    pub fn version(&self) -> Option<Version> {
        self.body.version
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.body.statements
    }

    /// The action index.
    pub(crate) fn index(&self) -> &index::PolicyIndex {
        &self.body.index
    }
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub struct Statement {
    index: u32,
    sid: Option<Box<str>>,
    effect: Effect,
    pub(crate) actions: Actions,
    resources: Option<Resources>,
    pub(crate) principals: Option<Principals>,
    conditions: Box<[Condition]>,
}

#[derive(Debug, Clone)]
pub(crate) struct Actions {
    pub negated: bool,
    pub patterns: Box<[Pattern]>,
    /// The patterns as written, for the action index.
    pub texts: Box<[Box<str>]>,
}

#[derive(Debug, Clone)]
pub(crate) struct Resources {
    negated: bool,
    patterns: Box<[ResourcePattern]>,
}

#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "patterns sit side by side in one slice, read on the hot path: no pointer to chase"
)]
pub(crate) enum ResourcePattern {
    Any,
    Arn(ArnPattern),
}

impl Statement {
    /// The statement's position in its policy, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The statement's `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The statement's effect.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The actions the statement names without a wildcard, as written
    /// (none under `NotAction`): what search may offer as candidates.
    pub fn literal_actions(&self) -> impl Iterator<Item = &str> {
        let texts: &[Box<str>] = if self.actions.negated {
            &[]
        } else {
            &self.actions.texts
        };
        texts
            .iter()
            .map(|t| &**t)
            .filter(|t| !t.contains(['*', '?']))
    }

    /// Whether the statement is about `action` (`Action` or `NotAction`).
    pub fn matches_action(&self, action: &str) -> bool {
        let empty = Context::new();
        let hit = self
            .actions
            .patterns
            .iter()
            .any(|p| p.matches(action, &empty));
        hit != self.actions.negated
    }

    /// Whether the statement is about the request's resource (`Resource`,
    /// `NotResource`, or neither: the resource the policy is attached to).
    /// `arn` is the parsed resource, `None` when the resource is not an ARN
    /// (then only `*` matches it).
    pub(crate) fn matches_resource(
        &self,
        arn: Option<&crate::arn::Arn<'_>>,
        ctx: &Context,
    ) -> bool {
        let Some(r) = &self.resources else {
            return true;
        };
        let hit = r.patterns.iter().any(|p| match p {
            ResourcePattern::Any => true,
            ResourcePattern::Arn(p) => arn.is_some_and(|a| p.matches(a, ctx)),
        });
        // An entry with an unresolved variable matches no resource, so under
        // `NotResource` it leaves no resource out (docs/semantics.md).
        hit != r.negated
    }

    /// When the statement names exactly one resource ARN pattern (no
    /// `NotResource`): its literal `partition:service:region:account` and the
    /// literal start of its resource component. Every resource the statement
    /// is about begins with these.
    pub(crate) fn resource_literal_start(&self) -> Option<(&str, &str)> {
        match &self.resources {
            Some(Resources {
                negated: false,
                patterns,
            }) => match &patterns[..] {
                [ResourcePattern::Arn(p)] => p.literal_start(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether every condition holds.
    pub(crate) fn conditions_hold(&self, ctx: &Context) -> bool {
        self.conditions.iter().all(|c| c.eval(ctx))
    }

    /// The conditions, for explanations.
    pub(crate) fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether the statement names principals (`Principal` or
    /// `NotPrincipal`).
    pub(crate) fn names_principals(&self) -> bool {
        self.principals.is_some()
    }

    /// The conditions that do not hold, for explanations.
    pub(crate) fn failing_conditions<'s>(
        &'s self,
        ctx: &'s Context,
    ) -> impl Iterator<Item = &'s Condition> {
        self.conditions.iter().filter(move |c| !c.eval(ctx))
    }
}

#[cfg(test)]
mod tests;
