//! The `Principal` and `NotPrincipal` elements of resource-based policies.

use super::error::Problems;
use super::raw::{RawPrincipal, Spanned};
use crate::arn::{self, Principal, PrincipalKind};

/// How a resource-based policy statement names the principal it matched.
/// The order matters: a stronger grant is less limited by the principal's
/// own policies (AWS IAM User Guide, policy evaluation within one account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// By the principal's account: the account must also grant it through
    /// identity policies.
    Account,
    /// By the role's ARN, for the role or one of its sessions: limited by the
    /// role's permissions boundary and session policy.
    Role,
    /// By the principal's own ARN (user, session, federated user), a service
    /// name, or `*`: not limited by implicit denies of the principal's own
    /// policies.
    Direct,
}

/// A compiled `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Principals {
    pub negated: bool,
    any: bool,
    accounts: Vec<Box<str>>,
    arns: Vec<Box<str>>,
    services: Vec<Box<str>>,
    federated: Vec<Box<str>>,
    canonical: Vec<Box<str>>,
}

const TYPES: &[&str] = &["AWS", "Service", "Federated", "CanonicalUser"];

impl Principals {
    pub(crate) fn compile(
        raw: &Spanned<RawPrincipal>,
        negated: bool,
        st: Option<usize>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let mut p = Self {
            negated,
            ..Self::default()
        };
        let entries = match &raw.v {
            RawPrincipal::Any => {
                p.any = true;
                return Some(p);
            }
            RawPrincipal::Map(entries) => entries,
        };
        if entries.is_empty() {
            problems.add(
                raw.at,
                st,
                "the principal element is empty: name at least one principal",
            );
        }
        for (ty, values) in entries {
            if values.is_empty() {
                problems.add(
                    ty.at,
                    st,
                    format!("principal type `{}` lists no principals", ty.v),
                );
            }
            for v in values {
                let text = v.v.as_str();
                if text == "*"
                    && matches!(
                        ty.v.as_str(),
                        "AWS" | "Service" | "Federated" | "CanonicalUser"
                    )
                {
                    p.any |= ty.v == "AWS";
                    if ty.v != "AWS" {
                        problems.add(v.at, st, format!("`*` is allowed only as `\"Principal\": \"*\"` or `{{\"AWS\": \"*\"}}`, not under `{}`", ty.v));
                    }
                    continue;
                }
                if text.contains('*') || text.contains('?') {
                    problems.add(
                        v.at,
                        st,
                        format!("principal `{text}`: wildcards are not allowed in principals except `*` alone; use a condition on `aws:PrincipalArn` with `ArnLike` instead"),
                    );
                    continue;
                }
                match ty.v.as_str() {
                    "AWS" => match aws_principal(text) {
                        Ok(AwsPrincipal::Account(a)) => p.accounts.push(a.into()),
                        Ok(AwsPrincipal::Arn) => p.arns.push(text.into()),
                        Err(e) => problems.add(v.at, st, format!("principal `{text}`: {e}")),
                    },
                    "Service" => p.services.push(text.into()),
                    "Federated" => p.federated.push(text.into()),
                    "CanonicalUser" => p.canonical.push(text.into()),
                    other => {
                        let hint = match TYPES.iter().find(|t| t.eq_ignore_ascii_case(other)) {
                            Some(t) => format!("write `{t}`"),
                            None => {
                                "use `AWS`, `Service`, `Federated` or `CanonicalUser`".to_owned()
                            }
                        };
                        problems.add(
                            ty.at,
                            st,
                            format!("unknown principal type `{other}`: {hint}"),
                        );
                        break;
                    }
                }
            }
        }
        Some(p)
    }

    /// How this element names `who`, if it does.
    pub(crate) fn grant(&self, who: &Principal) -> Option<Grant> {
        if self.any {
            return Some(Grant::Direct);
        }
        let has = |list: &[Box<str>], s: &str| list.iter().any(|x| **x == *s);
        match who.kind() {
            PrincipalKind::Anonymous => None,
            PrincipalKind::Service => has(&self.services, who.name()).then_some(Grant::Direct),
            PrincipalKind::WebIdentity => who
                .provider()
                .is_some_and(|p| has(&self.federated, p))
                .then_some(Grant::Direct),
            kind => {
                if has(&self.arns, who.arn()) {
                    return Some(if kind == PrincipalKind::Role {
                        Grant::Role
                    } else {
                        Grant::Direct
                    });
                }
                if who.role_arn().is_some_and(|r| has(&self.arns, r)) {
                    return Some(Grant::Role);
                }
                has(&self.accounts, who.account()).then_some(Grant::Account)
            }
        }
    }

    /// For `NotPrincipal`: whether `who` is left out of the statement. AWS
    /// checks the account, then the role, then the session, so each of them
    /// must be listed for the principal to be left out.
    pub(crate) fn excludes(&self, who: &Principal) -> bool {
        if self.any {
            return true;
        }
        let has = |list: &[Box<str>], s: &str| list.iter().any(|x| **x == *s);
        match who.kind() {
            PrincipalKind::Anonymous => false,
            PrincipalKind::Service => has(&self.services, who.name()),
            PrincipalKind::WebIdentity => who.provider().is_some_and(|p| has(&self.federated, p)),
            PrincipalKind::Root => has(&self.accounts, who.account()),
            _ => {
                has(&self.accounts, who.account())
                    && has(&self.arns, who.arn())
                    && who.role_arn().is_none_or(|r| has(&self.arns, r))
            }
        }
    }
}

enum AwsPrincipal<'a> {
    Account(&'a str),
    Arn,
}

fn aws_principal(text: &str) -> Result<AwsPrincipal<'_>, &'static str> {
    if arn::is_account_id(text) {
        return Ok(AwsPrincipal::Account(text));
    }
    let Some([_, _, service, _, account, resource]) = arn::split(text) else {
        return Err(
            "expected `*`, an account id, or the ARN of an account root, user, role, role session or federated user",
        );
    };
    if account.is_empty() {
        return Err("the ARN has no account id");
    }
    match (service, resource) {
        ("iam", "root") => Ok(AwsPrincipal::Account(account)),
        ("iam", r) if r.starts_with("user/") || r.starts_with("role/") => Ok(AwsPrincipal::Arn),
        ("iam", r) if r.starts_with("group/") => Err(
            "groups cannot be principals: name the users, or grant through the group's own policies",
        ),
        ("sts", r) if r.starts_with("assumed-role/") || r.starts_with("federated-user/") => {
            Ok(AwsPrincipal::Arn)
        }
        _ => Err("expected the ARN of an account root, user, role, role session or federated user"),
    }
}
