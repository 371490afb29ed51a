//! AuthZEN's JSON, read with the field named in every error.
//!
//! The body is read once, with every part of interest kept as raw JSON
//! (`RawValue`, borrowed from the body) and read on its own, so that an
//! error names the field it is about (`` `action.name` must be a string,
//! not a number ``) and strings without escapes are borrowed, not copied.
//! Fields AuthZEN does not define are ignored.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A request that cannot be answered, and why (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

/// The parts of a request body, as raw JSON.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Body<'a> {
    #[serde(borrow, default)]
    subject: Option<&'a RawValue>,
    #[serde(borrow, default)]
    action: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    evaluations: Option<&'a RawValue>,
    #[serde(borrow, default)]
    options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    page: Option<&'a RawValue>,
}

/// An entity (subject or resource) as written: each part optional until
/// the request says what it needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entity<'a> {
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) id: Option<Cow<'a, str>>,
    pub(crate) properties: Option<&'a RawValue>,
}

/// An action as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Action<'a> {
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) properties: Option<&'a RawValue>,
}

/// A request's subject, action, resource and context, each possibly
/// absent (a batch's defaults, one of its items).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tuple<'a> {
    pub(crate) subject: Option<Entity<'a>>,
    pub(crate) action: Option<Action<'a>>,
    pub(crate) resource: Option<Entity<'a>>,
    pub(crate) context: Option<&'a RawValue>,
}

impl<'a> Tuple<'a> {
    /// This item over `defaults`: an entity the item gives replaces the
    /// default one, but for the identifiers (`type`, `id`, `name`) it
    /// leaves out, which come from the default; the item's `context`
    /// replaces the default's.
    pub(crate) fn over(self, defaults: &Tuple<'a>) -> Tuple<'a> {
        let entity = |mine: Option<Entity<'a>>, theirs: &Option<Entity<'a>>| match (mine, theirs) {
            (Some(m), Some(t)) => Some(Entity {
                kind: m.kind.or_else(|| t.kind.clone()),
                id: m.id.or_else(|| t.id.clone()),
                properties: m.properties,
            }),
            (m, t) => m.or_else(|| t.clone()),
        };
        let action = match (self.action, &defaults.action) {
            (Some(m), Some(t)) => Some(Action {
                name: m.name.or_else(|| t.name.clone()),
                properties: m.properties,
            }),
            (m, t) => m.or_else(|| t.clone()),
        };
        Tuple {
            subject: entity(self.subject, &defaults.subject),
            action,
            resource: entity(self.resource, &defaults.resource),
            context: self.context.or(defaults.context),
        }
    }
}

/// How a batch is answered (`options.evaluations_semantic`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Semantic {
    /// Every item, in order.
    #[default]
    ExecuteAll,
    /// Up to the first deny (or error), included.
    DenyOnFirstDeny,
    /// Up to the first permit, included.
    PermitOnFirstPermit,
}

/// `options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) semantic: Semantic,
    /// `iamd_reasons: true`: answer with the reasons in `context`.
    pub(crate) reasons: bool,
}

/// `page`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Page<'a> {
    pub(crate) token: Option<Cow<'a, str>>,
    pub(crate) limit: Option<u64>,
}

/// A request body, read.
#[derive(Debug, Default)]
pub(crate) struct Request<'a> {
    /// The top level (a batch's defaults).
    pub(crate) top: Tuple<'a>,
    /// `evaluations`, when present and not empty: each item read, or why
    /// it could not be.
    pub(crate) evaluations: Option<Vec<Result<Tuple<'a>, BadRequest>>>,
    pub(crate) options: Options,
    pub(crate) page: Page<'a>,
}

