//! The `iamd` command.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use iamd_policy::json::Source;
use iamd_tools::simulate;

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
    Serve(ServeArgs),
    /// Ask a running daemon one question and print the answer.
    Authorize(AuthorizeArgs),
    /// Ask a running daemon whether it serves (grpc.health.v1): exit 0
    /// when SERVING, 1 when not, 2 when it cannot be reached.
    Health(HealthArgs),
    /// Check a bundle or policy files: errors (they would not load) and
    /// least-privilege warnings, each with file, line, statement, a stable
    /// code and a fix. Exit status: 0 clean, 1 errors (or warnings with
    /// `--deny-warnings`), 2 usage.
    Validate(ValidateArgs),
    /// Run policy test suites against a bundle: each case's request and
    /// expected decision, a report with the explanation of each failure,
    /// and the statements no case exercised. Exit status: 0 all passed, 1
    /// failures, 2 the bundle or the suites could not be read.
    Test(TestArgs),
    /// Explain one request against a bundle, offline: every layer, every
    /// statement about the action and why it matched or not (action,
    /// resource, principal, each condition with the policy's and the
    /// request's values), then the decision.
    Explain(ExplainArgs),
    /// What a bundle change newly allows and newly denies: over a request
    /// set (`--requests`: simulate cases or the daemon's decision log), or
    /// as a summary of changed permissions per principal. Exit status: 1
    /// when anything is newly allowed (unless `--allow-widening`), 2 on
    /// errors.
    Diff(DiffArgs),
    /// Load a running daemon with gRPC calls from a request mix: closed
    /// loop (the most it can do) or open loop at a fixed rate (latency from
    /// the intended send time); HDR percentiles, errors by code, wrong
    /// answers (exit 1), CPU per request, JSON and an SVG chart.
    Bench(BenchArgs),
    /// Decide requests against policies given inline, offline (like AWS's
    /// simulate-custom-policy). Prints `{"decision": ..., "matched": [...]}`.
    Simulate {
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
    },
}

/// `iamd serve` options. Each flag can also be set by its environment
/// variable; both override the configuration file, which overrides the
/// defaults shown.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A YAML configuration file (docs/operations.md).
    #[arg(long, env = "IAMD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The bundle: a directory, or an `aws iam get-account-authorization-details` file.
    #[arg(long, env = "IAMD_BUNDLE", value_name = "PATH")]
    bundle: Option<PathBuf>,
    /// gRPC address: `HOST:PORT` or `unix:PATH` [default: 127.0.0.1:50051].
    #[arg(long, env = "IAMD_LISTEN")]
    listen: Option<String>,
    /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`, `/status`)
    /// [default: 127.0.0.1:9464].
    #[arg(long, env = "IAMD_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Threads answering calls: 1 serves every connection on one thread,
    /// the fastest per core (docs/operations.md); more, for more cores
    /// [default: 1].
    #[arg(long, env = "IAMD_WORKERS")]
    workers: Option<usize>,
    /// Most requests in one AuthorizeBatch [default: 1000].
    #[arg(long, env = "IAMD_MAX_BATCH")]
    max_batch: Option<usize>,
    /// Largest message, in bytes, either way [default: 4194304].
    #[arg(long, env = "IAMD_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Calls handled at once, over all connections; more wait their turn
    /// [default: 1024].
    #[arg(long, env = "IAMD_MAX_CONCURRENT_REQUESTS")]
    max_concurrent_requests: Option<usize>,
    /// The longest a call may take, in milliseconds; a shorter client
    /// deadline wins [default: 5000].
    #[arg(long, env = "IAMD_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Seconds between digest checks of the bundle, a backstop for missed
    /// file events [default: 10].
    #[arg(long, env = "IAMD_POLL_INTERVAL")]
    poll_interval: Option<u64>,
    /// Log format: `human` or `json` [default: human].
    #[arg(long, env = "IAMD_LOG_FORMAT")]
    log_format: Option<String>,
    /// Least severe level logged: error, warn, info, debug or trace
    /// [default: info].
    #[arg(long, env = "IAMD_LOG_LEVEL")]
    log_level: Option<String>,
    /// Write the decision log to this file (appended), or `stdout` [default: off].
    #[arg(long, env = "IAMD_DECISION_LOG", value_name = "PATH")]
    decision_log: Option<String>,
    /// The fraction of decisions logged, from 0 to 1 [default: 1].
    #[arg(long, env = "IAMD_DECISION_LOG_SAMPLE_RATE")]
    decision_log_sample_rate: Option<f64>,
    /// Log denies only.
    #[arg(long, env = "IAMD_DECISION_LOG_DENIES_ONLY")]
    decision_log_denies_only: Option<bool>,
    /// A context key whose values the decision log masks (repeatable).
    #[arg(long = "decision-log-mask", value_name = "KEY")]
    decision_log_mask: Vec<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM, leaf first);
    /// reloaded when the file changes.
    #[arg(long, env = "IAMD_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "IAMD_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS.
    #[arg(long, env = "IAMD_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
}

/// A request given on the command line.
#[derive(Debug, clap::Args)]
struct RequestArgs {
    /// Who asks: an ARN or `user/NAME`, `role/NAME`.
    #[arg(long)]
    principal: String,
    /// `service:Action`.
    #[arg(long)]
    action: String,
    /// The resource ARN (or `*`).
    #[arg(long, default_value = "*")]
    resource: String,
    /// A context key: `KEY=VALUE`; give a key twice or more for a
    /// multivalued key.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
}

/// How to reach a running daemon.
#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// The daemon: `http://HOST:PORT` (or `HOST:PORT`).
    #[arg(long, env = "IAMD_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Connect over TLS and trust this CA (PEM) for the daemon's
    /// certificate; `--addr` then takes `https://`.
    #[arg(long, env = "IAMD_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM), for mutual TLS.
    #[arg(
        long,
        env = "IAMD_TLS_CLIENT_CERT",
        value_name = "FILE",
        requires = "tls_client_key"
    )]
    tls_client_cert: Option<PathBuf>,
    /// The private key of `--tls-client-cert` (PEM).
    #[arg(
        long,
        env = "IAMD_TLS_CLIENT_KEY",
        value_name = "FILE",
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<PathBuf>,
    /// The name the daemon's certificate must carry, when it is not the
    /// host of `--addr`.
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
}

