//! A bundle's problems, structured until they are printed: the file, the
//! line and column when known, the policy and statement when the problem is
//! inside one, and what is wrong with how to fix it. The daemon prints them
//! one per line; `iamd validate` renders them as text, JSON or SARIF from
//! the fields, never by reading the printed line back.

use std::fmt;

use iamd_policy::policy::StatementRef;

/// A place in a bundle file: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// The file, relative to the bundle.
    pub file: String,
    /// From 1.
    pub line: u32,
    /// From 1.
    pub column: u32,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, relative to the bundle; for a problem of the whole bundle
    /// (it cannot be read, `bundle.yaml` is missing), the bundle's path.
    pub file: String,
    /// The line, from 1; 0 when the problem is the whole file.
    pub line: u32,
    /// The column, from 1; 0 with line 0.
    pub column: u32,
    /// The policy the problem is in, named for people (``policy `P` ``,
    /// ``managed policy `P` ``, ``inline policy `p` of user `u` ``), when
    /// the file does not say it alone.
    pub policy: Option<String>,
    /// The statement, when the problem is inside one.
    pub statement: Option<StatementRef>,
    /// What is wrong and how to fix it, one line.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `at`.
    pub fn new(at: &At, message: impl Into<String>) -> Self {
        Self {
            file: at.file.clone(),
            line: at.line,
            column: at.column,
            policy: None,
            statement: None,
            message: message.into(),
        }
    }

    /// A problem of a whole file (or, with the bundle's path, of the whole
    /// bundle).
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: 0,
            column: 0,
            policy: None,
            statement: None,
            message: message.into(),
        }
    }

    /// The problem of a policy document embedded at `at` (its own lines
    /// mean nothing to the author): the embedding's place, the policy as
    /// `label` names it, and the statement and message of `d`.
    pub fn embedded(at: &At, label: &str, d: &iamd_policy::policy::Diagnostic) -> Self {
        Self {
            policy: Some(label.to_owned()),
            statement: d.statement.clone(),
            ..Self::new(at, d.message.clone())
        }
    }

    /// The place, when the problem has a line.
    pub fn at(&self) -> Option<At> {
        (self.line > 0).then(|| At {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        })
    }
}

impl From<&iamd_policy::policy::Diagnostic> for Diagnostic {
    fn from(d: &iamd_policy::policy::Diagnostic) -> Self {
        Self {
            file: d.file.clone(),
            line: d.location.line,
            column: d.location.column,
            policy: d.policy.as_ref().map(|p| format!("policy `{p}`")),
            statement: d.statement.clone(),
            message: d.message.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if let Some(p) = &self.policy {
            write!(f, "{p}: ")?;
        }
        if let Some(s) = &self.statement {
            write!(f, "{s}: ")?;
        }
        f.write_str(&self.message)
    }
}
