//! The `authzen:` section of the configuration: from AuthZEN's subject,
//! action and resource to an iamd question.
//!
//! ```yaml
//! authzen:
//!   mapping:
//!     subjects:                 # subject.type -> principal; these two are the default
//!       user: "user/{id}"
//!       role: "role/{id}"
//!     action: "{type}:{name}"   # the default: the resource type is the service
//!     resources:                # resource.type -> ARN; others use defaultResource
//!       record: "arn:acme:records:eu-1:123456789012:record/{id}"
//!     defaultResource: "arn:authzen:{type}:::{id}"
//!     keys:                     # where properties and context become condition keys
//!       subject: "subject:"     # subject.properties.role -> subject:role
//!       resource: "resource:"
//!       action: "action:"
//!       context: "context:"
//!     contextKeys:              # a context field under a key of its own
//!       ip: aws:SourceIp
//! ```
//!
//! docs/authzen.md says what each does.
//!
//! A subject of a type the section does not list is denied (the decider
//! answers it as an unknown principal): an unmapped type never falls back
//! to a principal the bundle may hold.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::value::RawValue;

use iamd_policy::context::ContextValue;

/// The section as written.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileMapping {
    /// `subject.type` to a principal template (`{id}`); the default maps
    /// `user` and `role`.
    #[serde(default)]
    pub subjects: Option<BTreeMap<String, String>>,
    /// The action template (`{name}`, and `{type}`: the resource's type).
    #[serde(default)]
    pub action: Option<String>,
    /// `resource.type` to an ARN template (`{id}`, `{type}`).
    #[serde(default)]
    pub resources: BTreeMap<String, String>,
    /// The ARN template of the types `resources` does not list.
    #[serde(default)]
    pub default_resource: Option<String>,
    /// The condition keys' prefixes.
    #[serde(default)]
    pub keys: FileKeys,
    /// Top-level `context` fields to condition keys of their own.
    #[serde(default)]
    pub context_keys: BTreeMap<String, String>,
    /// Whether every answer carries its reasons (`context`), as when a
    /// request sets `options.iamd_reasons`.
    #[serde(default)]
    pub reasons: bool,
}

/// `keys:`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileKeys {
    /// Before `subject.properties`' names (`subject:`).
    #[serde(default)]
    pub subject: Option<String>,
    /// Before `resource.properties`' names (`resource:`).
    #[serde(default)]
    pub resource: Option<String>,
    /// Before `action.properties`' names (`action:`).
    #[serde(default)]
    pub action: Option<String>,
    /// Before `context`'s names (`context:`).
    #[serde(default)]
    pub context: Option<String>,
}

/// The section could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct MappingError(pub Vec<String>);

/// A template's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Id,
    Type,
    Name,
}

/// A compiled template: `user/{id}`, `arn:authzen:{type}:::{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// What a template is filled with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fill<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl Template {
    /// Compiles `text`, whose variables must be among `allowed`.
    fn compile(at: &str, text: &str, allowed: &[&str], problems: &mut Vec<String>) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                problems.push(format!("{at}: `{text}` opens a `{{` it does not close"));
                return Template { parts };
            };
            let name = &rest[open + 1..open + close];
            if !allowed.contains(&name) {
                let list = allowed
                    .iter()
                    .map(|a| format!("`{{{a}}}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                problems.push(format!(
                    "{at}: `{{{name}}}` is not a variable here: use {list}"
                ));
            }
            parts.push(match name {
                "id" => Part::Id,
                "type" => Part::Type,
                _ => Part::Name,
            });
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            problems.push(format!("{at}: `{text}` closes a `}}` it did not open"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Template { parts }
    }

    /// The template filled.
    pub(crate) fn fill(&self, with: Fill<'_>) -> String {
        let mut out = String::with_capacity(64);
        for p in &self.parts {
            out.push_str(match p {
                Part::Literal(s) => s,
                Part::Id => with.id,
                Part::Type => with.kind,
                Part::Name => with.name,
            });
        }
        out
    }

    /// What every text this template makes with `kind` as `{type}` begins
    /// with: its parts up to the first other variable.
    pub(crate) fn prefix(&self, kind: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Type => out.push_str(kind),
                Part::Id | Part::Name => break,
            }
        }
        out
    }

    /// The `{id}` (or `{name}`) that `text` was filled with, for a template
    /// filled with `kind` as `{type}` and one other variable: how search
    /// reads the bundle's names back (`user/alice` gives `alice`).
    pub(crate) fn read_back<'t>(&self, text: &'t str, kind: &str) -> Option<&'t str> {
        let mut rest = text;
        let mut found = None;
        let mut parts = self.parts.iter().peekable();
        while let Some(p) = parts.next() {
            match p {
                Part::Literal(s) => rest = rest.strip_prefix(s.as_str())?,
                Part::Type => rest = rest.strip_prefix(kind)?,
                Part::Id | Part::Name => {
                    if found.is_some() {
                        return None;
                    }
                    // Up to the next literal (the last one from the end).
                    let end = match parts.peek() {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        Some(_) => return None,
                        None => rest.len(),
                    };
                    found = Some(&rest[..end]);
                    rest = &rest[end..];
                }
            }
        }
        (rest.is_empty()).then_some(found).flatten()
    }
}

