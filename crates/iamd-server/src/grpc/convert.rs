//! Protobuf to the decider's terms and back.

use crate::decide::{Answer, Decider, NamedStatement, Question, Reasons, Refusal, Value};
use crate::reload::ReloadStatus;
use iamd_policy::eval::{Layer, Outcome};
use iamd_policy::policy::Effect;

use iamd_proto::pb;

/// Who signed an `AuthorizeRequest`'s `signed` request, and the facts of
/// the signature: they replace its `principal` and those context keys.
#[derive(Debug, Default)]
pub(crate) struct Signer {
    pub(crate) principal: String,
    pub(crate) facts: Vec<(&'static str, String)>,
    pub(crate) session: Option<crate::decide::SessionPolicy>,
    pub(crate) session_tags: Vec<(String, String)>,
}

/// The question an `AuthorizeRequest` asks (by `signer`, when it was
/// signed). The context's size is checked before it is converted.
pub(crate) fn question<'r>(
    req: &'r pb::AuthorizeRequest,
    decider: &Decider,
    signer: Option<&'r Signer>,
) -> Result<Question<'r>, Refusal> {
    let values = req
        .context
        .values()
        .map(|v| match &v.kind {
            Some(pb::context_value::Kind::Multi(list)) => list.values.len(),
            _ => 1,
        })
        .sum();
    decider.admit_context(req.context.len(), values)?;
    let mut context = Vec::with_capacity(req.context.len());
    for (key, value) in &req.context {
        let value = match &value.kind {
            Some(pb::context_value::Kind::Single(s)) => Value::Single(s),
            Some(pb::context_value::Kind::Multi(list)) => Value::Multi(&list.values),
            None => {
                return Err(Refusal::Invalid(format!(
                    "context key `{key}` has no value: set `single`, or `multi` (possibly empty)"
                )));
            }
        };
        let replaced =
            signer.is_some_and(|s| s.facts.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)));
        if !replaced {
            context.push((key.as_str(), value));
        }
    }
    if let Some(s) = signer {
        context.extend(s.facts.iter().map(|(k, v)| (*k, Value::Single(v))));
    }
    Ok(Question {
        principal: signer.map_or(req.principal.as_str(), |s| s.principal.as_str()),
        action: &req.action,
        resource: &req.resource,
        resource_account: Some(req.resource_account.as_str()).filter(|a| !a.is_empty()),
        context,
        explain: req.explain,
        session: signer.and_then(|s| s.session.as_ref()),
        session_tags: signer.map_or(&[], |s| &s.session_tags[..]),
    })
}

/// The `AuthorizeResponse` of a decision: the strings protobuf must own,
/// copied once.
pub(crate) fn response(d: &Answer<'_>) -> pb::AuthorizeResponse {
    response_with(d, true, None)
}

/// The statements of a batch that asked for `statement_table`, each once,
/// and where each is.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub statements: Vec<pb::DeterminingStatement>,
    /// By the address and length of the policy's name (in the pinned
    /// bundle), the statement's index and its layer: a name read twice is
    /// looked up without hashing its text. Two names of the same text at
    /// two addresses only make a second entry; an entry found is still
    /// compared by its text, so an address used again for another name
    /// can never name the wrong statement.
    places: rustc_hash::FxHashMap<(usize, usize, u32, Layer), u32>,
}

impl Table {
    /// The index of `s` in the table, added if it is not there yet.
    fn index(&mut self, s: NamedStatement<'_>) -> u32 {
        let key = (s.policy.as_ptr() as usize, s.policy.len(), s.index, s.layer);
        let sid = s.sid.unwrap_or_default();
        if let Some(&i) = self.places.get(&key)
            && self
                .statements
                .get(i as usize)
                .is_some_and(|t| t.policy == s.policy && t.sid == sid)
        {
            return i;
        }
        let next = u32::try_from(self.statements.len()).unwrap_or(u32::MAX);
        self.statements.push(statement(s));
        self.places.insert(key, next);
        next
    }
}

