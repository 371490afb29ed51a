//! The one way into a decision, for every front door.
//!
//! A front door (gRPC's `Authorize`, Envoy's `Check`, and any later one)
//! turns its wire request into a [`Question`] in the engine's terms and asks
//! the [`Decider`]. The decider reads the live bundle from the [`Store`],
//! checks the question against the [`RequestLimits`], adds the server's facts,
//! evaluates, counts the decision and writes it to the decision log, and
//! answers with an [`Answer`] or a typed [`Refusal`] (no bundle, an
//! invalid request, a batch too large). It knows nothing of gRPC, HTTP or
//! protobuf: turning a refusal into a status is each front door's
//! business (`grpc/status.rs`, `envoy/mod.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::Guard;
use iamd_bundle::Bundle;
use iamd_policy::context::{Context, ContextValue};
use iamd_policy::eval::{self, Determining, Layer, Layers, Outcome, Request, StatementSet};
use iamd_policy::policy::Effect;

use crate::admin::Metrics;
use crate::limits::RequestLimits;
use crate::reload::{Snapshot, Store};

/// One request in the engine's terms, borrowing the front door's strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question<'a> {
    /// The principal: an ARN, or `user/NAME`, `role/NAME`.
    pub principal: &'a str,
    /// `service:Action`, or `*`.
    pub action: &'a str,
    /// The resource's ARN, or `*`.
    pub resource: &'a str,
    /// The account that owns the resource, when its ARN does not say.
    pub resource_account: Option<&'a str>,
    /// The caller's condition keys (the server adds its own facts).
    pub context: Vec<(&'a str, Value<'a>)>,
    /// Whether a deny should say why ([`Answer::explanation`]).
    pub explain: bool,
    /// The session policy of a role session whose token carries one: it
    /// limits the decision as the boundary does.
    pub session: Option<&'a SessionPolicy>,
    /// The session tags of a role session: its `aws:PrincipalTag/KEY`,
    /// over the role's.
    pub session_tags: &'a [(String, String)],
}

/// A session policy (`AssumeRole`'s `Policy`), compiled, with its text: two
/// are equal when their texts are.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    text: Arc<str>,
    set: Arc<StatementSet>,
}

impl PartialEq for SessionPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for SessionPolicy {}

impl SessionPolicy {
    /// Compiles `text`, a session policy's JSON; the error says what is
    /// wrong, where.
    pub fn compile(text: &str) -> Result<Self, String> {
        use iamd_policy::json::Source;
        use iamd_policy::policy::{Policy, PolicyKind};
        let policy = Policy::parse(&Source::new("session", text), PolicyKind::Session)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            text: text.into(),
            set: Arc::new(StatementSet::new([Arc::new(policy)])),
        })
    }

    /// Its statements.
    pub fn statements(&self) -> &StatementSet {
        &self.set
    }

    /// Its text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A condition key's value in a [`Question`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// One value.
    Single(&'a str),
    /// Several (possibly none).
    Multi(&'a [String]),
}

impl Value<'_> {
    /// How many values it counts for against `max_context_values`.
    pub fn count(self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Multi(v) => v.len(),
        }
    }

    /// The engine's owned value.
    pub fn to_context_value(self) -> ContextValue {
        match self {
            Self::Single(s) => ContextValue::Single(s.to_owned()),
            Self::Multi(v) => ContextValue::Multi(v.to_vec()),
        }
    }
}

impl<'a> From<&'a ContextValue> for Value<'a> {
    fn from(v: &'a ContextValue) -> Self {
        match v {
            ContextValue::Single(s) => Self::Single(s),
            ContextValue::Multi(v) => Self::Multi(v),
        }
    }
}

/// A [`Question`] that owns its strings: what a front door makes when it
/// builds the request itself (Envoy's mapping) rather than borrowing it
/// from a decoded message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedQuestion {
    /// The principal.
    pub principal: String,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// The caller's condition keys, in key order.
    pub context: BTreeMap<String, ContextValue>,
    /// The session policy, compiled.
    pub session: Option<SessionPolicy>,
    /// The session tags.
    pub session_tags: Vec<(String, String)>,
}

