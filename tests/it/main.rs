//! iamd's integration tests, one binary.

mod cases;
mod managed_policies;
mod properties;
