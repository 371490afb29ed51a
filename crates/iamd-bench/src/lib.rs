//! `iamd bench`: a gRPC load generator for `iamd.v1.Authorizer`.
//!
//! N connections times M concurrent streams each, in a closed loop (each
//! stream sends its next request when the last is answered: the most the
//! server can do) or an open loop at a fixed total rate (each request has
//! an intended send time, and its latency is measured from that time, so a
//! slow server cannot hide its queue: no coordinated omission). The open
//! loop's sends are released by a pacing thread with sub-millisecond sleeps
//! (`Pacer`), not by the runtime's 1 ms timer, which sent them in bursts
//! of a millisecond's worth (20 requests at 20,000/s) and measured the
//! bursts' queue rather than the server's. Bounded by a
//! duration and optionally a count, after a warm-up that is not measured.
//! The requests come from a JSON-lines mix; with an expected decision, every
//! answer is checked. Latencies go into an HDR histogram per stream, merged
//! at the end.

pub mod chart;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use iamd_proto::{Encoded, pb};

/// How to load the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `http://HOST:PORT`.
    pub endpoint: tonic::transport::Endpoint,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Concurrent streams on each connection.
    pub streams: usize,
    /// Requests per second over all streams (open loop); `None`: closed
    /// loop.
    pub rate: Option<f64>,
    /// How long to measure.
    pub duration: Duration,
    /// At most this many measured requests.
    pub count: Option<u64>,
    /// How long to load before measuring.
    pub warmup: Duration,
    /// The server's process, for its CPU time per request.
    pub server_pid: Option<u32>,
    /// Threads sending the load, each with a one-thread runtime of its own
    /// and its share of the connections (at most one per connection).
    pub threads: usize,
    /// `AuthorizeBatch` calls of this many requests instead of `Authorize`
    /// calls (`None` or 1: `Authorize`).
    pub batch: Option<Batch>,
}

/// How batches are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Requests in one `AuthorizeBatch` call.
    pub size: usize,
    /// Ask for the revision once a batch (`revision_once`).
    pub revision_once: bool,
    /// Ask for the determining statements as indices into a table of the
    /// batch (`statement_table`).
    pub statement_table: bool,
}

/// One request of the mix and the decision it must get, if known.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The call.
    pub call: Call,
    /// The expected decision.
    pub expect: Option<pb::Decision>,
}

/// What a mix entry asks.
#[derive(Debug, Clone)]
pub enum Call {
    /// `iamd.v1.Authorizer/Authorize`.
    Authorize(pb::AuthorizeRequest),
    /// Envoy's `envoy.service.auth.v3.Authorization/Check`: allowed when
    /// its status is OK, else the decision its deny body names.
    Check(Box<envoy_types::ext_authz::v3::pb::CheckRequest>),
}

