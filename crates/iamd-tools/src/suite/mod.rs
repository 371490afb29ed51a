//! `iamd test`: policy test suites in YAML beside a bundle. Each case names
//! a principal, an action, a resource and a context, and the decision it
//! expects (and optionally the statements that must decide it). Suites
//! share fixtures; the run reports each case, explains each failure, and
//! counts which statements of the bundle no case exercised.
//!
//! ```yaml
//! now: "2026-11-28T12:00:00Z"          # optional: the clock of every case
//! fixtures:
//!   principals: {alice: user/alice}
//!   resources: {guide: "arn:acme:docs:eu-1:123456789012:doc/guide"}
//!   context: {docs-team: {docs:Team: docs}, mfa: {aws:MultiFactorAuthPresent: "true"}}
//! cases:
//!   - name: alice reads her team's guide
//!     principal: alice
//!     action: docs:GetDocument
//!     resource: guide
//!     context: [docs-team, {aws:SourceIp: 10.0.0.1}]
//!     expect: allow                      # allow, deny, explicit-deny, implicit-deny
//!     determining: [{policy: DocsRead, sid: ReadTeamDocuments}]
//! ```

pub mod render;
pub mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use iamd_bundle::catalog::Catalog;
use iamd_bundle::query::{PolicyId, Query, Verdict};
use iamd_bundle::{Bundle, yaml_error};
use iamd_policy::context::{Context, ContextValue};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    #[serde(default)]
    now: Option<Spanned<String>>,
    #[serde(default)]
    fixtures: RawFixtures,
    cases: Vec<Spanned<RawCase>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixtures {
    #[serde(default)]
    principals: BTreeMap<String, String>,
    #[serde(default)]
    resources: BTreeMap<String, String>,
    #[serde(default)]
    context: BTreeMap<String, RawContext>,
}

type RawContext = BTreeMap<String, RawValue>;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl RawScalar {
    fn text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Str(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawValue {
    One(RawScalar),
    Many(Vec<RawScalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawContextItem {
    Named(String),
    Inline(RawContext),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawContextRef {
    One(RawContextItem),
    Many(Vec<RawContextItem>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDetermining {
    Policy(String),
    Statement {
        policy: String,
        #[serde(default)]
        sid: Option<String>,
        #[serde(default)]
        statement: Option<u32>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCase {
    name: String,
    principal: String,
    action: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_account: Option<String>,
    #[serde(default)]
    context: Option<RawContextRef>,
    expect: Spanned<String>,
    #[serde(default)]
    determining: Option<OneOrMany<RawDetermining>>,
    #[serde(default)]
    now: Option<Spanned<String>>,
}

/// The decision a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `ALLOW`.
    Allow,
    /// Either deny.
    Deny,
    /// `EXPLICIT_DENY`.
    ExplicitDeny,
    /// `IMPLICIT_DENY`.
    ImplicitDeny,
}

impl Expect {
    fn parse(text: &str) -> Option<Self> {
        let folded: String = text
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_lowercase();
        match folded.as_str() {
            "allow" | "allowed" => Some(Self::Allow),
            "deny" | "denied" => Some(Self::Deny),
            "explicitdeny" | "explicitlydenied" => Some(Self::ExplicitDeny),
            "implicitdeny" | "implicitlydenied" => Some(Self::ImplicitDeny),
            _ => None,
        }
    }

    /// As the report writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "a deny",
            Self::ExplicitDeny => "EXPLICIT_DENY",
            Self::ImplicitDeny => "IMPLICIT_DENY",
        }
    }

    fn accepts(self, decision: &str) -> bool {
        match self {
            Self::Allow => decision == "ALLOW",
            Self::Deny => decision != "ALLOW",
            Self::ExplicitDeny => decision == "EXPLICIT_DENY",
            Self::ImplicitDeny => decision == "IMPLICIT_DENY",
        }
    }
}

/// A statement a case expects among the determining ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedStatement {
    /// The policy's name.
    pub policy: String,
    /// Its Sid, if given.
    pub sid: Option<String>,
    /// Its index, if given.
    pub statement: Option<u32>,
}

impl std::fmt::Display for ExpectedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.policy)?;
        if let Some(s) = &self.sid {
            write!(f, " `{s}`")?;
        }
        if let Some(i) = self.statement {
            write!(f, " statement {i}")?;
        }
        Ok(())
    }
}

/// A case ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// The suite file.
    pub suite: String,
    /// The case's name.
    pub name: String,
    /// Its line in the suite.
    pub line: u32,
    /// The request.
    pub query: Query,
    /// The expected decision.
    pub expect: Expect,
    /// Statements expected among the determining ones.
    pub determining: Vec<ExpectedStatement>,
    /// The clock.
    pub now: jiff::Timestamp,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// What the bundle answered, explained.
    pub verdict: Verdict,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

/// A statement that no case exercised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The document ("managed policy `DocsAdmin`").
    pub policy: String,
    /// `file:line:column` of the statement.
    pub place: String,
    /// The statement.
    pub statement: iamd_policy::policy::StatementRef,
}

/// Which statements the cases exercised.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// Statements in the bundle.
    pub total: usize,
    /// Statements some case matched (whatever the decision).
    pub exercised: usize,
    /// The others.
    pub missed: Vec<Missed>,
}

