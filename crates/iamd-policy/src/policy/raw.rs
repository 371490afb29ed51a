//! The raw policy: the document's elements as written, each with the byte
//! offset it came from, read from the JSON syntax tree. No meaning is given
//! here beyond the shape (which keys, which JSON types); the compiler does
//! the rest.

use super::error::Problems;
use crate::json::{self, Object, Value};

/// A value and the byte offset it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub v: T,
    /// The byte offset of its start in the document.
    pub at: usize,
}

/// A list of strings (`"x"` or `["x", "y"]`) and where the element started.
pub type StringList = Spanned<Vec<Spanned<String>>>;

/// A policy document as written (`iamd validate` reads it too).
#[derive(Debug, Default)]
pub struct RawPolicy {
    /// `Version`.
    pub version: Option<Spanned<String>>,
    /// `Statement`, a lone object read as a list of one.
    pub statements: Vec<RawStatement>,
}

/// One statement as written.
#[derive(Debug)]
pub struct RawStatement {
    /// Where the statement starts.
    pub at: usize,
    /// Whether the statement is a JSON object (otherwise it was reported and
    /// there is nothing more to say about it).
    pub is_object: bool,
    /// The elements present, valid or not: a missing element is reported
    /// only when it is really missing.
    pub seen: Vec<&'static str>,
    /// `Sid`.
    pub sid: Option<Spanned<String>>,
    /// `Effect`.
    pub effect: Option<Spanned<String>>,
    /// `Principal`.
    pub principal: Option<Spanned<RawPrincipal>>,
    /// `NotPrincipal`.
    pub not_principal: Option<Spanned<RawPrincipal>>,
    /// `Action`.
    pub action: Option<StringList>,
    /// `NotAction`.
    pub not_action: Option<StringList>,
    /// `Resource`.
    pub resource: Option<StringList>,
    /// `NotResource`.
    pub not_resource: Option<StringList>,
    /// `Condition`: its operators in order.
    pub condition: Option<Spanned<Vec<RawOperator>>>,
}

/// A `Principal` or `NotPrincipal` element as written.
#[derive(Debug)]
pub enum RawPrincipal {
    /// `"Principal": "*"`.
    Any,
    /// `{"AWS": ..., "Service": ...}`: principal type and its values.
    Map(Vec<(Spanned<String>, Vec<Spanned<String>>)>),
}

/// One condition operator block: the operator's name, and each key with
/// its values.
#[derive(Debug)]
pub struct RawOperator {
    /// The operator as written (`StringLike`, `ForAnyValue:StringEquals`).
    pub name: Spanned<String>,
    /// Each condition key and its values.
    pub keys: Vec<(Spanned<String>, Vec<Spanned<String>>)>,
}

const POLICY_KEYS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Reads a policy document's syntax tree. Problems go to `problems`; what
/// could be read is returned.
pub fn read_policy(value: &Value<'_>, problems: &mut Problems) -> RawPolicy {
    let mut policy = RawPolicy::default();
    let Value::Object(obj) = value else {
        problems.add(
            json::start(value),
            None,
            format!(
                "a policy document is a JSON object, found {}",
                json::type_name(value)
            ),
        );
        return policy;
    };
    let mut saw_statement = false;
    for (name, v) in fields(obj, POLICY_KEYS, None, "policy", problems) {
        match name {
            "Version" => policy.version = string(v, "Version", None, problems),
            "Id" => {
                string(v, "Id", None, problems);
            }
            "Statement" => {
                saw_statement = true;
                match v {
                    Value::Object(_) => policy.statements.push(read_statement(v, 0, problems)),
                    Value::Array(arr) => {
                        for (i, s) in arr.elements.iter().enumerate() {
                            policy.statements.push(read_statement(s, i, problems));
                        }
                    }
                    _ => problems.add(
                        json::start(v),
                        None,
                        format!(
                            "`Statement` is an object or an array of objects, found {}",
                            json::type_name(v)
                        ),
                    ),
                }
            }
            _ => {}
        }
    }
    if !saw_statement {
        problems.add(
            obj.range.start,
            None,
            "the policy has no `Statement` element: add one",
        );
    }
    policy
}

