//! The OpenID AuthZEN Authorization API 1.0 over HTTP: a thin adapter
//! over the [`Decider`], as the gRPC and Envoy front doors are.
//!
//! [`AuthZen::answer`] is the whole API without the transport (a JSON body
//! in, a status and a JSON body out); `serve.rs` puts it on a listener
//! (HTTP/1.1 and HTTP/2, TLS, the caller's token, the concurrency cap and
//! timeout). `wire.rs` reads the JSON, naming the field in each error;
//! `mapping.rs` turns AuthZEN's subject, action and resource into an
//! iamd principal, action and resource ARN, and their properties into
//! condition keys.
//!
//! A deny is `200 {"decision": false}`; an answer carries `decision` only,
//! unless the request (`options.iamd_reasons: true`) or the configuration
//! (`authzen.reasons: true`) asks for the reasons, which go in `context`.

pub mod mapping;
pub mod search;
mod serve;
mod wire;

use std::sync::Arc;

use iamd_policy::context::ContextValue;
use iamd_policy::eval::Outcome;

use crate::decide::{Answer, Decider, NamedStatement, Pinned, Question, Refusal, Value};

use self::mapping::KeysOf;
pub use self::mapping::{FileMapping, Mapping, MappingError};
pub use self::serve::{AuthZenServer, ServeOptions, serve};
use self::wire::{BadRequest, Semantic, Tuple};

/// An endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /access/v1/evaluation`.
    Evaluation,
    /// `POST /access/v1/evaluations`.
    Evaluations,
    /// `POST /access/v1/search/subject`.
    SearchSubject,
    /// `POST /access/v1/search/resource`.
    SearchResource,
    /// `POST /access/v1/search/action`.
    SearchAction,
    /// `GET /.well-known/authzen-configuration`.
    Metadata,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 6] = [
        Self::Evaluation,
        Self::Evaluations,
        Self::SearchSubject,
        Self::SearchResource,
        Self::SearchAction,
        Self::Metadata,
    ];

    /// Its path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Evaluation => "/access/v1/evaluation",
            Self::Evaluations => "/access/v1/evaluations",
            Self::SearchSubject => "/access/v1/search/subject",
            Self::SearchResource => "/access/v1/search/resource",
            Self::SearchAction => "/access/v1/search/action",
            Self::Metadata => "/.well-known/authzen-configuration",
        }
    }

    /// Its key in the metadata.
    fn metadata_key(self) -> &'static str {
        match self {
            Self::Evaluation => "access_evaluation_endpoint",
            Self::Evaluations => "access_evaluations_endpoint",
            Self::SearchSubject => "search_subject_endpoint",
            Self::SearchResource => "search_resource_endpoint",
            Self::SearchAction => "search_action_endpoint",
            Self::Metadata => "",
        }
    }

    /// The endpoint at `path`.
    pub fn at(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }

    /// Its method.
    pub fn method(self) -> &'static str {
        match self {
            Self::Metadata => "GET",
            _ => "POST",
        }
    }

    /// Whether it is a search.
    pub fn searches(self) -> bool {
        matches!(
            self,
            Self::SearchSubject | Self::SearchResource | Self::SearchAction
        )
    }

    /// Its name in metrics and traces.
    pub fn name(self) -> &'static str {
        match self {
            Self::Evaluation => "evaluation",
            Self::Evaluations => "evaluations",
            Self::SearchSubject => "search_subject",
            Self::SearchResource => "search_resource",
            Self::SearchAction => "search_action",
            Self::Metadata => "metadata",
        }
    }
}

/// An answer: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Reply {
    fn ok(body: Vec<u8>) -> Self {
        Self { status: 200, body }
    }

    /// An error: `{"error": {"status": S, "message": M}}`, the shape of
    /// the spec's per-item errors.
    pub fn error(status: u16, message: &str) -> Self {
        let message = iamd_policy::message::shorten(message);
        let mut body = Vec::with_capacity(64 + message.len());
        error_object(&mut body, status, &message);
        Self { status, body }
    }
}