/// A run: each case's result, the suites' own errors, and coverage.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Results, in suite and case order.
    pub results: Vec<CaseResult>,
    /// Problems in the suites (a case that cannot run counts as failed).
    pub errors: Vec<String>,
    /// Coverage of the bundle's statements.
    pub coverage: Coverage,
}

impl Report {
    /// Cases that failed, and suite errors.
    pub fn failures(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_some()).count() + self.errors.len()
    }
}

/// The suites of a bundle: `tests/*.yaml` (and `.yml`) under it, in name
/// order.
pub fn discover(bundle_dir: &Path) -> Vec<PathBuf> {
    let dir = bundle_dir.join("tests");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Reads the suites; problems go to `errors`, one line each with the file
/// and line.
pub fn read(paths: &[PathBuf], errors: &mut Vec<String>) -> Vec<Case> {
    let mut cases = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{file}: cannot read: {e}"));
                continue;
            }
        };
        match serde_saphyr::from_str::<RawSuite>(&text) {
            Ok(raw) => compile(&file, raw, &mut cases, errors),
            Err(e) => errors.push(yaml_error(&file, &e)),
        }
    }
    cases
}

fn timestamp(
    file: &str,
    t: Option<&Spanned<String>>,
    errors: &mut Vec<String>,
) -> Option<jiff::Timestamp> {
    let t = t?;
    match t.value.parse::<jiff::Timestamp>() {
        Ok(ts) => Some(ts),
        Err(_) => {
            errors.push(format!(
                "{file}:{}: `now` `{}` is not a time: write RFC 3339, as in `2026-11-28T12:00:00Z`",
                t.referenced.line(),
                t.value
            ));
            None
        }
    }
}

