//! The request context: condition keys and their values.
//!
//! Key names are case-insensitive (`aws:SourceIP` is `aws:sourceip`), so keys
//! are stored folded to lowercase and looked up with keys that the compiler
//! folded the same way. A key is absent, single-valued, or multivalued (a
//! list, possibly empty): the three differ for condition operators.

use std::borrow::Cow;
use std::fmt;

/// The values of one context key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// A single-valued key.
    Single(String),
    /// A multivalued key (`aws:TagKeys`, ...), possibly empty.
    Multi(Vec<String>),
}

/// A borrowed view of a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values<'a> {
    /// A single-valued key.
    Single(&'a str),
    /// A multivalued key.
    Multi(&'a [String]),
}

/// Two keys that differ only in case were given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "context key `{second}` is the same key as `{first}` (key names are case-insensitive): give it once"
)]
pub struct DuplicateKeyError {
    /// The key given first.
    pub first: String,
    /// The key given again.
    pub second: String,
}

/// Condition keys and their values for one request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Context {
    // INVARIANT: sorted by folded key, keys unique.
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// Borrowed for the keys the server adds (no allocation per request).
    folded: Cow<'static, str>,
    name: Cow<'static, str>,
    value: ContextValue,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (&e.name, &e.value)))
            .finish()
    }
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key. A key that is already present (in any case) is an error.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: ContextValue,
    ) -> Result<(), DuplicateKeyError> {
        let name: String = key.into();
        let folded = fold(&name);
        match self.entries.binary_search_by(|e| (*e.folded).cmp(&folded)) {
            Ok(i) => Err(DuplicateKeyError {
                first: self
                    .entries
                    .get(i)
                    .map(|e| e.name.to_string())
                    .unwrap_or_default(),
                second: name,
            }),
            Err(i) => {
                self.entries.insert(
                    i,
                    Entry {
                        folded: folded.into(),
                        name: name.into(),
                        value,
                    },
                );
                Ok(())
            }
        }
    }

    /// Adds a key unless it is present already; returns whether it was added.
    pub fn insert_if_absent(&mut self, key: &str, value: ContextValue) -> bool {
        self.insert(key, value).is_ok()
    }

    /// Sets a key, replacing any value it had (in any case).
    pub fn set(&mut self, key: &str, value: ContextValue) {
        let folded = fold(key);
        match self.entries.binary_search_by(|e| (*e.folded).cmp(&folded)) {
            Ok(i) => {
                if let Some(e) = self.entries.get_mut(i) {
                    e.value = value;
                    e.name = Cow::Owned(key.to_owned());
                }
            }
            Err(i) => self.entries.insert(
                i,
                Entry {
                    folded: folded.into(),
                    name: Cow::Owned(key.to_owned()),
                    value,
                },
            ),
        }
    }

    /// Puts a key whose name and folded name are known in advance (the
    /// facts the server adds), replacing a present value with `overwrite`.
    fn put_static(
        &mut self,
        (name, folded): (&'static str, &'static str),
        value: ContextValue,
        overwrite: bool,
    ) {
        match self.entries.binary_search_by(|e| (*e.folded).cmp(folded)) {
            Ok(i) => {
                if overwrite && let Some(e) = self.entries.get_mut(i) {
                    e.value = value;
                    e.name = Cow::Borrowed(name);
                }
            }
            Err(i) => self.entries.insert(
                i,
                Entry {
                    folded: Cow::Borrowed(folded),
                    name: Cow::Borrowed(name),
                    value,
                },
            ),
        }
    }

    /// The values of a key, looked up by its lowercase name.
    pub fn get_folded(&self, folded_key: &str) -> Option<Values<'_>> {
        let i = self
            .entries
            .binary_search_by(|e| (*e.folded).cmp(folded_key))
            .ok()?;
        self.entries.get(i).map(|e| match &e.value {
            ContextValue::Single(s) => Values::Single(s),
            ContextValue::Multi(v) => Values::Multi(v),
        })
    }

    /// The values of a key, in any case.
    pub fn get(&self, key: &str) -> Option<Values<'_>> {
        self.get_folded(&fold(key))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys as given and their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.entries.iter().map(|e| (&*e.name, &e.value))
    }
}