/// `iamd authorize` options.
#[derive(Debug, clap::Args)]
struct AuthorizeArgs {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(flatten)]
    request: RequestArgs,
    /// Explain a deny: the layer, the nearest allow and what failed in it,
    /// the missing context keys.
    #[arg(long)]
    explain: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// `iamd health` options.
#[derive(Debug, clap::Args)]
struct HealthArgs {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// The service to ask about (`iamd.v1.Authorizer`,
    /// `envoy.service.auth.v3.Authorization`); the whole server by default.
    #[arg(long, default_value = "")]
    service: String,
}

/// `iamd validate` options.
#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// Bundle directories, AWS export files, or policy JSON files.
    #[arg(required = true, value_name = "BUNDLE|POLICY")]
    paths: Vec<PathBuf>,
    /// `human`, `json` or `sarif` (SARIF 2.1.0, for code-review
    /// annotations).
    #[arg(long, default_value = "human", value_parser = ["human", "json", "sarif"])]
    format: String,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// What a lone policy file is: `identity`, `resource`, `trust`,
    /// `boundary`, `scp` or `rcp`.
    #[arg(long, default_value = "identity", value_parser = ["identity", "resource", "trust", "boundary", "scp", "rcp"])]
    kind: String,
}

/// `iamd bench` options.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// JSON lines of requests, each with its expected decision (`expect`,
    /// or `decision` as in the decision log).
    #[arg(long, value_name = "FILE")]
    mix: PathBuf,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Concurrent streams per connection.
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Requests per second over all streams: an open loop. Without it, a
    /// closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many measured requests.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The server's PID, for its CPU time per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Threads sending the load: one (the default), or more, each with its
    /// own event loop and its share of the connections (as many
    /// connections as threads at least).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write the latency and throughput chart to this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn bench(args: &BenchArgs) -> ExitCode {
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
            "{} loop, {} connections x {} streams{}",
            report.mode,
            report.connections,
            report.streams,
            report
                .target_rate
                .map(|r| format!(", {r:.0} requests/s intended"))
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

/// `iamd diff` options.
#[derive(Debug, clap::Args)]
struct DiffArgs {
    /// The bundle as it is.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The bundle as it would be.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// JSON lines of requests: `iamd simulate` cases (`{"request": ...}`)
    /// or the daemon's decision log. Without it, a summary of the changed
    /// permissions of each principal.
    #[arg(long, value_name = "FILE")]
    requests: Option<PathBuf>,
    /// Exit 0 even when the change newly allows something.
    #[arg(long)]
    allow_widening: bool,
    /// `human` or `json`.
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    format: String,
}

