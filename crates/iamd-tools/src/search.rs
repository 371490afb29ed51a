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
    bundle
        .known()
        .principals
        .iter()
        .filter(|p| allowed(bundle, p, action, resource, context, now))
        .map(|p| &**p)
        .collect()
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
    bundle
        .known()
        .actions
        .iter()
        .filter(|a| allowed(bundle, principal, a, resource, context, now))
        .map(|a| &**a)
        .collect()
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