/// A `CheckRequest` as Envoy sends it: the HTTP method, path and headers,
/// and the claims of a JWT that `jwt_authn` verified (in the metadata under
/// `envoy.filters.http.jwt_authn` / `jwt_payload`).
fn check_request(
    c: &serde_json::Value,
) -> Result<envoy_types::ext_authz::v3::pb::CheckRequest, String> {
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
    use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
    fn value(v: &serde_json::Value) -> Value {
        let kind = match v {
            serde_json::Value::Bool(b) => Kind::BoolValue(*b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => Kind::StringValue(s.clone()),
            serde_json::Value::Array(a) => Kind::ListValue(ListValue {
                values: a.iter().map(value).collect(),
            }),
            serde_json::Value::Object(o) => Kind::StructValue(Struct {
                fields: o.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
            }),
            serde_json::Value::Null => Kind::NullValue(0),
        };
        Value { kind: Some(kind) }
    }
    let text = |k: &str| {
        c.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (method, path) = (text("method"), text("path"));
    if method.is_empty() || !path.starts_with('/') {
        return Err("a `check` needs `method` and a `path` starting with `/`".into());
    }
    let headers = c
        .get("headers")
        .and_then(serde_json::Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.to_lowercase(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let metadata_context = c.get("jwt").map(|claims| {
        let payload = Struct {
            fields: [("jwt_payload".to_owned(), value(claims))].into(),
        };
        Metadata {
            filter_metadata: [("envoy.filters.http.jwt_authn".to_owned(), payload)].into(),
            ..Default::default()
        }
    });
    Ok(envoy_types::ext_authz::v3::pb::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method,
                    path,
                    headers,
                    scheme: "https".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            metadata_context,
            ..Default::default()
        }),
    })
}

/// Reads a mix: JSON lines, each a request (`principal`, `action`,
/// `resource`, `context`) at the top or under `request`, with the expected
/// decision in `expect` (or `decision`, as the decision log writes it):
/// `ALLOW`, `EXPLICIT_DENY`, `IMPLICIT_DENY`. Every bad line is reported.
pub fn read_mix(name: &str, text: &str) -> Result<Vec<Entry>, Vec<String>> {
    let entries = iamd_tools::requests::request_lines(name, text, |line, r| {
        let text = |k: &str| {
            r.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let context = iamd_tools::requests::context_values(r)
            .into_iter()
            .map(|(k, v)| {
                let kind = match v {
                    iamd_policy::context::ContextValue::Single(s) => {
                        pb::context_value::Kind::Single(s)
                    }
                    iamd_policy::context::ContextValue::Multi(values) => {
                        pb::context_value::Kind::Multi(pb::StringList { values })
                    }
                };
                (k, pb::ContextValue { kind: Some(kind) })
            })
            .collect();
        let expect = match line
            .get("expect")
            .or_else(|| line.get("decision"))
            .and_then(serde_json::Value::as_str)
        {
            None => None,
            Some(d) => match pb::Decision::from_str_name(d) {
                Some(d) if d != pb::Decision::Unspecified => Some(d),
                _ => {
                    return Err(format!(
                        "expected decision `{d}`: write `ALLOW`, `EXPLICIT_DENY` or `IMPLICIT_DENY`"
                    ));
                }
            },
        };
        if let Some(check) = line.get("check") {
            return Ok(Entry {
                call: Call::Check(Box::new(check_request(check)?)),
                expect,
            });
        }
        let resource = text("resource");
        let request = pb::AuthorizeRequest {
            principal: text("principal"),
            action: text("action"),
            resource: if resource.is_empty() {
                "*".into()
            } else {
                resource
            },
            context,
            resource_account: text("resourceAccount"),
            explain: false,
            signed: None,
        };
        if request.principal.is_empty() || request.action.is_empty() {
            return Err("a request needs `principal` and `action`".into());
        }
        Ok(Entry {
            call: Call::Authorize(request),
            expect,
        })
    })?;
    if entries.is_empty() {
        return Err(vec![format!("{name}: no requests")]);
    }
    Ok(entries)
}

/// The decision of a `CheckResponse`: allowed when OK, else the
/// `decision` its deny body names (an implicit deny if none).
fn check_decision(r: &envoy_types::ext_authz::v3::pb::CheckResponse) -> pb::Decision {
    use envoy_types::ext_authz::v3::pb::HttpResponse;
    if r.status.as_ref().is_none_or(|s| s.code == 0) {
        return pb::Decision::Allow;
    }
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|v| {
                v.get("decision")?
                    .as_str()
                    .and_then(pb::Decision::from_str_name)
            })
            .unwrap_or(pb::Decision::ImplicitDeny),
        _ => pb::Decision::ImplicitDeny,
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Connections times streams.
    pub connections: usize,
    /// Streams per connection.
    pub streams: usize,
    /// The target rate (open loop).
    pub target_rate: Option<f64>,
    /// Requests in one `AuthorizeBatch` call, when batches were sent.
    pub batch: Option<usize>,
    /// Requests answered in the measured window (errors included; with
    /// batches, every request of a batch counts, and a latency is a call's).
    pub requests: u64,
    /// The measured window, in seconds.
    pub seconds: f64,
    /// Requests per second.
    pub throughput: f64,
    /// Latency of the answered requests, microseconds.
    pub latency_us: Percentiles,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Answers that differ from the mix's expected decision.
    pub wrong: u64,
    /// Answered requests per second of the window.
    pub timeline: Vec<u64>,
    /// The 99th percentile latency of each second of the window,
    /// microseconds (to see, say, a reload during the run).
    pub timeline_p99_us: Vec<u64>,
    /// The latency distribution: (percentile, microseconds), for the chart.
    pub distribution: Vec<(f64, f64)>,
    /// This process's CPU time per request, microseconds.
    pub client_cpu_us: Option<f64>,
    /// The server's CPU time per request, microseconds.
    pub server_cpu_us: Option<f64>,
}

/// A batch call, encoded once (a call then costs its copy into the
/// connection, not the encoding of its requests), and the decisions its
/// answers must be.
#[derive(Debug, Clone)]
struct EncodedBatch {
    body: Encoded,
    expect: Vec<Option<pb::Decision>>,
}

/// Batches of `batch.size` consecutive entries of `mix` (wrapping), one
/// starting at each of `starts` places spread over the mix; an error
/// naming the first entry that is not an `Authorize` request.
fn batches(mix: &[Entry], batch: Batch, starts: usize) -> Result<Vec<EncodedBatch>, BenchError> {
    use prost::Message as _;
    let mut requests = Vec::with_capacity(mix.len());
    for (n, e) in mix.iter().enumerate() {
        match &e.call {
            Call::Authorize(r) => requests.push((r, e.expect)),
            Call::Check(_) => {
                return Err(BenchError::Mix(format!(
                    "entry {} of the mix is an Envoy check: a batch carries `Authorize` requests only",
                    n + 1
                )));
            }
        }
    }
    let starts = starts.clamp(1, mix.len().max(1));
    let mut out = Vec::with_capacity(starts);
    for s in 0..starts {
        let first = s * mix.len() / starts;
        let entries: Vec<_> = (0..batch.size)
            .filter_map(|k| requests.get((first + k) % requests.len()))
            .collect();
        let message = pb::AuthorizeBatchRequest {
            requests: entries.iter().map(|(r, _)| (*r).clone()).collect(),
            revision_once: batch.revision_once,
            statement_table: batch.statement_table,
        };
        out.push(EncodedBatch {
            body: Encoded(message.encode_to_vec().into()),
            expect: entries.iter().map(|(_, e)| *e).collect(),
        });
    }
    Ok(out)
}

/// One `AuthorizeBatch` call of `b`: how many answers differ from the
/// expected decisions (all of them if the count is not the batch's).
async fn batch_call(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    b: &EncodedBatch,
) -> Result<u64, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/iamd.v1.Authorizer/AuthorizeBatch");
    let codec = tonic_prost::ProstCodec::<Encoded, pb::AuthorizeBatchResponse>::default();
    let answer = grpc
        .unary(tonic::Request::new(b.body.clone()), path, codec)
        .await?;
    let answers = &answer.get_ref().responses;
    if answers.len() != b.expect.len() {
        return Ok(b.expect.len() as u64);
    }
    Ok(answers
        .iter()
        .zip(&b.expect)
        .filter(|(a, e)| e.is_some_and(|e| e != a.decision()))
        .count() as u64)
}