/// Reads a request body.
pub(crate) fn request(text: &str) -> Result<Request<'_>, BadRequest> {
    if text.trim().is_empty() {
        return Err(bad("the body is empty: send a JSON object"));
    }
    let text = text.trim();
    if !text.starts_with('{') {
        // Not an object: malformed, or JSON of another kind.
        return Err(match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) => bad(&format!(
                "the body must be a JSON object, not {}",
                kind(raw)
            )),
            Err(e) => bad(&format!("the body is not JSON: {e}")),
        });
    }
    let body: Body<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => bad(&format!("the body: {e}")),
        _ => bad(&format!("the body is not JSON: {e}")),
    })?;
    let top = tuple(&body, None)?;
    let evaluations = match body.evaluations {
        None => None,
        Some(raw) => {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| {
                bad(&format!(
                    "`evaluations` must be an array, not {}",
                    kind(raw)
                ))
            })?;
            let read: Vec<_> = items
                .into_iter()
                .enumerate()
                .map(|(i, raw)| {
                    let item: Body<'_> = fields(raw, Place::item(i))?;
                    tuple(&item, Some(i))
                })
                .collect();
            (!read.is_empty()).then_some(read)
        }
    };
    Ok(Request {
        top,
        evaluations,
        options: options(body.options)?,
        page: page(body.page)?,
    })
}

/// Where a value is in the body, written out only in an error: a field, a
/// field of it, in the top level or in an item of `evaluations`.
#[derive(Debug, Clone, Copy)]
struct Place {
    item: Option<usize>,
    field: &'static str,
    sub: &'static str,
}

impl Place {
    fn top(field: &'static str) -> Self {
        Self {
            item: None,
            field,
            sub: "",
        }
    }

    fn item(i: usize) -> Self {
        Self {
            item: Some(i),
            field: "",
            sub: "",
        }
    }

    fn sub(self, sub: &'static str) -> Self {
        Self { sub, ..self }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(i) = self.item {
            write!(f, "evaluations[{i}]")?;
            if !self.field.is_empty() {
                f.write_str(".")?;
            }
        }
        f.write_str(self.field)?;
        if !self.sub.is_empty() {
            write!(f, ".{}", self.sub)?;
        }
        Ok(())
    }
}

fn tuple<'a>(body: &Body<'a>, item: Option<usize>) -> Result<Tuple<'a>, BadRequest> {
    let at = |field| Place {
        item,
        field,
        sub: "",
    };
    Ok(Tuple {
        subject: body.subject.map(|r| entity(r, at("subject"))).transpose()?,
        action: body.action.map(|r| action(r, at("action"))).transpose()?,
        resource: body
            .resource
            .map(|r| entity(r, at("resource")))
            .transpose()?,
        context: body.context.map(|r| object(r, at("context"))).transpose()?,
    })
}

/// The parts of an entity or action, as raw JSON.
#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
}

fn parts<'a>(raw: &'a RawValue, at: Place) -> Result<Parts<'a>, BadRequest> {
    fields(raw, at)
}

/// The fields of the object `raw` (named `at`): a value of another kind is
/// refused before serde would read an array as a struct.
fn fields<'a, T: Deserialize<'a>>(raw: &'a RawValue, at: Place) -> Result<T, BadRequest> {
    if !raw.get().starts_with('{') {
        return Err(bad(&format!("`{at}` must be an object, not {}", kind(raw))));
    }
    serde_json::from_str(raw.get()).map_err(|e| {
        // serde's position counts from the start of this value, not of the
        // body: the field's name says where.
        let text = e.to_string();
        let what = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(what, _)| what);
        bad(&format!("`{at}`: {what}"))
    })
}

fn entity<'a>(raw: &'a RawValue, at: Place) -> Result<Entity<'a>, BadRequest> {
    let p = parts(raw, at)?;
    Ok(Entity {
        kind: p.kind.map(|r| string(r, at.sub("type"))).transpose()?,
        id: p.id.map(|r| string(r, at.sub("id"))).transpose()?,
        properties: p
            .properties
            .map(|r| object(r, at.sub("properties")))
            .transpose()?,
    })
}

fn action<'a>(raw: &'a RawValue, at: Place) -> Result<Action<'a>, BadRequest> {
    let p = parts(raw, at)?;
    Ok(Action {
        name: p.name.map(|r| string(r, at.sub("name"))).transpose()?,
        properties: p
            .properties
            .map(|r| object(r, at.sub("properties")))
            .transpose()?,
    })
}

