//! The request context: condition keys and their values.
//!
//! Key names are case-insensitive (`aws:SourceIP` is `aws:sourceip`), so keys
//! are stored folded to lowercase and looked up with keys that the compiler
//! folded the same way. A key is absent, single-valued, or multivalued (a
//! list, possibly empty): the three differ for condition operators.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

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

/// Condition keys and their values for one request: the caller's keys,
/// and the facts that follow from the principal and the clock.
///
/// The facts are shared, not copied: a bundle computes each principal's
/// once ([`Facts`]) and the clock's texts change once a second, so adding
/// them to a request costs two reference counts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Context {
    // INVARIANT: sorted by folded key, keys unique.
    entries: Vec<Entry>,
    facts: Option<Arc<Facts>>,
    clock: Option<Arc<Clock>>,
    /// Whether the caller's keys win over the facts (what-if tools) or the
    /// facts win (a server: a caller cannot claim a fact).
    caller_first: bool,
}

/// The global condition keys that follow from a principal:
/// `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalType`,
/// `aws:PrincipalIsAWSService` (`true` for a service principal),
/// `aws:username` (IAM users only), `aws:userid` (the root user's account
/// id), a web identity's `aws:FederatedProvider` and `spiffe:sub`, and the
/// principal's tags as `aws:PrincipalTag/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    // INVARIANT: sorted by folded key, keys unique.
    entries: Vec<Entry>,
}

/// `aws:CurrentTime` and `aws:EpochTime` of one second.
#[derive(Debug, PartialEq, Eq)]
struct Clock {
    second: i64,
    // INVARIANT: sorted by folded key: `aws:currenttime`, `aws:epochtime`.
    entries: [Entry; 2],
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Borrowed for the keys the server adds (no allocation per request).
    folded: Cow<'static, str>,
    name: Cow<'static, str>,
    value: ContextValue,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Entry {
    /// A single-valued key whose name and folded name are known in advance
    /// (the facts: no folding, no allocation for the names).
    fn known((name, folded): (&'static str, &'static str), value: String) -> Self {
        Self {
            folded: Cow::Borrowed(folded),
            name: Cow::Borrowed(name),
            value: ContextValue::Single(value),
        }
    }
}

/// The entry of `folded` in `entries`, sorted by folded key.
fn find<'a>(entries: &'a [Entry], folded: &str) -> Option<&'a Entry> {
    let i = entries.binary_search_by(|e| (*e.folded).cmp(folded)).ok()?;
    entries.get(i)
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context of `keys`, built in O(n log n) (inserting one key at a
    /// time into the sorted list is quadratic: 250,000 keys once took 75 s
    /// of a serving thread). Two keys that differ only in case are an
    /// error naming both, the earlier first.
    pub fn from_keys<K: Into<String>>(
        keys: impl IntoIterator<Item = (K, ContextValue)>,
    ) -> Result<Self, DuplicateKeyError> {
        let mut entries: Vec<Entry> = keys
            .into_iter()
            .map(|(k, value)| {
                let name: String = k.into();
                Entry {
                    folded: fold(&name).into(),
                    name: name.into(),
                    value,
                }
            })
            .collect();
        // Stable: of two equal keys, the one given first stays first.
        entries.sort_by(|a, b| a.folded.cmp(&b.folded));
        if let Some(w) = entries.windows(2).find(|w| w[0].folded == w[1].folded) {
            return Err(DuplicateKeyError {
                first: w[0].name.to_string(),
                second: w[1].name.to_string(),
            });
        }
        Ok(Self {
            entries,
            ..Self::default()
        })
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

    /// The values of a key, looked up by its lowercase name.
    pub fn get_folded(&self, folded_key: &str) -> Option<Values<'_>> {
        let fact = || {
            self.clock
                .as_ref()
                .and_then(|c| find(&c.entries, folded_key))
                .or_else(|| {
                    self.facts
                        .as_ref()
                        .and_then(|f| find(&f.entries, folded_key))
                })
        };
        let entry = if self.caller_first {
            find(&self.entries, folded_key).or_else(fact)
        } else {
            fact().or_else(|| find(&self.entries, folded_key))
        }?;
        Some(match &entry.value {
            ContextValue::Single(s) => Values::Single(s),
            ContextValue::Multi(v) => Values::Multi(v),
        })
    }

    /// The values of a key, in any case.
    pub fn get(&self, key: &str) -> Option<Values<'_>> {
        self.get_folded(&fold(key))
    }

    /// The number of keys, facts included.
    pub fn len(&self) -> usize {
        self.visible().len()
    }

    /// Whether there are no keys, facts included.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.facts.is_none() && self.clock.is_none()
    }

    /// The keys as given and their values, facts included, in key order
    /// (for tools and explanations; lookups do not go through this).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.visible().into_iter().map(|e| (&*e.name, &e.value))
    }

    /// Every entry a lookup can find, sorted by folded key.
    fn visible(&self) -> Vec<&Entry> {
        let facts = self.clock.iter().flat_map(|c| c.entries.iter());
        let facts = facts.chain(self.facts.iter().flat_map(|f| f.entries.iter()));
        let (first, second): (Vec<&Entry>, Vec<&Entry>) = if self.caller_first {
            (self.entries.iter().collect(), facts.collect())
        } else {
            (facts.collect(), self.entries.iter().collect())
        };
        let mut all: Vec<&Entry> = first;
        for e in second {
            if !all.iter().any(|a| a.folded == e.folded) {
                all.push(e);
            }
        }
        all.sort_by(|a, b| a.folded.cmp(&b.folded));
        all
    }

    /// Adds the principal's `facts` and the clock's at `now`. With
    /// `overwrite` (a server), the facts win and what the caller gave for
    /// any fact key or principal tag is dropped (a caller cannot claim a
    /// fact: a tag the principal does not have, `aws:username` for a role);
    /// without (what-if tools), the caller's values stay.
    pub fn add_facts(&mut self, facts: Arc<Facts>, now: jiff::Timestamp, overwrite: bool) {
        if overwrite {
            self.entries.retain(|e| !is_fact_key(&e.folded));
        }
        self.caller_first = !overwrite;
        self.facts = Some(facts);
        self.clock = Some(clock(now));
    }
}

