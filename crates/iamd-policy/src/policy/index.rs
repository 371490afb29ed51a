//! A policy's statements indexed by action, built once when the policy is
//! compiled and shared by every principal the policy is attached to, so that
//! a decision only looks at the statements that can be about its action.

use std::hash::Hasher as _;

use rustc_hash::{FxHashMap, FxHasher};

use super::Statement;
use crate::arn::Arn;

/// The action index of one policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyIndex {
    /// Prefilters by statement position, side by side so that rejecting a
    /// candidate reads only this array.
    filters: Vec<Filter>,
    // INVARIANT: for any one action, a statement appears at most once in the
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

impl PolicyIndex {
    pub(crate) fn build(statements: &[Statement]) -> Self {
        let mut index = Self::default();
        for (id, st) in statements.iter().enumerate() {
            index.filters.push(Filter::of(st));
            place(
                st,
                id as u32,
                &mut index.exact,
                &mut index.by_service,
                &mut index.global,
            );
        }
        index
    }

    /// (distinct literal actions, services with wildcard actions, statements
    /// checked for every action).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.exact.len(), self.by_service.len(), self.global.len())
    }

    /// Calls `f(statement, action_matched)` for each statement of
    /// `statements` (the indexed policy's) that may be about the folded
    /// action (`service` is its part before `:`) and the resource `probe`
    /// describes.
    pub(crate) fn for_each_candidate<'s>(
        &self,
        statements: &'s [Statement],
        folded_action: &str,
        service: Option<&str>,
        probe: &Probe,
        f: &mut impl FnMut(&'s Statement, bool),
    ) {
        let mut visit = |ids: &[u32], matched: bool| {
            for &id in ids {
                let admitted = self
                    .filters
                    .get(id as usize)
                    .is_some_and(|flt| flt.admits(probe));
                if let (true, Some(st)) = (admitted, statements.get(id as usize)) {
                    f(st, matched);
                }
            }
        };
        if let Some(ids) = self.exact.get(folded_action) {
            visit(ids, true);
        }
        if let Some(ids) = service.and_then(|s| self.by_service.get(s)) {
            visit(ids, false);
        }
        visit(&self.global, false);
    }
}

/// A necessary condition on the request's resource: the statement's only
/// resource pattern begins with a literal `partition:service:region:account`
/// (compared by hash) and up to 8 literal bytes of the resource component.
/// A candidate that fails it cannot match and is skipped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    None,
    Start {
        head: u64,
        prefix: u64,
        mask: u64,
        len: u8,
    },
}

impl Filter {
    pub(crate) fn of(st: &Statement) -> Self {
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

    pub(crate) fn admits(self, probe: &Probe) -> bool {
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

pub(crate) fn place(
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