impl OwnedQuestion {
    /// The question, borrowed, without an explanation.
    pub fn question(&self) -> Question<'_> {
        Question {
            principal: &self.principal,
            action: &self.action,
            resource: &self.resource,
            resource_account: None,
            context: self
                .context
                .iter()
                .map(|(k, v)| (k.as_str(), Value::from(v)))
                .collect(),
            explain: false,
            session: self.session.as_ref(),
            session_tags: &self.session_tags,
        }
    }
}

/// What the decider answers, borrowed from the bundle that decided: a
/// front door reads it (or turns it into its wire type) inside the closure
/// given to [`Decider::decide`], so that a decision copies nothing it does
/// not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// Allowed, or denied and how.
    pub outcome: Outcome,
    /// For an implicit deny, what lacked an allow: a layer, or the
    /// principal, unknown to the bundle.
    pub denied_by: Option<Stage>,
    /// The revision of the bundle that decided.
    pub revision: &'a str,
    /// The statements that decided: the matching `Deny`s of an explicit
    /// deny, the `Allow`s of an allow.
    pub determining: Statements<'a>,
    /// A sentence for the caller when the principal is unknown.
    pub reason: Option<String>,
    /// Why a deny, when the question asked.
    pub explanation: Option<Reasons<'a>>,
}

impl<'a> Answer<'a> {
    /// The implicit deny of a principal the bundle cannot hold, `reason`
    /// saying why (with the principal stage as its explanation when asked).
    fn of_unknown_principal(revision: &'a str, reason: String, explain: bool) -> Self {
        Self {
            outcome: Outcome::ImplicitDeny,
            denied_by: Some(Stage::Principal),
            revision,
            determining: Statements::NONE,
            reason: Some(reason),
            explanation: explain.then(|| Reasons {
                stage: Some(Stage::Principal),
                ..Reasons::default()
            }),
        }
    }

    /// `ALLOW`, `EXPLICIT_DENY` or `IMPLICIT_DENY`: the outcome as the APIs
    /// and the decision log spell it.
    pub fn outcome_name(&self) -> &'static str {
        match self.outcome {
            Outcome::Allow => "ALLOW",
            Outcome::ExplicitDeny => "EXPLICIT_DENY",
            Outcome::ImplicitDeny => "IMPLICIT_DENY",
        }
    }

    /// Whether the principal was unknown to the bundle.
    pub fn unknown_principal(&self) -> bool {
        self.denied_by == Some(Stage::Principal)
    }
}

/// Where a request was stopped: the principal (unknown to the bundle), or
/// one of the engine's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The principal is not in the bundle.
    Principal,
    /// A layer of the evaluation.
    Layer(Layer),
}

impl Stage {
    /// `principal`, `identity`, `scp[0]`...: as the APIs name it.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            Self::Principal => "principal".into(),
            Self::Layer(l) => l.name(),
        }
    }
}

/// A statement that decided, named for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedStatement<'a> {
    /// Its policy's name.
    pub policy: &'a str,
    /// Its layer.
    pub layer: Layer,
    /// Its position in its policy.
    pub index: u32,
    /// Its `Sid`, if it has one.
    pub sid: Option<&'a str>,
    /// Its effect.
    pub effect: Effect,
}

/// The determining statements of an [`Answer`], named as they are read:
/// the decision itself keeps only the engine's positions.
#[derive(Clone, Copy)]
pub struct Statements<'a>(Listed<'a>);

#[derive(Clone, Copy)]
enum Listed<'a> {
    Matched(Layers<'a>, &'a [Determining]),
    Named(&'a [NamedStatement<'a>]),
}

impl<'a> Statements<'a> {
    /// No statement.
    pub const NONE: Self = Self(Listed::Named(&[]));

    /// These statements (an answer made by hand: tests, tools).
    pub fn named(list: &'a [NamedStatement<'a>]) -> Self {
        Self(Listed::Named(list))
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self.0 {
            Listed::Matched(_, m) => m.len(),
            Listed::Named(n) => n.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The statements, in the engine's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = NamedStatement<'a>> + 'a {
        let this = *self;
        (0..self.len()).map(move |i| match this.0 {
            Listed::Matched(layers, m) => statement(&layers, &m[i]),
            Listed::Named(n) => n[i],
        })
    }
}

impl std::fmt::Debug for Statements<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Statements<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Statements<'_> {}

