//! The decision: one synchronous function over the layers of policies that
//! apply to a request, with AWS's documented order. It knows nothing of
//! files, gRPC or async runtimes, and allocates nothing on its own: the
//! caller passes the vector that receives the determining statements.
//!
//! Order (AWS IAM User Guide, "Policy evaluation logic"):
//! 1. an explicit `Deny` in any layer decides (`EXPLICIT_DENY`);
//! 2. every SCP level, root to account, must allow (RCP levels only deny:
//!    `RCPFullAWSAccess` allows at each);
//! 3. a resource-based policy of the same account may allow on its own,
//!    depending on how it names the principal ([`Grant`]);
//! 4. otherwise the identity policies must allow, and the permissions
//!    boundary and the session policy, when present, must allow too;
//! 5. across accounts, both the resource policy and the principal's own
//!    policies must allow.
//!
//! Anything else is an `IMPLICIT_DENY`, with the layer that lacked an allow.

mod explain;
mod index;

pub use explain::{ConditionTrace, Explanation, NearestAllow, StatementTrace, explain, trace};
pub use index::{IndexStats, StatementSet};

use crate::arn::{self, Principal, PrincipalKind};
use crate::context::Context;
use crate::policy::{Effect, Grant, Statement};

/// One authorization request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// `service:Action`.
    pub action: &'a str,
    /// The resource ARN (or `*`): see [`Request::resource`].
    resource: &'a str,
    /// `resource` split, once for the whole decision (`None`: not an ARN).
    arn: Option<arn::Arn<'a>>,
    /// The account that owns the resource; `None`: the resource ARN's
    /// account, or the principal's when the ARN has none.
    pub resource_account: Option<&'a str>,
    /// Condition keys and values.
    pub context: &'a Context,
}

impl<'a> Request<'a> {
    /// A request whose resource belongs to the account in its ARN (or to the
    /// principal's account when the ARN names none).
    pub fn new(
        principal: &'a Principal,
        action: &'a str,
        resource: &'a str,
        context: &'a Context,
    ) -> Self {
        Self {
            principal,
            action,
            resource,
            arn: arn::Arn::parse(resource),
            resource_account: None,
            context,
        }
    }

    /// The same request, on a resource that belongs to `account` (`None`:
    /// the resource ARN's account, or the principal's).
    pub fn with_resource_account(mut self, account: Option<&'a str>) -> Self {
        self.resource_account = account;
        self
    }

    /// The resource ARN (or `*`).
    pub fn resource(&self) -> &'a str {
        self.resource
    }

    /// The account that owns the resource, when known: the one given, else
    /// the resource ARN's, else the principal's.
    pub fn resource_account(&self) -> Option<&'a str> {
        self.resource_account
            .filter(|a| !a.is_empty())
            .or_else(|| self.arn.map(|a| a.parts[4]).filter(|a| !a.is_empty()))
            .or_else(|| Some(self.principal.account()).filter(|a| !a.is_empty()))
    }

    /// The resource ARN split into its components; `None` when the
    /// resource is not an ARN (`*`).
    pub fn resource_arn(&self) -> Option<&arn::Arn<'a>> {
        self.arn.as_ref()
    }
}

/// The policies that apply to a request, by layer. An absent layer does not
/// limit the decision (no boundary, no session policy, no SCPs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layers<'a> {
    /// The principal's identity policies (a user's own and its groups', or a
    /// role's).
    pub identity: Option<&'a StatementSet>,
    /// The resource's resource-based policy (a role's trust policy for
    /// `sts:AssumeRole`).
    pub resource: Option<&'a StatementSet>,
    /// The principal's permissions boundary.
    pub boundary: Option<&'a StatementSet>,
    /// The session policy of a role or federated-user session.
    pub session: Option<&'a StatementSet>,
    /// SCPs by level, from the organization root down to the account.
    pub scps: &'a [StatementSet],
    /// The resource's account's RCPs by level, from the organization root
    /// down to the account (empty when the resource is not in an account
    /// of the organization). Only their denies count: `RCPFullAWSAccess`
    /// is implicit at every level.
    pub rcps: &'a [StatementSet],
}

