//! Bundles: an account's users, groups, roles, managed and inline policies,
//! permissions boundaries, resource-based policies and SCPs, read from a
//! directory, validated all at once, and compiled so that a decision looks up
//! its principal in O(1) and evaluates only candidate statements.
//!
//! The format is documented in `docs/bundles.md`. Loading is
//! read → digest → parse → validate → compile; any error stops the load, and
//! every error is reported, each with its file and line.

mod aws;
pub mod cache;
pub mod catalog;
mod chunks;
pub mod diagnostic;
mod items;
mod load;
pub mod pace;
pub mod query;
mod raw;
pub mod regular_file;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use iamd_policy::arn::{Arn, Principal, PrincipalKind};
use iamd_policy::context::{Context, Facts};
use iamd_policy::eval::{Layers, Request, StatementSet};
use iamd_policy::policy::pattern::{ArnPattern, ArnSyntax};

pub use cache::Cache;
pub use catalog::Catalog;
pub use diagnostic::{At, Diagnostic};
pub use load::{BundleFiles, ReadLimits, load};
pub use load::{yaml_diagnostic, yaml_error};

/// Limits that validation enforces, after the AWS quotas they mirror
/// (IAM and STS quotas in the AWS IAM User Guide). Each can be set in
/// `bundle.yaml` under `limits:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Characters in a managed policy document, white space not counted
    /// (AWS: 6,144).
    pub managed_policy_size: usize,
    /// Characters in all of a user's inline policies together (AWS: 2,048).
    pub user_inline_size: usize,
    /// Characters in all of a group's inline policies together (AWS: 5,120).
    pub group_inline_size: usize,
    /// Characters in all of a role's inline policies together (AWS: 10,240).
    pub role_inline_size: usize,
    /// Characters in a role trust policy (AWS: 2,048 by default, up to 4,096).
    pub trust_policy_size: usize,
    /// Managed policies attached to a user or a role (AWS: 10, up to 20).
    pub attached_policies: usize,
    /// Managed policies attached to a group (AWS: 10).
    pub group_attached_policies: usize,
    /// Groups a user belongs to (AWS: 10).
    pub groups_per_user: usize,
    /// Tags on a user or a role (AWS: 50).
    pub tags: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            managed_policy_size: 6_144,
            user_inline_size: 2_048,
            group_inline_size: 5_120,
            role_inline_size: 10_240,
            trust_policy_size: 2_048,
            attached_policies: 10,
            group_attached_policies: 10,
            groups_per_user: 10,
            tags: 50,
        }
    }
}

/// A bundle that cannot be loaded, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BundleError {
    /// Every problem, structured ([`Diagnostic`]); printed one a line as
    /// `file:line:column: what is wrong and how to fix it`.
    pub diagnostics: Vec<Diagnostic>,
}

impl BundleError {
    /// The error of these problems, each message shortened
    /// ([`iamd_policy::message::shorten`]): a huge value in a bundle makes a
    /// short error.
    pub fn new(diagnostics: Vec<Diagnostic>) -> Self {
        Self {
            diagnostics: diagnostics
                .into_iter()
                .map(|mut d| {
                    if let std::borrow::Cow::Owned(short) =
                        iamd_policy::message::shorten(&d.message)
                    {
                        d.message = short;
                    }
                    d
                })
                .collect(),
        }
    }

    /// The problems as printed, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.diagnostics.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// A bundle's revision: the SHA-256 digest of its files (names and
/// contents), and the operator's revision string from `bundle.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// Lowercase hex SHA-256 of the bundle's files.
    pub digest: String,
    /// `revision:` from `bundle.yaml`, if any.
    pub label: Option<String>,
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.digest.get(..12).unwrap_or(&self.digest);
        match &self.label {
            Some(l) => write!(f, "{l} (sha256:{short})"),
            None => write!(f, "sha256:{short}"),
        }
    }
}

/// What a bundle holds, for status reports and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BundleStats {
    /// IAM users.
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Roles.
    pub roles: usize,
    /// Managed policies.
    pub managed_policies: usize,
    /// Resource-based policies (trust policies not counted).
    pub resource_policies: usize,
    /// Statements compiled, counting each managed policy once.
    pub statements: usize,
}

