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

/// Reads a request body: in one pass when it is well formed (nearly all
/// of them), else by the careful reader below, whose errors name the
/// field.
pub(crate) fn request(text: &str) -> Result<Request<'_>, BadRequest> {
    match quick::request(text) {
        Some(r) => Ok(r),
        None => careful(text),
    }
}

/// Reads a request body part by part, naming the field of any error.
fn careful(text: &str) -> Result<Request<'_>, BadRequest> {
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
    serde_json::from_str(raw.get()).map_err(|e| bad(&format!("`{at}`: {}", unplaced(&e))))
}

/// serde's message without its position, which counts from the start of
/// the value read, not of the body: the field's name says where.
pub(crate) fn unplaced(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.rsplit_once(" at line ")
        .map_or(text.as_str(), |(what, _)| what)
        .to_owned()
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

/// The one-pass reader: serde visitors that borrow the body's strings and
/// accept only what [`careful`] accepts; anything else (an error, an odd
/// shape) gives `None`, and the careful reader says what is wrong.
mod quick {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::value::RawValue;

    use super::{Action, Entity, Request, Tuple};

    pub(super) fn request(text: &str) -> Option<Request<'_>> {
        let body: Top<'_> = serde_json::from_str(text).ok()?;
        let evaluations = match body.evaluations {
            None => None,
            Some(items) => {
                let read: Vec<_> = items.into_iter().map(|i| Ok(i.0)).collect();
                (!read.is_empty()).then_some(read)
            }
        };
        Some(Request {
            top: body.tuple,
            evaluations,
            options: super::options(body.options).ok()?,
            page: super::page(body.page).ok()?,
        })
    }

    trait Names {
        const NAMES: &'static [&'static str];
    }

    struct TopNames;
    impl Names for TopNames {
        const NAMES: &'static [&'static str] = &[
            "subject",
            "action",
            "resource",
            "context",
            "evaluations",
            "options",
            "page",
        ];
    }
    struct EntityNames;
    impl Names for EntityNames {
        const NAMES: &'static [&'static str] = &["type", "id", "properties"];
    }
    struct ActionNames;
    impl Names for ActionNames {
        const NAMES: &'static [&'static str] = &["name", "properties"];
    }

    /// The next key of `map`, among `K::NAMES`.
    fn key<'de, K: Names, A: MapAccess<'de>>(
        map: &mut A,
    ) -> Result<Option<Option<usize>>, A::Error> {
        struct Seed<K>(std::marker::PhantomData<K>);
        impl<'de, K: Names> de::DeserializeSeed<'de> for Seed<K> {
            type Value = Option<usize>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                struct V<K>(std::marker::PhantomData<K>);
                impl<K: Names> Visitor<'_> for V<K> {
                    type Value = Option<usize>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a key")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                        Ok(K::NAMES.iter().position(|n| *n == v))
                    }
                }
                d.deserialize_identifier(V::<K>(std::marker::PhantomData))
            }
        }
        map.next_key_seed(Seed::<K>(std::marker::PhantomData))
    }

    /// A string, borrowed when it has no escapes, never empty.
    struct Str<'a>(Cow<'a, str>);

    impl<'de> de::Deserialize<'de> for Str<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Str<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                    if v.is_empty() {
                        return Err(E::custom("empty"));
                    }
                    Ok(Str(Cow::Borrowed(v)))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    if v.is_empty() {
                        return Err(E::custom("empty"));
                    }
                    Ok(Str(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// An object's raw JSON, `None` for `null` (anything else is an
    /// error).
    fn object<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<&'de RawValue>, A::Error> {
        match map.next_value::<Option<&'de RawValue>>()? {
            Some(raw) if !raw.get().starts_with('{') => Err(de::Error::custom("not an object")),
            raw => Ok(raw),
        }
    }

    /// Reads the members of `map`: each of `K::NAMES` by `read` (with its
    /// place in the names), any other skipped. A field given twice is an
    /// error, as serde's derive says.
    fn fields<'de, K: Names, A: MapAccess<'de>>(
        map: &mut A,
        mut read: impl FnMut(usize, &mut A) -> Result<(), A::Error>,
    ) -> Result<(), A::Error> {
        let mut seen = 0u32;
        while let Some(k) = key::<K, _>(map)? {
            let Some(i) = k else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if seen & (1 << i) != 0 {
                return Err(de::Error::custom("duplicate field"));
            }
            seen |= 1 << i;
            read(i, map)?;
        }
        Ok(())
    }

    struct QEntity<'a>(Entity<'a>);

    impl<'de> de::Deserialize<'de> for QEntity<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = QEntity<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let (mut kind, mut id, mut properties) = (None, None, None);
                    fields::<EntityNames, _>(&mut map, |i, map| {
                        match i {
                            0 => kind = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
                            1 => id = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
                            _ => properties = object(map)?,
                        }
                        Ok(())
                    })?;
                    Ok(QEntity(Entity {
                        kind,
                        id,
                        properties,
                    }))
                }
            }
            d.deserialize_map(V)
        }
    }

    struct QAction<'a>(Action<'a>);

    impl<'de> de::Deserialize<'de> for QAction<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = QAction<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let (mut name, mut properties) = (None, None);
                    fields::<ActionNames, _>(&mut map, |i, map| {
                        match i {
                            0 => name = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
                            _ => properties = object(map)?,
                        }
                        Ok(())
                    })?;
                    Ok(QAction(Action { name, properties }))
                }
            }
            d.deserialize_map(V)
        }
    }

    /// The top level, or an item of `evaluations` (which has no
    /// `evaluations`, `options` or `page` of its own: those are ignored
    /// there, as unknown fields are).
    struct Top<'a> {
        tuple: Tuple<'a>,
        evaluations: Option<Vec<Item<'a>>>,
        options: Option<&'a RawValue>,
        page: Option<&'a RawValue>,
    }

    struct Item<'a>(Tuple<'a>);

    impl<'de> de::Deserialize<'de> for Item<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Top::deserialize(d).map(|t| Item(t.tuple))
        }
    }

    impl<'de> de::Deserialize<'de> for Top<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Top<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut top = Top {
                        tuple: Tuple::default(),
                        evaluations: None,
                        options: None,
                        page: None,
                    };
                    fields::<TopNames, _>(&mut map, |i, map| {
                        match i {
                            0 => {
                                top.tuple.subject =
                                    map.next_value::<Option<QEntity<'de>>>()?.map(|e| e.0)
                            }
                            1 => {
                                top.tuple.action =
                                    map.next_value::<Option<QAction<'de>>>()?.map(|a| a.0)
                            }
                            2 => {
                                top.tuple.resource =
                                    map.next_value::<Option<QEntity<'de>>>()?.map(|e| e.0)
                            }
                            3 => top.tuple.context = object(map)?,
                            4 => top.evaluations = map.next_value()?,
                            5 => top.options = map.next_value()?,
                            _ => top.page = map.next_value()?,
                        }
                        Ok(())
                    })?;
                    Ok(top)
                }
            }
            d.deserialize_map(V)
        }
    }
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
    fn the_one_pass_reader_agrees_with_the_careful_one_or_defers_to_it() {
        let bodies = [
            r#"{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}"#,
            r#"{"subject": {"type": "user", "id": "al\u0069ce", "properties": {"a": [1, {"b": null}]}}, "action": {"name": "read", "properties": {}}, "resource": {"type": "r", "id": "1"}, "context": {"x": 1}, "foo": [1, 2]}"#,
            r#"{"subject": null, "action": {"name": null}, "context": null, "resource": {"type": "r", "properties": null}}"#,
            r#"{"evaluations": [{"resource": {"id": "r1"}}, {}], "options": {"evaluations_semantic": "deny_on_first_deny"}, "page": {"token": "3@x", "limit": 2}}"#,
            r#"{"evaluations": []}"#,
            r#"{"evaluations": [1, {}]}"#,
            r#"{"subject": ["user", "alice"]}"#,
            r#"{"subject": {"type": "a", "type": "b"}}"#,
            r#"{"subject": {"type": ""}}"#,
            r#"{"action": {"name": 7}}"#,
            r#"{"context": []}"#,
            r#"{"subject": {}, "subject": {}}"#,
            r#"{"options": {"iamd_reasons": "yes"}}"#,
            "[]",
            "",
            "{",
        ];
        // What the quick reader reads, it reads as the careful one does;
        // what it refuses (an error, an odd shape such as a batch with a
        // bad item), the careful one reads.
        for body in bodies {
            if let Some(q) = quick::request(body) {
                let careful = format!("{:?}", careful(body));
                assert_eq!(format!("{:?}", Ok::<_, BadRequest>(q)), careful, "{body}");
            }
        }
        for good in &bodies[..5] {
            assert!(quick::request(good).is_some(), "the quick way: {good}");
        }
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
