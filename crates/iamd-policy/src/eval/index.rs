//! The policies of one layer of a decision, each with its own action index
//! (see `policy::index`), so that a decision only looks at the statements
//! that can be about the request's action.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::policy::index::{Filter, place};
use crate::policy::{Policy, Statement};

pub(crate) use crate::policy::index::Probe;

/// Above this many policies, a set gets an index of its own over all its
/// statements: probing each policy's index costs a lookup per policy, a
/// merged index one per set. Typical principals (a few managed and inline
/// policies, a few groups) stay below and share their policies' indexes.
const MERGE_ABOVE: usize = 12;

/// The policies that form one layer of a decision (a principal's identity
/// policies, a resource policy, an SCP level, ...). Building one costs a
/// vector of `Arc`s: each policy carries its own index, shared by every set
/// it is in.
#[derive(Debug, Clone, Default)]
pub struct StatementSet {
    policies: Vec<Arc<Policy>>,
    merged: Option<Box<MergedIndex>>,
}

/// One index over the statements of many policies.
#[derive(Debug, Clone, Default)]
struct MergedIndex {
    /// (policy, statement, prefilter) by entry.
    entries: Vec<(u32, u32, Filter)>,
    // INVARIANT: as for `PolicyIndex`, an entry appears at most once among
    // the buckets an action reaches.
    exact: FxHashMap<Box<str>, Vec<u32>>,
    by_service: FxHashMap<Box<str>, Vec<u32>>,
    global: Vec<u32>,
}

impl MergedIndex {
    fn build(policies: &[Arc<Policy>]) -> Self {
        let mut m = Self::default();
        for (p, policy) in policies.iter().enumerate() {
            for (s, st) in policy.statements().iter().enumerate() {
                let id = u32::try_from(m.entries.len()).unwrap_or(u32::MAX);
                m.entries.push((p as u32, s as u32, Filter::of(st)));
                place(st, id, &mut m.exact, &mut m.by_service, &mut m.global);
            }
        }
        m
    }
}

/// Index counts, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Statements in the set.
    pub statements: usize,
    /// Distinct literal actions, summed over the policies.
    pub exact_actions: usize,
    /// Services with wildcard actions, summed over the policies.
    pub services: usize,
    /// Statements checked for every action.
    pub global: usize,
}

impl StatementSet {
    /// The set of `policies`.
    pub fn new(policies: impl IntoIterator<Item = Arc<Policy>>) -> Self {
        let policies: Vec<Arc<Policy>> = policies.into_iter().collect();
        let merged =
            (policies.len() > MERGE_ABOVE).then(|| Box::new(MergedIndex::build(&policies)));
        Self { policies, merged }
    }

    /// The policies, in the order given.
    pub fn policies(&self) -> &[Arc<Policy>] {
        &self.policies
    }

    /// Whether the set has an index of its own (more than a dozen policies)
    /// rather than its policies' indexes.
    pub fn is_merged(&self) -> bool {
        self.merged.is_some()
    }

    /// Whether the set has no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Index counts.
    pub fn stats(&self) -> IndexStats {
        let mut s = IndexStats::default();
        for p in &self.policies {
            let (exact, services, global) = p.index().counts();
            s.statements += p.statements().len();
            s.exact_actions += exact;
            s.services += services;
            s.global += global;
        }
        s
    }

    /// Calls `f(policy, statement, action_matched)` for each statement that
    /// may be about `action` and the resource that `probe` describes;
    /// `policy` is the statement's policy's position in the set, and
    /// `action_matched` says the index has already matched the action.
    /// `folded_action` must be lowercase ASCII where it is ASCII (see
    /// [`lowercase_action`]).
    pub(crate) fn for_each_candidate<'s>(
        &'s self,
        folded_action: &str,
        probe: &Probe,
        mut f: impl FnMut(u32, &'s Statement, bool),
    ) {
        let service = folded_action.split_once(':').map(|(s, _)| s);
        if let Some(m) = &self.merged {
            let mut visit = |ids: &[u32], matched: bool| {
                for &id in ids {
                    let Some(&(p, s, filter)) = m.entries.get(id as usize) else {
                        continue;
                    };
                    if !filter.admits(probe) {
                        continue;
                    }
                    if let Some(st) = self
                        .policies
                        .get(p as usize)
                        .and_then(|pol| pol.statements().get(s as usize))
                    {
                        f(p, st, matched);
                    }
                }
            };
            if let Some(ids) = m.exact.get(folded_action) {
                visit(ids, true);
            }
            if let Some(ids) = service.and_then(|s| m.by_service.get(s)) {
                visit(ids, false);
            }
            visit(&m.global, false);
            return;
        }
        for (i, p) in self.policies.iter().enumerate() {
            let mut g = |st: &'s Statement, matched: bool| f(i as u32, st, matched);
            p.index()
                .for_each_candidate(p.statements(), folded_action, service, probe, &mut g);
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
