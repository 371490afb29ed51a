//! `iamd who-can` and `iamd what-can`: offline, against a bundle.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::request::context_args;

/// What both commands take besides the question's subject.
#[derive(Debug, clap::Args)]
pub(crate) struct Over {
    /// The bundle directory (or AWS export file).
    #[arg(value_name = "BUNDLE")]
    pub(crate) bundle: PathBuf,
    /// The resource ARN (or `*`).
    #[arg(long, default_value = "*")]
    pub(crate) resource: String,
    /// A context key: `KEY=VALUE` (a key twice or more: multivalued).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    pub(crate) context: Vec<String>,
    /// Print a JSON array.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `iamd who-can` options.
#[derive(Debug, clap::Args)]
pub(crate) struct WhoCanArgs {
    /// `service:Action`.
    #[arg(long)]
    pub(crate) action: String,
    #[command(flatten)]
    pub(crate) over: Over,
}

/// `iamd what-can` options.
#[derive(Debug, clap::Args)]
pub(crate) struct WhatCanArgs {
    /// Who: an ARN or `user/NAME`, `role/NAME`.
    #[arg(long)]
    pub(crate) principal: String,
    #[command(flatten)]
    pub(crate) over: Over,
}

pub(crate) fn who_can(args: &WhoCanArgs) -> io::Result<ExitCode> {
    let o = &args.over;
    let Some((bundle, context)) = setup(&o.bundle, &o.context) else {
        return Ok(ExitCode::from(2));
    };
    let now = jiff::Timestamp::now();
    let who = iamd_tools::search::who_can(&bundle, &args.action, &o.resource, &context, now);
    print(&who, o.json)
}

pub(crate) fn what_can(args: &WhatCanArgs) -> io::Result<ExitCode> {
    let o = &args.over;
    let Some((bundle, context)) = setup(&o.bundle, &o.context) else {
        return Ok(ExitCode::from(2));
    };
    let now = jiff::Timestamp::now();
    let what = iamd_tools::search::what_can(&bundle, &args.principal, &o.resource, &context, now);
    print(&what, o.json)
}

fn setup(
    path: &std::path::Path,
    context: &[String],
) -> Option<(iamd_bundle::Bundle, iamd_policy::context::Context)> {
    use iamd_policy::context::{Context, ContextValue};
    let bundle = match iamd_bundle::load(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("iamd: the bundle does not load:\n{e}");
            return None;
        }
    };
    let pairs = match context_args(context) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("iamd: {e}");
            return None;
        }
    };
    let mut ctx = Context::new();
    for (k, mut v) in pairs {
        let value = if v.len() == 1 {
            ContextValue::Single(v.remove(0))
        } else {
            ContextValue::Multi(v)
        };
        ctx.set(&k, value);
    }
    Some((bundle, ctx))
}

fn print(names: &[&str], json: bool) -> io::Result<ExitCode> {
    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        writeln!(out, "{}", serde_json::json!(names))?;
    } else {
        for n in names {
            writeln!(out, "{n}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