/// The bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The mix cannot be sent as asked.
    #[error("{0}")]
    Mix(String),
    /// No connection to the server.
    #[error("cannot connect to `{0}`: {1}")]
    Connect(String, String),
    /// The histogram could not be made.
    #[error("cannot make a histogram: {0}")]
    Histogram(String),
    /// A load thread could not start or failed.
    #[error("a load thread failed: {0}")]
    Thread(String),
}

/// Opens `n` connections (a channel each) on the calling runtime.
async fn connect(
    endpoint: &tonic::transport::Endpoint,
    n: usize,
) -> Result<Vec<tonic::transport::Channel>, BenchError> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| BenchError::Connect(endpoint.uri().to_string(), e.to_string()))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Runs `streams` streams on each of `channels`, on the calling runtime,
/// until the run ends; each stream's counts.
async fn run_streams(
    channels: Vec<tonic::transport::Channel>,
    streams: usize,
    shared: Arc<Shared>,
) -> Result<Vec<Worker>, BenchError> {
    let mut tasks = Vec::with_capacity(channels.len() * streams);
    // Stream ids over all threads: this thread's channels are not the
    // first ones, so the mix offset comes from a counter shared by all.
    for channel in &channels {
        for _ in 0..streams {
            let w = shared.next_stream.fetch_add(1, Ordering::Relaxed) as usize;
            let me = Worker::new(shared.seconds)?;
            tasks.push(tokio::spawn(stream(channel.clone(), w, me, shared.clone())));
        }
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(me) = t.await {
            out.push(me);
        }
    }
    Ok(out)
}

