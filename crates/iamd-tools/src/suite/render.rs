//! A test run for people, as JSON, and as JUnit XML for CI.

use std::io::{self, Write};

use super::{CaseResult, Report};
use iamd_bundle::query::Verdict;

/// The lines that explain a verdict: its determining statements, or for a
/// deny, the layer, the nearest allow, what failed and the missing keys.
pub fn explain(v: &Verdict) -> Vec<String> {
    let mut lines: Vec<String> = v.determining.iter().map(ToString::to_string).collect();
    if let Some(reason) = &v.reason {
        lines.push(reason.clone());
    }
    // An unknown principal has its reason; a deny by a layer, its story.
    let Some(e) = v
        .explanation
        .as_ref()
        .filter(|_| v.decision == "IMPLICIT_DENY" && v.denied_by.as_deref() != Some("principal"))
    else {
        return lines;
    };
    if let Some(layer) = &e.layer {
        lines.push(format!("no allow in the {layer} layer"));
    }
    match &e.nearest_allow {
        Some(n) => {
            lines.push(format!("nearest allow: {n}"));
            lines.extend(e.failed.iter().map(|f| format!("  failed: {f}")));
        }
        None => lines.push("no allow statement is about this action".into()),
    }
    if !e.missing_context_keys.is_empty() {
        lines.push(format!(
            "missing context keys: {}",
            e.missing_context_keys.join(", ")
        ));
    }
    lines
}

/// One line per case (`ok`/`FAIL`, with the explanation of each failure),
/// the suite errors, a summary, and coverage (each missed statement with
/// `list_missed`).
pub fn human(report: &Report, list_missed: bool, out: &mut impl Write) -> io::Result<()> {
    let mut suite = None;
    for r in &report.results {
        if suite != Some(&r.case.suite) {
            suite = Some(&r.case.suite);
            writeln!(out, "{}", r.case.suite)?;
        }
        match &r.failure {
            None => writeln!(out, "  ok    {}", r.case.name)?,
            Some(f) => {
                writeln!(
                    out,
                    "  FAIL  {} ({}:{})",
                    r.case.name, r.case.suite, r.case.line
                )?;
                writeln!(out, "        {f}")?;
                for line in explain(&r.verdict) {
                    writeln!(out, "        {line}")?;
                }
            }
        }
    }
    for e in &report.errors {
        writeln!(out, "error: {e}")?;
    }
    let failed = report.failures();
    writeln!(
        out,
        "{} passed, {failed} failed",
        report.results.len() + report.errors.len() - failed
    )?;
    let c = &report.coverage;
    let percent = if c.total == 0 {
        100.0
    } else {
        100.0 * c.exercised as f64 / c.total as f64
    };
    writeln!(
        out,
        "coverage: {} of {} statements exercised ({percent:.0}%)",
        c.exercised, c.total
    )?;
    if list_missed {
        for m in &c.missed {
            writeln!(
                out,
                "  not exercised: {}: {}: {}",
                m.place, m.policy, m.statement
            )?;
        }
    }
    Ok(())
}

fn case_json(r: &CaseResult) -> serde_json::Value {
    serde_json::json!({
        "suite": r.case.suite,
        "name": r.case.name,
        "line": r.case.line,
        "passed": r.failure.is_none(),
        "expected": r.case.expect.name(),
        "failure": r.failure,
        "verdict": r.verdict,
    })
}

/// The run as one JSON document.
pub fn json(report: &Report) -> serde_json::Value {
    let failed = report.failures();
    let c = &report.coverage;
    serde_json::json!({
        "passed": report.results.len() + report.errors.len() - failed,
        "failed": failed,
        "errors": report.errors,
        "cases": report.results.iter().map(case_json).collect::<Vec<_>>(),
        "coverage": {
            "total": c.total,
            "exercised": c.exercised,
            "missed": c.missed.iter().map(|m| serde_json::json!({
                "policy": m.policy,
                "place": m.place,
                "statement": m.statement.index,
                "sid": m.statement.sid,
            })).collect::<Vec<_>>(),
        },
    })
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a `testsuite` per suite file, a `testcase` per case, a
/// `failure` with the explanation for each failed case, and the suite
/// errors as `error`s of a suite of their own.
pub fn junit(report: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="iamd" tests="{}" failures="{}" errors="{}">"#,
        report.results.len() + report.errors.len(),
        report
            .results
            .iter()
            .filter(|r| r.failure.is_some())
            .count(),
        report.errors.len()
    )?;
    let mut suites: Vec<&str> = Vec::new();
    for r in &report.results {
        if !suites.contains(&r.case.suite.as_str()) {
            suites.push(&r.case.suite);
        }
    }
    for suite in suites {
        let cases: Vec<&CaseResult> = report
            .results
            .iter()
            .filter(|r| r.case.suite == suite)
            .collect();
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}">"#,
            escape(suite),
            cases.len(),
            cases.iter().filter(|r| r.failure.is_some()).count()
        )?;
        for r in cases {
            write!(
                out,
                r#"    <testcase name="{}" classname="{}" file="{}" line="{}""#,
                escape(&r.case.name),
                escape(suite),
                escape(suite),
                r.case.line
            )?;
            match &r.failure {
                None => writeln!(out, "/>")?,
                Some(f) => {
                    writeln!(out, ">")?;
                    writeln!(
                        out,
                        r#"      <failure message="{}">{}</failure>"#,
                        escape(f),
                        escape(&explain(&r.verdict).join("\n"))
                    )?;
                    writeln!(out, "    </testcase>")?;
                }
            }
        }
        writeln!(out, "  </testsuite>")?;
    }
    if !report.errors.is_empty() {
        writeln!(
            out,
            r#"  <testsuite name="suite errors" tests="{}" errors="{}">"#,
            report.errors.len(),
            report.errors.len()
        )?;
        for e in &report.errors {
            writeln!(
                out,
                r#"    <testcase name="{}"><error message="{}"/></testcase>"#,
                escape(e.split(": ").next().unwrap_or(e)),
                escape(e)
            )?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}
