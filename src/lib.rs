//! iamd
pub mod arn;
pub mod context;
pub mod eval;
pub mod json;
pub mod policy;
pub mod simulate;
