#![doc = include_str!("../README.md")]
//!
//! # Crate layout
//!
//! Policy text flows one way: [`json`] (strict parse with positions) →
//! [`policy`] (raw elements, then compiled statements, with every error at
//! once) → [`eval::StatementSet`] (indexed by action) → [`eval::evaluate`]
//! (synchronous, allocation-free). [`simulate`] reads `iamd simulate` cases.
//! See `docs/architecture.md`.

pub mod admin;
pub mod arn;
pub mod bench;
pub mod bundle;
pub mod config;
pub mod context;
pub mod decision_log;
pub mod diff;
pub mod envoy;
pub mod eval;
pub mod json;
pub mod lint;
pub mod message;
pub mod pace;
pub mod policy;
pub mod regular_file;
pub mod reload;
pub mod server;
pub mod simulate;
pub mod suite;
pub mod telemetry;
pub mod tls;