/// A compiled section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    subjects: BTreeMap<String, Template>,
    action: Template,
    resources: BTreeMap<String, Template>,
    default_resource: Template,
    subject_keys: String,
    resource_keys: String,
    action_keys: String,
    context_keys: String,
    renamed: BTreeMap<String, String>,
    /// Whether every answer carries its reasons.
    pub reasons: bool,
}

const DEFAULT_RESOURCE: &str = "arn:authzen:{type}:::{id}";

impl Mapping {
    /// Compiles the section, with every problem at once.
    pub fn compile(file: &FileMapping) -> Result<Self, MappingError> {
        let mut problems = Vec::new();
        let default_subjects: BTreeMap<String, String> = [
            ("user".to_owned(), "user/{id}".to_owned()),
            ("role".to_owned(), "role/{id}".to_owned()),
        ]
        .into();
        let subjects = file
            .subjects
            .as_ref()
            .unwrap_or(&default_subjects)
            .iter()
            .map(|(kind, text)| {
                let at = format!("authzen.subjects.{kind}");
                if !(text.starts_with("user/")
                    || text.starts_with("role/")
                    || text.starts_with("arn:"))
                {
                    problems.push(format!(
                        "{at}: `{text}` does not name a principal: write `user/{{id}}`, `role/{{id}}` or an ARN template"
                    ));
                }
                let t = Template::compile(&at, text, &["id", "type"], &mut problems);
                (kind.clone(), t)
            })
            .collect();
        let action = Template::compile(
            "authzen.action",
            file.action.as_deref().unwrap_or("{type}:{name}"),
            &["name", "type"],
            &mut problems,
        );
        let resource = |at: String, text: &str, problems: &mut Vec<String>| {
            if !text.starts_with("arn:") {
                problems.push(format!(
                    "{at}: `{text}` is not an ARN template: write `arn:PARTITION:SERVICE:REGION:ACCOUNT:...{{id}}`"
                ));
            }
            Template::compile(&at, text, &["id", "type"], problems)
        };
        let resources = file
            .resources
            .iter()
            .map(|(kind, text)| {
                let t = resource(format!("authzen.resources.{kind}"), text, &mut problems);
                (kind.clone(), t)
            })
            .collect();
        let default_resource = resource(
            "authzen.defaultResource".into(),
            file.default_resource.as_deref().unwrap_or(DEFAULT_RESOURCE),
            &mut problems,
        );
        let mut prefix = |name: &str, given: &Option<String>| {
            let p = given.clone().unwrap_or_else(|| format!("{name}:"));
            let at = format!("authzen.keys.{name}");
            check_key(&at, &p, true, &mut problems);
            p
        };
        let subject_keys = prefix("subject", &file.keys.subject);
        let resource_keys = prefix("resource", &file.keys.resource);
        let action_keys = prefix("action", &file.keys.action);
        let context_keys = prefix("context", &file.keys.context);
        for (field, key) in &file.context_keys {
            check_key(
                &format!("authzen.contextKeys.{field}"),
                key,
                false,
                &mut problems,
            );
        }
        if !problems.is_empty() {
            return Err(MappingError(problems));
        }
        Ok(Self {
            subjects,
            action,
            resources,
            default_resource,
            subject_keys,
            resource_keys,
            action_keys,
            context_keys,
            renamed: file.context_keys.clone(),
            reasons: file.reasons,
        })
    }

