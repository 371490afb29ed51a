//! The output of `aws iam get-account-authorization-details` as a bundle:
//! users, groups, roles with their trust policies, managed policies at their
//! default versions, inline policies, boundaries and tags. Documents may be
//! JSON objects (the CLI decodes them) or URL-encoded strings (the raw API).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::load::{DocumentSource, Parts, yaml_at};
use super::raw::{RawAccount, RawDocument, RawGroup, RawLimits, RawRole, RawUser};
use crate::Diagnostic;
use crate::pace::Paced;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Details {
    // An export of a large account is one parse: a pace point per entry.
    #[serde(default)]
    user_detail_list: Vec<Paced<User>>,
    #[serde(default)]
    group_detail_list: Vec<Paced<Group>>,
    #[serde(default)]
    role_detail_list: Vec<Paced<Role>>,
    #[serde(default)]
    policies: Vec<Paced<ManagedPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct User {
    #[serde(default)]
    path: Option<Spanned<String>>,
    user_name: Spanned<String>,
    arn: Spanned<String>,
    #[serde(default)]
    user_policy_list: Vec<Inline>,
    #[serde(default)]
    group_list: Vec<Spanned<String>>,
    #[serde(default)]
    attached_managed_policies: Vec<Attached>,
    #[serde(default)]
    permissions_boundary: Option<Boundary>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Group {
    #[serde(default)]
    path: Option<Spanned<String>>,
    group_name: Spanned<String>,
    #[serde(default)]
    group_policy_list: Vec<Inline>,
    #[serde(default)]
    attached_managed_policies: Vec<Attached>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Role {
    #[serde(default)]
    path: Option<Spanned<String>>,
    role_name: Spanned<String>,
    arn: Spanned<String>,
    assume_role_policy_document: Spanned<serde_json::Value>,
    #[serde(default)]
    role_policy_list: Vec<Inline>,
    #[serde(default)]
    attached_managed_policies: Vec<Attached>,
    #[serde(default)]
    permissions_boundary: Option<Boundary>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    max_session_duration: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inline {
    policy_name: String,
    policy_document: Spanned<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attached {
    policy_arn: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Boundary {
    permissions_boundary_arn: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManagedPolicy {
    policy_name: Spanned<String>,
    #[serde(default)]
    default_version_id: Option<String>,
    #[serde(default)]
    policy_version_list: Vec<Version>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Version {
    document: Spanned<serde_json::Value>,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    is_default_version: bool,
}

/// Reads `text` (the file `file`) into bundle parts; problems go to
/// `problems`.
pub(crate) fn parts(file: &str, text: &str, problems: &mut Vec<Diagnostic>) -> Option<Parts> {
    let details: Details =
        match serde_saphyr::from_str_with_options(text, super::load::yaml_options()) {
            Ok(d) => d,
            Err(e) => {
                let mut d = super::load::yaml_diagnostic(file, &e);
                d.message.push_str(
                    " (expected the output of `aws iam get-account-authorization-details`)",
                );
                problems.push(d);
                return None;
            }
        };
    // The account and partition, from the first ARN of the file.
    let first_arn = details
        .user_detail_list
        .iter()
        .map(|u| &u.arn)
        .chain(details.role_detail_list.iter().map(|r| &r.arn))
        .next();
    let Some(first_arn) = first_arn else {
        problems.push(Diagnostic::file(file, "no user or role: the account cannot be told (is this the output of `aws iam get-account-authorization-details`?)"));
        return None;
    };
    let Some([_, partition, _, _, account, _]) = iamd_policy::arn::split(&first_arn.value) else {
        problems.push(Diagnostic::new(
            &yaml_at(file, &first_arn.referenced),
            format!("`{}` is not an ARN", first_arn.value),
        ));
        return None;
    };
    let account_spanned = Spanned::new(account.to_owned(), first_arn.referenced, first_arn.defined);
    let partition_spanned = Spanned::new(
        partition.to_owned(),
        first_arn.referenced,
        first_arn.defined,
    );

    let decode = |doc: &Spanned<serde_json::Value>,
                  problems: &mut Vec<Diagnostic>|
     -> RawDocument {
        match &doc.value {
            serde_json::Value::String(s) => {
                let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
                match serde_json::from_str(&decoded) {
                    Ok(v) => Spanned::new(v, doc.referenced, doc.defined),
                    Err(e) => {
                        problems.push(Diagnostic::new(
                            &yaml_at(file, &doc.referenced),
                            format!("a URL-encoded policy document is not JSON once decoded: {e}"),
                        ));
                        Spanned::new(serde_json::Value::Null, doc.referenced, doc.defined)
                    }
                }
            }
            _ => doc.clone(),
        }
    };
    let inline =
        |list: &[Inline], problems: &mut Vec<Diagnostic>| -> BTreeMap<String, RawDocument> {
            list.iter()
                .map(|i| (i.policy_name.clone(), decode(&i.policy_document, problems)))
                .collect()
        };
    let attached = |list: &[Attached]| {
        list.iter()
            .map(|a| a.policy_arn.clone())
            .collect::<Vec<_>>()
    };
    let tags = |list: &[Tag]| {
        list.iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect::<BTreeMap<_, _>>()
    };

    let users: Vec<RawUser> = details
        .user_detail_list
        .iter()
        .map(|u| RawUser {
            name: u.user_name.clone(),
            path: u.path.clone(),
            groups: u.group_list.clone(),
            policies: attached(&u.attached_managed_policies),
            inline: inline(&u.user_policy_list, problems),
            boundary: u
                .permissions_boundary
                .as_ref()
                .map(|b| b.permissions_boundary_arn.clone()),
            tags: tags(&u.tags),
        })
        .collect();
    let groups: Vec<RawGroup> = details
        .group_detail_list
        .iter()
        .map(|g| RawGroup {
            name: g.group_name.clone(),
            path: g.path.clone(),
            policies: attached(&g.attached_managed_policies),
            inline: inline(&g.group_policy_list, problems),
        })
        .collect();
    let roles: Vec<RawRole> = details
        .role_detail_list
        .iter()
        .map(|r| RawRole {
            name: r.role_name.clone(),
            path: r.path.clone(),
            trust: decode(&r.assume_role_policy_document, problems),
            policies: attached(&r.attached_managed_policies),
            inline: inline(&r.role_policy_list, problems),
            boundary: r
                .permissions_boundary
                .as_ref()
                .map(|b| b.permissions_boundary_arn.clone()),
            tags: tags(&r.tags),
            max_session_duration: r.max_session_duration.clone(),
        })
        .collect();
    let mut managed = Vec::new();
    for p in &details.policies {
        let name = &p.policy_name.value;
        let default = p.policy_version_list.iter().find(|v| {
            v.is_default_version || (v.version_id.is_some() && v.version_id == p.default_version_id)
        });
        let Some(version) = default else {
            problems.push(Diagnostic::new(
                &yaml_at(file, &p.policy_name.referenced),
                format!("managed policy `{name}` has no default version in `PolicyVersionList`"),
            ));
            continue;
        };
        let doc = decode(&version.document, problems);
        managed.push(DocumentSource {
            file: file.to_owned(),
            name: name.clone(),
            text: doc.value.to_string(),
            at: Some(yaml_at(file, &version.document.referenced)),
        });
    }
    Some(Parts {
        user_files: Vec::new(),
        account_file: file.to_owned(),
        account: RawAccount {
            account: account_spanned,
            partition: Some(partition_spanned),
            revision: None,
            organization: Vec::new(),
            resource_controls: Vec::new(),
            organization_id: None,
            limits: RawLimits::default(),
            search: Default::default(),
        },
        users: users.into_iter().map(|u| (file.to_owned(), u)).collect(),
        groups: groups.into_iter().map(|g| (file.to_owned(), g)).collect(),
        roles: roles
            .into_iter()
            .map(|r| (file.to_owned(), r, None))
            .collect(),
        role_files: Vec::new(),
        resources: Vec::new(),
        managed,
        scps: Vec::new(),
        rcps: Vec::new(),
        aws: true,
    })
}