/// The global condition keys that follow from the principal and the clock:
/// `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalType`,
/// `aws:username` (IAM users only), `aws:userid` (the root user's account id),
/// `aws:CurrentTime` and `aws:EpochTime`. With `overwrite`, they replace what
/// the caller gave (a caller cannot claim principal facts); without, the
/// caller's values stay (what-if simulation).
pub fn add_request_facts(
    ctx: &mut Context,
    principal: &crate::arn::Principal,
    now: jiff::Timestamp,
    overwrite: bool,
) {
    use crate::arn::PrincipalKind;
    let mut put = |key: (&'static str, &'static str), value: String| {
        ctx.put_static(key, ContextValue::Single(value), overwrite);
    };
    let kind = principal.kind();
    put(
        ("aws:PrincipalType", "aws:principaltype"),
        kind.principal_type().to_owned(),
    );
    let account = ("aws:PrincipalAccount", "aws:principalaccount");
    match kind {
        PrincipalKind::Anonymous => put(account, "anonymous".to_owned()),
        PrincipalKind::Service => {}
        // A web identity: its provider and its own ID, for trust policy
        // conditions (docs/semantics.md).
        PrincipalKind::WebIdentity => {
            put(
                ("aws:FederatedProvider", "aws:federatedprovider"),
                principal.provider().unwrap_or_default().to_owned(),
            );
            put(("spiffe:sub", "spiffe:sub"), principal.arn().to_owned());
        }
        _ => {
            put(
                ("aws:PrincipalArn", "aws:principalarn"),
                principal.principal_arn().to_owned(),
            );
            put(account, principal.account().to_owned());
        }
    }
    match kind {
        PrincipalKind::User => put(
            ("aws:username", "aws:username"),
            principal.name().to_owned(),
        ),
        PrincipalKind::Root => put(("aws:userid", "aws:userid"), principal.account().to_owned()),
        _ => {}
    }
    let (current, epoch) = clock_texts(now);
    put(("aws:CurrentTime", "aws:currenttime"), current);
    put(("aws:EpochTime", "aws:epochtime"), epoch);
}

/// `aws:CurrentTime` and `aws:EpochTime` of `now`, formatted once a second
/// per thread (formatting was a twentieth of a loaded daemon's CPU).
fn clock_texts(now: jiff::Timestamp) -> (String, String) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(i64, String, String)>> = const { RefCell::new(None) };
    }
    let second = now.as_second();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, current, epoch)) if *s == second => (current.clone(), epoch.clone()),
            _ => {
                let current = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let epoch = second.to_string();
                *last = Some((second, current.clone(), epoch.clone()));
                (current, epoch)
            }
        }
    })
}

/// The keys that [`add_request_facts`] sets and the principal's tags
/// (`aws:PrincipalTag/*`): a server removes what the caller gave for them
/// before it adds its own, so that a caller cannot claim a fact (a tag the
/// principal does not have, `aws:username` for a role).
pub fn strip_request_facts(ctx: &mut Context) {
    const FACTS: &[&str] = &[
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:username",
        "aws:federatedprovider",
        "spiffe:sub",
        "aws:userid",
        "aws:currenttime",
        "aws:epochtime",
    ];
    ctx.entries
        .retain(|e| !FACTS.contains(&&*e.folded) && !e.folded.starts_with("aws:principaltag/"));
}

/// Folds a key name for lookups.
pub(crate) fn fold(key: &str) -> String {
    key.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_keys_are_folded_as_any_key() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        for who in [
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:root",
            "spiffe://acme.example/ns/a/sa/b",
            "*",
        ] {
            let mut ctx = Context::new();
            add_request_facts(
                &mut ctx,
                &crate::arn::Principal::parse(who).unwrap(),
                now,
                true,
            );
            assert!(!ctx.is_empty());
            for e in &ctx.entries {
                assert_eq!(*e.folded, fold(&e.name), "{who}");
            }
            assert!(
                ctx.entries.windows(2).all(|w| w[0].folded < w[1].folded),
                "sorted"
            );
            assert_eq!(
                ctx.get("AWS:CURRENTTIME"),
                Some(Values::Single("2027-01-15T08:00:00Z"))
            );
        }
    }

    #[test]
    fn keys_are_case_insensitive() {
        let mut ctx = Context::new();
        ctx.insert("aws:SourceIp", ContextValue::Single("1.2.3.4".into()))
            .unwrap();
        assert_eq!(ctx.get("AWS:SOURCEIP"), Some(Values::Single("1.2.3.4")));
        let err = ctx
            .insert("aws:sourceip", ContextValue::Single("x".into()))
            .unwrap_err();
        assert_eq!(err.first, "aws:SourceIp");
        assert!(!ctx.insert_if_absent("aws:SOURCEip", ContextValue::Multi(vec![])));
        ctx.set("aws:sourceIP", ContextValue::Multi(vec![]));
        assert_eq!(ctx.get("aws:SourceIp"), Some(Values::Multi(&[])));
        assert_eq!(ctx.len(), 1);
    }

    #[test]
    fn absent_differs_from_empty() {
        let mut ctx = Context::new();
        ctx.insert("aws:TagKeys", ContextValue::Multi(vec![]))
            .unwrap();
        assert_eq!(ctx.get("aws:tagkeys"), Some(Values::Multi(&[])));
        assert_eq!(ctx.get("aws:RequestTag/x"), None);
    }
}
