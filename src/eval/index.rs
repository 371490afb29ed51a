//! A set of policies' statements, indexed by action so that a decision only
//! looks at the statements that can be about the request's action.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::policy::{Policy, Statement};

/// Statements of one or more policies that form one layer of a decision
/// (a principal's identity policies, a resource policy, an SCP level, ...),
/// with an index by action.
#[derive(Debug, Clone, Default)]
pub struct StatementSet {
    policies: Vec<Arc<Policy>>,
    /// (policy, statement) positions.
    entries: Vec<(u32, u32)>,
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
        let mut set = Self { policies: policies.into_iter().collect(), ..Self::default() };
        for (p, policy) in set.policies.iter().enumerate() {
            for (s, st) in policy.statements().iter().enumerate() {
                let id = u32::try_from(set.entries.len()).unwrap_or(u32::MAX);
                set.entries.push((p as u32, s as u32));
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
    /// may be about `action`; `action_matched` says the index has already
    /// matched the action. `action` must be lowercase ASCII where it is
    /// ASCII (see [`lowercase_action`]).
    pub(crate) fn for_each_candidate<'s>(
        &'s self,
        folded_action: &str,
        mut f: impl FnMut(u32, &'s Statement, bool),
    ) {
        let mut visit = |ids: &[u32], matched: bool| {
            for &id in ids {
                if let Some(&(p, s)) = self.entries.get(id as usize)
                    && let Some(st) =
                        self.policies.get(p as usize).and_then(|pol| pol.statements().get(s as usize))
                    {
                        f(p, st, matched);
                    }
            }
        };
        if let Some(ids) = self.exact.get(folded_action) {
            visit(ids, true);
        }
        if let Some((service, _)) = folded_action.split_once(':')
            && let Some(ids) = self.by_service.get(service) {
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
            let mut keys: Vec<String> =
                in_svc.iter().map(|n| format!("{svc}:{}", n.to_ascii_lowercase())).collect();
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
