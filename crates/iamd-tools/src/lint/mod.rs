//! `iamd validate`: errors (the bundle or policy would not load) and
//! least-privilege warnings, each with its file, line, statement, a stable
//! code, a message for the author and a suggested fix.
//!
//! The checks read each document's raw statements (which keep their
//! positions) beside the bundle's [`Catalog`] (who uses which document);
//! they never evaluate a request. Rendering lives in [`render`].

pub mod render;
mod rules;

use std::path::Path;

use iamd_bundle::catalog::{Catalog, DocumentRole};
use iamd_bundle::{BundleError, BundleFiles};
use iamd_policy::json::Source;
use iamd_policy::policy::{PolicyKind, StatementRef};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The bundle or policy would not load.
    Error,
    /// It loads, but grants more than it likely means, or less than it
    /// says.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

/// A kind of finding: its stable code and name, and what it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable code, such as `W006`.
    pub code: &'static str,
    /// Stable name, such as `sensitive-action-without-mfa`.
    pub name: &'static str,
    /// How bad.
    pub severity: Severity,
    /// One line on what the rule finds.
    pub summary: &'static str,
}

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file, as the author would open it.
    pub file: String,
    /// Line, from 1 (0: the whole file).
    pub line: u32,
    /// Column, from 1 (0: the whole line).
    pub column: u32,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.file),
            (l, 0) => write!(f, "{}:{l}", self.file),
            (l, c) => write!(f, "{}:{l}:{c}", self.file),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// Where.
    pub place: Place,
    /// The document, as a person names it ("managed policy `DocsRead`").
    pub policy: Option<String>,
    /// The statement, when the finding is about one.
    pub statement: Option<StatementRef>,
    /// What is wrong, for the author.
    pub message: String,
    /// How to fix it.
    pub fix: Option<String>,
}

/// What to validate a lone policy file as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoneKind {
    /// An identity policy (the default).
    Identity,
    /// A resource-based policy.
    Resource,
    /// A role trust policy.
    Trust,
    /// A permissions boundary.
    Boundary,
    /// A service control policy.
    Scp,
    /// A resource control policy.
    Rcp,
}

/// Validates the bundle in `dir` (a directory or an AWS export file).
/// Findings name files as `dir` joined with the bundle's relative names.
pub fn bundle(dir: &Path) -> Vec<Finding> {
    let files = match BundleFiles::read(dir) {
        Ok(f) => f,
        Err(e) => return load_errors(dir, &e),
    };
    // The checks read the catalog only: the principals are checked, not
    // built.
    match files.catalog_only() {
        Ok(catalog) => {
            let mut findings = rules::check(&catalog, files.dir());
            sort(&mut findings);
            findings
        }
        Err(e) => load_errors(files.dir(), &e),
    }
}

/// Validates each path: a directory or an AWS export is a bundle; a JSON
/// file with a `Statement` is a policy document validated as `kind`.
pub fn paths(paths: &[std::path::PathBuf], kind: LoneKind) -> Vec<Finding> {
    let mut findings = Vec::new();
    for path in paths {
        if path.is_dir() {
            findings.extend(bundle(path));
            continue;
        }
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Err(e) => findings.push(Finding {
                rule: &rules::LOAD,
                place: Place {
                    file: name,
                    line: 0,
                    column: 0,
                },
                policy: None,
                statement: None,
                message: format!("cannot read: {e}"),
                fix: None,
            }),
            Ok(text) if is_export(&text) => findings.extend(bundle(path)),
            Ok(text) => findings.extend(policy(&name, &text, kind)),
        }
    }
    findings
}

/// An `aws iam get-account-authorization-details` export, not a policy.
fn is_export(text: &str) -> bool {
    matches!(iamd_policy::json::parse(text), Ok(iamd_policy::json::Value::Object(o))
        if o.properties.iter().any(|p| p.name.as_str().ends_with("DetailList") || p.name.as_str() == "Policies"))
}

