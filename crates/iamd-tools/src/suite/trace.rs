//! `iamd explain`: a request's whole evaluation as a person reads it.

use std::io::{self, Write};

use iamd_bundle::query::{Query, Trace};
use iamd_policy::context::ContextValue;

fn values(v: &[String]) -> String {
    match v {
        [one] => format!("`{one}`"),
        many => format!(
            "[{}]",
            many.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A policy value in backticks, with its `${key}` variables resolved from
/// the context when they change it: `` `${aws:username}` (= `alice`) ``.
fn policy_value(text: &str, ctx: &iamd_policy::context::Context) -> String {
    let mut resolved = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        resolved.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let key = inner.split_once(',').map_or(inner, |(k, _)| k).trim();
        match ctx.get(key) {
            Some(iamd_policy::context::Values::Single(v)) => resolved.push_str(v),
            _ => resolved.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    resolved.push_str(rest);
    if resolved == text {
        format!("`{text}`")
    } else {
        format!("`{text}` (= `{resolved}`)")
    }
}

/// The request, each layer with each policy and statement (statements not
/// about the action are counted, or listed with `all`), the decision and
/// its explanation.
pub fn render(q: &Query, t: &Trace, all: bool, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "request")?;
    writeln!(out, "  principal  {}", t.principal)?;
    writeln!(out, "  action     {}", q.action)?;
    writeln!(out, "  resource   {}", q.resource)?;
    for (i, (k, v)) in t.context.iter().enumerate() {
        let head = if i == 0 {
            "  context    "
        } else {
            "             "
        };
        let v = match v {
            ContextValue::Single(s) => format!("`{s}`"),
            ContextValue::Multi(m) => values(m),
        };
        writeln!(out, "{head}{k} = {v}")?;
    }
    let mut layer = None;
    let mut policy = None;
    // Statements of the current policy: (shown, skipped).
    let mut counts = (0, 0);
    let flush = |out: &mut dyn Write, counts: &mut (usize, usize)| -> io::Result<()> {
        let (shown, skipped) = *counts;
        if skipped > 0 {
            writeln!(
                out,
                "    ({skipped}{} statement{} not about `{}`)",
                if shown > 0 { " more" } else { "" },
                if skipped == 1 { "" } else { "s" },
                q.action
            )?;
        }
        *counts = (0, 0);
        Ok(())
    };
    for (name, st) in &t.statements {
        if layer != Some(&name.layer) {
            flush(out, &mut counts)?;
            layer = Some(&name.layer);
            policy = None;
            writeln!(out, "\n{}", name.layer)?;
        }
        if policy != Some(&name.policy) {
            flush(out, &mut counts)?;
            policy = Some(&name.policy);
            writeln!(out, "  {}", name.policy)?;
        }
        if !st.action && !all {
            counts.1 += 1;
            continue;
        }
        counts.0 += 1;
        let sid = name
            .sid
            .as_ref()
            .map(|s| format!(" `{s}`"))
            .unwrap_or_default();
        let verdict = if st.matched() {
            "MATCHES".to_owned()
        } else if !st.action {
            format!("not about `{}`", q.action)
        } else {
            "does not match".to_owned()
        };
        writeln!(
            out,
            "    statement {}{sid} ({}): {verdict}",
            name.statement, name.effect
        )?;
        if !st.action {
            continue;
        }
        let yes = |b: bool| if b { "matches" } else { "does not match" };
        writeln!(out, "      action     {}", yes(st.action))?;
        writeln!(out, "      resource   {}", yes(st.resource))?;
        if let Some(p) = st.principal {
            writeln!(out, "      principal  {}", yes(p))?;
        }
        for c in &st.conditions {
            let actual = match &c.actual {
                None => "absent".to_owned(),
                Some(v) => values(v),
            };
            let expected: Vec<String> = c
                .expected
                .iter()
                .map(|e| policy_value(e, &t.context))
                .collect();
            let expected = match &expected[..] {
                [one] => one.clone(),
                many => format!("[{}]", many.join(", ")),
            };
            writeln!(
                out,
                "      condition  {} `{}`: policy {expected}, request {actual}: {}",
                c.operator,
                c.key,
                if c.holds { "holds" } else { "fails" }
            )?;
        }
    }
    flush(out, &mut counts)?;
    let v = &t.verdict;
    writeln!(out, "\ndecision: {}", v.decision)?;
    for line in super::render::explain(v) {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