/// The API over a decider.
#[derive(Debug, Clone)]
pub struct AuthZen {
    decider: Decider,
    mapping: Arc<Mapping>,
}

impl AuthZen {
    /// The API answering with `decider`, mapping with `mapping`.
    pub fn new(decider: Decider, mapping: Arc<Mapping>) -> Self {
        Self { decider, mapping }
    }

    /// The decider.
    pub fn decider(&self) -> &Decider {
        &self.decider
    }

    /// Answers a `POST` of `body` to `endpoint` at `now`; `trace_id` goes
    /// to the decision log.
    pub fn answer(
        &self,
        endpoint: Endpoint,
        body: &str,
        now: jiff::Timestamp,
        trace_id: Option<&str>,
    ) -> Reply {
        let mut request = match wire::request(body) {
            Ok(r) => r,
            Err(BadRequest(m)) => return Reply::error(400, &m),
        };
        let pinned = match self.decider.pin() {
            Ok(p) => p,
            Err(e) => return refused(&e),
        };
        let reasons = self.mapping.reasons || request.options.reasons;
        let ask = Ask {
            api: self,
            pinned: &pinned,
            reasons,
            now,
            trace_id,
        };
        match (endpoint, request.evaluations.take()) {
            (Endpoint::Evaluation, _) | (Endpoint::Evaluations, None) => {
                let mut body = Vec::with_capacity(32);
                match ask.one(&request.top, None, &mut body) {
                    Ok(_) => Reply::ok(body),
                    Err(e) => e.reply(),
                }
            }
            (Endpoint::Evaluations, Some(items)) => {
                if let Err(e) = self.decider.admit_batch(items.len()) {
                    return refused(&e);
                }
                let mut body = Vec::with_capacity(16 + 24 * items.len());
                body.extend_from_slice(b"{\"evaluations\":[");
                for (i, item) in items.into_iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    let decision = match item {
                        Ok(item) => {
                            let t = item.over(&request.top);
                            match ask.one(&t, Some(i), &mut body) {
                                Ok(d) => d,
                                // No bundle: the whole call (it cannot
                                // happen once pinned).
                                Err(Problem::Refused(e)) => return refused(&e),
                                Err(Problem::Bad(m)) => {
                                    item_error(&mut body, &m);
                                    false
                                }
                            }
                        }
                        Err(BadRequest(m)) => {
                            item_error(&mut body, &m);
                            false
                        }
                    };
                    let stop = match request.options.semantic {
                        Semantic::ExecuteAll => false,
                        Semantic::DenyOnFirstDeny => !decision,
                        Semantic::PermitOnFirstPermit => decision,
                    };
                    if stop {
                        break;
                    }
                }
                body.extend_from_slice(b"]}");
                Reply::ok(body)
            }
            (Endpoint::SearchSubject, _) => ask.search(search::Searched::Subject, &request),
            (Endpoint::SearchResource, _) => ask.search(search::Searched::Resource, &request),
            (Endpoint::SearchAction, _) => ask.search(search::Searched::Action, &request),
            (Endpoint::Metadata, _) => Reply::error(405, "use GET for the metadata"),
        }
    }

    /// `GET /.well-known/authzen-configuration`: the endpoints under
    /// `base` (`https://host:port`, no trailing slash).
    pub fn metadata(&self, base: &str) -> Reply {
        let mut doc = serde_json::Map::new();
        doc.insert("policy_decision_point".into(), base.into());
        for e in Endpoint::ALL {
            if e != Endpoint::Metadata {
                doc.insert(
                    e.metadata_key().into(),
                    format!("{base}{}", e.path()).into(),
                );
            }
        }
        Reply::ok(serde_json::to_vec(&doc).unwrap_or_default())
    }
}