/// Validates one policy document, `text`, read from `file`, as `kind`.
pub fn policy(file: &str, text: &str, kind: LoneKind) -> Vec<Finding> {
    let (policy_kind, role) = match kind {
        LoneKind::Identity => (PolicyKind::Identity, DocumentRole::Managed),
        LoneKind::Resource => (PolicyKind::Resource, DocumentRole::Resource),
        LoneKind::Trust => (PolicyKind::Resource, DocumentRole::Trust),
        LoneKind::Boundary => (PolicyKind::Boundary, DocumentRole::Managed),
        LoneKind::Scp => (PolicyKind::Scp, DocumentRole::Scp),
        LoneKind::Rcp => (PolicyKind::Rcp, DocumentRole::Rcp),
    };
    let source = Source::new(file, text);
    match iamd_policy::policy::Policy::parse(&source, policy_kind) {
        Err(e) => {
            let mut findings: Vec<Finding> = e
                .diagnostics
                .into_iter()
                .map(|d| Finding {
                    rule: &rules::LOAD,
                    place: Place {
                        file: d.file,
                        line: d.location.line,
                        column: d.location.column,
                    },
                    policy: d.policy,
                    statement: d.statement,
                    message: d.message,
                    fix: None,
                })
                .collect();
            sort(&mut findings);
            findings
        }
        Ok(p) => {
            let catalog = Catalog::lone(iamd_bundle::catalog::Document {
                label: format!("policy `{file}`"),
                role,
                kind: policy_kind,
                file: file.to_owned(),
                text: text.into(),
                embedded_at: None,
                policy: std::sync::Arc::new(p),
            });
            let mut findings = rules::check(&catalog, Path::new(""));
            sort(&mut findings);
            findings
        }
    }
}

/// Where each statement of `doc` is (`file:line:column`), files named under
/// `dir`.
pub fn statement_places(doc: &iamd_bundle::catalog::Document, dir: &Path) -> Vec<String> {
    rules::statement_places(doc, dir)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The actions and resources each statement of `doc` names, as written
/// (`Action` or `NotAction`; `Resource` or `NotResource`, empty when
/// absent).
pub fn mentioned(doc: &iamd_bundle::catalog::Document) -> Vec<(Vec<String>, Vec<String>)> {
    rules::mentioned(doc)
}

/// Every rule, errors first.
pub fn rules() -> &'static [&'static Rule] {
    rules::ALL
}

/// Findings in file order, each message shortened
/// ([`iamd_policy::message::shorten`]).
fn sort(findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        shorten(&mut f.message);
        if let Some(p) = &mut f.policy {
            shorten(p);
        }
    }
    findings.sort_by(|a, b| {
        (&a.place.file, a.place.line, a.place.column, a.rule.code).cmp(&(
            &b.place.file,
            b.place.line,
            b.place.column,
            b.rule.code,
        ))
    });
}

fn shorten(text: &mut String) {
    if let std::borrow::Cow::Owned(short) = iamd_policy::message::shorten(text) {
        *text = short;
    }
}

/// A bundle's load errors (`file:line:column: message` lines) as findings,
/// in file order.
fn load_errors(dir: &Path, e: &BundleError) -> Vec<Finding> {
    let mut findings: Vec<Finding> = e
        .diagnostics
        .iter()
        .map(|d| Finding {
            rule: &rules::LOAD,
            place: Place {
                file: display(dir, &d.file),
                line: d.line,
                column: d.column,
            },
            policy: d.policy.clone(),
            statement: d.statement.clone(),
            message: d.message.clone(),
            fix: None,
        })
        .collect();
    sort(&mut findings);
    findings
}

/// A bundle file's name as the author opens it.
fn display(dir: &Path, file: &str) -> String {
    let joined = dir.join(file);
    if dir.as_os_str().is_empty() || Path::new(file).is_absolute() || !joined.exists() {
        file.to_owned()
    } else {
        joined.display().to_string()
    }
}

#[cfg(test)]
mod tests;
