//! The `iamd` command.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc: under load the daemon spends a tenth of its time in glibc's
/// malloc and free (HTTP/2 frames, protobuf messages); see
/// docs/benchmarks.md for the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// iamd: an authorization sidecar for AWS-IAM-style policies.
#[derive(Debug, Parser)]
#[command(name = "iamd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: serve iamd.v1.Authorizer (and grpc.health.v1,
    /// reflection) over the bundle, reloading it when it changes.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Ask a running daemon one question and print the answer.
    Authorize(cmd::authorize::AuthorizeArgs),
    /// Ask a running daemon whether it serves (grpc.health.v1): exit 0
    /// when SERVING, 1 when not, 2 when it cannot be reached.
    Health(cmd::health::HealthArgs),
    /// Check a bundle or policy files: errors (they would not load) and
    /// least-privilege warnings, each with file, line, statement, a stable
    /// code and a fix. Exit status: 0 clean, 1 errors (or warnings with
    /// `--deny-warnings`), 2 usage.
    Validate(cmd::validate::ValidateArgs),
    /// Run policy test suites against a bundle: each case's request and
    /// expected decision, a report with the explanation of each failure,
    /// and the statements no case exercised. Exit status: 0 all passed, 1
    /// failures, 2 the bundle or the suites could not be read.
    Test(cmd::test::TestArgs),
    /// Explain one request against a bundle, offline: every layer, every
    /// statement about the action and why it matched or not (action,
    /// resource, principal, each condition with the policy's and the
    /// request's values), then the decision.
    Explain(cmd::explain::ExplainArgs),
    /// Who may do an action on a resource: the bundle's users and roles
    /// that a real evaluation allows, offline, one per line.
    WhoCan(cmd::who_can::WhoCanArgs),
    /// What a principal may do on a resource: the actions the bundle knows
    /// (named by its policies without a wildcard, or declared under
    /// `search:` in bundle.yaml) that a real evaluation allows, offline.
    WhatCan(cmd::who_can::WhatCanArgs),
    /// What a bundle change newly allows and newly denies: over a request
    /// set (`--requests`: simulate cases or the daemon's decision log), or
    /// as a summary of changed permissions per principal. Exit status: 1
    /// when anything is newly allowed (unless `--allow-widening`), 2 on
    /// errors.
    Diff(cmd::diff::DiffArgs),
    #[cfg(feature = "bench")]
    /// Load a running daemon with gRPC calls from a request mix: closed
    /// loop (the most it can do) or open loop at a fixed rate (latency from
    /// the intended send time); HDR percentiles, errors by code, wrong
    /// answers (exit 1), CPU per request, JSON and an SVG chart.
    Bench(cmd::bench::BenchArgs),
    /// Bundle archives and signatures: build, keygen, sign, verify
    /// (docs/bundles.md).
    #[command(subcommand)]
    Bundle(cmd::bundle::BundleCommand),
    /// Users' access keys in the credentials directory: create (the secret
    /// printed once), list, deactivate, activate, delete
    /// (docs/credentials.md).
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Virtual MFA devices in the credentials directory: enable (a QR
    /// code, then two consecutive codes), list, deactivate
    /// (docs/credentials.md).
    #[command(subcommand)]
    Mfa(cmd::mfa::MfaCommand),
    /// Decide requests against policies given inline, offline (like AWS's
    /// simulate-custom-policy). Prints `{"decision": ..., "matched": [...]}`.
    Simulate(cmd::simulate::SimulateArgs),
}

/// A closed pipe (`iamd ... | head -1`) ends the command quietly, as the
/// reader asked; another failure to write the output (a full disk) is one
/// line, not a panic's message.
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(why) = message.strip_prefix("failed printing to stdout: ") {
            if why.starts_with("Broken pipe") {
                std::process::exit(0);
            }
            eprintln!("iamd: cannot write the output: {why}");
            std::process::exit(1);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_output();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => return cmd::serve::run(*args),
        Command::Authorize(args) => return cmd::authorize::run(args),
        Command::Health(args) => return cmd::health::run(&args),
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Test(args) => cmd::test::run(&args),
        Command::Explain(args) => cmd::explain::run(&args),
        Command::WhoCan(args) => cmd::who_can::who_can(&args),
        Command::WhatCan(args) => cmd::who_can::what_can(&args),
        Command::Diff(args) => cmd::diff::run(&args),
        #[cfg(feature = "bench")]
        Command::Bench(args) => return cmd::bench::run(&args),
        Command::Simulate(args) => cmd::simulate::run(&args),
        Command::Bundle(c) => cmd::bundle::run(&c),
        Command::Keys(c) => cmd::keys::run(&c),
        Command::Mfa(c) => cmd::mfa::run(&c),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iamd: {e}");
            ExitCode::from(2)
        }
    }
}