/// Why a request was denied (iamd's explain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons<'a> {
    /// What denied: the layer of the first matching `Deny`, the layer that
    /// lacked an allow, or the unknown principal.
    pub stage: Option<Stage>,
    /// For an implicit deny, the `Allow` of that layer that came closest.
    pub nearest_allow: Option<NamedStatement<'a>>,
    /// What failed in it, one sentence each.
    pub failed: Vec<String>,
    /// Condition keys the policies read that the request did not have.
    pub missing_context_keys: Vec<String>,
}

/// Why the decider would not decide. Every refusal denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No bundle is live: the daemon fails closed.
    #[error(
        "no policy bundle is loaded (none yet, or withdrawn as stale): every request is denied until one loads"
    )]
    NoBundle,
    /// The request is malformed or over a limit; the message says what and
    /// how to fix it, quoting the caller's values.
    #[error("{0}")]
    Invalid(String),
    /// A batch has more requests than `max_batch`.
    #[error(
        "the batch has {size} requests; the server accepts at most {max} (split it, or raise `max_batch`)"
    )]
    BatchTooLarge {
        /// Requests in the batch.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Decides questions against the live bundle, within the limits, counted
/// and logged. Cheap to clone (three reference counts and the limits).
#[derive(Debug, Clone)]
pub struct Decider {
    store: Arc<Store>,
    limits: RequestLimits,
    metrics: Arc<Metrics>,
}

impl Decider {
    /// A decider over `store`, counting into `metrics` (and its decision
    /// log).
    pub fn new(store: Arc<Store>, limits: RequestLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            limits,
            metrics,
        }
    }

    /// The store it decides from.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Decides one question against the live bundle at `now`, and hands
    /// the answer to `read` (which turns it into the front door's reply);
    /// `trace_id` goes to the decision log.
    pub fn decide<T>(
        &self,
        question: &Question<'_>,
        now: jiff::Timestamp,
        trace_id: Option<&str>,
        read: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, Refusal> {
        self.pin()?.decide(question, now, trace_id, read)
    }

    /// The live bundle, held for several questions (a batch is decided by
    /// one revision).
    pub fn pin(&self) -> Result<Pinned<'_>, Refusal> {
        let snapshot = self.store.load();
        if snapshot.bundle().is_none() {
            return Err(Refusal::NoBundle);
        }
        Ok(Pinned {
            decider: self,
            snapshot,
        })
    }

    /// Admits a batch of `size` questions, and counts it.
    pub fn admit_batch(&self, size: usize) -> Result<(), Refusal> {
        if size > self.limits.max_batch {
            return Err(Refusal::BatchTooLarge {
                size,
                max: self.limits.max_batch,
            });
        }
        self.metrics.batch(size);
        Ok(())
    }

    /// Checks a context's size before a front door converts it: `keys`
    /// keys holding `values` values in all. [`Pinned::decide`] checks
    /// again; this lets a front door refuse an oversized context before it
    /// spends anything on it.
    pub fn admit_context(&self, keys: usize, values: usize) -> Result<(), Refusal> {
        if keys > self.limits.max_context_keys {
            return Err(Refusal::Invalid(format!(
                "the context has {keys} keys; the server accepts at most {} (`limits.maxContextKeys`)",
                self.limits.max_context_keys
            )));
        }
        if values > self.limits.max_context_values {
            return Err(Refusal::Invalid(format!(
                "the context has {values} values; the server accepts at most {} (`limits.maxContextValues`)",
                self.limits.max_context_values
            )));
        }
        Ok(())
    }
}

impl Decider {
    /// Checks every string of `q` against `max_field_bytes`: a call's work
    /// is bounded by its sizes, whatever its statements' wildcards.
    fn admit_fields(&self, q: &Question<'_>) -> Result<(), Refusal> {
        let max = self.limits.max_field_bytes;
        let over = |what: String, len: usize| {
            Err(Refusal::Invalid(format!(
                "{what} has {len} bytes; the server accepts at most {max} in one string (`limits.maxFieldBytes`)"
            )))
        };
        for (name, text) in [
            ("principal", q.principal),
            ("action", q.action),
            ("resource", q.resource),
            ("resource_account", q.resource_account.unwrap_or_default()),
        ] {
            if text.len() > max {
                return over(format!("`{name}`"), text.len());
            }
        }
        for (key, value) in &q.context {
            if key.len() > max {
                return over(format!("context key `{key}`"), key.len());
            }
            let longest = match value {
                Value::Single(s) => s.len(),
                Value::Multi(v) => v.iter().map(String::len).max().unwrap_or(0),
            };
            if longest > max {
                return over(format!("a value of context key `{key}`"), longest);
            }
        }
        Ok(())
    }
}

