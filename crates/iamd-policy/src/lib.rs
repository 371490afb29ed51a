//! The policy engine of iamd: strict JSON with positions, ARNs, the request
//! context, compiled IAM policies and the synchronous, allocation-free
//! evaluator. It knows nothing of files, bundles, async runtimes, gRPC or
//! serde (`cargo tree -p iamd-policy`).
//!
//! Policy text flows one way: [`json`] (strict parse with positions) →
//! [`policy`] (raw elements, then compiled statements, with every error at
//! once) → [`eval::StatementSet`] (indexed by action) → [`eval::evaluate`].
//! See `docs/architecture.md`.
//!
//! ```
//! use std::sync::Arc;
//! use iamd_policy::arn::Principal;
//! use iamd_policy::context::Context;
//! use iamd_policy::eval::{evaluate, Layers, Outcome, Request, StatementSet};
//! use iamd_policy::json::Source;
//! use iamd_policy::policy::{Policy, PolicyKind};
//!
//! let text = r#"{"Version": "2012-10-17", "Statement": [
//!   {"Effect": "Allow", "Action": "docs:*", "Resource": "*"},
//!   {"Effect": "Deny", "Action": "docs:DeleteDocument", "Resource": "*"}]}"#;
//! let policy = Policy::parse(&Source::new("team.json", text), PolicyKind::Identity)?;
//! let identity = StatementSet::new([Arc::new(policy)]);
//! let alice = Principal::parse("arn:aws:iam::123456789012:user/alice")?;
//! let ctx = Context::new();
//! let req = Request::new(&alice, "docs:DeleteDocument", "arn:acme:docs:eu-1:123456789012:doc/42", &ctx);
//! let mut matched = Vec::new();
//! let decision = evaluate(&Layers::identity(&identity), &req, &mut matched);
//! assert_eq!(decision.outcome, Outcome::ExplicitDeny);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arn;
pub mod context;
pub mod eval;
pub mod json;
pub mod message;
pub mod policy;