/// CPU time of a process (utime + stime of `/proc/PID/stat`, in clock
/// ticks of 1/100 s, Linux's USER_HZ), in microseconds.
fn cpu_us(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: fields count from after its `)`.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000.0)
}

/// Progress, read by the progress line while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests answered so far (warm-up included).
    pub done: AtomicU64,
    /// Failed calls so far.
    pub failed: AtomicU64,
}

struct Worker {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    wrong: u64,
    measured: u64,
    timeline: Vec<u64>,
    /// A coarse histogram per second.
    seconds: Vec<Histogram<u64>>,
}

impl Worker {
    /// Empty counts for a window of `seconds`.
    fn new(seconds: usize) -> Result<Self, BenchError> {
        let per_second = (0..seconds)
            .map(|_| Histogram::new_with_bounds(1, 60_000_000, 2))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BenchError::Histogram(e.to_string()))?;
        Ok(Self {
            histogram: histogram()?,
            errors: BTreeMap::new(),
            wrong: 0,
            measured: 0,
            timeline: vec![0; seconds],
            seconds: per_second,
        })
    }
}

/// One stream: calls one after the other on `channel` (closed loop), or
/// as the pacer releases them (open loop), from entry `w` of the mix on,
/// every `shared.streams`-th, until the run ends.
async fn stream(
    channel: tonic::transport::Channel,
    w: usize,
    mut me: Worker,
    shared: Arc<Shared>,
) -> Worker {
    let mut client = pb::authorizer_client::AuthorizerClient::new(channel.clone());
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let mut envoy =
        envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::new(
            channel,
        );
    let (mix, progress) = (&shared.mix, &shared.progress);
    // The answers a call brings: 1, or a batch's.
    let answers = shared.batches.first().map_or(1, |b| b.expect.len() as u64);
    let mut i = w;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = match &shared.pacer {
            None => tokio::time::Instant::now(),
            Some(p) => match p.next().await {
                Some(sent) => tokio::time::Instant::from_std(sent),
                None => break,
            },
        };
        if sent >= shared.end {
            break;
        }
        let measured = sent >= shared.measure_from;
        if measured
            && let Some(limit) = shared.count
            && shared.budget.fetch_add(answers, Ordering::Relaxed) >= limit
        {
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        let k = i;
        i += shared.streams;
        // How many answers were not the expected ones.
        let result = if shared.batches.is_empty() {
            let entry = &mix[k % mix.len()];
            let decision = match &entry.call {
                Call::Authorize(r) => client
                    .authorize(r.clone())
                    .await
                    .map(|a| a.get_ref().decision()),
                Call::Check(r) => envoy
                    .check((**r).clone())
                    .await
                    .map(|a| check_decision(a.get_ref())),
            };
            decision.map(|d| u64::from(entry.expect.is_some_and(|e| e != d)))
        } else {
            let b = &shared.batches[(k / shared.streams) % shared.batches.len()];
            batch_call(&mut grpc, b).await
        };
        let done = tokio::time::Instant::now();
        progress.done.fetch_add(answers, Ordering::Relaxed);
        if measured {
            me.measured += answers;
            let us = done.saturating_duration_since(sent).as_micros().max(1) as u64;
            let _ = me.histogram.record(us.min(60_000_000));
            let second = done
                .saturating_duration_since(shared.measure_from)
                .as_secs() as usize;
            if let Some(slot) = me.timeline.get_mut(second) {
                *slot += answers;
            }
            if let Some(h) = me.seconds.get_mut(second) {
                let _ = h.record(us.min(60_000_000));
            }
            match &result {
                Ok(wrong) => me.wrong += wrong,
                Err(status) => {
                    progress.failed.fetch_add(answers, Ordering::Relaxed);
                    *me.errors.entry(format!("{:?}", status.code())).or_default() += answers;
                }
            }
        }
    }
    me
}

