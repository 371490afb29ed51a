//! Search: who can (`/search/subject`), on what (`/search/resource`), and
//! what (`/search/action`). The candidates are the bundle's own names
//! ([`iamd_bundle::Known`]: its principals, the resources with a policy
//! of their own or declared under `search:` in `bundle.yaml`, the actions
//! its policies name or `search:` declares) read back through the
//! mapping's templates; each is checked by a real evaluation, never by
//! matching patterns.
//!
//! The candidates are sorted, so those a template can have made (the names
//! that begin with its literal start, `user/`) are one range, found by
//! binary search. A call examines at most [`SCAN`] of them and answers at most its
//! `page.limit` ([`MAX_PAGE`] at most) results; `page.next_token` says
//! where the next call starts (empty: the end). A token is only good for
//! the revision that made it.

use iamd_policy::context::ContextValue;

use super::wire::{self, Tuple};
use super::{Ask, Reply};
use crate::decide::{Question, Refusal, Value};

/// Candidates one call examines, at most: a 100,000-user subject search
/// is ten calls, none longer than ten thousand evaluations.
pub const SCAN: usize = 10_000;

/// Results one call answers, at most (and by default).
pub const MAX_PAGE: usize = 1_000;

/// What a search is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Searched {
    Subject,
    Resource,
    Action,
}

impl Ask<'_> {
    /// Answers a search.
    pub(super) fn search(&self, what: Searched, request: &wire::Request<'_>) -> Reply {
        match self.search_page(what, &request.top, &request.page) {
            Ok(body) => Reply::ok(body),
            Err(Err(e)) => super::refused(&e),
            Err(Ok(message)) => Reply::error(400, &message),
        }
    }

    fn search_page(
        &self,
        what: Searched,
        t: &Tuple<'_>,
        page: &wire::Page<'_>,
    ) -> Result<Vec<u8>, Result<String, Refusal>> {
        let bad = |m: String| Err(Ok(m));
        let mapping = &self.api.mapping;
        let missing = |what: &str| format!("`{what}` is missing");
        let subject = t.subject.as_ref().ok_or_else(|| Ok(missing("subject")))?;
        let subject_type = subject
            .kind
            .as_deref()
            .ok_or_else(|| Ok(missing("subject.type")))?;
        let resource = t.resource.as_ref().ok_or_else(|| Ok(missing("resource")))?;
        let resource_type = resource
            .kind
            .as_deref()
            .ok_or_else(|| Ok(missing("resource.type")))?;
        // The searched entity's id (and the action of an action search) is
        // ignored; the others are required.
        let subject_id = match what {
            Searched::Subject => "",
            _ => subject
                .id
                .as_deref()
                .ok_or_else(|| Ok(missing("subject.id")))?,
        };
        let resource_id = match what {
            Searched::Resource => "",
            _ => resource
                .id
                .as_deref()
                .ok_or_else(|| Ok(missing("resource.id")))?,
        };
        let action = match what {
            Searched::Action => None,
            _ => Some(t.action.as_ref().ok_or_else(|| Ok(missing("action")))?),
        };
        let action_name = match action {
            Some(a) => a
                .name
                .as_deref()
                .ok_or_else(|| Ok(missing("action.name")))?,
            None => "",
        };
        let mut context = Vec::new();
        self.keys(t, action, &mut context).map_err(Ok)?;
        let limit = match page.limit {
            Some(0) | None => MAX_PAGE,
            Some(n) => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let bundle = self.pinned.bundle().ok_or(Err(Refusal::NoBundle))?;
        let stamp = stamp(self.pinned.revision());
        let start = match &page.token {
            None => 0,
            Some(token) => match token.split_once('@') {
                Some((n, s)) if s == stamp => match n.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => {
                        return bad(format!("`page.token` `{token}` is not one this PDP made"));
                    }
                },
                Some(_) => {
                    return bad(format!(
                        "`page.token` `{token}` is from another bundle revision: search again from the first page"
                    ));
                }
                None => return bad(format!("`page.token` `{token}` is not one this PDP made")),
            },
        };
        let known = bundle.known();
        let candidates: &[Box<str>] = match what {
            Searched::Subject => &known.principals,
            Searched::Resource => &known.resources,
            Searched::Action => &known.actions,
        };
        let template = match what {
            Searched::Subject => mapping.subject_template(subject_type),
            Searched::Resource => Some(mapping.resource_template(resource_type)),
            Searched::Action => Some(mapping.action_template()),
        };
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(b"{\"results\":[");
        let mut found = 0;
        let mut next = None;
        if let Some(template) = template {
            let principal = mapping.principal(subject_type, subject_id);
            let fixed_resource = mapping.resource(resource_type, resource_id);
            let fixed_action = mapping.action(action_name, resource_type);
            let kind = match what {
                Searched::Subject => subject_type,
                _ => resource_type,
            };
            // The names the template can have made sit together in the
            // sorted list: only they are examined.
            let prefix = template.prefix(kind);
            let first = candidates.partition_point(|c| **c < *prefix);
            let past = first + candidates[first..].partition_point(|c| c.starts_with(&prefix));
            let start = start.max(first);
            let end = past.min(start.saturating_add(SCAN));
            // One question for every candidate: only the searched part
            // changes.
            let mut question = Question {
                principal: principal.as_deref().unwrap_or_default(),
                action: &fixed_action,
                resource: &fixed_resource,
                resource_account: None,
                context: context
                    .iter()
                    .map(|(k, v): &(String, ContextValue)| (k.as_str(), Value::from(v)))
                    .collect(),
                explain: false,
                session: None,
                session_tags: &[],
            };
            for (i, name) in candidates.iter().enumerate().take(end).skip(start) {
                if found == limit {
                    next = Some(i);
                    break;
                }
                let Some(id) = template.read_back(name, kind) else {
                    continue;
                };
                match what {
                    Searched::Subject => question.principal = name,
                    // An unmapped subject type can do nothing.
                    _ if principal.is_none() => break,
                    Searched::Resource => question.resource = name,
                    Searched::Action => question.action = name,
                }
                if self
                    .pinned
                    .check(&question, self.now)
                    .map_err(|e| match e {
                        Refusal::Invalid(m) => Ok(m),
                        e => Err(e),
                    })?
                {
                    if found > 0 {
                        body.push(b',');
                    }
                    found += 1;
                    let entry = match what {
                        Searched::Action => serde_json::json!({"name": id}),
                        _ => serde_json::json!({"type": kind, "id": id}),
                    };
                    let _ = serde_json::to_writer(&mut body, &entry);
                }
            }
            if next.is_none() && end < past {
                next = Some(end);
            }
        }
        body.extend_from_slice(b"],\"page\":{\"next_token\":");
        let token = next.map_or_else(String::new, |n| format!("{n}@{stamp}"));
        let _ = serde_json::to_writer(&mut body, &token);
        body.extend_from_slice(b"}}");
        Ok(body)
    }
}

/// The part of a revision a page token carries: its digest's start.
fn stamp(revision: &str) -> &str {
    revision
        .rsplit_once("sha256:")
        .map_or(revision, |(_, d)| d.trim_end_matches(')'))
}
