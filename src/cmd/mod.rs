//! One file per command, each with its own arguments; `main.rs` parses
//! and dispatches.

pub(crate) mod authorize;
pub(crate) mod authzen;
#[cfg(feature = "bench")]
pub(crate) mod bench;
pub(crate) mod bundle;
pub(crate) mod client;
pub(crate) mod diff;
pub(crate) mod explain;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod mfa;
pub(crate) mod request;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod test;
pub(crate) mod validate;
pub(crate) mod who_can;

use std::process::ExitCode;

/// The async runtime, or the exit status after saying why there is none.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    built(tokio::runtime::Builder::new_multi_thread())
}

/// `builder`'s runtime, or the exit status after saying why there is none.
pub(crate) fn built(
    mut builder: tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder
        .enable_all()
        .thread_name("iamd")
        .build()
        .map_err(|e| {
            eprintln!("iamd: cannot start the runtime: {e}");
            ExitCode::from(2)
        })
}
