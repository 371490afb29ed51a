//! What the authoring tools need besides the compiled bundle: every policy
//! document with its place in the files, and who uses what. The loader
//! fills it only when asked ([`super::BundleFiles::catalog`]); serving
//! never pays for it.

use std::sync::Arc;

use iamd_policy::policy::{Policy, PolicyKind};

/// What a document is to the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentRole {
    /// A managed policy (`policies/`), attachable to users, groups and
    /// roles, or used as a permissions boundary.
    Managed,
    /// An inline policy of a user, group or role.
    Inline,
    /// A role's trust policy.
    Trust,
    /// A resource-based policy (`resources.yaml`).
    Resource,
    /// A service control policy (`scps/`).
    Scp,
    /// A resource control policy (`rcps/`).
    Rcp,
}

/// A compiled policy document and where it was written.
#[derive(Debug, Clone)]
pub struct Document {
    /// How a person names it: "managed policy `DocsRead`", "inline policy
    /// `notes` of user `alice`", "trust policy of role `deployer`".
    pub label: String,
    /// Its role in the bundle.
    pub role: DocumentRole,
    /// The policy kind it was compiled as.
    pub kind: PolicyKind,
    /// The file (relative to the bundle) the JSON text is read from; for a
    /// document written inline in YAML, the YAML file.
    pub file: String,
    /// The JSON text the policy was compiled from (shared by the documents
    /// of the same text).
    pub text: Arc<str>,
    /// For a document embedded in a larger file (inline YAML, an AWS
    /// export): `file:line:column` of the document. Positions inside `text`
    /// then mean nothing to the author.
    pub embedded_at: Option<crate::At>,
    /// The compiled policy.
    pub policy: Arc<Policy>,
}

/// A user or role and the documents of its identity policies (its own, its
/// groups', its managed policies), by index into [`Catalog::documents`].
#[derive(Debug, Clone)]
pub struct PrincipalUse {
    /// "user `alice`", "role `deployer`".
    pub label: String,
    /// `user/alice`, `role/deployer`: how a request names it.
    pub name: String,
    /// Identity documents.
    pub identity: Vec<usize>,
    /// The permissions boundary's document.
    pub boundary: Option<usize>,
}

/// A group and how many users are in it.
#[derive(Debug, Clone)]
pub struct GroupUse {
    /// The group's name.
    pub name: String,
    /// Where it is defined.
    pub at: crate::At,
    /// Users that name it.
    pub members: usize,
}

/// A managed policy and how often it is attached (as a boundary too).
#[derive(Debug, Clone)]
pub struct ManagedUse {
    /// The policy's name.
    pub name: String,
    /// Its document.
    pub document: usize,
    /// References to it from users, groups and roles.
    pub uses: usize,
}

/// A bundle's documents and their uses.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Every compiled document, in load order.
    pub documents: Vec<Document>,
    /// Users and roles.
    pub principals: Vec<PrincipalUse>,
    /// Groups.
    pub groups: Vec<GroupUse>,
    /// Managed policies.
    pub managed: Vec<ManagedUse>,
    /// SCP documents.
    pub scps: Vec<usize>,
    /// The account id.
    pub account: String,
    /// Lowercase `user/NAME` and `role/NAME` of the bundle's principals.
    pub names: rustc_hash::FxHashSet<String>,
}

impl Catalog {
    /// A catalog of one document outside any bundle (`iamd validate
    /// policy.json`): no principals, groups or attachments to check.
    pub fn lone(document: Document) -> Self {
        Self {
            documents: vec![document],
            ..Self::default()
        }
    }
}

/// Fills a [`Catalog`] as the loader goes.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    catalog: Catalog,
    /// A compiled policy's address to its document.
    ids: rustc_hash::FxHashMap<usize, usize>,
    /// The texts recorded so far.
    texts: rustc_hash::FxHashSet<Arc<str>>,
    managed: rustc_hash::FxHashMap<String, usize>,
    groups: rustc_hash::FxHashMap<String, usize>,
}

fn address(p: &Arc<Policy>) -> usize {
    Arc::as_ptr(p) as usize
}

impl Recorder {
    /// `text`, shared with the documents recorded before of the same text.
    pub(crate) fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(t) = self.texts.get(text) {
            return t.clone();
        }
        let t: Arc<str> = text.into();
        self.texts.insert(t.clone());
        t
    }

    /// A compiled document.
    pub(crate) fn document(&mut self, doc: Document) {
        let id = self.catalog.documents.len();
        self.ids.insert(address(&doc.policy), id);
        match doc.role {
            DocumentRole::Managed => {
                self.managed
                    .insert(doc.policy.name().to_owned(), self.catalog.managed.len());
                self.catalog.managed.push(ManagedUse {
                    name: doc.policy.name().to_owned(),
                    document: id,
                    uses: 0,
                });
            }
            DocumentRole::Scp => self.catalog.scps.push(id),
            _ => {}
        }
        self.catalog.documents.push(doc);
    }

    /// A reference to the managed policy `name`.
    pub(crate) fn managed_use(&mut self, name: &str) {
        if let Some(&i) = self.managed.get(name) {
            self.catalog.managed[i].uses += 1;
        }
    }

    /// A group's definition.
    pub(crate) fn group(&mut self, name: &str, at: crate::At) {
        self.groups
            .insert(name.to_owned(), self.catalog.groups.len());
        self.catalog.groups.push(GroupUse {
            name: name.to_owned(),
            at,
            members: 0,
        });
    }

    /// A user in the group `name`.
    pub(crate) fn member(&mut self, name: &str) {
        if let Some(&i) = self.groups.get(name) {
            self.catalog.groups[i].members += 1;
        }
    }

    /// A user or role (`kind` is `user` or `role`) with its documents.
    pub(crate) fn principal(
        &mut self,
        kind: &str,
        name: &str,
        identity: &[Arc<Policy>],
        boundary: Option<&Arc<Policy>>,
    ) {
        let id = |p: &Arc<Policy>| self.ids.get(&address(p)).copied();
        let identity = identity.iter().filter_map(id).collect();
        let boundary = boundary.and_then(id);
        self.catalog
            .names
            .insert(format!("{kind}/{}", name.to_lowercase()));
        self.catalog.principals.push(PrincipalUse {
            label: format!("{kind} `{name}`"),
            name: format!("{kind}/{name}"),
            identity,
            boundary,
        });
    }

    /// The catalog, for the bundle of `account`.
    pub(crate) fn finish(mut self, account: &str) -> Catalog {
        self.catalog.account = account.to_owned();
        self.catalog
    }
}