/// What every stream of a run shares.
struct Shared {
    mix: Arc<Vec<Entry>>,
    progress: Arc<Progress>,
    /// Measured requests started (with `count`).
    budget: AtomicU64,
    count: Option<u64>,
    stop: AtomicBool,
    pacer: Option<Pacer>,
    measure_from: tokio::time::Instant,
    end: tokio::time::Instant,
    /// Seconds of the measured window.
    seconds: usize,
    /// Streams over all connections (the stride through the mix).
    streams: usize,
    /// The next stream's id (its first entry of the mix).
    next_stream: AtomicU64,
    /// With `Options::batch`, the batches the streams send in turn; empty:
    /// each call is one entry of the mix.
    batches: Vec<EncodedBatch>,
}

/// Runs the load described by `opts` with `mix`; `progress` is updated as
/// answers come.
pub async fn run(
    opts: &Options,
    mix: Arc<Vec<Entry>>,
    progress: Arc<Progress>,
) -> Result<Report, BenchError> {
    let connections = opts.connections.max(1);
    let threads = opts.threads.clamp(1, connections);
    let batches = match opts.batch {
        Some(b) if b.size > 1 => batches(&mix, b, 16)?,
        _ => Vec::new(),
    };
    let client_cpu = cpu_us(None);
    let server_cpu = opts.server_pid.and_then(|p| cpu_us(Some(p)));
    // Connection `c` belongs to thread `c % threads` (`owned(t)`: how many
    // thread `t` has); each thread connects its own, so that its runtime
    // drives their I/O, then they all start together.
    let owned = |t: usize| (0..connections).filter(|c| c % threads == t).count();
    let shared = |progress: Arc<Progress>| -> Arc<Shared> {
        let start = tokio::time::Instant::now();
        let measure_from = start + opts.warmup;
        let end = measure_from + opts.duration;
        Arc::new(Shared {
            mix: mix.clone(),
            progress,
            budget: AtomicU64::new(0),
            count: opts.count,
            stop: AtomicBool::new(false),
            pacer: opts
                .rate
                .map(|rate| Pacer::start(start.into_std(), end.into_std(), rate)),
            measure_from,
            end,
            seconds: (opts.duration.as_secs_f64().ceil() as usize).max(1),
            streams: connections * opts.streams.max(1),
            next_stream: AtomicU64::new(0),
            batches: batches.clone(),
        })
    };
    let streams = opts.streams.max(1);
    let (workers, shared) = if threads == 1 {
        let channels = connect(&opts.endpoint, owned(0)).await?;
        let shared = shared(progress);
        (
            run_streams(channels, streams, shared.clone()).await?,
            shared,
        )
    } else {
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
        let mut go = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<Arc<Shared>>();
            go.push(go_tx);
            let (endpoint, ready_tx, mine) = (opts.endpoint.clone(), ready_tx.clone(), owned(t));
            let handle = std::thread::Builder::new()
                .name(format!("iamd-bench-{t}"))
                .spawn(move || -> Result<Vec<Worker>, BenchError> {
                    let rt = iamd_server::grpc::runtime_builder()
                        .enable_all()
                        .build()
                        .map_err(|e| BenchError::Thread(e.to_string()))?;
                    rt.block_on(async move {
                        let channels = match connect(&endpoint, mine).await {
                            Ok(c) => c,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.to_string()));
                                return Err(e);
                            }
                        };
                        let _ = ready_tx.send(Ok(()));
                        let Ok(shared) = go_rx.await else {
                            return Ok(Vec::new());
                        };
                        run_streams(channels, streams, shared).await
                    })
                })
                .map_err(|e| BenchError::Thread(e.to_string()))?;
            handles.push(handle);
        }
        drop(ready_tx);
        let mut failed = None;
        for _ in 0..threads {
            match ready.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => failed = failed.or(Some(e)),
                None => failed = failed.or(Some("a load thread ended".to_owned())),
            }
        }
        let started = match failed {
            None => {
                let shared = shared(progress);
                for g in go {
                    let _ = g.send(shared.clone());
                }
                Some(shared)
            }
            Some(_) => {
                drop(go);
                None
            }
        };
        let mut workers = Vec::new();
        for h in handles {
            let joined = tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|e| BenchError::Thread(e.to_string()))?
                .map_err(|_| BenchError::Thread("a load thread panicked".into()))?;
            // A connection error is reported as itself.
            workers.extend(joined?);
        }
        match (started, failed) {
            (Some(shared), _) => (workers, shared),
            (None, e) => return Err(BenchError::Thread(e.unwrap_or_default())),
        }
    };
    let mut histogram = histogram()?;
    let mut per_second_all: Vec<Option<Histogram<u64>>> = Vec::new();
    let mut report = Report {
        mode: if opts.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        connections,
        streams: opts.streams.max(1),
        target_rate: opts.rate,
        batch: batches.first().map(|b| b.expect.len()),
        ..Report::default()
    };
    for me in workers {
        let _ = histogram.add(&me.histogram);
        report.requests += me.measured;
        report.wrong += me.wrong;
        for (k, v) in me.errors {
            *report.errors.entry(k).or_default() += v;
        }
        if report.timeline.len() < me.timeline.len() {
            report.timeline.resize(me.timeline.len(), 0);
        }
        for (a, b) in report.timeline.iter_mut().zip(&me.timeline) {
            *a += b;
        }
        if per_second_all.len() < me.seconds.len() {
            per_second_all.resize_with(me.seconds.len(), || None);
        }
        for (all, h) in per_second_all.iter_mut().zip(me.seconds) {
            match all {
                Some(a) => {
                    let _ = a.add(&h);
                }
                None => *all = Some(h),
            }
        }
    }
    report.timeline_p99_us = per_second_all
        .iter()
        .map(|h| h.as_ref().map_or(0, |h| h.value_at_quantile(0.99)))
        .collect();
    let finished = tokio::time::Instant::now();
    report.seconds = finished
        .min(shared.end)
        .saturating_duration_since(shared.measure_from)
        .as_secs_f64()
        .max(1e-9);
    report.throughput = report.requests as f64 / report.seconds;
    let q = |p: f64| histogram.value_at_quantile(p) as f64;
    report.latency_us = Percentiles {
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: histogram.max() as f64,
        mean: histogram.mean(),
    };
    report.distribution = [
        0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
    ]
    .iter()
    .map(|p| (*p, q(p / 100.0)))
    .collect();
    if report.requests > 0 {
        let per = |before: Option<f64>, after: Option<f64>| {
            Some((after? - before?) / report.requests as f64)
        };
        report.client_cpu_us = per(client_cpu, cpu_us(None));
        report.server_cpu_us = per(server_cpu, opts.server_pid.and_then(|p| cpu_us(Some(p))));
    }
    Ok(report)
}

