//! ARNs and the principals that make requests.

use std::fmt;

/// Splits an ARN into its six colon-separated components:
/// `arn:partition:service:region:account-id:resource`. The resource
/// component keeps any further `:` and `/`. `None` when `text` is not an ARN.
pub fn split(text: &str) -> Option<[&str; 6]> {
    Arn::parse(text).map(|a| a.parts)
}

/// An ARN split into its six components, with the text from the partition
/// to the account (`aws:s3:us-east-1:111122223333`) kept whole so that a
/// pattern whose first components are all literal compares it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `arn`, partition, service, region, account, resource.
    pub parts: [&'a str; 6],
    /// Partition to account, with their colons.
    pub head: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits `text`; `None` when it is not an ARN.
    pub fn parse(text: &'a str) -> Option<Self> {
        // This runs once per decision and per ARN condition value: a plain
        // search for each colon in turn (the generic `splitn` searcher is
        // slower on strings this short).
        let bytes = text.as_bytes();
        if bytes.get(..4) != Some(b"arn:".as_slice()) {
            return None;
        }
        let mut cuts = [3usize; 5];
        let mut from = 4;
        for cut in cuts.iter_mut().skip(1) {
            let at = from + bytes.get(from..)?.iter().position(|&b| b == b':')?;
            *cut = at;
            from = at + 1;
        }
        Some(Self {
            parts: cut_at(text, cuts)?,
            head: text.get(cuts[0] + 1..cuts[4])?,
        })
    }
}

/// Cuts `text` at the byte positions of its first five colons.
pub(crate) fn cut_at(text: &str, cuts: [usize; 5]) -> Option<[&str; 6]> {
    let [a, b, c, d, e] = cuts;
    Some([
        text.get(..a)?,
        text.get(a + 1..b)?,
        text.get(b + 1..c)?,
        text.get(c + 1..d)?,
        text.get(d + 1..e)?,
        text.get(e + 1..)?,
    ])
}

/// What kind of principal makes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The account's root user (`arn:aws:iam::111122223333:root`).
    Root,
    /// An IAM user (`arn:aws:iam::111122223333:user/alice`).
    User,
    /// A role acting as itself (`arn:aws:iam::111122223333:role/app`): how
    /// iamd names a workload that holds a role without naming a session.
    Role,
    /// A role session (`arn:aws:sts::111122223333:assumed-role/app/session`).
    AssumedRole,
    /// A federated user session (`arn:aws:sts::111122223333:federated-user/bob`).
    FederatedUser,
    /// A service principal (`ec2.amazonaws.com`).
    Service,
    /// A web identity: a SPIFFE ID (`spiffe://acme.example/ns/docs/sa/reader`)
    /// asking to act as a role, matched by a `Federated` principal that names
    /// its trust domain (`spiffe://acme.example`). It has no account and no
    /// policies of its own.
    WebIdentity,
    /// An anonymous caller (`*` or `anonymous`).
    Anonymous,
}

impl PrincipalKind {
    /// The value of `aws:PrincipalType` for this kind.
    pub fn principal_type(self) -> &'static str {
        match self {
            Self::Root => "Account",
            Self::User => "User",
            Self::Role | Self::AssumedRole => "AssumedRole",
            Self::FederatedUser => "FederatedUser",
            Self::Service => "Service",
            Self::WebIdentity => "WebIdentity",
            Self::Anonymous => "Anonymous",
        }
    }

    /// Whether the principal acts with session credentials, to which session
    /// policies apply.
    pub fn is_session(self) -> bool {
        matches!(self, Self::AssumedRole | Self::FederatedUser)
    }
}

/// A principal that makes a request, with the facts that evaluation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    kind: PrincipalKind,
    arn: String,
    partition: String,
    account: String,
    name: String,
    role_arn: Option<String>,
}

/// A principal that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal `{text}` is not valid: {reason}")]
pub struct PrincipalError {
    text: String,
    reason: &'static str,
}

