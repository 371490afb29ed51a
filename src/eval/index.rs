//! A set of policies' statements, indexed by action so that a decision only
//! looks at the statements that can be about the request's action.

use std::hash::Hasher as _;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};

use crate::arn::Arn;
use crate::policy::{Policy, Statement};

/// Statements of one or more policies that form one layer of a decision
/// (a principal's identity policies, a resource policy, an SCP level, ...),
/// with an index by action.
#[derive(Debug, Clone, Default)]
pub struct StatementSet {
    policies: Vec<Arc<Policy>>,
    /// Statement positions and prefilters, side by side so that rejecting a
    /// candidate reads only this array.
    entries: Vec<Entry>,
    // INVARIANT: for any one action, an entry appears at most once in the
    // union of `exact[action]`, `by_service[service]` and `global`: a
    // statement goes to the most general bucket that its patterns need.
    /// Lowercase `service:action` to statements whose patterns for that
    /// service are all literal: the action is already matched.
    exact: FxHashMap<Box<str>, Vec<u32>>,
    /// Lowercase service to statements with a wildcard action in it.
    by_service: FxHashMap<Box<str>, Vec<u32>>,
    /// Statements with `NotAction`, `*`, or a wildcard in a service name.
    global: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    policy: u32,
    statement: u32,
    filter: Filter,
}

/// A necessary condition on the request's resource: the statement's only
/// resource pattern begins with a literal `partition:service:region:account`
/// (compared by hash) and up to 8 literal bytes of the resource component.
/// A candidate that fails it cannot match and is skipped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    None,
    Start {
        head: u64,
        prefix: u64,
        mask: u64,
        len: u8,
    },
}

impl Filter {
    fn of(st: &Statement) -> Self {
        match st.resource_literal_start() {
            Some((head, start)) => {
                let (prefix, len) = pack(start.as_bytes());
                Self::Start {
                    head: hash(head),
                    prefix,
                    mask: mask(len),
                    len,
                }
            }
            None => Self::None,
        }
    }

    fn admits(self, probe: &Probe) -> bool {
        match self {
            Self::None => true,
            Self::Start {
                head,
                prefix,
                mask,
                len,
            } => {
                probe.is_arn
                    && probe.head == head
                    && probe.len >= len
                    && probe.prefix & mask == prefix
            }
        }
    }
}

/// What the prefilters read of a request's resource, computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    is_arn: bool,
    head: u64,
    prefix: u64,
    len: u8,
}

impl Probe {
    pub(crate) fn new(arn: Option<&Arn<'_>>) -> Self {
        match arn {
            Some(a) => {
                let (prefix, len) = pack(a.parts[5].as_bytes());
                Self {
                    is_arn: true,
                    head: hash(a.head),
                    prefix,
                    len,
                }
            }
            None => Self {
                is_arn: false,
                head: 0,
                prefix: 0,
                len: 0,
            },
        }
    }
}

fn hash(s: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// Up to the first 8 bytes, little-endian, and how many.
fn pack(bytes: &[u8]) -> (u64, u8) {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
    (u64::from_le_bytes(buf), n as u8)
}

fn mask(len: u8) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(len))) - 1
    }
}

/// Index counts, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Statements in the set.
    pub statements: usize,
    /// Distinct literal actions.
    pub exact_actions: usize,
    /// Services with wildcard actions.
    pub services: usize,
    /// Statements checked for every action.
    pub global: usize,
}

impl StatementSet {
    /// Indexes the statements of `policies`.
    pub fn new(policies: impl IntoIterator<Item = Arc<Policy>>) -> Self {
        let mut set = Self {
            policies: policies.into_iter().collect(),
            ..Self::default()
        };
        for (p, policy) in set.policies.iter().enumerate() {
            for (s, st) in policy.statements().iter().enumerate() {
                let id = u32::try_from(set.entries.len()).unwrap_or(u32::MAX);
                set.entries.push(Entry {
                    policy: p as u32,
                    statement: s as u32,
                    filter: Filter::of(st),
                });
                place(st, id, &mut set.exact, &mut set.by_service, &mut set.global);
            }
        }
        set
    }

