//! `iamd test`: policy test suites.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// `iamd test` options.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The bundle directory (or AWS export file).
    #[arg(value_name = "BUNDLE")]
    pub(crate) bundle: PathBuf,
    /// Suite files; by default `BUNDLE/tests/*.yaml`.
    #[arg(value_name = "SUITE")]
    pub(crate) suites: Vec<PathBuf>,
    /// `human`, `json` or `junit` (JUnit XML).
    #[arg(long, default_value = "human", value_parser = ["human", "json", "junit"])]
    pub(crate) format: String,
    /// List each statement no case exercised.
    #[arg(long)]
    pub(crate) coverage: bool,
}

pub(crate) fn run(args: &TestArgs) -> io::Result<ExitCode> {
    use iamd_tools::suite::{self, render};
    let loaded = iamd_bundle::BundleFiles::read(&args.bundle)
        .and_then(|f| f.catalog().map(|(b, c)| (f, b, c)));
    let (files, bundle, catalog) = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("iamd: the bundle does not load:\n{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let paths = if args.suites.is_empty() {
        suite::discover(&args.bundle)
    } else {
        args.suites.clone()
    };
    if paths.is_empty() {
        eprintln!(
            "iamd: no suites: write `{}/tests/NAME.yaml`, or name suite files after the bundle",
            args.bundle.display()
        );
        return Ok(ExitCode::from(2));
    }
    let mut errors = Vec::new();
    let cases = suite::read(&paths, &mut errors);
    let mut report = suite::run(&bundle, &catalog, files.dir(), cases);
    report.errors = errors;
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format.as_str() {
        "json" => {
            serde_json::to_writer_pretty(&mut out, &render::json(&report))?;
            writeln!(out)?;
        }
        "junit" => render::junit(&report, &mut out)?,
        _ => render::human(&report, args.coverage, &mut out)?,
    }
    out.flush()?;
    Ok(if report.failures() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