impl Principal {
    /// Reads a principal: an ARN of a user, role, role session, federated
    /// user or root; a 12-digit account id (the account's root); a service
    /// name (`ec2.amazonaws.com`); or `*`/`anonymous`.
    pub fn parse(text: &str) -> Result<Self, PrincipalError> {
        let err = |reason| PrincipalError {
            text: text.to_owned(),
            reason,
        };
        if text == "*" || text.eq_ignore_ascii_case("anonymous") {
            return Ok(Self {
                kind: PrincipalKind::Anonymous,
                arn: "*".into(),
                partition: String::new(),
                account: String::new(),
                name: String::new(),
                role_arn: None,
            });
        }
        if is_account_id(text) {
            return Ok(Self::root("aws", text));
        }
        // An OIDC web identity: its provider's ARN and its subject,
        // `arn:aws:iam::ACCOUNT:oidc-provider/HOST#SUB` (how iamd's STS
        // names the holder of a verified OIDC token).
        if let Some((provider, sub)) = text.split_once('#')
            && provider.starts_with("arn:")
            && provider.contains(":oidc-provider/")
        {
            let host = provider
                .split_once(":oidc-provider/")
                .map_or("", |(_, h)| h);
            if host.is_empty() || sub.is_empty() {
                return Err(err(
                    "an OIDC web identity is `arn:aws:iam::ACCOUNT:oidc-provider/HOST#SUBJECT`",
                ));
            }
            return Ok(Self {
                kind: PrincipalKind::WebIdentity,
                arn: text.into(),
                partition: String::new(),
                account: String::new(),
                name: sub.into(),
                role_arn: None,
            });
        }
        if let Some(rest) = text.strip_prefix("spiffe://") {
            let domain = rest.split('/').next().unwrap_or("");
            if domain.is_empty() || rest.len() == domain.len() {
                return Err(err(
                    "a SPIFFE ID is `spiffe://TRUST_DOMAIN/PATH`, as in `spiffe://acme.example/ns/docs/sa/reader`",
                ));
            }
            return Ok(Self {
                kind: PrincipalKind::WebIdentity,
                arn: text.into(),
                partition: String::new(),
                account: String::new(),
                name: text.into(),
                role_arn: None,
            });
        }
        let Some([_, partition, service, _, account, resource]) = split(text) else {
            if !text.contains(':') && text.contains('.') && !text.contains('/') {
                return Ok(Self {
                    kind: PrincipalKind::Service,
                    arn: text.into(),
                    partition: String::new(),
                    account: String::new(),
                    name: text.into(),
                    role_arn: None,
                });
            }
            return Err(err(
                "expected an ARN (`arn:aws:iam::111122223333:user/alice`), an account id, a service name or `*`",
            ));
        };
        if partition.is_empty() {
            return Err(err("the ARN has no partition"));
        }
        if account.is_empty() {
            return Err(err("the ARN has no account id"));
        }
        let mk = |kind, name: &str, role_arn| Self {
            kind,
            arn: text.into(),
            partition: partition.into(),
            account: account.into(),
            name: name.into(),
            role_arn,
        };
        match service {
            "iam" => {
                if resource == "root" {
                    return Ok(Self::root(partition, account));
                }
                let (kind, rest) = if let Some(rest) = resource.strip_prefix("user/") {
                    (PrincipalKind::User, rest)
                } else if let Some(rest) = resource.strip_prefix("role/") {
                    (PrincipalKind::Role, rest)
                } else {
                    return Err(err(
                        "an IAM principal ARN names `root`, `user/NAME` or `role/NAME`",
                    ));
                };
                let name = rest.rsplit('/').next().unwrap_or(rest);
                if name.is_empty() {
                    return Err(err("the ARN has no name"));
                }
                let role_arn = (kind == PrincipalKind::Role).then(|| text.to_owned());
                Ok(mk(kind, name, role_arn))
            }
            "sts" => {
                if let Some(rest) = resource.strip_prefix("assumed-role/") {
                    let Some((role, session)) = rest.split_once('/') else {
                        return Err(err("a role session ARN is `assumed-role/ROLE/SESSION`"));
                    };
                    if role.is_empty() || session.is_empty() || session.contains('/') {
                        return Err(err("a role session ARN is `assumed-role/ROLE/SESSION`"));
                    }
                    let role_arn = format!("arn:{partition}:iam::{account}:role/{role}");
                    Ok(mk(PrincipalKind::AssumedRole, session, Some(role_arn)))
                } else if let Some(name) = resource.strip_prefix("federated-user/") {
                    if name.is_empty() {
                        return Err(err("the ARN has no name"));
                    }
                    Ok(mk(PrincipalKind::FederatedUser, name, None))
                } else {
                    Err(err(
                        "an STS principal ARN names `assumed-role/ROLE/SESSION` or `federated-user/NAME`",
                    ))
                }
            }
            _ => Err(err("a principal ARN is an `iam` or `sts` ARN")),
        }
    }