    /// The policies, in the order given.
    pub fn policies(&self) -> &[Arc<Policy>] {
        &self.policies
    }

    /// Whether the set has no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Index counts.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            statements: self.entries.len(),
            exact_actions: self.exact.len(),
            services: self.by_service.len(),
            global: self.global.len(),
        }
    }

    /// Calls `f(policy, statement, action_matched)` for each statement that
    /// may be about `action` and the resource that `probe` describes;
    /// `action_matched` says the index has already matched the action. `action` must be lowercase ASCII where it is
    /// ASCII (see [`lowercase_action`]).
    pub(crate) fn for_each_candidate<'s>(
        &'s self,
        folded_action: &str,
        probe: &Probe,
        mut f: impl FnMut(u32, &'s Statement, bool),
    ) {
        let mut visit = |ids: &[u32], matched: bool| {
            for &id in ids {
                let Some(e) = self.entries.get(id as usize) else {
                    continue;
                };
                if !e.filter.admits(probe) {
                    continue;
                }
                if let Some(st) = self
                    .policies
                    .get(e.policy as usize)
                    .and_then(|p| p.statements().get(e.statement as usize))
                {
                    f(e.policy, st, matched);
                }
            }
        };
        if let Some(ids) = self.exact.get(folded_action) {
            visit(ids, true);
        }
        if let Some((service, _)) = folded_action.split_once(':')
            && let Some(ids) = self.by_service.get(service)
        {
            visit(ids, false);
        }
        visit(&self.global, false);
    }
}

fn place(
    st: &Statement,
    id: u32,
    exact: &mut FxHashMap<Box<str>, Vec<u32>>,
    by_service: &mut FxHashMap<Box<str>, Vec<u32>>,
    global: &mut Vec<u32>,
) {
    let texts = &st.actions.texts;
    let split: Vec<Option<(&str, &str)>> = texts.iter().map(|t| t.split_once(':')).collect();
    let wild = |s: &str| s.contains('*') || s.contains('?');
    // Non-ASCII names fold by Unicode rules in the pattern, not by the ASCII
    // folding of the index key: leave them to the slow path.
    if st.actions.negated
        || texts.iter().any(|t| !t.is_ascii())
        || split.iter().any(|p| p.is_none_or(|(svc, _)| wild(svc)))
    {
        global.push(id);
        return;
    }
    let mut services: Vec<String> = Vec::new();
    for (svc, _) in split.iter().flatten() {
        let svc = svc.to_ascii_lowercase();
        if !services.contains(&svc) {
            services.push(svc);
        }
    }
    for svc in services {
        let in_svc: Vec<&str> = split
            .iter()
            .flatten()
            .filter(|(s, _)| s.eq_ignore_ascii_case(&svc))
            .map(|(_, name)| *name)
            .collect();
        if in_svc.iter().any(|n| wild(n)) {
            by_service.entry(svc.into()).or_default().push(id);
        } else {
            let mut keys: Vec<String> = in_svc
                .iter()
                .map(|n| format!("{svc}:{}", n.to_ascii_lowercase()))
                .collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                exact.entry(k.into()).or_default().push(id);
            }
        }
    }
}

/// Folds an action name for index lookups: ASCII letters to lowercase, into
/// `buf` when it fits (no allocation), else into a new string.
pub(crate) fn lowercase_action<'b>(
    action: &str,
    buf: &'b mut [u8; 128],
) -> std::borrow::Cow<'b, str> {
    if let Some(dst) = buf.get_mut(..action.len()) {
        dst.copy_from_slice(action.as_bytes());
        dst.make_ascii_lowercase();
        if let Ok(s) = std::str::from_utf8(dst) {
            return std::borrow::Cow::Borrowed(s);
        }
    }
    std::borrow::Cow::Owned(action.to_ascii_lowercase())
}