impl<'a> Layers<'a> {
    /// Only identity policies: no resource policy, boundary, session policy
    /// or SCP.
    pub fn identity(set: &'a StatementSet) -> Self {
        Self {
            identity: Some(set),
            ..Self::default()
        }
    }

    /// The set of one layer.
    pub fn set(&self, layer: Layer) -> Option<&'a StatementSet> {
        match layer {
            Layer::Identity => self.identity,
            Layer::Resource => self.resource,
            Layer::Boundary => self.boundary,
            Layer::Session => self.session,
            Layer::Scp(level) => self.scps.get(usize::from(level)),
            Layer::Rcp(level) => self.rcps.get(usize::from(level)),
        }
    }

    /// Each layer present, in evaluation order: SCP levels from the root,
    /// RCP levels from the root, resource, identity, boundary, session. Off
    /// the hot path (it allocates).
    pub fn in_order(&self) -> Vec<(Layer, &'a StatementSet)> {
        let level = |i: usize| u16::try_from(i).unwrap_or(u16::MAX);
        let mut sets: Vec<(Layer, &'a StatementSet)> = self
            .scps
            .iter()
            .enumerate()
            .map(|(i, s)| (Layer::Scp(level(i)), s))
            .chain(
                self.rcps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (Layer::Rcp(level(i)), s)),
            )
            .collect();
        for (set, layer) in [
            (self.resource, Layer::Resource),
            (self.identity, Layer::Identity),
            (self.boundary, Layer::Boundary),
            (self.session, Layer::Session),
        ] {
            if let Some(set) = set {
                sets.push((layer, set));
            }
        }
        sets
    }

    /// The policy and statement a determining statement points at.
    pub fn statement(&self, m: &Determining) -> Option<(&'a crate::policy::Policy, &'a Statement)> {
        let policy = self.set(m.layer)?.policies().get(m.policy as usize)?;
        Some((policy, policy.statements().get(m.statement as usize)?))
    }
}

/// A layer of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The SCP level at this position (0 is the organization root).
    Scp(u16),
    /// The RCP level at this position (0 is the organization root).
    Rcp(u16),
    /// The resource-based policy.
    Resource,
    /// The identity policies.
    Identity,
    /// The permissions boundary.
    Boundary,
    /// The session policy.
    Session,
}

impl Layer {
    /// The layer's name as answers write it (`identity`, `scp[1]`...):
    /// borrowed but for SCP levels.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Scp(_) | Self::Rcp(_) => self.to_string().into(),
            Self::Resource => "resource".into(),
            Self::Identity => "identity".into(),
            Self::Boundary => "boundary".into(),
            Self::Session => "session".into(),
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scp(level) => write!(f, "scp[{level}]"),
            Self::Rcp(level) => write!(f, "rcp[{level}]"),
            other => f.write_str(&other.name()),
        }
    }
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Allowed.
    Allow,
    /// Denied by a matching `Deny` statement.
    ExplicitDeny,
    /// Not allowed: no layer denied, but a layer that must allow did not.
    ImplicitDeny,
}

/// A statement that determined a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Determining {
    /// The statement's layer.
    pub layer: Layer,
    /// The policy's position in that layer's [`StatementSet`].
    pub policy: u32,
    /// The statement's position in its policy.
    pub statement: u32,
    /// The statement's effect.
    pub effect: Effect,
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or denied, and how.
    pub outcome: Outcome,
    /// For an implicit deny, the layer that lacked an allow; `None` for
    /// other outcomes.
    pub implicit_deny_layer: Option<Layer>,
}

impl Decision {
    fn allow() -> Self {
        Self {
            outcome: Outcome::Allow,
            implicit_deny_layer: None,
        }
    }

    fn implicit(layer: Layer) -> Self {
        Self {
            outcome: Outcome::ImplicitDeny,
            implicit_deny_layer: Some(layer),
        }
    }
}

/// The actions whose resource-based policy must allow on its own account
/// (role trust policies): identity permissions alone never suffice.
const TRUST_ACTIONS: &[&str] = &[
    "sts:assumerole",
    "sts:assumerolewithsaml",
    "sts:assumerolewithwebidentity",
    "sts:tagsession",
    "sts:setsourceidentity",
];

#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    allow: bool,
    deny: bool,
    grant: Option<Grant>,
}