impl Facts {
    /// The facts of `principal`, with `tags` (key, value) as its
    /// `aws:PrincipalTag/KEY`, and `organization`, when known (a bundle's
    /// `organizationId`), as its `aws:PrincipalOrgID`.
    pub fn of(
        principal: &crate::arn::Principal,
        tags: &[(String, String)],
        organization: Option<&str>,
    ) -> Self {
        use crate::arn::PrincipalKind;
        let mut entries = Vec::new();
        let mut oidc_sub: Option<String> = None;
        let mut put = |key, value: &str| entries.push(Entry::known(key, value.to_owned()));
        let kind = principal.kind();
        put(
            ("aws:PrincipalType", "aws:principaltype"),
            kind.principal_type(),
        );
        put(
            ("aws:PrincipalIsAWSService", "aws:principalisawsservice"),
            if kind == PrincipalKind::Service {
                "true"
            } else {
                "false"
            },
        );
        let account = ("aws:PrincipalAccount", "aws:principalaccount");
        match kind {
            PrincipalKind::Anonymous => put(account, "anonymous"),
            PrincipalKind::Service => {}
            // A web identity: its provider and its own ID, for trust policy
            // conditions (docs/semantics.md).
            PrincipalKind::WebIdentity => {
                let provider = principal.provider().unwrap_or_default();
                put(("aws:FederatedProvider", "aws:federatedprovider"), provider);
                match provider.split_once(":oidc-provider/") {
                    // An OIDC identity: `HOST:sub`, as AWS names it (added
                    // with the tags, below).
                    Some((_, host)) => oidc_sub = Some(format!("{host}:sub")),
                    None => put(("spiffe:sub", "spiffe:sub"), principal.arn()),
                }
            }
            _ => {
                put(
                    ("aws:PrincipalArn", "aws:principalarn"),
                    principal.principal_arn(),
                );
                put(account, principal.account());
            }
        }
        if let Some(org) = organization {
            put(("aws:PrincipalOrgID", "aws:principalorgid"), org);
        }
        match kind {
            PrincipalKind::User => put(("aws:username", "aws:username"), principal.name()),
            PrincipalKind::Root => put(("aws:userid", "aws:userid"), principal.account()),
            _ => {}
        }
        if let Some(name) = oidc_sub {
            entries.push(Entry {
                folded: Cow::Owned(fold(&name)),
                name: Cow::Owned(name),
                value: ContextValue::Single(principal.name().to_owned()),
            });
        }
        for (k, v) in tags {
            let name = format!("aws:PrincipalTag/{k}");
            entries.push(Entry {
                folded: Cow::Owned(fold(&name)),
                name: Cow::Owned(name),
                value: ContextValue::Single(v.clone()),
            });
        }
        entries.sort_by(|a, b| a.folded.cmp(&b.folded));
        // Tag keys are unique in any case (the loader checks), the rest are
        // distinct by construction.
        entries.dedup_by(|a, b| a.folded == b.folded);
        Self { entries }
    }
}

/// Adds to `ctx` the facts of `principal` (without tags) and of the clock
/// at `now`: see [`Context::add_facts`].
pub fn add_request_facts(
    ctx: &mut Context,
    principal: &crate::arn::Principal,
    now: jiff::Timestamp,
    overwrite: bool,
) {
    ctx.add_facts(Arc::new(Facts::of(principal, &[], None)), now, overwrite);
}