/// [`response`], with the revision or (an answer of a batch that gives it
/// once) without it, and its determining statements in full or (a batch
/// that asked for a `table`) as indices into it.
pub(crate) fn response_with(
    d: &Answer<'_>,
    revision: bool,
    table: Option<&mut Table>,
) -> pb::AuthorizeResponse {
    let decision = match d.outcome {
        Outcome::Allow => pb::Decision::Allow,
        Outcome::ExplicitDeny => pb::Decision::ExplicitDeny,
        Outcome::ImplicitDeny => pb::Decision::ImplicitDeny,
    };
    pb::AuthorizeResponse {
        decision: decision.into(),
        revision: if revision {
            d.revision.to_owned()
        } else {
            String::new()
        },
        determining: match table {
            Some(_) => Vec::new(),
            None => d.determining.iter().map(statement).collect(),
        },
        determining_refs: match table {
            Some(t) => d.determining.iter().map(|s| t.index(s)).collect(),
            None => Vec::new(),
        },
        denied_by: d
            .denied_by
            .map(|s| s.name().into_owned())
            .unwrap_or_default(),
        reason: d.reason.clone().unwrap_or_default(),
        explanation: d.explanation.as_ref().map(explanation),
    }
}

fn explanation(e: &Reasons<'_>) -> pb::Explanation {
    pb::Explanation {
        layer: e.stage.map(|s| s.name().into_owned()).unwrap_or_default(),
        nearest_allow: e.nearest_allow.map(statement),
        failed: e.failed.clone(),
        missing_context_keys: e.missing_context_keys.clone(),
    }
}

fn statement(s: NamedStatement<'_>) -> pb::DeterminingStatement {
    pb::DeterminingStatement {
        policy: s.policy.to_owned(),
        layer: s.layer.name().into_owned(),
        index: s.index,
        sid: s.sid.unwrap_or_default().to_owned(),
        effect: match s.effect {
            Effect::Allow => pb::Effect::Allow,
            Effect::Deny => pb::Effect::Deny,
        }
        .into(),
    }
}

/// The reloader's status as `GetStatus` reports it.
pub(crate) fn status(serving: bool, s: &ReloadStatus) -> pb::GetStatusResponse {
    pb::GetStatusResponse {
        serving,
        live: s.live.as_ref().map(|l| pb::LiveBundle {
            revision: l.revision.to_string(),
            digest: l.revision.digest.clone(),
            loaded_at: l.loaded_at.to_string(),
            source: l.source.clone(),
            users: l.stats.users as u64,
            groups: l.stats.groups as u64,
            roles: l.stats.roles as u64,
            managed_policies: l.stats.managed_policies as u64,
            resource_policies: l.stats.resource_policies as u64,
            statements: l.stats.statements as u64,
            persisted: l.persisted,
            signed_by: l.signed_by.clone().unwrap_or_default(),
        }),
        last_failure: s.last_failure.as_ref().map(|f| pb::ReloadFailure {
            at: f.at.to_string(),
            errors: f.errors.clone(),
        }),
        reloads: Some(pb::ReloadCounts {
            loaded: s.reloads.loaded,
            unchanged: s.reloads.unchanged,
            failed: s.reloads.failed,
        }),
        freshness: Some(pb::Freshness {
            last_success: s
                .freshness
                .last_success
                .map(|t| t.to_string())
                .unwrap_or_default(),
            consecutive_failures: s.freshness.consecutive_failures,
            stale: s.freshness.stale.is_some(),
            stale_since: s
                .freshness
                .stale
                .as_ref()
                .map(|st| st.since.to_string())
                .unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamd_policy::policy::Effect;

    fn named<'a>(policy: &'a str, index: u32, sid: Option<&'a str>) -> NamedStatement<'a> {
        NamedStatement {
            policy,
            layer: Layer::Identity,
            index,
            sid,
            effect: Effect::Allow,
        }
    }

    #[test]
    fn a_table_holds_each_statement_once_and_never_confuses_two() {
        let mut t = Table::default();
        let a = String::from("user/alice#own");
        assert_eq!(t.index(named(&a, 0, Some("Read"))), 0);
        assert_eq!(t.index(named(&a, 1, None)), 1);
        assert_eq!(
            t.index(named(&a, 0, Some("Read"))),
            0,
            "the same: one entry"
        );
        // Another name at the same address (the first one gone): a new
        // entry, not the old one's.
        let addr = a.as_ptr();
        drop(a);
        let mut b = String::with_capacity(14);
        b.push_str("user/bob###own");
        let i = t.index(named(&b, 0, Some("Read")));
        if b.as_ptr() == addr {
            assert_eq!(i, 2, "an address used again is told apart by its text");
        }
        assert_eq!(t.statements[i as usize].policy, "user/bob###own");
        assert_eq!(t.statements[0].policy, "user/alice#own");
    }
}
