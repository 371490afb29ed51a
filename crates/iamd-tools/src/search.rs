//! Who can, what can: the questions auditors ask, answered offline from a
//! bundle (`iamd who-can`, `iamd what-can`), with the candidates AuthZEN's
//! search uses ([`iamd_bundle::Known`]), each checked by a real
//! evaluation.

use iamd_bundle::Bundle;
use iamd_bundle::query::Query;
use iamd_policy::context::Context;

/// The bundle's principals (`user/NAME`, `role/NAME`) allowed `action` on
/// `resource` with `context`, in name order.
pub fn who_can<'b>(
    bundle: &'b Bundle,
    action: &str,
    resource: &str,
    context: &Context,
    now: jiff::Timestamp,
) -> Vec<&'b str> {
    allowed_of(&bundle.known().principals, |p| {
        allowed(bundle, p, action, resource, context, now)
    })
}

/// The actions the bundle knows (named without a wildcard by its policies,
/// or declared under `search:`) that `principal` may do on `resource`
/// with `context`, in name order.
pub fn what_can<'b>(
    bundle: &'b Bundle,
    principal: &str,
    resource: &str,
    context: &Context,
    now: jiff::Timestamp,
) -> Vec<&'b str> {
    allowed_of(&bundle.known().actions, |a| {
        allowed(bundle, principal, a, resource, context, now)
    })
}

/// The `names` for which `allowed` says yes, in order.
fn allowed_of(names: &[Box<str>], allowed: impl Fn(&str) -> bool) -> Vec<&str> {
    names.iter().map(|n| &**n).filter(|n| allowed(n)).collect()
}

fn allowed(
    bundle: &Bundle,
    principal: &str,
    action: &str,
    resource: &str,
    context: &Context,
    now: jiff::Timestamp,
) -> bool {
    let query = Query {
        principal: principal.to_owned(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        resource_account: None,
        context: context.clone(),
    };
    bundle.query(&query, now, false).allowed()
}