    fn root(partition: &str, account: &str) -> Self {
        Self {
            kind: PrincipalKind::Root,
            arn: format!("arn:{partition}:iam::{account}:root"),
            partition: partition.into(),
            account: account.into(),
            name: String::new(),
            role_arn: None,
        }
    }

    /// For a web identity, its identity provider, which `Federated`
    /// principals name: the SPIFFE trust domain (`spiffe://acme.example`),
    /// or the OIDC provider's ARN
    /// (`arn:aws:iam::123456789012:oidc-provider/HOST`).
    pub fn provider(&self) -> Option<&str> {
        if self.kind != PrincipalKind::WebIdentity {
            return None;
        }
        if let Some((provider, _)) = self.arn.split_once('#') {
            return Some(provider);
        }
        let rest = self.arn.strip_prefix("spiffe://")?;
        let domain = rest.split('/').next()?;
        self.arn.get(..("spiffe://".len() + domain.len()))
    }

    /// The principal's kind.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// The principal's ARN (the service name for a service, `*` for anonymous).
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The principal's partition (empty for services and anonymous callers).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The principal's account (empty for services and anonymous callers).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The user, role session or federated user name; the service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// For a role or a role session, the role's ARN (`aws:PrincipalArn`).
    pub fn role_arn(&self) -> Option<&str> {
        self.role_arn.as_deref()
    }

    /// The value of `aws:PrincipalArn`: the role's ARN for a role session.
    pub fn principal_arn(&self) -> &str {
        self.role_arn.as_deref().unwrap_or(&self.arn)
    }

