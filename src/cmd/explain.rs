//! `iamd explain`: one request, every layer and statement, offline.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::request::{RequestArgs, context_args};

/// `iamd explain` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The bundle directory (or AWS export file).
    #[arg(value_name = "BUNDLE")]
    pub(crate) bundle: PathBuf,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// List the statements that are not about the action too.
    #[arg(long)]
    pub(crate) all: bool,
}

pub(crate) fn run(args: &ExplainArgs) -> io::Result<ExitCode> {
    use iamd_policy::context::{Context, ContextValue};
    let bundle = match iamd_bundle::load(&args.bundle) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("iamd: the bundle does not load:\n{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let pairs = match context_args(&args.request.context) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("iamd: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut context = Context::new();
    for (k, mut v) in pairs {
        let value = if v.len() == 1 {
            ContextValue::Single(v.remove(0))
        } else {
            ContextValue::Multi(v)
        };
        context.set(&k, value);
    }
    let query = iamd_bundle::query::Query {
        principal: args.request.principal.clone(),
        action: args.request.action.clone(),
        resource: args.request.resource.clone(),
        resource_account: None,
        context,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    match bundle.trace(&query, jiff::Timestamp::now()) {
        Some(t) => iamd_tools::suite::trace::render(&query, &t, args.all, &mut out)?,
        None => writeln!(
            out,
            "decision: IMPLICIT_DENY\n  principal `{}` is not in the bundle (write an ARN of its account, or `user/NAME`, `role/NAME`)",
            args.request.principal
        )?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