fn read_statement(value: &Value<'_>, index: usize, problems: &mut Problems) -> RawStatement {
    let at = json::start(value);
    let mut s = RawStatement {
        at,
        is_object: false,
        seen: Vec::new(),
        sid: None,
        effect: None,
        principal: None,
        not_principal: None,
        action: None,
        not_action: None,
        resource: None,
        not_resource: None,
        condition: None,
    };
    let Value::Object(obj) = value else {
        problems.add(
            at,
            Some(index),
            format!(
                "a statement is a JSON object, found {}",
                json::type_name(value)
            ),
        );
        return s;
    };
    s.is_object = true;
    let st = Some(index);
    for (name, v) in fields(obj, STATEMENT_KEYS, st, "statement", problems) {
        s.seen.push(name);
        match name {
            "Sid" => s.sid = string(v, "Sid", st, problems),
            "Effect" => s.effect = string(v, "Effect", st, problems),
            "Principal" => s.principal = principal(v, "Principal", st, problems),
            "NotPrincipal" => s.not_principal = principal(v, "NotPrincipal", st, problems),
            "Action" => s.action = string_list(v, "Action", st, problems),
            "NotAction" => s.not_action = string_list(v, "NotAction", st, problems),
            "Resource" => s.resource = string_list(v, "Resource", st, problems),
            "NotResource" => s.not_resource = string_list(v, "NotResource", st, problems),
            "Condition" => s.condition = condition(v, st, problems),
            _ => {}
        }
    }
    s
}

/// The properties of an object whose names are in `known`; reports unknown
/// and duplicate names.
fn fields<'o, 'a>(
    obj: &'o Object<'a>,
    known: &[&'static str],
    statement: Option<usize>,
    what: &str,
    problems: &mut Problems,
) -> Vec<(&'static str, &'o Value<'a>)> {
    let mut out: Vec<(&'static str, &'o Value<'a>)> = Vec::new();
    for prop in &obj.properties {
        let name = prop.name.as_str();
        let at = prop.range.start;
        let Some(&k) = known.iter().find(|k| **k == name) else {
            let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                Some(k) => format!("element names are case-sensitive, write `{k}`"),
                None => format!("a {what} has only {}", list(known)),
            };
            problems.add(at, statement, format!("unknown element `{name}`: {hint}"));
            continue;
        };
        if out.iter().any(|(n, _)| *n == k) {
            problems.add(at, statement, format!("`{k}` appears twice: keep one"));
            continue;
        }
        out.push((k, &prop.value));
    }
    out
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn string(
    v: &Value<'_>,
    what: &str,
    statement: Option<usize>,
    problems: &mut Problems,
) -> Option<Spanned<String>> {
    match v {
        Value::StringLit(s) => Some(Spanned {
            v: s.value.to_string(),
            at: s.range.start,
        }),
        _ => {
            problems.add(
                json::start(v),
                statement,
                format!("`{what}` is a string, found {}", json::type_name(v)),
            );
            None
        }
    }
}

/// `"x"` or `["x", ...]`, strings only.
fn string_list(
    v: &Value<'_>,
    what: &str,
    statement: Option<usize>,
    problems: &mut Problems,
) -> Option<StringList> {
    let at = json::start(v);
    let items: Vec<&Value<'_>> = match v {
        Value::Array(a) => a.elements.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::StringLit(s) => out.push(Spanned {
                v: s.value.to_string(),
                at: s.range.start,
            }),
            _ => problems.add(
                json::start(item),
                statement,
                format!(
                    "`{what}` is a string or an array of strings, found {}",
                    json::type_name(item)
                ),
            ),
        }
    }
    Some(Spanned { v: out, at })
}

