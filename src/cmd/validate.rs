//! `iamd validate`: errors and least-privilege warnings.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// `iamd validate` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Bundle directories, AWS export files, or policy JSON files.
    #[arg(required = true, value_name = "BUNDLE|POLICY")]
    pub(crate) paths: Vec<PathBuf>,
    /// `human`, `json` or `sarif` (SARIF 2.1.0, for code-review
    /// annotations).
    #[arg(long, default_value = "human", value_parser = ["human", "json", "sarif"])]
    pub(crate) format: String,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub(crate) deny_warnings: bool,
    /// What a lone policy file is: `identity`, `resource`, `trust`,
    /// `boundary`, `scp` or `rcp`.
    #[arg(long, default_value = "identity", value_parser = ["identity", "resource", "trust", "boundary", "scp", "rcp"])]
    pub(crate) kind: String,
}

pub(crate) fn run(args: &ValidateArgs) -> io::Result<ExitCode> {
    use iamd_tools::lint::{self, LoneKind, render};
    let kind = match args.kind.as_str() {
        "resource" => LoneKind::Resource,
        "trust" => LoneKind::Trust,
        "boundary" => LoneKind::Boundary,
        "scp" => LoneKind::Scp,
        "rcp" => LoneKind::Rcp,
        _ => LoneKind::Identity,
    };
    let findings = lint::paths(&args.paths, kind);
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format.as_str() {
        "json" => serde_json::to_writer_pretty(&mut out, &render::json(&findings))?,
        "sarif" => serde_json::to_writer_pretty(&mut out, &render::sarif(&findings))?,
        _ => render::human(&findings, &mut out)?,
    }
    if args.format != "human" {
        writeln!(out)?;
    }
    out.flush()?;
    let (errors, warnings) = render::counts(&findings);
    Ok(if errors > 0 || (args.deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