fn diff(args: &DiffArgs) -> io::Result<ExitCode> {
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

/// `iamd explain` options.
#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// The bundle directory (or AWS export file).
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    request: RequestArgs,
    /// List the statements that are not about the action too.
    #[arg(long)]
    all: bool,
}

/// `KEY=VALUE` arguments, a key given twice or more being multivalued.
fn context_args(args: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut context: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for kv in args {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(format!("`--context {kv}`: write `KEY=VALUE`"));
        };
        context.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    Ok(context.into_iter().collect())
}

fn explain(args: &ExplainArgs) -> io::Result<ExitCode> {
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

/// `iamd test` options.
#[derive(Debug, clap::Args)]
struct TestArgs {
    /// The bundle directory (or AWS export file).
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// Suite files; by default `BUNDLE/tests/*.yaml`.
    #[arg(value_name = "SUITE")]
    suites: Vec<PathBuf>,
    /// `human`, `json` or `junit` (JUnit XML).
    #[arg(long, default_value = "human", value_parser = ["human", "json", "junit"])]
    format: String,
    /// List each statement no case exercised.
    #[arg(long)]
    coverage: bool,
}

fn test(args: &TestArgs) -> io::Result<ExitCode> {
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

fn validate(args: &ValidateArgs) -> io::Result<ExitCode> {
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
        Command::Serve(args) => return serve(args),
        Command::Authorize(args) => return authorize(args),
        Command::Health(args) => return health(&args),
        Command::Validate(args) => validate(&args),
        Command::Test(args) => test(&args),
        Command::Explain(args) => explain(&args),
        Command::Diff(args) => diff(&args),
        Command::Bench(args) => return bench(&args),
        Command::Simulate {
            file,
            batch,
            pretty,
            bundle,
        } => {
            let bundle = match bundle.as_deref().map(iamd_bundle::load).transpose() {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("iamd: the bundle does not load:\n{e}");
                    return ExitCode::from(2);
                }
            };
            let decide = |source: &Source<'_>, now| match &bundle {
                Some(b) => simulate::run_bundle(source, b, now),
                None => simulate::run(source, now),
            };
            if batch {
                simulate_batch(&file, decide)
            } else {
                simulate_one(&file, pretty, decide)
            }
        }
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

/// The async runtime, or the exit status after saying why there is none.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    built(tokio::runtime::Builder::new_multi_thread())
}

/// `builder`'s runtime, or the exit status after saying why there is none.
fn built(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder
        .enable_all()
        .thread_name("iamd")
        .build()
        .map_err(|e| {
            eprintln!("iamd: cannot start the runtime: {e}");
            ExitCode::from(2)
        })
}

