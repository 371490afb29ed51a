//! iamd's integration tests, one binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on the first surprise"
)]

mod architecture;
mod authzen;
mod aws_import;
mod bench;
mod bundle;
mod cases;
mod cli;
mod credentials;
mod daemon;
mod debian;
mod deploy;
mod diff;
mod envoy;
mod explain;
mod harness;
mod integrity;
mod properties;
mod python;
mod python_client;
mod registry;
mod reload;
mod remote;
mod sessions;
mod soak;
mod suite;
mod telemetry;
mod tls;
mod validate;