/// A JSON string, borrowed when it has no escapes; `null` counts as absent
/// only where the caller says so (here it is a wrong type).
fn string<'a>(raw: &'a RawValue, at: Place) -> Result<Cow<'a, str>, BadRequest> {
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(bad(&format!("`{at}` must be a string, not {}", kind(raw))));
    }
    let s = match text.get(1..text.len() - 1) {
        Some(inner) if !inner.contains('\\') => Cow::Borrowed(inner),
        _ => Cow::Owned(
            serde_json::from_str::<String>(text)
                .map_err(|e| bad(&format!("`{at}` is not a string: {e}")))?,
        ),
    };
    if s.is_empty() {
        return Err(bad(&format!("`{at}` is empty")));
    }
    Ok(s)
}

fn object(raw: &RawValue, at: Place) -> Result<&RawValue, BadRequest> {
    if raw.get().starts_with('{') {
        Ok(raw)
    } else {
        Err(bad(&format!("`{at}` must be an object, not {}", kind(raw))))
    }
}

#[derive(Deserialize)]
struct RawOptions<'a> {
    #[serde(borrow, default)]
    evaluations_semantic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    iamd_reasons: Option<&'a RawValue>,
}

fn options(raw: Option<&RawValue>) -> Result<Options, BadRequest> {
    let Some(raw) = raw else {
        return Ok(Options::default());
    };
    let o: RawOptions<'_> = fields(raw, Place::top("options"))?;
    let semantic = match o.evaluations_semantic {
        None => Semantic::ExecuteAll,
        Some(r) => match string(r, Place::top("options").sub("evaluations_semantic"))?.as_ref() {
            "execute_all" => Semantic::ExecuteAll,
            "deny_on_first_deny" => Semantic::DenyOnFirstDeny,
            "permit_on_first_permit" => Semantic::PermitOnFirstPermit,
            other => {
                return Err(bad(&format!(
                    "`options.evaluations_semantic` `{other}` is not one of `execute_all`, `deny_on_first_deny`, `permit_on_first_permit`"
                )));
            }
        },
    };
    let reasons = match o.iamd_reasons.map(RawValue::get) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(bad(&format!(
                "`options.iamd_reasons` must be a boolean, not {}",
                o.iamd_reasons.map_or("null", kind)
            )));
        }
    };
    Ok(Options { semantic, reasons })
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    limit: Option<&'a RawValue>,
}

fn page(raw: Option<&RawValue>) -> Result<Page<'_>, BadRequest> {
    let Some(raw) = raw else {
        return Ok(Page::default());
    };
    let p: RawPage<'_> = fields(raw, Place::top("page"))?;
    let token = match p.token {
        // An empty token is the first page.
        Some(r) if r.get() == "\"\"" => None,
        Some(r) => Some(string(r, Place::top("page").sub("token"))?),
        None => None,
    };
    let limit = p
        .limit
        .map(|r| {
            serde_json::from_str::<u64>(r.get()).map_err(|_| {
                bad(&format!(
                    "`page.limit` must be a whole number, not {}",
                    match kind(r) {
                        "a number" => "a fraction or a negative number",
                        k => k,
                    }
                ))
            })
        })
        .transpose()?;
    Ok(Page { token, limit })
}

/// "a string", "an object": what a raw JSON value is, for messages.
pub(crate) fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "a number",
        None => "nothing",
    }
}