/// The clock's facts at `now`, made once a second per thread (formatting
/// was a twentieth of a loaded daemon's CPU).
fn clock(now: jiff::Timestamp) -> Arc<Clock> {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<Arc<Clock>>> = const { RefCell::new(None) };
    }
    let second = now.as_second();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some(c) if c.second == second => c.clone(),
            _ => {
                let c = Arc::new(Clock {
                    second,
                    entries: [
                        Entry::known(
                            ("aws:CurrentTime", "aws:currenttime"),
                            now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        ),
                        Entry::known(("aws:EpochTime", "aws:epochtime"), second.to_string()),
                    ],
                });
                *last = Some(c.clone());
                c
            }
        }
    })
}

/// Whether a folded key names a fact: a key that [`Facts`] or the clock
/// sets, or a principal tag.
fn is_fact_key(folded: &str) -> bool {
    const FACTS: &[&str] = &[
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:principalisawsservice",
        "aws:principalorgid",
        "aws:username",
        "aws:federatedprovider",
        "spiffe:sub",
        "aws:userid",
        "aws:currenttime",
        "aws:epochtime",
    ];
    FACTS.contains(&folded) || folded.starts_with("aws:principaltag/")
}

/// Folds a key name for lookups.
pub(crate) fn fold(key: &str) -> String {
    // Keys are ASCII but for the odd tag: the same result, cheaper.
    if key.is_ascii() {
        key.to_ascii_lowercase()
    } else {
        key.to_lowercase()
    }
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
            let principal = crate::arn::Principal::parse(who).unwrap();
            let tags = [("Team".to_owned(), "docs".to_owned())];
            ctx.add_facts(Arc::new(Facts::of(&principal, &tags, None)), now, true);
            assert!(!ctx.is_empty());
            for e in ctx.visible() {
                assert_eq!(*e.folded, fold(&e.name), "{who}");
            }
            for entries in [
                &ctx.facts.as_ref().unwrap().entries[..],
                &ctx.clock.as_ref().unwrap().entries[..],
            ] {
                assert!(
                    entries.windows(2).all(|w| w[0].folded < w[1].folded),
                    "sorted"
                );
            }
            assert_eq!(
                ctx.get("aws:principaltag/team"),
                Some(Values::Single("docs"))
            );
            assert_eq!(
                ctx.get("AWS:CURRENTTIME"),
                Some(Values::Single("2027-01-15T08:00:00Z"))
            );
        }
    }

    #[test]
    fn whether_the_caller_is_a_service_is_a_fact_a_caller_cannot_claim() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        for (who, service) in [
            ("arn:aws:iam::111122223333:user/mallory", "false"),
            ("*", "false"),
            ("cloudtrail.amazonaws.com", "true"),
        ] {
            let principal = crate::arn::Principal::parse(who).unwrap();
            // A server: the fact wins over the caller's claim.
            let mut ctx = Context::new();
            ctx.insert(
                "aws:PrincipalIsAWSService",
                ContextValue::Single("true".into()),
            )
            .unwrap();
            add_request_facts(&mut ctx, &principal, now, true);
            assert_eq!(
                ctx.get("aws:PrincipalIsAWSService"),
                Some(Values::Single(service)),
                "{who}"
            );
        }
    }

    #[test]
    fn a_context_built_at_once_is_sorted_and_refuses_a_key_given_twice() {
        let keys = (0..50_000)
            .rev()
            .map(|i| (format!("k:{i}"), ContextValue::Single(i.to_string())));
        let ctx = Context::from_keys(keys).unwrap();
        assert_eq!(ctx.get("K:49999"), Some(Values::Single("49999")));
        assert_eq!(ctx.get("k:0"), Some(Values::Single("0")));
        assert!(ctx.entries.windows(2).all(|w| w[0].folded < w[1].folded));
        let e = Context::from_keys([
            ("aws:SourceIp", ContextValue::Single("1.2.3.4".into())),
            ("docs:x", ContextValue::Single("x".into())),
            ("AWS:SOURCEIP", ContextValue::Single("5.6.7.8".into())),
        ])
        .unwrap_err();
        assert_eq!(
            (e.first.as_str(), e.second.as_str()),
            ("aws:SourceIp", "AWS:SOURCEIP")
        );
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
        assert!(
            ctx.insert("aws:SOURCEip", ContextValue::Multi(vec![]))
                .is_err()
        );
        ctx.set("aws:sourceIP", ContextValue::Multi(vec![]));
        assert_eq!(ctx.get("aws:SourceIp"), Some(Values::Multi(&[])));
        assert_eq!(ctx.len(), 1);
        // Beyond ASCII too (a tag key in another language).
        ctx.insert(
            "aws:PrincipalTag/Équipe",
            ContextValue::Single("docs".into()),
        )
        .unwrap();
        assert_eq!(
            ctx.get("AWS:PRINCIPALTAG/ÉQUIPE"),
            Some(Values::Single("docs"))
        );
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