struct Input<'r> {
    req: &'r Request<'r>,
    folded_action: &'r str,
    arn: Option<arn::Arn<'r>>,
    probe: index::Probe,
    has_boundary: bool,
}

/// Decides `req` against `layers`. `matched` is cleared, then receives the
/// determining statements: the matching `Deny` statements of an explicit
/// deny, the matching identity and resource `Allow` statements of an allow,
/// nothing for an implicit deny.
pub fn evaluate(
    layers: &Layers<'_>,
    req: &Request<'_>,
    matched: &mut Vec<Determining>,
) -> Decision {
    matched.clear();
    with_input(layers, req, |input| decide_with(layers, input, matched))
}

/// Every statement of every layer that matches `req` (action, resource,
/// principal and conditions), whatever the decision: what `iamd test`
/// counts as exercised. `out` is cleared first.
pub fn matching(layers: &Layers<'_>, req: &Request<'_>, out: &mut Vec<Determining>) {
    out.clear();
    with_input(layers, req, |input| {
        for (layer, set) in layers.in_order() {
            scan(set, layer, input, true, out);
        }
    });
}

fn with_input<R>(layers: &Layers<'_>, req: &Request<'_>, f: impl FnOnce(&Input<'_>) -> R) -> R {
    let mut buf = [0u8; 128];
    let folded = index::lowercase_action(req.action, &mut buf);
    let arn = req.arn;
    let input = Input {
        req,
        folded_action: &folded,
        arn,
        probe: index::Probe::new(arn.as_ref()),
        has_boundary: layers.boundary.is_some(),
    };
    f(&input)
}

fn decide_with(layers: &Layers<'_>, input: &Input<'_>, matched: &mut Vec<Determining>) -> Decision {
    let req = input.req;
    let kind = req.principal.kind();
    let principal_has_account = !matches!(
        kind,
        PrincipalKind::Anonymous | PrincipalKind::Service | PrincipalKind::WebIdentity
    );

    let mut any_deny = false;
    let mut scp_missing = None;
    if principal_has_account {
        for (level, set) in layers.scps.iter().enumerate() {
            let layer = Layer::Scp(u16::try_from(level).unwrap_or(u16::MAX));
            let r = scan(set, layer, input, false, matched);
            any_deny |= r.deny;
            if !r.allow && scp_missing.is_none() {
                scp_missing = Some(layer);
            }
        }
    }
    // RCPs guard the resource whoever asks (service principals and
    // anonymous callers included); only their denies count.
    for (level, set) in layers.rcps.iter().enumerate() {
        let layer = Layer::Rcp(u16::try_from(level).unwrap_or(u16::MAX));
        any_deny |= scan(set, layer, input, false, matched).deny;
    }
    let resource = layers
        .resource
        .map(|s| scan(s, Layer::Resource, input, true, matched));
    let identity = layers
        .identity
        .map(|s| scan(s, Layer::Identity, input, true, matched));
    let boundary = layers
        .boundary
        .map(|s| scan(s, Layer::Boundary, input, false, matched));
    let session = layers
        .session
        .map(|s| scan(s, Layer::Session, input, false, matched));
    any_deny |= [resource, identity, boundary, session]
        .iter()
        .flatten()
        .any(|r| r.deny);

    if any_deny {
        matched.retain(|d| d.effect == Effect::Deny);
        return Decision {
            outcome: Outcome::ExplicitDeny,
            implicit_deny_layer: None,
        };
    }
    matched.retain(|d| d.effect == Effect::Allow);
    let decision = decide(
        req,
        input.arn.as_ref(),
        scp_missing,
        resource,
        identity,
        boundary,
        session,
    );
    if decision.outcome != Outcome::Allow {
        matched.clear();
    }
    decision
}

fn decide(
    req: &Request<'_>,
    arn: Option<&arn::Arn<'_>>,
    scp_missing: Option<Layer>,
    resource: Option<Scan>,
    identity: Option<Scan>,
    boundary: Option<Scan>,
    session: Option<Scan>,
) -> Decision {
    if let Some(layer) = scp_missing {
        return Decision::implicit(layer);
    }
    let p = req.principal;
    let kind = p.kind();
    let is_root = kind == PrincipalKind::Root;
    // Limits of the principal's own policies: the boundary, then the session
    // policy. The root user has neither. A federated-user session with no
    // session policy has no permissions.
    let limits = || -> Option<Layer> {
        if is_root {
            return None;
        }
        if boundary.is_some_and(|b| !b.allow) {
            return Some(Layer::Boundary);
        }
        match session {
            Some(s) if kind.is_session() && !s.allow => Some(Layer::Session),
            None if kind == PrincipalKind::FederatedUser => Some(Layer::Session),
            _ => None,
        }
    };
    let identity_allows = is_root || identity.is_some_and(|i| i.allow);
    let own = || -> Decision {
        if !identity_allows {
            return Decision::implicit(Layer::Identity);
        }
        match limits() {
            Some(layer) => Decision::implicit(layer),
            None => Decision::allow(),
        }
    };

    let grant = resource.and_then(|r| r.grant);
    let resource_account = req
        .resource_account
        .filter(|a| !a.is_empty())
        .or_else(|| arn.map(|a| a.parts[4]).filter(|a| !a.is_empty()));
    let same_account = p.account().is_empty() || resource_account.is_none_or(|a| a == p.account());

    if !same_account {
        // Both sides must allow: the resource account through its policy
        // (naming the principal or its account), the principal's account
        // through the principal's own policies.
        if grant.is_none() {
            return Decision::implicit(Layer::Resource);
        }
        return own();
    }
    match grant {
        Some(Grant::Direct) => Decision::allow(),
        Some(Grant::Role) => match limits() {
            Some(layer) => Decision::implicit(layer),
            None => Decision::allow(),
        },
        Some(Grant::Account) => own(),
        None => {
            if resource_policy_required(req.action, arn) {
                return Decision::implicit(Layer::Resource);
            }
            own()
        }
    }
}

/// Role trust policies (and KMS key policies) must allow the principal
/// themselves: without their allow, identity policies grant nothing.
fn resource_policy_required(action: &str, arn: Option<&arn::Arn<'_>>) -> bool {
    let Some(arn::Arn {
        parts: [_, _, service, _, _, resource],
        ..
    }) = arn
    else {
        return false;
    };
    let service = *service;
    let trust = service == "iam"
        && resource.starts_with("role/")
        && TRUST_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action));
    trust || service == "kms"
}