/// Why one evaluation was not decided.
enum Problem {
    /// Malformed: a 400 for a single evaluation, an item error in a batch.
    Bad(String),
    /// The decider refused.
    Refused(Refusal),
}

impl Problem {
    fn reply(self) -> Reply {
        match self {
            Self::Bad(m) => Reply::error(400, &m),
            Self::Refused(e) => refused(&e),
        }
    }
}

/// The one place where the decider's refusals become HTTP answers: 503
/// without a bundle (the caller denies), 400 for a request iamd cannot
/// decide.
fn refused(e: &Refusal) -> Reply {
    match e {
        Refusal::NoBundle => Reply::error(503, &e.to_string()),
        Refusal::Invalid(_) | Refusal::BatchTooLarge { .. } => Reply::error(400, &e.to_string()),
    }
}

/// One call's evaluations, on one pinned bundle.
struct Ask<'a> {
    api: &'a AuthZen,
    pinned: &'a Pinned<'a>,
    reasons: bool,
    now: jiff::Timestamp,
    trace_id: Option<&'a str>,
}

/// A subject, action and resource in iamd's terms.
struct Mapped {
    /// The principal, or for a subject type the mapping does not know the
    /// subject as written (`TYPE/ID`, for the log).
    principal: Result<String, String>,
    action: String,
    resource: String,
    context: Vec<(String, ContextValue)>,
}

impl Ask<'_> {
    /// Decides `t`, writing its answer object to `out`; the decision.
    /// `item` is a batch item's place, for its messages.
    fn one(&self, t: &Tuple<'_>, item: Option<usize>, out: &mut Vec<u8>) -> Result<bool, Problem> {
        let at = |m: String| match item {
            Some(i) => format!("evaluations[{i}]: {m}"),
            None => m,
        };
        let m = self.map(t).map_err(|e| Problem::Bad(at(e)))?;
        let question = Question {
            principal: match &m.principal {
                Ok(p) | Err(p) => p,
            },
            action: &m.action,
            resource: &m.resource,
            resource_account: None,
            context: m
                .context
                .iter()
                .map(|(k, v)| (k.as_str(), Value::from(v)))
                .collect(),
            explain: self.reasons,
            session: None,
            session_tags: &[],
        };
        let write = |a: &Answer<'_>| {
            let allowed = a.outcome == Outcome::Allow;
            write_answer(out, a, self.reasons);
            allowed
        };
        let decided = match &m.principal {
            Ok(_) => self
                .pinned
                .decide(&question, self.now, self.trace_id, write),
            Err(_) => self.pinned.unmapped(
                &question,
                &format!(
                    "subject type `{}` is not mapped to iamd principals (`authzen.subjects`)",
                    t.subject
                        .as_ref()
                        .and_then(|s| s.kind.as_deref())
                        .unwrap_or_default()
                ),
                self.trace_id,
                write,
            ),
        };
        decided.map_err(|e| match e {
            Refusal::Invalid(m) => Problem::Bad(at(m)),
            e => Problem::Refused(e),
        })
    }

    /// The question of `t`, every required field present.
    fn map(&self, t: &Tuple<'_>) -> Result<Mapped, String> {
        let mapping = &self.api.mapping;
        let missing = |what: &str| format!("`{what}` is missing");
        let subject = t.subject.as_ref().ok_or_else(|| missing("subject"))?;
        let subject_type = subject
            .kind
            .as_deref()
            .ok_or_else(|| missing("subject.type"))?;
        let subject_id = subject.id.as_deref().ok_or_else(|| missing("subject.id"))?;
        let action = t.action.as_ref().ok_or_else(|| missing("action"))?;
        let name = action
            .name
            .as_deref()
            .ok_or_else(|| missing("action.name"))?;
        let resource = t.resource.as_ref().ok_or_else(|| missing("resource"))?;
        let resource_type = resource
            .kind
            .as_deref()
            .ok_or_else(|| missing("resource.type"))?;
        let resource_id = resource
            .id
            .as_deref()
            .ok_or_else(|| missing("resource.id"))?;
        let mut context = Vec::new();
        self.keys(t, Some(action), &mut context)?;
        Ok(Mapped {
            principal: mapping
                .principal(subject_type, subject_id)
                .ok_or_else(|| format!("{subject_type}/{subject_id}")),
            action: mapping.action(name, resource_type),
            resource: mapping.resource(resource_type, resource_id),
            context,
        })
    }
}