fn compile(file: &str, raw: RawSuite, cases: &mut Vec<Case>, errors: &mut Vec<String>) {
    let suite_now = timestamp(file, raw.now.as_ref(), errors);
    let fx = &raw.fixtures;
    for spanned in raw.cases {
        let line = spanned.referenced.line() as u32;
        let c = spanned.value;
        let at = format!("{file}:{line}: case `{}`", c.name);
        let before = errors.len();
        let principal = fx
            .principals
            .get(&c.principal)
            .cloned()
            .unwrap_or(c.principal);
        let resource = c.resource.unwrap_or_else(|| "*".into());
        let resource = fx.resources.get(&resource).cloned().unwrap_or(resource);
        let mut context = Context::new();
        let items = match c.context {
            None => Vec::new(),
            Some(RawContextRef::One(i)) => vec![i],
            Some(RawContextRef::Many(is)) => is,
        };
        for item in items {
            let map = match item {
                RawContextItem::Named(name) => match fx.context.get(&name) {
                    Some(m) => m.clone(),
                    None => {
                        let known: Vec<&str> = fx.context.keys().map(String::as_str).collect();
                        errors.push(format!(
                            "{at}: no context fixture `{name}` (fixtures: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ));
                        continue;
                    }
                },
                RawContextItem::Inline(m) => m,
            };
            for (k, v) in map {
                let value = match v {
                    RawValue::One(s) => ContextValue::Single(s.text()),
                    RawValue::Many(vs) => {
                        ContextValue::Multi(vs.iter().map(RawScalar::text).collect())
                    }
                };
                // Later items override earlier ones.
                context.set(&k, value);
            }
        }
        let expect = Expect::parse(&c.expect.value).unwrap_or_else(|| {
            errors.push(format!(
                "{file}:{}: case `{}`: `expect: {}`: write `allow`, `deny`, `explicit-deny` or `implicit-deny`",
                c.expect.referenced.line(),
                c.name,
                c.expect.value
            ));
            Expect::Deny
        });
        let determining = match c.determining {
            None => Vec::new(),
            Some(OneOrMany::One(d)) => vec![d],
            Some(OneOrMany::Many(ds)) => ds,
        }
        .into_iter()
        .map(|d| match d {
            RawDetermining::Policy(policy) => ExpectedStatement {
                policy,
                sid: None,
                statement: None,
            },
            RawDetermining::Statement {
                policy,
                sid,
                statement,
            } => ExpectedStatement {
                policy,
                sid,
                statement,
            },
        })
        .collect();
        let now = timestamp(file, c.now.as_ref(), errors)
            .or(suite_now)
            .unwrap_or_else(jiff::Timestamp::now);
        if errors.len() > before {
            continue;
        }
        cases.push(Case {
            suite: file.to_owned(),
            name: c.name,
            line,
            query: Query {
                principal,
                action: c.action,
                resource,
                resource_account: c.resource_account,
                context,
            },
            expect,
            determining,
            now,
        });
    }
}

/// Runs `cases` against `bundle`; `catalog` gives the statements to cover.
pub fn run(bundle: &Bundle, catalog: &Catalog, dir: &Path, cases: Vec<Case>) -> Report {
    let mut exercised: BTreeSet<(PolicyId, u32)> = BTreeSet::new();
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let verdict = bundle.query(&case.query, case.now, true);
        exercised.extend(bundle.exercised(&case.query, case.now));
        let failure = if !case.expect.accepts(verdict.decision) {
            Some(format!(
                "expected {}, got {}",
                case.expect.name(),
                verdict.decision
            ))
        } else {
            let missing: Vec<String> = case
                .determining
                .iter()
                .filter(|e| {
                    !verdict.determining.iter().any(|d| {
                        d.policy == e.policy
                            && e.sid.as_ref().is_none_or(|s| d.sid.as_ref() == Some(s))
                            && e.statement.is_none_or(|i| d.statement == i)
                    })
                })
                .map(ToString::to_string)
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "{} as expected, but not by {}",
                    verdict.decision,
                    missing.join(", ")
                )
            })
        };
        results.push(CaseResult {
            case,
            verdict,
            failure,
        });
    }
    Report {
        results,
        errors: Vec::new(),
        coverage: coverage(catalog, dir, &exercised),
    }
}

fn coverage(catalog: &Catalog, dir: &Path, exercised: &BTreeSet<(PolicyId, u32)>) -> Coverage {
    let mut c = Coverage::default();
    for doc in &catalog.documents {
        let id = PolicyId::of(&doc.policy);
        let places = crate::lint::statement_places(doc, dir);
        for (i, s) in doc.policy.statements().iter().enumerate() {
            c.total += 1;
            let index = i as u32;
            if exercised.contains(&(id, index)) {
                c.exercised += 1;
            } else {
                c.missed.push(Missed {
                    policy: doc.label.clone(),
                    place: places.get(i).cloned().unwrap_or_default(),
                    statement: iamd_policy::policy::StatementRef {
                        index: i,
                        sid: s.sid().map(str::to_owned),
                    },
                });
            }
        }
    }
    c
}