/// A principal of the bundle and the policies that apply to it.
#[derive(Debug)]
pub struct Entity {
    principal: Principal,
    identity: StatementSet,
    boundary: Option<StatementSet>,
    tags: Vec<(String, String)>,
    /// The organization of the bundle's principals (none for outsiders).
    organization: Option<Arc<str>>,
    /// The principal's facts and tags, made once (a request shares them).
    facts: Arc<Facts>,
    /// A role's longest session, in seconds (`maxSessionDuration`).
    max_session: Option<u32>,
}

impl Entity {
    fn new(
        principal: Principal,
        identity: StatementSet,
        boundary: Option<StatementSet>,
        tags: Vec<(String, String)>,
        organization: Option<Arc<str>>,
    ) -> Self {
        Self {
            facts: Arc::new(Facts::of(&principal, &tags, organization.as_deref())),
            max_session: None,
            principal,
            identity,
            boundary,
            tags,
            organization,
        }
    }

    /// The principal (the user or role itself).
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The identity policies: a user's own and its groups', or a role's.
    pub fn identity(&self) -> &StatementSet {
        &self.identity
    }

    /// The permissions boundary, if any.
    pub fn boundary(&self) -> Option<&StatementSet> {
        self.boundary.as_ref()
    }

    /// The principal's tags (`aws:PrincipalTag/KEY`).
    pub fn tags(&self) -> &[(String, String)] {
        &self.tags
    }

    /// A role's longest session, in seconds, as its `maxSessionDuration`
    /// says (`None`: AWS's default, an hour; users have none).
    pub fn max_session(&self) -> Option<u32> {
        self.max_session
    }

    /// The entity with its longest session.
    pub(crate) fn with_max_session(mut self, seconds: Option<u32>) -> Self {
        self.max_session = seconds;
        self
    }
}

/// A compiled, immutable bundle.
#[derive(Debug)]
pub struct Bundle {
    revision: Revision,
    /// The revision as answers write it, made once.
    revision_text: String,
    account: String,
    partition: String,
    /// `user/NAME`, `role/NAME` to the entity.
    entities: FxHashMap<Arc<str>, Arc<Entity>>,
    root: Arc<Entity>,
    /// Callers with no identity policies here: anonymous callers and
    /// services, allowed only by resource-based policies.
    outsider: Arc<Entity>,
    /// Exact resource ARNs to their policy; trust policies by role ARN.
    exact_resources: FxHashMap<Box<str>, Arc<StatementSet>>,
    /// Resource patterns, in file order: the first that matches applies.
    pattern_resources: Vec<(ArnPattern, Arc<StatementSet>)>,
    scps: Vec<StatementSet>,
    /// RCP levels, root first: they guard this account's resources.
    rcps: Vec<StatementSet>,
    stats: BundleStats,
    /// `search:` of `bundle.yaml`: resources and actions declared for
    /// search, sorted.
    declared: Declared,
    /// What search reads, made on its first use (serving never pays for
    /// it): the principals' names, the known resources and actions, sorted.
    known: std::sync::OnceLock<Known>,
}

/// Resources and actions declared in `bundle.yaml` for search.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub(crate) resources: Vec<Box<str>>,
    pub(crate) actions: Vec<Box<str>>,
}

/// The names search enumerates, sorted and without repeats.
#[derive(Debug, Default)]
pub struct Known {
    /// `user/NAME` and `role/NAME`, as requests name them.
    pub principals: Vec<Box<str>>,
    /// The resources with a policy of their own (`resources.yaml`, exact
    /// ARNs) and those `search:` declares.
    pub resources: Vec<Box<str>>,
    /// The actions the policies name without a wildcard and those
    /// `search:` declares.
    pub actions: Vec<Box<str>>,
}

/// A principal of a request found in a bundle.
#[derive(Debug)]
pub struct Resolved<'b> {
    /// The entity whose policies apply (a role for a role session).
    pub entity: &'b Entity,
    /// The principal as the request named it (a role session keeps its
    /// session ARN); the entity's own when the request named the entity.
    pub principal: Cow<'b, Principal>,
}

