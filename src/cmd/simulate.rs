//! `iamd simulate`: decide requests against inline policies, offline.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use iamd_policy::json::Source;
use iamd_tools::simulate;

/// `iamd simulate` options.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// A JSON case file, or `-` for standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
    /// Read JSON lines, one case a line, and print one answer line per
    /// input line, in order.
    #[arg(long)]
    batch: bool,
    /// Pretty-print the answer (single case only).
    #[arg(long, conflicts_with = "batch")]
    pretty: bool,
    /// Decide against this bundle directory: cases give only the
    /// `request` (and optionally a `sessionPolicy`).
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
}

pub(crate) fn run(args: &SimulateArgs) -> io::Result<ExitCode> {
    let bundle = match args.bundle.as_deref().map(iamd_bundle::load).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("iamd: the bundle does not load:\n{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let decide = |source: &Source<'_>, now| match &bundle {
        Some(b) => simulate::run_bundle(source, b, now),
        None => simulate::run(source, now),
    };
    if args.batch {
        simulate_batch(&args.file, decide)
    } else {
        simulate_one(&args.file, args.pretty, decide)
    }
}

fn display_name(file: &std::path::Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        file.display().to_string()
    }
}

fn open(file: &std::path::Path) -> io::Result<Box<dyn BufRead>> {
    if file.as_os_str() == "-" {
        Ok(Box::new(io::BufReader::new(io::stdin())))
    } else {
        let f = std::fs::File::open(file).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read `{}`: {e}", file.display()))
        })?;
        Ok(Box::new(io::BufReader::new(f)))
    }
}

fn simulate_one(
    file: &std::path::Path,
    pretty: bool,
    decide: impl Fn(&Source<'_>, jiff::Timestamp) -> simulate::Answer,
) -> io::Result<ExitCode> {
    let mut text = String::new();
    open(file)?.read_to_string(&mut text)?;
    let name = display_name(file);
    let answer = decide(&Source::new(&name, &text), jiff::Timestamp::now());
    let mut out = io::stdout().lock();
    if pretty {
        serde_json::to_writer_pretty(&mut out, &answer)?;
    } else {
        serde_json::to_writer(&mut out, &answer)?;
    }
    writeln!(out)?;
    Ok(if answer.decision == "Error" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn simulate_batch(
    file: &std::path::Path,
    decide: impl Fn(&Source<'_>, jiff::Timestamp) -> simulate::Answer,
) -> io::Result<ExitCode> {
    let name = display_name(file);
    let mut input = open(file)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let now = jiff::Timestamp::now();
    let mut line = String::new();
    let mut number = 0u32;
    let mut failures = 0u64;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        let answer = if text.trim().is_empty() {
            let e = simulate::CaseError {
                errors: vec![format!(
                    "{name}:{number}: empty line: give one JSON case per line"
                )],
            };
            simulate::Answer::error(&e)
        } else {
            decide(&Source::new(&name, text).starting_at_line(number), now)
        };
        if answer.decision == "Error" {
            failures += 1;
        }
        serde_json::to_writer(&mut out, &answer)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if failures > 0 {
        eprintln!("iamd: {failures} of {number} cases could not be decided");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