/// The live bundle, pinned for the questions of one call.
pub struct Pinned<'d> {
    decider: &'d Decider,
    snapshot: Guard<Arc<Snapshot>>,
}

impl std::fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned")
            .field(
                "revision",
                &self.snapshot.bundle().map(|b| b.revision_text()),
            )
            .finish_non_exhaustive()
    }
}

impl Pinned<'_> {
    /// The revision decisions are made by.
    pub fn revision(&self) -> &str {
        self.snapshot.bundle().map_or("", |b| b.revision_text())
    }

    /// Decides one question at `now`, counts it, logs it, and hands the
    /// answer to `read`.
    pub fn decide<T>(
        &self,
        question: &Question<'_>,
        now: jiff::Timestamp,
        trace_id: Option<&str>,
        read: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, Refusal> {
        let started = Instant::now();
        self.decide_counted(question, now, trace_id, read, |metrics, outcome| {
            metrics.decision(outcome, started.elapsed().as_secs_f64());
        })
    }

    /// Decides `question`, hands its outcome to `count` (`None`: an unknown
    /// principal), logs it, and hands the answer to `read`.
    fn decide_counted<T>(
        &self,
        question: &Question<'_>,
        now: jiff::Timestamp,
        trace_id: Option<&str>,
        read: impl FnOnce(&Answer<'_>) -> T,
        count: impl FnOnce(&Metrics, Option<Outcome>),
    ) -> Result<T, Refusal> {
        let bundle = self.snapshot.bundle().ok_or(Refusal::NoBundle)?;
        decide(bundle, question, now, self.decider, |answer| {
            let outcome = (!answer.unknown_principal()).then_some(answer.outcome);
            let metrics = &self.decider.metrics;
            count(metrics, outcome);
            metrics.log(question, answer, trace_id);
            read(answer)
        })
    }
}

/// The decisions of one batch, counted as they are made and added to the
/// metrics at once when the tally is dropped (however the batch ends): one
/// clock read a batch, not two a decision.
#[derive(Debug)]
pub struct Tally<'d> {
    metrics: &'d Metrics,
    started: Instant,
    /// By outcome, in [`Metrics::decisions`]' order.
    counts: [u64; 4],
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.metrics
            .decisions(self.counts, self.started.elapsed().as_secs_f64());
    }
}

impl<'d> Pinned<'d> {
    /// A tally for the decisions of one batch, from now.
    pub fn tally(&self) -> Tally<'d> {
        Tally {
            metrics: &self.decider.metrics,
            started: Instant::now(),
            counts: [0; 4],
        }
    }

    /// [`Pinned::decide`] for a question of a batch: counted in `tally`
    /// instead of at once, and timed with the batch.
    pub fn decide_in<T>(
        &self,
        tally: &mut Tally<'_>,
        question: &Question<'_>,
        now: jiff::Timestamp,
        trace_id: Option<&str>,
        read: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, Refusal> {
        self.decide_counted(question, now, trace_id, read, |_, outcome| {
            if let Some(c) = tally.counts.get_mut(Metrics::outcome_index(outcome)) {
                *c += 1;
            }
        })
    }
}

impl Pinned<'_> {
    /// The bundle decisions are made by.
    pub fn bundle(&self) -> Option<&Bundle> {
        self.snapshot.bundle().map(|b| &**b)
    }

    /// Decides `question` at `now` without counting or logging it: whether
    /// it is allowed. For search, whose candidates are each a real
    /// evaluation and whose call is counted once, by its front door.
    pub fn check(&self, question: &Question<'_>, now: jiff::Timestamp) -> Result<bool, Refusal> {
        let bundle = self.snapshot.bundle().ok_or(Refusal::NoBundle)?;
        decide(bundle, question, now, self.decider, |a| {
            a.outcome == Outcome::Allow
        })
    }
}