/// Condition values: a scalar or an array of scalars (strings, numbers and
/// booleans, read as their text).
fn scalar_list(
    v: &Value<'_>,
    key: &str,
    statement: Option<usize>,
    problems: &mut Problems,
) -> Vec<Spanned<String>> {
    let items: Vec<&Value<'_>> = match v {
        Value::Array(a) => a.elements.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match json::scalar_text(item) {
            Some(text) => out.push(Spanned {
                v: text.into_owned(),
                at: json::start(item),
            }),
            None => problems.add(
                json::start(item),
                statement,
                format!(
                    "condition key `{key}`: a value is a string, number or boolean, found {}",
                    json::type_name(item)
                ),
            ),
        }
    }
    out
}

fn principal(
    v: &Value<'_>,
    what: &str,
    statement: Option<usize>,
    problems: &mut Problems,
) -> Option<Spanned<RawPrincipal>> {
    let at = json::start(v);
    match v {
        Value::StringLit(s) if s.value == "*" => Some(Spanned {
            v: RawPrincipal::Any,
            at,
        }),
        Value::Object(obj) => {
            let mut entries: Vec<(Spanned<String>, Vec<Spanned<String>>)> = Vec::new();
            for prop in &obj.properties {
                let name = prop.name.as_str();
                if entries.iter().any(|(n, _)| n.v == name) {
                    problems.add(
                        prop.range.start,
                        statement,
                        format!("`{name}` appears twice in `{what}`: keep one"),
                    );
                    continue;
                }
                let values = string_list(&prop.value, what, statement, problems)
                    .map(|l| l.v)
                    .unwrap_or_default();
                entries.push((
                    Spanned {
                        v: name.to_owned(),
                        at: prop.range.start,
                    },
                    values,
                ));
            }
            Some(Spanned {
                v: RawPrincipal::Map(entries),
                at,
            })
        }
        _ => {
            problems.add(
                at,
                statement,
                format!(
                    "`{what}` is `\"*\"` or an object such as `{{\"AWS\": \"arn:aws:iam::111122223333:root\"}}`, found {}",
                    json::type_name(v)
                ),
            );
            None
        }
    }
}

fn condition(
    v: &Value<'_>,
    statement: Option<usize>,
    problems: &mut Problems,
) -> Option<Spanned<Vec<RawOperator>>> {
    let at = json::start(v);
    let Value::Object(obj) = v else {
        problems.add(
            at,
            statement,
            format!(
                "`Condition` is an object such as `{{\"StringEquals\": {{\"aws:username\": \"alice\"}}}}`, found {}",
                json::type_name(v)
            ),
        );
        return None;
    };
    let mut ops: Vec<RawOperator> = Vec::new();
    for prop in &obj.properties {
        let name = prop.name.as_str();
        if ops.iter().any(|o| o.name.v == name) {
            problems.add(
                prop.range.start,
                statement,
                format!("condition operator `{name}` appears twice: merge its keys into one block"),
            );
            continue;
        }
        let Value::Object(keys) = &prop.value else {
            problems.add(
                json::start(&prop.value),
                statement,
                format!(
                    "condition operator `{name}` takes an object of keys and values, found {}",
                    json::type_name(&prop.value)
                ),
            );
            continue;
        };
        let mut entries: Vec<(Spanned<String>, Vec<Spanned<String>>)> = Vec::new();
        for kp in &keys.properties {
            let key = kp.name.as_str();
            if entries.iter().any(|(k, _)| k.v == key) {
                problems.add(
                    kp.range.start,
                    statement,
                    format!(
                        "condition key `{key}` appears twice under `{name}`: list its values once"
                    ),
                );
                continue;
            }
            let values = scalar_list(&kp.value, key, statement, problems);
            entries.push((
                Spanned {
                    v: key.to_owned(),
                    at: kp.range.start,
                },
                values,
            ));
        }
        ops.push(RawOperator {
            name: Spanned {
                v: name.to_owned(),
                at: prop.range.start,
            },
            keys: entries,
        });
    }
    Some(Spanned { v: ops, at })
}
