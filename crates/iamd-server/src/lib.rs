//! The daemon: the [`reload::Store`] and its reloader, the one way into a
//! decision ([`decide::Decider`]), the gRPC ([`grpc`]) and Envoy
//! ([`envoy`]) front doors over it, the admin listener
//! ([`admin`]), the credentials source ([`credentials`]) and a local STS
//! ([`sts`]), the decision
//! log, telemetry, TLS and the configuration.
//! See `docs/architecture.md`.

pub mod admin;
pub mod authzen;
mod body;
pub mod config;
pub mod conn;
pub mod credentials;
pub mod decide;
pub mod decision_log;
pub mod envoy;
pub mod grpc;
mod http;
pub mod limits;
pub mod reload;
pub mod source;
pub mod sts;
pub mod telemetry;
pub mod tls;