/// The open loop's clock: a thread that releases each request at its
/// intended send time (`start + k / rate`), sleeping between releases (at
/// least [`Pacer::TICK`], so that at high rates it releases the few requests
/// due in a tick together rather than waking per request).
#[derive(Debug, Clone)]
struct Pacer {
    released: Arc<tokio::sync::Semaphore>,
    /// Requests taken so far: the next one's `k`.
    taken: Arc<AtomicU64>,
    start: std::time::Instant,
    end: std::time::Instant,
    interval: Duration,
}

impl Pacer {
    /// The shortest sleep between releases.
    const TICK: Duration = Duration::from_micros(100);

    /// Starts releasing requests at `rate` per second from `start` until
    /// `end`; past the last, [`Pacer::next`] returns `None`.
    fn start(start: std::time::Instant, end: std::time::Instant, rate: f64) -> Self {
        let pacer = Self {
            released: Arc::new(tokio::sync::Semaphore::new(0)),
            taken: Arc::new(AtomicU64::new(0)),
            start,
            end,
            interval: Duration::from_secs_f64(1.0 / rate.max(1e-9)),
        };
        let clock = pacer.clone();
        std::thread::spawn(move || {
            let mut k = 0u64;
            loop {
                let now = std::time::Instant::now();
                let mut n = 0usize;
                while clock.due(k) <= now && clock.due(k) < clock.end {
                    k += 1;
                    n += 1;
                }
                if n > 0 {
                    clock.released.add_permits(n);
                }
                // Every request is out: wake every stream for its `None`.
                if clock.due(k) >= clock.end {
                    clock
                        .released
                        .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
                    return;
                }
                // Nobody waits any more (a count bound ended the bench).
                if Arc::strong_count(&clock.released) == 1 {
                    return;
                }
                std::thread::sleep(clock.due(k).saturating_duration_since(now).max(Self::TICK));
            }
        });
        pacer
    }

