//! `iamd bench`: load a running daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use super::built;
use super::client::DaemonArgs;

/// `iamd bench` options.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
    /// JSON lines of requests, each with its expected decision (`expect`,
    /// or `decision` as in the decision log).
    #[arg(long, value_name = "FILE")]
    pub(crate) mix: PathBuf,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2)]
    pub(crate) connections: usize,
    /// Concurrent streams per connection.
    #[arg(long, default_value_t = 16)]
    pub(crate) streams: usize,
    /// Requests per second over all streams: an open loop. Without it, a
    /// closed loop.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Stop after this many measured requests.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// The server's PID, for its CPU time per request.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Threads sending the load: one (the default), or more, each with its
    /// own event loop and its share of the connections (as many
    /// connections as threads at least).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) workers: u16,
    /// Send `AuthorizeBatch` calls of this many requests of the mix (each
    /// answer checked; throughput counts requests, latency is a call's,
    /// `--rate` is calls a second); 1: `Authorize` calls.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch: u32,
    /// With `--batch`: ask for the revision once a batch
    /// (`revision_once`), not in each answer.
    #[arg(long, requires = "batch")]
    pub(crate) revision_once: bool,
    /// With `--batch`: ask for the determining statements as indices into
    /// a table of the batch (`statement_table`), not in full in each answer.
    #[arg(long, requires = "batch")]
    pub(crate) statement_table: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the latency and throughput chart to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub(crate) quiet: bool,
}

pub(crate) fn run(args: &BenchArgs) -> ExitCode {
    use iamd_bench as bench;
    let name = args.mix.display().to_string();
    let mix = match std::fs::read_to_string(&args.mix) {
        Ok(text) => match bench::read_mix(&name, &text) {
            Ok(m) => m,
            Err(errors) => {
                eprintln!("iamd: the mix is not valid:\n{}", errors.join("\n"));
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("iamd: {name}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoint = match args.daemon.endpoint() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(0.0));
    let options = bench::Options {
        endpoint,
        connections: args.connections.max(1),
        streams: args.streams.max(1),
        rate: args.rate.filter(|r| *r > 0.0),
        duration: secs(args.duration),
        count: args.count,
        warmup: secs(args.warmup),
        server_pid: args.server_pid,
        threads: args.workers.into(),
        batch: (args.batch > 1).then_some(bench::Batch {
            size: args.batch as usize,
            revision_once: args.revision_once,
            statement_table: args.statement_table,
        }),
    };
    // The load threads have runtimes of their own (`bench::Options::threads`).
    let rt = match built(iamd_server::grpc::runtime_builder()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let progress = std::sync::Arc::new(bench::Progress::default());
    let quiet = args.quiet;
    let report = rt.block_on(async {
        let shown = progress.clone();
        let ticker = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut last = 0;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let done = shown.done.load(std::sync::atomic::Ordering::Relaxed);
                if !quiet {
                    eprint!(
                        "\r{:>5.0} s  {done:>10} requests  {:>9} /s  {} failed   ",
                        started.elapsed().as_secs_f64(),
                        done - last,
                        shown.failed.load(std::sync::atomic::Ordering::Relaxed)
                    );
                }
                last = done;
            }
        });
        let r = bench::run(&options, std::sync::Arc::new(mix), progress.clone()).await;
        ticker.abort();
        if !quiet {
            eprintln!();
        }
        r
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.svg {
        let title = format!("{} x {} streams", report.connections, report.streams);
        match bench::chart::svg(&report, &title).map(|svg| std::fs::write(path, svg)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("iamd: {}: cannot write: {e}", path.display()),
            Err(e) => eprintln!("iamd: cannot draw the chart: {e}"),
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let l = &report.latency_us;
        println!(
            "{} loop, {} connections x {} streams{}{}",
            report.mode,
            report.connections,
            report.streams,
            report
                .batch
                .map(|n| format!(", AuthorizeBatch of {n}"))
                .unwrap_or_default(),
            report
                .target_rate
                .map(|r| {
                    let per = if report.batch.is_some() {
                        "calls"
                    } else {
                        "requests"
                    };
                    format!(", {r:.0} {per}/s intended")
                })
                .unwrap_or_default()
        );
        println!(
            "{} requests in {:.2} s: {:.0} requests/s",
            report.requests, report.seconds, report.throughput
        );
        println!(
            "latency (µs): p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        let cpu = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} µs"));
        println!(
            "cpu per request: client {}, server {}",
            cpu(report.client_cpu_us),
            cpu(report.server_cpu_us)
        );
        let errors: Vec<String> = report
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "errors: {}; wrong answers: {}",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            },
            report.wrong
        );
    }
    if report.wrong > 0 {
        eprintln!(
            "iamd: {} answers differ from the mix's expected decisions",
            report.wrong
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