    /// The principal of a subject, or `None` for a type the section does
    /// not map.
    pub(crate) fn principal(&self, kind: &str, id: &str) -> Option<String> {
        let t = self.subjects.get(kind)?;
        Some(t.fill(Fill { id, kind, name: "" }))
    }

    /// The principal template of subjects of type `kind`.
    pub(crate) fn subject_template(&self, kind: &str) -> Option<&Template> {
        self.subjects.get(kind)
    }

    /// The action template.
    pub(crate) fn action_template(&self) -> &Template {
        &self.action
    }

    /// The IAM action of `name` on a resource of type `kind`.
    pub(crate) fn action(&self, name: &str, kind: &str) -> String {
        self.action.fill(Fill { id: "", kind, name })
    }

    /// The resource template of `kind`.
    pub(crate) fn resource_template(&self, kind: &str) -> &Template {
        self.resources.get(kind).unwrap_or(&self.default_resource)
    }

    /// The ARN of a resource.
    pub(crate) fn resource(&self, kind: &str, id: &str) -> String {
        self.resource_template(kind)
            .fill(Fill { id, kind, name: "" })
    }

    /// Adds the condition keys of an entity's `properties` (`subject`,
    /// `resource`, `action`) or of the request's `context` (the raw JSON
    /// object `object`) to `out`. `at` names the object in errors.
    pub(crate) fn keys(
        &self,
        of: KeysOf,
        object: &RawValue,
        at: &str,
        out: &mut Vec<(String, ContextValue)>,
    ) -> Result<(), String> {
        let prefix = match of {
            KeysOf::Subject => &self.subject_keys,
            KeysOf::Resource => &self.resource_keys,
            KeysOf::Action => &self.action_keys,
            KeysOf::Context => &self.context_keys,
        };
        let Ok(Members::<Member<'_>>(members)) = serde_json::from_str(object.get()) else {
            return Err(member_error(object, at));
        };
        for (name, value) in members {
            let key = match of {
                KeysOf::Context => self
                    .renamed
                    .get(name.as_ref())
                    .cloned()
                    .unwrap_or_else(|| format!("{prefix}{name}")),
                _ => format!("{prefix}{name}"),
            };
            match value {
                // The common case, without a JSON value in between.
                Member::Str(s) => out.push((key, ContextValue::Single(s.into_owned()))),
                Member::Other(value) => flatten(key, &value, &|| format!("{at}.{name}"), 0, out)?,
            }
        }
        Ok(())
    }
}

/// What is wrong in `object` (which the one-pass read refused), naming the
/// member: each member's value read on its own.
fn member_error(object: &RawValue, at: &str) -> String {
    let unplaced = super::wire::unplaced;
    let raw = serde_json::from_str::<Members<'_, &RawValue>>(object.get()).map(|m| m.0);
    match raw {
        Err(e) => format!("`{at}`: {}", unplaced(&e)),
        Ok(members) => members
            .iter()
            .find_map(|(name, raw)| {
                serde_json::from_str::<Json>(raw.get())
                    .err()
                    .map(|e| format!("`{at}.{name}`: {}", unplaced(&e)))
            })
            .unwrap_or_else(|| format!("`{at}` cannot be read")),
    }
}

/// An object's members in the order written, each value read as `V`: a
/// [`Member`] in the one pass, raw JSON for [`member_error`] (a key given
/// twice stays twice: the context then refuses it).
struct Members<'a, V>(Vec<(std::borrow::Cow<'a, str>, V)>);

