//! The policy authors' tools, offline: `iamd validate` ([`lint`]), `iamd
//! test` and `iamd explain` ([`suite`]), `iamd diff` ([`diff`]), `iamd
//! simulate` ([`simulate`]), and the JSON-lines request files they share
//! ([`requests`]). None of it is linked into the daemon's code paths.

pub mod diff;
pub mod lint;
pub mod requests;
pub mod search;
pub mod simulate;
pub mod suite;
