//! The policy engine of iamd: strict JSON with positions, ARNs, the request
//! context, compiled IAM policies and the synchronous, allocation-free
//! evaluator. It knows nothing of files, bundles, async runtimes, gRPC or
//! serde (`cargo tree -p iamd-policy`).
//!
//! Policy text flows one way: [`json`] (strict parse with positions) →
//! [`policy`] (raw elements, then compiled statements, with every error at
//! once) → [`eval::StatementSet`] (indexed by action) → [`eval::evaluate`].
//! See `docs/architecture.md`.

pub mod arn;
pub mod context;
pub mod eval;
pub mod json;
pub mod message;
pub mod policy;
