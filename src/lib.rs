//! iamd
pub mod arn;
pub mod context;
pub mod json;
pub mod policy;