/// A member's value: a string (borrowed when it has no escapes), or any
/// other JSON value.
enum Member<'a> {
    Str(std::borrow::Cow<'a, str>),
    Other(Json),
}

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Members<'de, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Members<'de, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Name(name)) = map.next_key()? {
                    members.push((name, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<'de> serde::Deserialize<'de> for Member<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Member::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Member::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Member::Other(Json::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Member::Other(Json::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Member::Other(Json::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Member::Other(Json::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Member::Other(Json::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Json::deserialize(SeqAccessDeserializer::new(seq)).map(Member::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                Json::deserialize(MapAccessDeserializer::new(map)).map(Member::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A member's name, borrowed when it has no escapes.
struct Name<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Whose keys [`Mapping::keys`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeysOf {
    Subject,
    Resource,
    Action,
    Context,
}

/// How deep a property's objects may nest (`a/b/c/...`).
const MAX_DEPTH: usize = 8;

/// One property as condition keys: a string, number or boolean is one
/// value (a number as JSON writes it, a boolean `true` or `false`), an
/// array of them a multivalued key, `null` no key at all, and an object
/// its members under `KEY/MEMBER`.
fn flatten(
    key: String,
    value: &Json,
    at: &dyn Fn() -> String,
    depth: usize,
    out: &mut Vec<(String, ContextValue)>,
) -> Result<(), String> {
    match value {
        Json::Null => {}
        Json::Array(items) => {
            let values = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    scalar(v).ok_or_else(|| format!(
                    "`{}[{i}]` is {}: a condition key's values are strings, numbers or booleans",
                    at(),
                    kind_of(v)
                ))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push((key, ContextValue::Multi(values)));
        }
        Json::Object(members) => {
            if depth >= MAX_DEPTH {
                return Err(format!(
                    "`{}` nests objects more than {MAX_DEPTH} deep: flatten it",
                    at()
                ));
            }
            for (name, v) in members {
                let inner = || format!("{}.{name}", at());
                flatten(format!("{key}/{name}"), v, &inner, depth + 1, out)?;
            }
        }
        v => {
            if let Some(s) = scalar(v) {
                out.push((key, ContextValue::Single(s)));
            }
        }
    }
    Ok(())
}

fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// "a string", "an object": what a JSON value is, for messages.
pub(crate) fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A condition key (or a prefix of keys) must not be a global `aws:` key
/// the server owns, nor empty.
fn check_key(at: &str, key: &str, prefix: bool, problems: &mut Vec<String>) {
    if key.is_empty() {
        problems.push(format!("{at}: empty: write a key such as `app:Name`"));
    } else if prefix && key.to_ascii_lowercase().starts_with("aws:") {
        problems.push(format!(
            "{at}: `{key}`: properties cannot become `aws:` keys (the bundle owns the principal's, and the caller's would pass for them)"
        ));
    } else if !prefix && !key.contains(':') {
        problems.push(format!(
            "{at}: `{key}` is not a condition key: write `service:Name` (e.g. `aws:SourceIp`)"
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    impl Template {
        fn parse(text: &str) -> Template {
            Template::compile("", text, &["id", "type", "name"], &mut Vec::new())
        }
    }

    #[test]
    fn the_defaults_map_users_roles_actions_and_resources() {
        let m = Mapping::compile(&FileMapping::default()).unwrap();
        assert_eq!(m.principal("user", "alice").unwrap(), "user/alice");
        assert_eq!(m.principal("role", "deployer").unwrap(), "role/deployer");
        assert_eq!(m.principal("spaceship", "x"), None);
        assert_eq!(m.action("read", "record"), "record:read");
        assert_eq!(
            m.resource("record", "record-1"),
            "arn:authzen:record:::record-1"
        );
        assert!(!m.reasons);
    }

    #[test]
    fn templates_are_checked_with_every_problem_at_once() {
        let file = FileMapping {
            subjects: Some([("user".to_owned(), "people/{id}".to_owned())].into()),
            action: Some("{verb}".into()),
            resources: [("doc".to_owned(), "docs/{id".to_owned())].into(),
            keys: FileKeys {
                subject: Some("aws:".into()),
                ..FileKeys::default()
            },
            context_keys: [("ip".to_owned(), "SourceIp".to_owned())].into(),
            ..FileMapping::default()
        };
        let e = Mapping::compile(&file).unwrap_err().0;
        let all = e.join("\n");
        assert!(
            all.contains("authzen.subjects.user: `people/{id}` does not name a principal"),
            "{all}"
        );
        assert!(
            all.contains("authzen.action: `{verb}` is not a variable here: use `{name}`, `{type}`"),
            "{all}"
        );
        assert!(
            all.contains("authzen.resources.doc: `docs/{id` is not an ARN template"),
            "{all}"
        );
        assert!(
            all.contains("authzen.resources.doc: `docs/{id` opens a `{` it does not close"),
            "{all}"
        );
        assert!(
            all.contains("authzen.keys.subject: `aws:`: properties cannot become `aws:` keys"),
            "{all}"
        );
        assert!(
            all.contains("authzen.contextKeys.ip: `SourceIp` is not a condition key"),
            "{all}"
        );
        assert_eq!(e.len(), 6, "{all}");
    }

    #[test]
    fn properties_become_condition_keys() {
        let m = Mapping::compile(&FileMapping {
            context_keys: [("ip".to_owned(), "aws:SourceIp".to_owned())].into(),
            ..FileMapping::default()
        })
        .unwrap();
        let json: &RawValue = serde_json::from_str(
            r#"{"role": "admin", "level": 3, "mfa": true, "groups": ["a", "b", 7],
                "address": {"city": "Lyon"}, "gone": null}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        m.keys(KeysOf::Subject, json, "subject.properties", &mut out)
            .unwrap();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let single = |s: &str| ContextValue::Single(s.into());
        assert_eq!(
            out,
            vec![
                ("subject:address/city".to_owned(), single("Lyon")),
                (
                    "subject:groups".to_owned(),
                    ContextValue::Multi(vec!["a".into(), "b".into(), "7".into()])
                ),
                ("subject:level".to_owned(), single("3")),
                ("subject:mfa".to_owned(), single("true")),
                ("subject:role".to_owned(), single("admin")),
            ]
        );
        let ctx: &RawValue =
            serde_json::from_str(r#"{"ip": "10.0.0.1", "time": "n\u006fw"}"#).unwrap();
        let mut out = Vec::new();
        m.keys(KeysOf::Context, ctx, "context", &mut out).unwrap();
        assert_eq!(out[0], ("aws:SourceIp".to_owned(), single("10.0.0.1")));
        assert_eq!(out[1], ("context:time".to_owned(), single("now")));
        let bad: &RawValue = serde_json::from_str(r#"{"tags": [{"k": 1}]}"#).unwrap();
        let e = m
            .keys(
                KeysOf::Resource,
                bad,
                "resource.properties",
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(
            e,
            "`resource.properties.tags[0]` is an object: a condition key's values are strings, numbers or booleans"
        );
    }

    #[test]
    fn names_are_read_back_from_filled_templates() {
        let t = Template::parse("user/{id}");
        assert_eq!(t.read_back("user/alice", "user"), Some("alice"));
        assert_eq!(t.read_back("role/alice", "user"), None);
        let arn = Template::parse("arn:authzen:{type}:::{id}");
        assert_eq!(
            arn.read_back("arn:authzen:record:::record-1", "record"),
            Some("record-1")
        );
        assert_eq!(arn.read_back("arn:authzen:doc:::record-1", "record"), None);
        let action = Template::parse("{type}:{name}");
        assert_eq!(action.read_back("record:read", "record"), Some("read"));
        assert_eq!(arn.prefix("record"), "arn:authzen:record:::");
        assert_eq!(action.prefix("record"), "record:");
        assert_eq!(t.prefix("user"), "user/");
        let mid = Template::parse("arn:x:s:::{id}/meta");
        assert_eq!(mid.read_back("arn:x:s:::42/meta", ""), Some("42"));
        assert_eq!(mid.read_back("arn:x:s:::42/other", ""), None);
    }
}