    /// The intended send time of the `k`th request.
    fn due(&self, k: u64) -> std::time::Instant {
        self.start + self.interval.mul_f64(k as f64)
    }

    /// Waits for the next request's turn; returns the time it is timed
    /// from. A request that was due while every stream was still busy is
    /// timed from its intended send time (the queue it met is the
    /// server's doing); one that a free stream waited for is timed from
    /// its release (the pacer's lateness, up to a tick, is not the
    /// server's). `None` past the last request.
    async fn next(&self) -> Option<std::time::Instant> {
        let waited = match self.released.try_acquire() {
            Ok(p) => {
                p.forget();
                false
            }
            Err(_) => {
                self.released.acquire().await.ok()?.forget();
                true
            }
        };
        let k = self.taken.fetch_add(1, Ordering::Relaxed);
        let intended = self.due(k);
        if intended >= self.end {
            return None;
        }
        Some(if waited {
            std::time::Instant::now().max(intended)
        } else {
            intended
        })
    }
}

/// A latency histogram: 1 µs to 60 s, 3 significant digits.
fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| BenchError::Histogram(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_releases_each_request_at_its_intended_time_then_stops() {
        let start = std::time::Instant::now();
        let end = start + Duration::from_millis(100);
        let pacer = Pacer::start(start, end, 1000.0);
        let mut sent = Vec::new();
        while let Some(at) = pacer.next().await {
            sent.push((at, std::time::Instant::now()));
        }
        // One request a millisecond, the last intended before the end;
        // none released before its time, none timed before it.
        assert_eq!(sent.len(), 100);
        for (k, (at, released)) in sent.iter().enumerate() {
            let intended = start + Duration::from_millis(k as u64);
            assert!(*released >= intended, "request {k} released early");
            assert!(*at >= intended, "request {k} timed before it was due");
        }
        // Every stream learns that it is over, again and again.
        assert_eq!(pacer.next().await, None);
        assert_eq!(pacer.next().await, None);
    }
}
