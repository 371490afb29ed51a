//! Compiled work kept from one load of a bundle to the next, so that a
//! reload compiles only what changed ([`crate::BundleFiles::compile_cached`]).
//!
//! What is kept, from the last load that succeeded:
//! - every compiled document by its kind and JSON text (inline documents)
//!   or path (`documents/` files, with their texts' digests): a document
//!   seen before is not parsed or compiled again, and its uses share one
//!   body;
//! - each managed policy with its text's digest: one whose text did not
//!   change is the same compiled policy (the same `Arc`);
//! - each group's policies, to see which groups changed;
//! - each user and role by the digest of its entry's text
//!   (cut at each top-level `- `), with its compiled entity and what it depends on
//!   (managed policies, groups, `documents/` files): an entry whose text
//!   and dependencies did not change is not parsed again, and its entity
//!   is the one already built.
//!
//! Whatever the bundle's settings that every entry depends on (account,
//! partition, organization, limits) change, nothing of the entries is
//! kept. A load that finds any problem with kept work is run again without
//! it, so that errors are always those of a full compile, at their places.
//!
//! The cache has one writer, the reloader, and is replaced only by a load
//! that succeeded: a bad bundle leaves it as it was.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Entity;
use crate::items::Hash;
use iamd_policy::eval::StatementSet;
use iamd_policy::policy::{Policy, PolicyKind};

/// What a reloader keeps between loads. Empty until a load succeeds.
#[derive(Debug, Default)]
pub struct Cache {
    pub(crate) kept: Option<Kept>,
    /// Compiled documents, by kind and JSON text (`\0PATH` for a
    /// `documents/` file): kept even when a load fails (they are what the
    /// texts compile to, whatever the bundle).
    pub(crate) documents: FxHashMap<(PolicyKind, String), Policy>,
    /// What the last load replaced, freed by [`Cache::release`] once the
    /// new bundle serves.
    pub(crate) retired: Option<Kept>,
}

impl Cache {
    /// An empty cache: the next load compiles everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Users and roles kept (for status and tests).
    pub fn entries(&self) -> usize {
        self.kept
            .as_ref()
            .map_or(0, |k| k.users.len() + k.roles.len())
    }

    /// Of the users and roles of the last load that succeeded: how many it
    /// took from the load before, and how many it parsed and compiled.
    pub fn last_load(&self) -> (usize, usize) {
        self.kept.as_ref().map_or((0, 0), |k| (k.reused, k.built))
    }

    /// Frees what the last load replaced, an entry at a time with a
    /// [`crate::pace::point`] after each: a reloader calls it once the new
    /// bundle is published, so that the freeing is not in the time a change
    /// takes to be served. (The next load frees it otherwise.)
    pub fn release(&mut self) {
        if let Some(k) = self.retired.take() {
            drop(crate::pace::PacedDrop(k.users));
            drop(crate::pace::PacedDrop(k.roles));
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Drops the compiled documents that nothing uses any more (no policy
    /// of a bundle shares their body).
    pub(crate) fn sweep(&mut self) {
        self.documents.retain(|_, p| p.uses() > 1);
    }
}

/// What one successful load left for the next.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// The settings every entry depends on, as one text.
    pub context: String,
    /// `documents/` files by path: their texts' digests.
    pub document_files: FxHashMap<String, Hash>,
    /// Managed policies by name: their text's digest and compiled policy.
    pub managed: FxHashMap<String, (Hash, Arc<Policy>)>,
    /// Groups by name: their policies.
    pub groups: FxHashMap<String, Vec<Arc<Policy>>>,
    /// What entries depend on, interned.
    pub deps: Deps,
    pub users: FxHashMap<Hash, Arc<KeptUser>>,
    pub roles: FxHashMap<Hash, Arc<KeptRole>>,
    /// Users and roles this load took from the last one, and those it
    /// parsed and compiled.
    pub reused: usize,
    pub built: usize,
}

/// A user compiled by an earlier load.
#[derive(Debug)]
pub(crate) struct KeptUser {
    /// `user/NAME`.
    pub key: Arc<str>,
    pub entity: Arc<Entity>,
    pub deps: Box<[u32]>,
}

/// A role compiled by an earlier load.
#[derive(Debug)]
pub(crate) struct KeptRole {
    /// `role/NAME`.
    pub key: Arc<str>,
    pub entity: Arc<Entity>,
    /// The trust policy, under the role's ARN and its ARN without a path.
    pub trust: Option<(Arc<StatementSet>, [Box<str>; 2])>,
    pub deps: Box<[u32]>,
}

/// Names of what entries depend on (`m:` a managed policy, `g:` a group,
/// `d:` a `documents/` file), each with a number. Numbers stay the same
/// from one load to the next (the table only grows, until a full compile
/// starts a new one), so kept entries keep theirs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Deps {
    names: Vec<String>,
    ids: FxHashMap<String, u32>,
}

impl Deps {
    /// The number of `kind:name`.
    pub(crate) fn id(&mut self, kind: char, name: &str) -> u32 {
        let key = format!("{kind}:{name}");
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// Each number's kind and name, in number order.
    pub(crate) fn names(&self) -> impl Iterator<Item = (char, &str)> {
        self.names.iter().map(|n| {
            let mut chars = n.chars();
            let kind = chars.next().unwrap_or('?');
            (kind, n.get(2..).unwrap_or(""))
        })
    }
}

#[cfg(test)]
mod tests;