fn bad(message: &str) -> BadRequest {
    BadRequest(message.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    fn error(text: &str) -> String {
        request(text).unwrap_err().0
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error(""), "the body is empty: send a JSON object");
        assert_eq!(error("  \n"), "the body is empty: send a JSON object");
        assert!(
            error("{\"subject\":").starts_with("the body is not JSON: EOF"),
            "{}",
            error("{\"subject\":")
        );
        assert_eq!(error("[1]"), "the body must be a JSON object, not an array");
        assert_eq!(
            error("\"x\""),
            "the body must be a JSON object, not a string"
        );
        assert_eq!(
            error(r#"{"subject": "alice"}"#),
            "`subject` must be an object, not a string"
        );
        assert_eq!(
            error(r#"{"action": {"name": 123}}"#),
            "`action.name` must be a string, not a number"
        );
        assert_eq!(
            error(r#"{"subject": {"type": "user", "id": ""}}"#),
            "`subject.id` is empty"
        );
        assert_eq!(
            error(r#"{"resource": {"type": "r", "properties": [1]}}"#),
            "`resource.properties` must be an object, not an array"
        );
        assert_eq!(
            error(r#"{"subject": ["user", "alice"]}"#),
            "`subject` must be an object, not an array"
        );
        assert_eq!(
            error(r#"{"subject": {"type": "a", "type": "b"}}"#),
            "`subject`: duplicate field `type`"
        );
        assert_eq!(
            error(r#"{"context": 3}"#),
            "`context` must be an object, not a number"
        );
        assert_eq!(
            error(r#"{"evaluations": {}}"#),
            "`evaluations` must be an array, not an object"
        );
        assert_eq!(
            error(r#"{"options": {"evaluations_semantic": "some"}}"#),
            "`options.evaluations_semantic` `some` is not one of `execute_all`, `deny_on_first_deny`, `permit_on_first_permit`"
        );
        assert_eq!(
            error(r#"{"options": {"iamd_reasons": "yes"}}"#),
            "`options.iamd_reasons` must be a boolean, not a string"
        );
        assert_eq!(
            error(r#"{"page": {"limit": -1}}"#),
            "`page.limit` must be a whole number, not a fraction or a negative number"
        );
    }

    #[test]
    fn strings_are_borrowed_unless_escaped_and_unknown_fields_ignored() {
        let r = request(
            r#"{"subject": {"type": "user", "id": "al\u0069ce", "x": 1}, "action": {"name": "read"}, "foo": "bar", "futureField": {"nested": true}}"#,
        )
        .unwrap();
        let s = r.top.subject.unwrap();
        assert!(matches!(s.kind, Some(Cow::Borrowed("user"))));
        assert_eq!(s.id.as_deref(), Some("alice"));
        assert!(matches!(s.id, Some(Cow::Owned(_))));
        assert_eq!(r.top.action.unwrap().name.as_deref(), Some("read"));
        assert!(r.evaluations.is_none());
    }

    #[test]
    fn items_over_defaults_replace_entities_but_keep_missing_identifiers() {
        let r = request(
            r#"{"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"},
                "resource": {"type": "record", "properties": {"status": "x"}},
                "context": {"time": "t0"},
                "evaluations": [
                  {"resource": {"id": "record-1", "properties": {"status": "active"}}},
                  {"resource": {"type": "doc", "id": "d"}, "context": {"source": "item"}},
                  {},
                  "nope"
                ]}"#,
        )
        .unwrap();
        let items = r.evaluations.unwrap();
        assert_eq!(items.len(), 4);
        let first = items[0].clone().unwrap().over(&r.top);
        let res = first.resource.unwrap();
        assert_eq!(res.kind.as_deref(), Some("record"));
        assert_eq!(res.id.as_deref(), Some("record-1"));
        assert_eq!(res.properties.unwrap().get(), r#"{"status": "active"}"#);
        assert_eq!(first.context.unwrap().get(), r#"{"time": "t0"}"#);
        assert_eq!(first.subject.unwrap().id.as_deref(), Some("alice"));
        let second = items[1].clone().unwrap().over(&r.top);
        assert_eq!(second.resource.unwrap().kind.as_deref(), Some("doc"));
        assert_eq!(second.context.unwrap().get(), r#"{"source": "item"}"#);
        let third = items[2].clone().unwrap().over(&r.top);
        assert_eq!(format!("{third:?}"), format!("{:?}", r.top));
        assert_eq!(
            items[3].clone().unwrap_err().0,
            "`evaluations[3]` must be an object, not a string"
        );
        // An empty array is no batch.
        assert!(
            request(r#"{"evaluations": []}"#)
                .unwrap()
                .evaluations
                .is_none()
        );
    }

    #[test]
    fn options_and_pages() {
        let r = request(
            r#"{"options": {"evaluations_semantic": "deny_on_first_deny", "iamd_reasons": true, "other": 1},
                "page": {"token": "abc", "limit": 10}}"#,
        )
        .unwrap();
        assert_eq!(r.options.semantic, Semantic::DenyOnFirstDeny);
        assert!(r.options.reasons);
        assert_eq!(r.page.token.as_deref(), Some("abc"));
        assert_eq!(r.page.limit, Some(10));
        let r = request(r#"{"page": {"token": ""}}"#).unwrap();
        assert_eq!(r.page.token, None);
    }
}