fn serve(args: ServeArgs) -> ExitCode {
    use iamd_server::config::{self, Overrides, ServeConfig};
    let file = match args.config.as_deref().map(config::load).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("iamd: the configuration file is not valid:\n{e}");
            return ExitCode::from(2);
        }
    };
    let overrides = Overrides {
        bundle: args.bundle,
        listen: args.listen,
        admin_listen: args.admin_listen,
        workers: args.workers,
        max_batch: args.max_batch,
        max_message_bytes: args.max_message_bytes,
        max_concurrent_requests: args.max_concurrent_requests,
        request_timeout_ms: args.request_timeout_ms,
        poll_interval_seconds: args.poll_interval,
        log_format: args.log_format,
        log_level: args.log_level,
        decision_log: args.decision_log,
        decision_log_sample_rate: args.decision_log_sample_rate,
        decision_log_denies_only: args.decision_log_denies_only,
        decision_log_mask: args.decision_log_mask,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
    };
    let cfg = match ServeConfig::resolve(file, overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iamd: the configuration is not valid:\n{e}");
            return ExitCode::from(2);
        }
    };
    // One thread: it serves the calls, or with `workers` > 1 accepts the
    // connections and deals them to that many serving threads
    // (`iamd_server::grpc::serve_with_workers`).
    let workers = cfg.workers;
    let rt = match built(iamd_server::grpc::runtime_builder()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // The OTLP exporter's channel lives on the runtime.
    let entered = rt.enter();
    let telemetry = match iamd_server::telemetry::init(cfg.log_format, cfg.log_level) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    drop(entered);
    let (store, publisher) = iamd_server::reload::Store::new();
    let mut reloader =
        iamd_server::reload::Reloader::for_dir(&cfg.bundle, publisher).with_settle(cfg.settle);
    if let iamd_server::reload::ReloadOutcome::Failed(_) =
        reloader.reload(iamd_server::reload::Trigger::Start)
    {
        tracing::warn!(
            "starting without a bundle: every request is denied (UNAVAILABLE) until one loads"
        );
    }
    let options = iamd_server::reload::WatchOptions {
        poll_interval: cfg.poll_interval,
        debounce: cfg.debounce,
        ..iamd_server::reload::WatchOptions::default()
    };
    let _watcher = match iamd_server::reload::watch(reloader, options) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch the bundle: {e}");
            return ExitCode::from(2);
        }
    };
    let log = match &cfg.decision_log {
        None => None,
        Some((path, options)) => {
            match iamd_server::decision_log::DecisionLog::open(path, options.clone()) {
                Ok(l) => Some(std::sync::Arc::new(l)),
                Err(e) => {
                    tracing::error!("cannot open the decision log `{path}`: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let tls = match &cfg.tls {
        None => None,
        Some((files, _)) => match iamd_server::tls::Tls::load(files.clone()) {
            Ok(t) => Some(std::sync::Arc::new(t)),
            Err(e) => {
                tracing::error!("cannot set up TLS: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let tls_interval = cfg.tls.as_ref().map(|(_, every)| *every);
    let ServeConfig {
        listen,
        admin_listen,
        limits,
        envoy,
        ..
    } = cfg;
    let result = rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics = iamd_server::admin::Metrics::with_decision_log(store.clone(), log);
        let admin = iamd_server::admin::bind(admin_listen)
            .await
            .map_err(|e| iamd_server::grpc::ServeError::Bind(admin_listen.to_string(), e))?;
        tracing::info!(listen = %admin_listen, "serving /metrics, /healthz, /readyz, /status");
        tokio::spawn(iamd_server::admin::serve(
            admin,
            store.clone(),
            metrics.clone(),
            stopped(stop_rx.clone()),
        ));
        if let (Some(tls), Some(every)) = (&tls, tls_interval) {
            iamd_server::tls::watch(tls.clone(), every, metrics.clone());
        }
        let security = match &tls {
            None => "plaintext",
            Some(t) if t.mutual() => "mutual TLS",
            Some(_) => "TLS",
        };
        let mut services = iamd_server::grpc::Services::new(store, limits, metrics);
        if let Some(mapping) = envoy {
            services = services.with_envoy(mapping);
            tracing::info!(listen = %listen, "serving envoy.service.auth.v3.Authorization");
        }
        tracing::info!(listen = %listen, security, "serving iamd.v1.Authorizer");
        iamd_server::grpc::serve_with_workers(&listen, tls, services, workers, stopped(stop_rx))
            .await
    });
    telemetry.shutdown();
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

impl DaemonArgs {
    /// `--addr` with its scheme.
    fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        if self.addr.contains("://") {
            self.addr.clone()
        } else {
            format!("{scheme}://{}", self.addr)
        }
    }

    /// The daemon's endpoint, with TLS when `--tls-ca` is given.
    fn endpoint(&self) -> Result<tonic::transport::Endpoint, String> {
        endpoint(&self.url(), self)
    }
}

/// `iamd health`: asks `grpc.health.v1`; exit 0 when serving, 1 when not,
/// 2 when the daemon cannot be reached. For container health checks (the
/// image has no shell) and people.
fn health(args: &HealthArgs) -> ExitCode {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = match args.daemon.endpoint() {
        Ok(e) => e.connect_timeout(std::time::Duration::from_secs(2)),
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let service = args.service.clone();
    let answer = rt.block_on(async move {
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(HealthCheckRequest { service });
        request.set_timeout(std::time::Duration::from_secs(2));
        HealthClient::new(channel)
            .check(request)
            .await
            .map(|r| r.into_inner().status())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    });
    match answer {
        Ok(status) => {
            println!("{}", status.as_str_name());
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!(
                "iamd: cannot reach the daemon at `{}`: {e}",
                args.daemon.url()
            );
            ExitCode::from(2)
        }
    }
}

/// The endpoint at `addr`, with TLS when `--tls-ca` is given.
fn endpoint(addr: &str, args: &DaemonArgs) -> Result<tonic::transport::Endpoint, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let endpoint =
        Endpoint::from_shared(addr.to_owned()).map_err(|e| format!("`--addr {addr}`: {e}"))?;
    let https = addr.starts_with("https://");
    let Some(ca) = &args.tls_ca else {
        return if https {
            Err(format!(
                "`{addr}` is TLS: give `--tls-ca FILE`, the CA that signed the daemon's certificate"
            ))
        } else {
            Ok(endpoint)
        };
    };
    if !https {
        return Err(format!(
            "`--tls-ca` is TLS but `{addr}` is not: write `https://`"
        ));
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let (Some(cert), Some(key)) = (&args.tls_client_cert, &args.tls_client_key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(name) = &args.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    endpoint
        .tls_config(tls)
        .map_err(|e| format!("TLS settings: {e}"))
}

/// Completes on SIGTERM or SIGINT: the server then stops accepting, drains
/// in-flight calls and returns.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
}

fn authorize(args: AuthorizeArgs) -> ExitCode {
    use iamd_proto::pb;
    let (addr, endpoint) = (args.daemon.url(), args.daemon.endpoint());
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let context = match context_args(&args.request.context) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let context = context
        .into_iter()
        .map(|(k, mut v)| {
            let kind = if v.len() == 1 {
                pb::context_value::Kind::Single(v.remove(0))
            } else {
                pb::context_value::Kind::Multi(pb::StringList { values: v })
            };
            (k, pb::ContextValue { kind: Some(kind) })
        })
        .collect();
    let request = pb::AuthorizeRequest {
        principal: args.request.principal,
        action: args.request.action,
        resource: args.request.resource,
        context,
        resource_account: String::new(),
        explain: args.explain,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let answer = rt.block_on(async move {
        let channel = endpoint.connect().await.map_err(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            format!("cannot reach the daemon at `{addr}`: {e}{cause}")
        })?;
        let mut client = pb::authorizer_client::AuthorizerClient::new(channel);
        client
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    });
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    print_answer(&answer, args.json);
    ExitCode::SUCCESS
}

fn print_answer(a: &iamd_proto::pb::AuthorizeResponse, json: bool) {
    use iamd_proto::pb;
    let decision = pb::Decision::try_from(a.decision).unwrap_or(pb::Decision::Unspecified);
    let name = match decision {
        pb::Decision::Allow => "ALLOW",
        pb::Decision::ExplicitDeny => "EXPLICIT_DENY",
        pb::Decision::ImplicitDeny => "IMPLICIT_DENY",
        pb::Decision::Unspecified => "UNSPECIFIED",
    };
    if json {
        let determining: Vec<serde_json::Value> = a
            .determining
            .iter()
            .map(pb::DeterminingStatement::to_json)
            .collect();
        let explanation = a.explanation.as_ref().map(|e| {
            serde_json::json!({"layer": e.layer, "nearestAllow": e.nearest_allow.as_ref().map(|n| serde_json::json!({
                "policy": n.policy, "layer": n.layer, "statement": n.index, "sid": n.sid})),
                "failed": e.failed, "missingContextKeys": e.missing_context_keys})
        });
        let v = serde_json::json!({"decision": name, "revision": a.revision, "determining": determining,
            "deniedBy": a.denied_by, "reason": a.reason, "explanation": explanation});
        println!("{v}");
        return;
    }
    println!("{name}  (bundle {})", a.revision);
    for d in &a.determining {
        let effect = d.effect_name();
        let sid = if d.sid.is_empty() {
            String::new()
        } else {
            format!(" `{}`", d.sid)
        };
        println!(
            "  {effect} by {} statement {}{sid} ({})",
            d.policy, d.index, d.layer
        );
    }
    if !a.denied_by.is_empty() && a.denied_by != "principal" {
        println!("  no allow in the {} layer", a.denied_by);
    }
    if !a.reason.is_empty() {
        println!("  {}", a.reason);
    }
    if let Some(e) = &a.explanation {
        if let Some(n) = &e.nearest_allow {
            let sid = if n.sid.is_empty() {
                String::new()
            } else {
                format!(" `{}`", n.sid)
            };
            println!(
                "  nearest allow: {} statement {}{sid} ({})",
                n.policy, n.index, n.layer
            );
            for f in &e.failed {
                println!("    - {f}");
            }
        } else if e.layer != "principal" && decision == pb::Decision::ImplicitDeny {
            println!(
                "  no allow statement of the {} layer is about this action",
                e.layer
            );
        }
        if !e.missing_context_keys.is_empty() {
            println!(
                "  missing context keys: {}",
                e.missing_context_keys.join(", ")
            );
        }
    }
}
