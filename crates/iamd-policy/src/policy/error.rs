//! Policy errors: every problem of a document at once, each with its place.

use std::fmt;

use crate::json::{Location, Source};

/// The statement a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// Position of the statement in the `Statement` array, from 0.
    pub index: usize,
    /// The statement's `Sid`, if it has one.
    pub sid: Option<String>,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "statement {} (`{sid}`)", self.index),
            None => write!(f, "statement {}", self.index),
        }
    }
}

/// One problem in a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or other source) name.
    pub file: String,
    /// Where in the file.
    pub location: Location,
    /// The policy's name, when it differs from the file (policies embedded in
    /// a larger document).
    pub policy: Option<String>,
    /// The statement, when the problem is inside one.
    pub statement: Option<StatementRef>,
    /// What is wrong and how to fix it, one line.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.location)?;
        if let Some(p) = &self.policy {
            write!(f, "policy `{p}`: ")?;
        }
        if let Some(s) = &self.statement {
            write!(f, "{s}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A policy document that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The problems, in document order; never empty.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            d.fmt(f)?;
        }
        Ok(())
    }
}

/// Collects problems found while reading and compiling one document.
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<(usize, Option<usize>, String)>,
}

impl Problems {
    /// Records a problem at byte `at`, inside statement `statement`.
    pub fn add(&mut self, at: usize, statement: Option<usize>, message: impl Into<String>) {
        self.items.push((at, statement, message.into()));
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Turns the problems into diagnostics; `sids` gives each statement's Sid.
    pub fn into_error(
        mut self,
        source: &Source<'_>,
        policy: Option<&str>,
        sids: &[Option<String>],
    ) -> PolicyError {
        self.items.sort_by_key(|(at, _, _)| *at);
        PolicyError {
            diagnostics: self
                .items
                .into_iter()
                .map(|(at, statement, message)| Diagnostic {
                    file: source.name().to_owned(),
                    location: source.location(at),
                    policy: policy.map(str::to_owned),
                    statement: statement.map(|index| StatementRef {
                        index,
                        sid: sids.get(index).cloned().flatten(),
                    }),
                    message,
                })
                .collect(),
        }
    }
}
