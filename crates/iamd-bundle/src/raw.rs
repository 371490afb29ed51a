//! The bundle's files as written: serde types with source locations, no
//! meaning. `compile` turns them into a [`super::Bundle`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A policy document given inline (a mapping) or as a path to a JSON file
/// in the bundle (a string).
pub(crate) type RawDocument = Spanned<serde_json::Value>;

/// `bundle.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawAccount {
    pub account: Spanned<String>,
    #[serde(default)]
    pub partition: Option<Spanned<String>>,
    #[serde(default)]
    pub revision: Option<String>,
    /// SCP names by level, from the organization root down to the account.
    #[serde(default)]
    pub organization: Vec<Spanned<Vec<Spanned<String>>>>,
    /// The organization the account belongs to (`aws:PrincipalOrgID` of
    /// its principals).
    #[serde(default)]
    pub organization_id: Option<Spanned<String>>,
    /// RCP names by level, from the organization root down to the account.
    #[serde(default)]
    pub resource_controls: Vec<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub limits: RawLimits,
    /// What search may answer beyond the names the policies write.
    #[serde(default)]
    pub search: RawSearch,
}

/// `search:` in `bundle.yaml`: resources and actions that exist though no
/// policy names them literally (a policy writes `record/*`, search answers
/// `record/1`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSearch {
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
    #[serde(default)]
    pub actions: Vec<Spanned<String>>,
}

/// `limits:` in `bundle.yaml`: overrides of the AWS quotas that validation
/// mirrors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawLimits {
    pub managed_policy_size: Option<usize>,
    pub user_inline_size: Option<usize>,
    pub group_inline_size: Option<usize>,
    pub role_inline_size: Option<usize>,
    pub trust_policy_size: Option<usize>,
    pub attached_policies: Option<usize>,
    pub group_attached_policies: Option<usize>,
    pub groups_per_user: Option<usize>,
    pub tags: Option<usize>,
}

/// An entry of `users.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawUser {
    pub name: Spanned<String>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub policies: Vec<Spanned<String>>,
    #[serde(default)]
    pub inline: BTreeMap<String, RawDocument>,
    #[serde(default)]
    pub boundary: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An entry of `groups.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawGroup {
    pub name: Spanned<String>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub policies: Vec<Spanned<String>>,
    #[serde(default)]
    pub inline: BTreeMap<String, RawDocument>,
}

/// An entry of `roles.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawRole {
    pub name: Spanned<String>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    pub trust: RawDocument,
    #[serde(default)]
    pub policies: Vec<Spanned<String>>,
    #[serde(default)]
    pub inline: BTreeMap<String, RawDocument>,
    #[serde(default)]
    pub boundary: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub max_session_duration: Option<Spanned<u32>>,
}

/// An entry of `resources.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawResource {
    /// A resource ARN, or an ARN pattern with `*` and `?`.
    pub resource: Spanned<String>,
    pub policy: RawDocument,
}
