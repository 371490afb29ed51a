//! The data-driven semantics corpus: `tests/cases/*.json`.
//!
//! Each file holds groups; a group shares policy layers (the fields of an
//! `iamd simulate` case but `request`) and a `base` request, and lists
//! requests, each merged over the base, with the expected answer. Every case
//! cites the checklist IDs of `docs/semantics.md` (from the design brief's
//! `iam-semantics.md`) that it covers; `every_checklist_item_is_covered`
//! checks that each item has cases on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use iamd_policy::json::Source;
use iamd_tools::simulate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[expect(dead_code, reason = "read by people, not by the runner")]
    title: String,
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Group {
    #[serde(default)]
    covers: Vec<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    policies: Map<String, Value>,
    /// The policy layers as JSON text, for documents that JSON parsers
    /// would not keep as written (duplicate keys).
    #[serde(default)]
    policies_json: Option<String>,
    #[serde(default)]
    base: Map<String, Value>,
    requests: Vec<Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expectation {
    name: String,
    #[serde(default)]
    covers: Vec<String>,
    #[serde(default)]
    request: Map<String, Value>,
    expect: String,
    /// Sids (or `policy#index` for statements without one), in any order.
    #[serde(default)]
    matched: Option<Vec<String>>,
    #[serde(default)]
    denied_by: Option<String>,
    #[serde(default)]
    error_contains: Option<String>,
}

/// A case built from a group and one of its requests.
struct Built {
    file: String,
    name: String,
    covers: BTreeSet<String>,
    text: String,
    expect: Expectation,
}

fn load() -> Vec<Built> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no case files in {}", dir.display());
    let mut out = Vec::new();
    for path in paths {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: CaseFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for group in parsed.groups {
            let _ = &group.note;
            for e in group.requests {
                let mut request = group.base.clone();
                for (k, v) in &e.request {
                    request.insert(k.clone(), v.clone());
                }
                let request = serde_json::to_string(&Value::Object(request)).unwrap();
                let text = match &group.policies_json {
                    Some(raw) => {
                        assert!(
                            group.policies.is_empty(),
                            "{file}: `policies` and `policiesJson` together"
                        );
                        let body = raw
                            .trim()
                            .strip_suffix('}')
                            .expect("policiesJson is an object");
                        let sep = if body.trim_end().ends_with('{') {
                            ""
                        } else {
                            ","
                        };
                        format!("{body}{sep} \"request\": {request}}}")
                    }
                    None => {
                        let layers =
                            serde_json::to_string(&Value::Object(group.policies.clone())).unwrap();
                        let body = layers.strip_suffix('}').unwrap();
                        let sep = if group.policies.is_empty() { "" } else { "," };
                        format!("{body}{sep}\"request\": {request}}}")
                    }
                };
                let covers = group
                    .covers
                    .iter()
                    .chain(e.covers.iter())
                    .cloned()
                    .collect();
                out.push(Built {
                    file: file.clone(),
                    name: e.name.clone(),
                    covers,
                    text,
                    expect: e,
                });
            }
        }
    }
    out
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

#[test]
fn every_case_gets_its_expected_answer() {
    let cases = load();
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for c in &cases {
        assert!(
            names.insert((c.file.clone(), c.name.clone())),
            "{}: duplicate case name `{}`",
            c.file,
            c.name
        );
        assert!(
            !c.covers.is_empty(),
            "{}: `{}` cites no checklist item",
            c.file,
            c.name
        );
        let answer = simulate::run(&Source::new(&c.name, &c.text), now());
        let mut problems = Vec::new();
        if answer.decision != c.expect.expect {
            problems.push(format!(
                "decision {} (expected {})",
                answer.decision, c.expect.expect
            ));
        }
        if let Some(want) = &c.expect.matched {
            let got: BTreeSet<String> = answer
                .matched
                .iter()
                .flatten()
                .map(|m| {
                    m.sid
                        .clone()
                        .unwrap_or_else(|| format!("{}#{}", m.policy, m.statement))
                })
                .collect();
            let want: BTreeSet<String> = want.iter().cloned().collect();
            if got != want {
                problems.push(format!("matched {got:?} (expected {want:?})"));
            }
        }
        if let Some(layer) = &c.expect.denied_by
            && answer.denied_by.as_deref() != Some(layer.as_str())
        {
            problems.push(format!(
                "denied by {:?} (expected {layer})",
                answer.denied_by
            ));
        }
        if let Some(needle) = &c.expect.error_contains {
            let errors = answer.errors.clone().unwrap_or_default().join("\n");
            if !errors.contains(needle.as_str()) {
                problems.push(format!("errors {errors:?} do not contain {needle:?}"));
            }
        }
        if c.expect.expect != "Error"
            && let Some(errors) = &answer.errors
        {
            problems.push(format!("unexpected errors {errors:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{} / {}: {}", c.file, c.name, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= 400,
        "the corpus has {} cases; keep at least 400",
        cases.len()
    );
}

/// The checklist of `docs/semantics.md`, and items no case can show.
const CHECKLIST: &[&str] = &[
    "G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8", "G9", "G10", "G11", "G12", "M1", "M2", "M3",
    "M4", "M5", "M6", "C0", "C1", "C1b", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10",
    "C11", "C12", "C13", "C14", "C15", "V1", "V2", "V3", "V4", "V5", "V6", "E0", "E1", "E2", "E3",
    "E4", "E5", "E6", "E7", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "D1", "D2", "D3", "D4", "D5",
    "D6", "D7",
];

/// Items that are not a property of a decision, with the reason.
const NOT_DECISIONS: &[(&str, &str)] = &[
    (
        "E7",
        "one request names one resource: a caller asks once per resource (docs/semantics.md)",
    ),
    ("R7", "console role switching is not an API decision"),
    (
        "G11",
        "iamd accepts any Unicode text in policies; a validator warning is planned",
    ),
];

#[test]
fn every_checklist_item_is_covered() {
    let cases = load();
    let mut sides: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in &cases {
        for id in &c.covers {
            assert!(
                CHECKLIST.contains(&id.as_str()),
                "{} / {}: unknown checklist id `{id}`",
                c.file,
                c.name
            );
            let e = sides
                .entry(CHECKLIST.iter().find(|x| **x == id).unwrap())
                .or_default();
            if c.expect.expect == "Allowed" {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    let mut missing = Vec::new();
    for id in CHECKLIST {
        if NOT_DECISIONS.iter().any(|(x, _)| x == id) {
            continue;
        }
        let (pos, neg) = sides.get(id).copied().unwrap_or_default();
        if pos == 0 || neg == 0 {
            missing.push(format!("{id}: {pos} allowed, {neg} denied or rejected"));
        }
    }
    assert!(
        missing.is_empty(),
        "checklist items without cases on both sides:\n{}",
        missing.join("\n")
    );
}