impl Pinned<'_> {
    /// Answers, without evaluating, a question whose principal the front
    /// door could not map to one the bundle may hold (an AuthZEN subject of
    /// a type the configuration does not map): an implicit deny by the
    /// principal stage, `reason` saying why, counted and logged as an
    /// unknown principal is. `question.principal` names the caller as the
    /// front door read it (for the log).
    pub fn unmapped<T>(
        &self,
        question: &Question<'_>,
        reason: &str,
        trace_id: Option<&str>,
        read: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, Refusal> {
        self.decider.admit_fields(question)?;
        let answer =
            Answer::of_unknown_principal(self.revision(), reason.to_owned(), question.explain);
        let metrics = &self.decider.metrics;
        metrics.decision(None, 0.0);
        metrics.log(question, &answer, trace_id);
        Ok(read(&answer))
    }
}

/// Checks `q`, decides it against `bundle`, and hands the answer to `read`.
fn decide<T>(
    bundle: &Bundle,
    q: &Question<'_>,
    now: jiff::Timestamp,
    decider: &Decider,
    read: impl FnOnce(&Answer<'_>) -> T,
) -> Result<T, Refusal> {
    let bad = |m: String| Err(Refusal::Invalid(m));
    decider.admit_fields(q)?;
    if q.principal.is_empty() {
        return bad("`principal` is empty: give an ARN or `user/NAME`, `role/NAME`".into());
    }
    if q.action != "*"
        && !q
            .action
            .split_once(':')
            .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty())
    {
        return bad(format!(
            "`action` `{}` is not `service:Action` (e.g. `docs:GetDocument`)",
            q.action
        ));
    }
    if q.resource.is_empty() {
        return bad("`resource` is empty: give the resource's ARN, or `*`".into());
    }
    let values = q.context.iter().map(|(_, v)| v.count()).sum();
    decider.admit_context(q.context.len(), values)?;
    if q.context.iter().any(|(k, _)| k.is_empty()) {
        return bad("a context key is empty".into());
    }
    let mut ctx = Context::from_keys(q.context.iter().map(|(k, v)| (*k, v.to_context_value())))
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    let revision = bundle.revision_text();
    let Some(resolved) = bundle.resolve(q.principal) else {
        let reason = iamd_policy::message::shorten(&format!(
            "principal `{}` is not in the bundle",
            q.principal
        ))
        .into_owned();
        return Ok(read(&Answer::of_unknown_principal(
            revision, reason, q.explain,
        )));
    };
    // The server knows the principal's facts better than the caller.
    ctx.add_facts(resolved.facts_with_session_tags(q.session_tags), now, true);
    let request = Request::new(&resolved.principal, q.action, q.resource, &ctx)
        .with_resource_account(q.resource_account.filter(|a| !a.is_empty()));
    let layers = bundle.layers(
        &resolved,
        &request,
        q.session.map(SessionPolicy::statements),
    );
    // The determining statements' scratch space, kept by the thread from
    // one decision to the next (no allocation per call).
    thread_local! {
        static MATCHED: std::cell::Cell<Vec<Determining>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut matched = MATCHED.take();
    let d = eval::evaluate(&layers, &request, &mut matched);
    let explanation = (q.explain && d.outcome != Outcome::Allow).then(|| {
        let e = eval::explain(&layers, &request, &d, &matched);
        let (nearest_allow, failed) = match e.nearest_allow {
            Some(n) => (Some(statement(&layers, &n.statement)), n.failed),
            None => (None, Vec::new()),
        };
        Reasons {
            stage: e.layer.map(Stage::Layer),
            nearest_allow,
            failed,
            missing_context_keys: e.missing_context_keys,
        }
    });
    let answer = read(&Answer {
        outcome: d.outcome,
        denied_by: d.implicit_deny_layer.map(Stage::Layer),
        revision,
        determining: Statements(Listed::Matched(layers, &matched)),
        reason: None,
        explanation,
    });
    MATCHED.set(matched);
    Ok(answer)
}

/// The statement `m` points at, named.
fn statement<'a>(layers: &Layers<'a>, m: &Determining) -> NamedStatement<'a> {
    let found = layers.statement(m);
    NamedStatement {
        policy: found.map_or("", |(p, _)| p.name()),
        layer: m.layer,
        index: m.statement,
        sid: found.and_then(|(_, s)| s.sid()),
        effect: m.effect,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    fn decider(loaded: bool, limits: RequestLimits) -> Decider {
        let (store, publisher) = Store::new();
        if loaded {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle");
            crate::reload::Reloader::for_dir(&dir, publisher).reload(crate::reload::Trigger::Start);
            assert!(store.bundle().is_some());
        }
        let metrics = Metrics::new(store.clone());
        Decider::new(store, limits, metrics)
    }

    fn question<'a>(principal: &'a str, action: &'a str, resource: &'a str) -> Question<'a> {
        Question {
            principal,
            action,
            resource,
            resource_account: None,
            context: Vec::new(),
            explain: false,
            session: None,
            session_tags: &[],
        }
    }

    const ALICE: &str = "user/alice";
    const GUIDE: &str = "arn:acme:docs:eu-1:123456789012:doc/guide";

    #[test]
    fn no_bundle_is_a_refusal_not_a_decision() {
        let d = decider(false, RequestLimits::default());
        assert_eq!(
            d.decide(
                &question(ALICE, "docs:GetDocument", GUIDE),
                jiff::Timestamp::now(),
                None,
                |a| a.outcome
            ),
            Err(Refusal::NoBundle)
        );
        assert!(d.pin().is_err());
    }

    #[test]
    fn a_session_policy_limits_what_the_principal_may_do() {
        // A role session (the engine applies a session policy to sessions,
        // as AWS does).
        let d = decider(true, RequestLimits::default());
        let now = jiff::Timestamp::now();
        let session = "arn:aws:sts::123456789012:assumed-role/indexer/s1";
        let mut q = question(session, "docs:GetDocument", GUIDE);
        q.context = vec![("docs:Team", Value::Single("search"))];
        assert_eq!(d.decide(&q, now, None, |a| a.outcome), Ok(Outcome::Allow));
        let only_drafts = SessionPolicy::compile(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "docs:*", "Resource": "arn:acme:docs:eu-1:123456789012:doc/drafts/*"}]}"#,
        )
        .unwrap();
        q.session = Some(&only_drafts);
        q.explain = true;
        d.decide(&q, now, None, |a| {
            assert_eq!(a.outcome, Outcome::ImplicitDeny);
            assert_eq!(a.denied_by, Some(Stage::Layer(Layer::Session)));
        })
        .unwrap();
        // Within the session policy: allowed, as the identity allows.
        let everything = SessionPolicy::compile(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#,
        )
        .unwrap();
        q.session = Some(&everything);
        assert_eq!(d.decide(&q, now, None, |a| a.outcome), Ok(Outcome::Allow));
        assert_eq!(
            everything,
            SessionPolicy::compile(everything.text()).unwrap()
        );
        assert!(SessionPolicy::compile(r#"{"Statement": "all"}"#).is_err());
    }

    #[test]
    fn decisions_carry_their_statements_and_revision() {
        let d = decider(true, RequestLimits::default());
        let now = jiff::Timestamp::now();
        let mut q = question(ALICE, "docs:GetDocument", GUIDE);
        q.context = vec![("docs:Team", Value::Single("docs"))];
        let revision = d.pin().unwrap().revision().to_owned();
        d.decide(&q, now, None, |allow| {
            assert_eq!(allow.outcome, Outcome::Allow);
            assert_eq!(allow.revision, revision);
            assert!(!allow.determining.is_empty());
            assert_eq!(allow.determining.iter().len(), allow.determining.len());
            for s in allow.determining.iter() {
                assert_eq!(s.effect, Effect::Allow);
                assert!(!s.policy.is_empty(), "{s:?}");
            }
            assert_eq!(allow.denied_by, None);
        })
        .unwrap();
        let mut q = question("user/nobody", "docs:GetDocument", GUIDE);
        q.explain = true;
        d.decide(&q, now, None, |unknown| {
            assert_eq!(unknown.outcome, Outcome::ImplicitDeny);
            assert!(unknown.unknown_principal());
            assert!(unknown.determining.is_empty());
            assert_eq!(
                unknown.explanation.as_ref().and_then(|e| e.stage),
                Some(Stage::Principal)
            );
            assert!(unknown.reason.as_ref().unwrap().contains("user/nobody"));
        })
        .unwrap();
    }

    #[test]
    fn invalid_questions_are_refused_with_what_is_wrong() {
        let limits = RequestLimits {
            max_context_keys: 2,
            max_context_values: 3,
            ..RequestLimits::default()
        };
        let d = decider(true, limits);
        let now = jiff::Timestamp::now();
        let refused = |q: Question<'_>| match d.decide(&q, now, None, |a| a.outcome) {
            Err(Refusal::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(refused(question("", "docs:GetDocument", GUIDE)).contains("`principal`"));
        assert!(refused(question(ALICE, "docs", GUIDE)).contains("`docs`"));
        assert!(refused(question(ALICE, "docs:", GUIDE)).contains("service:Action"));
        assert!(refused(question(ALICE, "docs:GetDocument", "")).contains("`resource`"));
        let mut q = question(ALICE, "docs:GetDocument", GUIDE);
        q.context = vec![
            ("a", Value::Single("1")),
            ("b", Value::Single("1")),
            ("c", Value::Single("1")),
        ];
        assert!(refused(q.clone()).contains("3 keys"));
        let four = [
            "1".to_owned(),
            "2".to_owned(),
            "3".to_owned(),
            "4".to_owned(),
        ];
        q.context = vec![("a", Value::Multi(&four))];
        assert!(refused(q.clone()).contains("4 values"));
        q.context = vec![("", Value::Single("1"))];
        assert!(refused(q.clone()).contains("empty"));
        q.context = vec![("aws:X", Value::Single("1")), ("AWS:x", Value::Single("2"))];
        let m = refused(q);
        assert!(m.contains("aws:X") && m.contains("AWS:x"), "{m}");
        assert_eq!(
            d.admit_batch(1_001),
            Err(Refusal::BatchTooLarge {
                size: 1_001,
                max: 1_000
            })
        );
        assert_eq!(d.admit_batch(1_000), Ok(()));
    }

    #[test]
    fn every_string_of_a_question_is_bounded() {
        let limits = RequestLimits {
            max_field_bytes: 64,
            ..RequestLimits::default()
        };
        let d = decider(true, limits);
        let now = jiff::Timestamp::now();
        let long = format!("arn:acme:docs:eu-1:123456789012:doc/{}", "a".repeat(64));
        let refused = |q: Question<'_>| match d.decide(&q, now, None, |a| a.outcome) {
            Err(Refusal::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        let m = refused(question(ALICE, "docs:GetDocument", &long));
        assert!(m.starts_with("`resource` has 100 bytes"), "{m}");
        assert!(m.contains("`limits.maxFieldBytes`"), "{m}");
        assert!(refused(question(&long, "docs:GetDocument", GUIDE)).starts_with("`principal`"));
        let action = format!("docs:{}", "G".repeat(64));
        assert!(refused(question(ALICE, &action, GUIDE)).starts_with("`action`"));
        let mut q = question(ALICE, "docs:GetDocument", GUIDE);
        q.resource_account = Some(long.as_str());
        assert!(refused(q.clone()).starts_with("`resource_account`"));
        q.resource_account = None;
        q.context = vec![(long.as_str(), Value::Single("x"))];
        assert!(refused(q.clone()).starts_with("context key `arn:"));
        let values = ["short".to_owned(), long.clone()];
        q.context = vec![("docs:Team", Value::Multi(&values))];
        assert!(refused(q.clone()).starts_with("a value of context key `docs:Team` has 100 bytes"));
        // At the limit: decided.
        let at = "a".repeat(64);
        q.context = vec![("docs:Team", Value::Single(&at))];
        assert!(d.decide(&q, now, None, |_| ()).is_ok());
    }

    #[test]
    fn the_server_facts_win_over_the_callers_claims() {
        let d = decider(true, RequestLimits::default());
        let now = jiff::Timestamp::now();
        let put = |resource: &'static str, claim: bool| {
            let mut q = question(ALICE, "docs:PutDocument", resource);
            if claim {
                q.context = vec![("AWS:UserName", Value::Single("bob"))];
            }
            d.decide(&q, now, None, |a| a.outcome).unwrap()
        };
        let own = "arn:acme:docs:eu-1:123456789012:doc/drafts/alice/x";
        let bobs = "arn:acme:docs:eu-1:123456789012:doc/drafts/bob/x";
        assert_eq!(put(own, false), Outcome::Allow);
        assert_eq!(put(own, true), Outcome::Allow);
        assert_eq!(put(bobs, true), Outcome::ImplicitDeny);
    }
}