impl Ask<'_> {
    /// The condition keys of `t`'s properties (`action`'s, when it has
    /// one) and context.
    fn keys(
        &self,
        t: &Tuple<'_>,
        action: Option<&wire::Action<'_>>,
        out: &mut Vec<(String, ContextValue)>,
    ) -> Result<(), String> {
        for (of, raw, at) in [
            (
                KeysOf::Subject,
                t.subject.as_ref().and_then(|s| s.properties),
                "subject.properties",
            ),
            (
                KeysOf::Resource,
                t.resource.as_ref().and_then(|r| r.properties),
                "resource.properties",
            ),
            (
                KeysOf::Action,
                action.and_then(|a| a.properties),
                "action.properties",
            ),
            (KeysOf::Context, t.context, "context"),
        ] {
            if let Some(raw) = raw {
                self.api.mapping.keys(of, raw, at, out)?;
            }
        }
        Ok(())
    }
}

/// `{"decision": B}`, and the reasons in `context` when asked.
fn write_answer(out: &mut Vec<u8>, a: &Answer<'_>, reasons: bool) {
    out.extend_from_slice(if a.outcome == Outcome::Allow {
        b"{\"decision\":true"
    } else {
        b"{\"decision\":false"
    });
    if reasons {
        out.extend_from_slice(b",\"context\":");
        let _ = serde_json::to_writer(&mut *out, &reasons_of(a));
    }
    out.push(b'}');
}

/// iamd's reasons for an answer: the outcome, the revision, the
/// determining statements, what denied and, for a deny, the nearest allow
/// that failed and the keys it missed.
fn reasons_of(a: &Answer<'_>) -> serde_json::Value {
    let statement = |s: NamedStatement<'_>| {
        serde_json::json!({"policy": s.policy, "layer": s.layer.name(), "statement": s.index,
            "sid": s.sid.unwrap_or_default(), "effect": s.effect.to_string()})
    };
    let mut r = serde_json::Map::new();
    r.insert("outcome".into(), a.outcome_name().into());
    r.insert("revision".into(), a.revision.into());
    r.insert(
        "determining".into(),
        a.determining.iter().map(statement).collect(),
    );
    if let Some(stage) = a.denied_by {
        r.insert("denied_by".into(), stage.name().into());
    }
    if let Some(reason) = &a.reason {
        r.insert("reason".into(), reason.as_str().into());
    }
    if let Some(e) = &a.explanation {
        if let Some(stage) = e.stage {
            r.insert("layer".into(), stage.name().into());
        }
        if let Some(n) = e.nearest_allow {
            r.insert("nearest_allow".into(), statement(n));
        }
        if !e.failed.is_empty() {
            r.insert("failed".into(), e.failed.clone().into());
        }
        if !e.missing_context_keys.is_empty() {
            r.insert(
                "missing_context_keys".into(),
                e.missing_context_keys.clone().into(),
            );
        }
    }
    r.into()
}

/// A batch item that could not be decided: `decision: false`, the error
/// in its `context`.
fn item_error(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"{\"decision\":false,\"context\":");
    error_object(out, 400, &iamd_policy::message::shorten(message));
    out.push(b'}');
}

/// `{"error": {"status": S, "message": M}}`.
fn error_object(out: &mut Vec<u8>, status: u16, message: &str) {
    out.extend_from_slice(format!("{{\"error\":{{\"status\":{status},\"message\":").as_bytes());
    let _ = serde_json::to_writer(&mut *out, message);
    out.extend_from_slice(b"}}");
}