impl Bundle {
    /// Frees the bundle an entity at a time, with a [`crate::pace::point`]
    /// between them: a large bundle is tens of milliseconds to free.
    pub fn dismantle(mut self) {
        use crate::pace::PacedDrop;
        drop(PacedDrop(std::mem::take(&mut self.entities)));
        drop(PacedDrop(std::mem::take(&mut self.exact_resources)));
    }
}

impl Resolved<'_> {
    /// [`Resolved::facts`] of a session with session `tags`: they are its
    /// `aws:PrincipalTag/KEY`, over the role's tags of the same keys (as in
    /// AWS).
    pub fn facts_with_session_tags(&self, tags: &[(String, String)]) -> Arc<Facts> {
        if tags.is_empty() {
            return self.facts();
        }
        let mut merged: Vec<(String, String)> = self
            .entity
            .tags
            .iter()
            .filter(|(k, _)| !tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(k)))
            .cloned()
            .collect();
        merged.extend(tags.iter().cloned());
        Arc::new(Facts::of(
            &self.principal,
            &merged,
            self.entity.organization.as_deref(),
        ))
    }

    /// The principal's facts (`aws:username`, `aws:PrincipalTag/*`...):
    /// the entity's, shared, when the request named the entity itself;
    /// made for this request otherwise (a role session, the root, callers
    /// from outside).
    pub fn facts(&self) -> Arc<Facts> {
        match &self.principal {
            Cow::Borrowed(_) => self.entity.facts.clone(),
            Cow::Owned(p) => Arc::new(Facts::of(
                p,
                &self.entity.tags,
                self.entity.organization.as_deref(),
            )),
        }
    }
}

impl Bundle {
    /// The bundle's revision.
    pub fn revision(&self) -> &Revision {
        &self.revision
    }

    /// The revision as answers write it (`label (sha256:0123456789ab)`).
    pub fn revision_text(&self) -> &str {
        &self.revision_text
    }

    /// The account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The partition (`aws` unless `bundle.yaml` says otherwise).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// Counts of what the bundle holds.
    pub fn stats(&self) -> BundleStats {
        self.stats
    }

    /// The SCP levels, root first.
    pub fn scps(&self) -> &[StatementSet] {
        &self.scps
    }

    /// The RCP levels, from the organization root down to the account.
    pub fn rcps(&self) -> &[StatementSet] {
        &self.rcps
    }

