//! Findings for people (one line each, then the fix), as JSON, and as SARIF
//! 2.1.0 for code-review annotations.

use std::io::{self, Write};

use super::{Finding, Severity};

/// Counts of errors and warnings.
pub fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings
        .iter()
        .filter(|f| f.rule.severity == Severity::Error)
        .count();
    (errors, findings.len() - errors)
}

/// `file:line:column: warning W006 name: policy: statement: message`,
/// then `  fix: ...`, then a summary line.
pub fn human(findings: &[Finding], out: &mut impl Write) -> io::Result<()> {
    for f in findings {
        write!(
            out,
            "{}: {} {} {}: ",
            f.place,
            f.rule.severity.as_str(),
            f.rule.code,
            f.rule.name
        )?;
        if let Some(p) = &f.policy {
            write!(out, "{p}: ")?;
        }
        if let Some(s) = &f.statement {
            write!(out, "{s}: ")?;
        }
        writeln!(out, "{}", f.message)?;
        if let Some(fix) = &f.fix {
            writeln!(out, "  fix: {fix}")?;
        }
    }
    let (errors, warnings) = counts(findings);
    let plural = |n: usize, what: &str| {
        if n == 1 {
            format!("1 {what}")
        } else {
            format!("{n} {what}s")
        }
    };
    writeln!(
        out,
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "severity": f.rule.severity.as_str(),
        "code": f.rule.code,
        "rule": f.rule.name,
        "file": f.place.file,
        "line": f.place.line,
        "column": f.place.column,
        "policy": f.policy,
        "statement": f.statement.as_ref().map(|s| serde_json::json!({"index": s.index, "sid": s.sid})),
        "message": f.message,
        "fix": f.fix,
    })
}

/// `{"findings": [...], "errors": N, "warnings": N}`.
pub fn json(findings: &[Finding]) -> serde_json::Value {
    let (errors, warnings) = counts(findings);
    serde_json::json!({
        "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        "errors": errors,
        "warnings": warnings,
    })
}

/// A SARIF 2.1.0 log with one run: every rule, and a result per finding.
pub fn sarif(findings: &[Finding]) -> serde_json::Value {
    let rules = super::rules();
    let level = |s: Severity| match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.code == f.rule.code);
            let mut text = String::new();
            if let Some(p) = &f.policy {
                text.push_str(&format!("{p}: "));
            }
            if let Some(s) = &f.statement {
                text.push_str(&format!("{s}: "));
            }
            text.push_str(&f.message);
            if let Some(fix) = &f.fix {
                text.push_str(&format!(". Fix: {fix}"));
            }
            let mut location = serde_json::json!({
                "physicalLocation": {"artifactLocation": {"uri": f.place.file.replace('\\', "/")}}
            });
            if f.place.line > 0 {
                let mut region = serde_json::json!({"startLine": f.place.line});
                if f.place.column > 0 {
                    region["startColumn"] = f.place.column.into();
                }
                location["physicalLocation"]["region"] = region;
            }
            serde_json::json!({
                "ruleId": f.rule.code,
                "ruleIndex": index,
                "level": level(f.rule.severity),
                "message": {"text": text},
                "locations": [location],
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "iamd",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| serde_json::json!({
                    "id": r.code,
                    "name": r.name,
                    "shortDescription": {"text": r.summary},
                    "defaultConfiguration": {"level": level(r.severity)},
                })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}