    /// For a role session, names its role by `role_arn`, the role's full
    /// ARN with its path (`arn:aws:iam::111122223333:role/service/indexer`):
    /// a session ARN leaves the path out, and `Principal` elements, trust
    /// policies and `aws:PrincipalArn` name the role with it.
    ///
    /// `role_arn` must be a role of the session's partition and account
    /// whose name (the last path segment) is the session's role name;
    /// otherwise the principal is left as it was and the error says why.
    pub fn with_role_arn(mut self, role_arn: &str) -> Result<Self, PrincipalError> {
        let err = |reason| PrincipalError {
            text: role_arn.to_owned(),
            reason,
        };
        if self.kind != PrincipalKind::AssumedRole {
            return Err(err("only a role session's role can be named by its ARN"));
        }
        let Some([_, partition, service, _, account, resource]) = split(role_arn) else {
            return Err(err(
                "the role's ARN is `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`",
            ));
        };
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(err(
                "the role's ARN is `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`",
            ));
        };
        if service != "iam" || partition != self.partition || account != self.account {
            return Err(err(
                "the role's ARN must be an `iam` ARN of the session's partition and account",
            ));
        }
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        if Some(name) != self.session_role_name() {
            return Err(err(
                "the role's name (the ARN's last segment) must be the session's role name",
            ));
        }
        self.role_arn = Some(role_arn.to_owned());
        Ok(self)
    }

    /// For a role session, the role's name as the session ARN gives it
    /// (`indexer` in `assumed-role/indexer/s1`).
    pub fn session_role_name(&self) -> Option<&str> {
        if self.kind != PrincipalKind::AssumedRole {
            return None;
        }
        let [_, _, _, _, _, resource] = split(&self.arn)?;
        resource.strip_prefix("assumed-role/")?.split('/').next()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// Whether `text` is a 12-digit account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_colons_in_the_resource() {
        assert_eq!(
            split("arn:aws:s3:::b/k:x"),
            Some(["arn", "aws", "s3", "", "", "b/k:x"])
        );
        assert_eq!(split("arn:aws:s3"), None);
        assert_eq!(split("nra:aws:s3:::b"), None);
        assert_eq!(split("arn:::::"), Some(["arn", "", "", "", "", ""]));
        assert_eq!(split("arn::::"), None);
        assert_eq!(split("arn"), None);
    }

    #[test]
    fn oidc_identities_are_web_identities_of_their_provider() {
        let p = Principal::parse(
            "arn:aws:iam::123456789012:oidc-provider/kubernetes.default.svc#system:serviceaccount:audit:shipper",
        )
        .unwrap();
        assert_eq!(p.kind(), PrincipalKind::WebIdentity);
        assert_eq!(
            p.provider(),
            Some("arn:aws:iam::123456789012:oidc-provider/kubernetes.default.svc")
        );
        assert_eq!(p.name(), "system:serviceaccount:audit:shipper");
        for bad in [
            "arn:aws:iam::123456789012:oidc-provider/#sub",
            "arn:aws:iam::123456789012:oidc-provider/host#",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spiffe_ids_are_web_identities_of_their_trust_domain() {
        let p = Principal::parse("spiffe://acme.example/ns/docs/sa/reader").unwrap();
        assert_eq!(p.kind(), PrincipalKind::WebIdentity);
        assert_eq!(p.provider(), Some("spiffe://acme.example"));
        assert_eq!(
            (p.account(), p.arn()),
            ("", "spiffe://acme.example/ns/docs/sa/reader")
        );
        for bad in ["spiffe://", "spiffe://acme.example", "spiffe:///ns/x"] {
            let e = Principal::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("a SPIFFE ID is `spiffe://TRUST_DOMAIN/PATH`"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            Principal::parse("arn:aws:iam::1:user/a")
                .unwrap()
                .provider(),
            None
        );
    }

    #[test]
    fn principals() {
        let u = Principal::parse("arn:aws:iam::111122223333:user/division/alice").unwrap();
        assert_eq!(
            (u.kind(), u.name(), u.account()),
            (PrincipalKind::User, "alice", "111122223333")
        );
        assert_eq!(u.principal_arn(), u.arn());
        let s = Principal::parse("arn:aws:sts::111122223333:assumed-role/app/s1").unwrap();
        assert_eq!(s.kind(), PrincipalKind::AssumedRole);
        assert_eq!(s.role_arn(), Some("arn:aws:iam::111122223333:role/app"));
        assert_eq!(s.principal_arn(), "arn:aws:iam::111122223333:role/app");
        let r = Principal::parse("111122223333").unwrap();
        assert_eq!(
            (r.kind(), r.arn()),
            (PrincipalKind::Root, "arn:aws:iam::111122223333:root")
        );
        assert_eq!(
            Principal::parse("arn:aws:iam::111122223333:root").unwrap(),
            r
        );
        assert_eq!(
            Principal::parse("ec2.amazonaws.com").unwrap().kind(),
            PrincipalKind::Service
        );
        assert_eq!(
            Principal::parse("*").unwrap().kind(),
            PrincipalKind::Anonymous
        );
        for bad in [
            "alice",
            "arn:aws:iam::111122223333:group/devs",
            "arn:aws:iam:::user/alice",
            "arn:aws:sts::111122223333:assumed-role/app",
            "arn:aws:s3:::bucket",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
    }
}
