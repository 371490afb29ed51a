//! The policy language.
pub(crate) mod condition;
pub(crate) mod pattern;