    /// Finds a request's principal: a user or role ARN (with its path), a
    /// role session ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`),
    /// the account's root (`arn:aws:iam::ACCOUNT:root` or the account id), or
    /// a short form `user/NAME`, `role/NAME`; or an anonymous caller (`*`) or
    /// a service (`ec2.amazonaws.com`), which have no policies of their own.
    /// `None` for anything else (another account's principal, an unknown
    /// name): the caller denies, never errors.
    pub fn resolve(&self, text: &str) -> Option<Resolved<'_>> {
        if let Some(entity) = self.entities.get(text) {
            return Some(Resolved {
                entity,
                principal: Cow::Borrowed(&entity.principal),
            });
        }
        let p = Principal::parse(text).ok()?;
        if matches!(
            p.kind(),
            PrincipalKind::Anonymous | PrincipalKind::Service | PrincipalKind::WebIdentity
        ) {
            return Some(Resolved {
                entity: &self.outsider,
                principal: Cow::Owned(p),
            });
        }
        if p.account() != self.account || p.partition() != self.partition {
            return None;
        }
        let entity = match p.kind() {
            PrincipalKind::Root => &self.root,
            PrincipalKind::User | PrincipalKind::Role => {
                let prefix = if p.kind() == PrincipalKind::User {
                    "user/"
                } else {
                    "role/"
                };
                let e = self
                    .entities
                    .get(format!("{prefix}{}", p.name()).as_str())?;
                // The ARN must be the entity's, path included: then the
                // principal is the entity's own.
                if e.principal.arn() != p.arn() {
                    return None;
                }
                return Some(Resolved {
                    entity: e,
                    principal: Cow::Borrowed(&e.principal),
                });
            }
            PrincipalKind::AssumedRole => {
                let role = p.session_role_name()?;
                let e = self.entities.get(format!("role/{role}").as_str())?;
                // The session ARN leaves out the role's path; every
                // `Principal` element and `aws:PrincipalArn` names the role
                // with it, so the session takes the role's own ARN.
                let p = p.with_role_arn(e.principal.arn()).ok()?;
                return Some(Resolved {
                    entity: e,
                    principal: Cow::Owned(p),
                });
            }
            _ => return None,
        };
        Some(Resolved {
            entity,
            principal: Cow::Owned(p),
        })
    }

    /// The names search enumerates, made on the first call (a 100,000-user
    /// bundle: its principals sorted once).
    pub fn known(&self) -> &Known {
        self.known.get_or_init(|| {
            let mut principals: Vec<Box<str>> =
                self.entities.keys().map(|k| Box::from(&**k)).collect();
            principals.sort_unstable();
            let mut resources: Vec<Box<str>> = self
                .exact_resources
                .keys()
                // Trust policies are the roles' own: the roles are principals.
                .filter(|r| !r.contains(":iam::"))
                .cloned()
                .chain(self.declared.resources.iter().cloned())
                .collect();
            resources.sort_unstable();
            resources.dedup();
            let mut seen = rustc_hash::FxHashSet::default();
            let mut actions: Vec<Box<str>> = self.declared.actions.clone();
            let sets = self
                .entities
                .values()
                .flat_map(|e| [Some(&e.identity), e.boundary.as_ref()])
                .flatten()
                .chain(self.exact_resources.values().map(|s| &**s))
                .chain(self.pattern_resources.iter().map(|(_, s)| &**s));
            for set in sets {
                for policy in set.policies() {
                    // Policies are shared: each read once.
                    if !seen.insert(Arc::as_ptr(policy)) {
                        continue;
                    }
                    for statement in policy.statements() {
                        actions.extend(statement.literal_actions().map(Box::from));
                    }
                }
            }
            actions.sort_unstable();
            actions.dedup();
            Known {
                principals,
                resources,
                actions,
            }
        })
    }

    /// The resource-based policy of `resource`: its exact entry (a role's
    /// trust policy for a role ARN, ignoring the role's path), else the first
    /// pattern that matches it.
    pub fn resource_policy(&self, resource: &str) -> Option<&StatementSet> {
        self.resource_policy_of(resource, Arn::parse(resource).as_ref())
    }

    /// [`Bundle::resource_policy`] of `resource` already split (`arn`).
    fn resource_policy_of(&self, resource: &str, arn: Option<&Arn<'_>>) -> Option<&StatementSet> {
        if let Some(set) = self.exact_resources.get(resource) {
            return Some(set);
        }
        let arn = arn?;
        let empty = Context::new();
        self.pattern_resources
            .iter()
            .find(|(p, _)| p.matches(arn, &empty))
            .map(|(_, set)| &**set)
    }

    /// The layers of `request` by `resolved`; `session` is the request's
    /// session policy, if any.
    pub fn layers<'b>(
        &'b self,
        resolved: &Resolved<'b>,
        request: &Request<'_>,
        session: Option<&'b StatementSet>,
    ) -> Layers<'b> {
        Layers {
            identity: Some(&resolved.entity.identity),
            resource: self.resource_policy_of(request.resource(), request.resource_arn()),
            boundary: resolved.entity.boundary.as_ref(),
            session,
            scps: &self.scps,
            // The account's RCPs guard its own resources, and those whose
            // owner is not known (an S3 ARN asked for by an anonymous
            // caller): a request on another account's resource meets that
            // account's RCPs, not these.
            rcps: if request.resource_account().is_none_or(|a| a == self.account) {
                &self.rcps
            } else {
                &[]
            },
        }
    }
}

/// An ARN pattern for `resources.yaml` (no variables).
fn resource_pattern(text: &str) -> Result<ArnPattern, String> {
    let syntax = ArnSyntax {
        variables: false,
        variables_anywhere: false,
        literal_service: true,
    };
    ArnPattern::new(text, syntax).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
