//! `iamd diff`: what a bundle change allows and denies anew.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// `iamd diff` options.
#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The bundle as it is.
    #[arg(value_name = "OLD")]
    pub(crate) old: PathBuf,
    /// The bundle as it would be.
    #[arg(value_name = "NEW")]
    pub(crate) new: PathBuf,
    /// JSON lines of requests: `iamd simulate` cases (`{"request": ...}`)
    /// or the daemon's decision log. Without it, a summary of the changed
    /// permissions of each principal.
    #[arg(long, value_name = "FILE")]
    pub(crate) requests: Option<PathBuf>,
    /// Exit 0 even when the change newly allows something.
    #[arg(long)]
    pub(crate) allow_widening: bool,
    /// `human` or `json`.
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    pub(crate) format: String,
}

pub(crate) fn run(args: &DiffArgs) -> io::Result<ExitCode> {
    use iamd_tools::diff;
    let load = |p: &std::path::Path| iamd_bundle::BundleFiles::read(p).and_then(|f| f.catalog());
    let (old, new) = match (load(&args.old), load(&args.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            for (which, r) in [("old", o.err()), ("new", n.err())] {
                if let Some(e) = r {
                    eprintln!("iamd: the {which} bundle does not load:\n{e}");
                }
            }
            return Ok(ExitCode::from(2));
        }
    };
    let now = jiff::Timestamp::now();
    let mut out = BufWriter::new(io::stdout().lock());
    let widened = match &args.requests {
        Some(path) => {
            let name = path.display().to_string();
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("iamd: {name}: cannot read: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let queries = match diff::read_requests(&name, &text) {
                Ok(q) => q,
                Err(errors) => {
                    eprintln!("iamd: the requests are not valid:\n{}", errors.join("\n"));
                    return Ok(ExitCode::from(2));
                }
            };
            let d = diff::by_requests(&old.0, &new.0, &queries, now);
            if args.format == "json" {
                serde_json::to_writer_pretty(&mut out, &d)?;
                writeln!(out)?;
            } else {
                diff::render_requests(&d, &mut out)?;
            }
            !d.newly_allowed.is_empty()
        }
        None => {
            let changes = diff::summary((&old.0, &old.1), (&new.0, &new.1), now);
            if args.format == "json" {
                let json: Vec<serde_json::Value> = changes
                    .iter()
                    .map(|c| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        v["wider"] = c.widens().into();
                        v
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut out, &json)?;
                writeln!(out)?;
            } else {
                diff::render_summary(&changes, &mut out)?;
            }
            changes.iter().any(diff::Change::widens)
        }
    };
    out.flush()?;
    Ok(if widened && !args.allow_widening {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