fn scan(
    set: &StatementSet,
    layer: Layer,
    input: &Input<'_>,
    record_allows: bool,
    matched: &mut Vec<Determining>,
) -> Scan {
    let mut out = Scan::default();
    let req = input.req;
    set.for_each_candidate(
        input.folded_action,
        &input.probe,
        |policy, st, action_matched| {
            if !action_matched && !st.matches_action(req.action) {
                return;
            }
            if !st.matches_resource(input.arn.as_ref(), req.context) {
                return;
            }
            let grant = match principal_match(st, req.principal, input.has_boundary) {
                PrincipalMatch::No => return,
                PrincipalMatch::Yes(g) => g,
            };
            if !st.conditions_hold(req.context) {
                return;
            }
            let effect = st.effect();
            match effect {
                Effect::Deny => out.deny = true,
                Effect::Allow => {
                    out.allow = true;
                    out.grant = out.grant.max(grant);
                }
            }
            if effect == Effect::Deny || record_allows {
                matched.push(Determining {
                    layer,
                    policy,
                    statement: st.index(),
                    effect,
                });
            }
        },
    );
    out
}

enum PrincipalMatch {
    No,
    Yes(Option<Grant>),
}

fn principal_match(st: &Statement, who: &Principal, has_boundary: bool) -> PrincipalMatch {
    match &st.principals {
        None => PrincipalMatch::Yes(None),
        // NotPrincipal (Deny only): applies to everyone it does not leave
        // out, and always to a principal with a permissions boundary.
        Some(p) if p.negated => {
            if has_boundary || !p.excludes(who) {
                PrincipalMatch::Yes(None)
            } else {
                PrincipalMatch::No
            }
        }
        Some(p) => match p.grant(who) {
            Some(g) => PrincipalMatch::Yes(Some(g)),
            None => PrincipalMatch::No,
        },
    }
}

#[cfg(test)]
mod tests;
