//! The decision log: one JSON line per decision (request, decision,
//! determining statements, revision, trace id), written by its own thread
//! from a queue bounded in records and in bytes, each context value clipped
//! to a few hundred bytes in the record. When the queue is full the record
//! is dropped and counted, so a slow disk never slows a decision; in the
//! audit mode (`backpressure`) the caller waits for room instead, so that
//! every decision is logged.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use serde::Serialize;

use crate::decide::{Answer, NamedStatement, Question, Value};

/// What is logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The fraction of decisions logged, from 0 to 1 (exactly that share:
    /// every 1/rate-th decision, not a random draw).
    pub sample_rate: f64,
    /// Log denies only (explicit and implicit).
    pub denies_only: bool,
    /// Context keys whose values are replaced by `***` (case-insensitive).
    pub mask_keys: Vec<String>,
    /// Records waiting to be written; past it, records are dropped.
    pub queue: usize,
    /// Bytes of the records waiting to be written (their text, counted as
    /// they are queued); past it, records are dropped.
    pub queue_bytes: usize,
    /// Bytes of each context value kept in a record; a longer value is cut
    /// at a character boundary and ends with `…`.
    pub value_bytes: usize,
    /// The audit mode: a full queue makes the caller wait for the writer
    /// instead of dropping the record (every decision is logged; a stalled
    /// log stalls the decisions).
    pub backpressure: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sample_rate: 1.0,
            denies_only: false,
            mask_keys: Vec::new(),
            queue: 10_000,
            queue_bytes: 16 << 20,
            value_bytes: 256,
            backpressure: false,
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Record {
    time: String,
    principal: String,
    action: String,
    resource: String,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    context: serde_json::Map<String, serde_json::Value>,
    decision: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    determining: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    denied_by: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

/// A running decision log.
#[derive(Debug)]
pub struct DecisionLog {
    options: Options,
    masked: Vec<String>,
    queue: Arc<Queue>,
    seen: AtomicU64,
    dropped: AtomicU64,
    writer: Option<JoinHandle<()>>,
}

/// The records between the callers and the writer.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<Pending>,
    /// Records arrived, or the log is closing.
    arrived: Condvar,
    /// The writer wrote a batch: room again.
    written: Condvar,
}

/// What is queued, and the bytes of what is queued or being written (a
/// batch counts until it is written).
#[derive(Debug, Default)]
struct Pending {
    records: VecDeque<(Record, usize)>,
    bytes: usize,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DecisionLog {
    /// A log written to `out` by its own thread.
    pub fn new(out: Box<dyn Write + Send>, options: Options) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::default());
        let writer = {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("iamd-decision-log".into())
                .spawn(move || write_records(&queue, out))?
        };
        let masked = options.mask_keys.iter().map(|k| k.to_lowercase()).collect();
        Ok(Self {
            options,
            masked,
            queue,
            seen: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            writer: Some(writer),
        })
    }

    /// A log to a file (appended) or to standard output (`-` or `stdout`).
    pub fn open(path: &str, options: Options) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == "-" || path == "stdout" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        Self::new(out, options)
    }

    /// Records dropped because the queue was full (in records or bytes).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Logs one decision if the options say so. Never blocks, unless the
    /// audit mode is on and the queue is full.
    pub fn record(&self, question: &Question<'_>, decision: &Answer<'_>, trace_id: Option<&str>) {
        let name = decision.outcome_name();
        if self.options.denies_only && name == "ALLOW" {
            return;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let rate = self.options.sample_rate.clamp(0.0, 1.0);
        // Exactly `rate` of the decisions: n is logged when n * rate crosses
        // an integer.
        if ((n + 1) as f64 * rate).floor() <= (n as f64 * rate).floor() {
            return;
        }
        let clip = |s: &str| clip(s, self.options.value_bytes);
        let context = question
            .context
            .iter()
            .map(|(k, v)| {
                let value = if self.masked.contains(&k.to_lowercase()) {
                    serde_json::Value::from("***")
                } else {
                    match v {
                        Value::Single(s) => serde_json::Value::from(clip(s)),
                        Value::Multi(l) => {
                            serde_json::Value::from(l.iter().map(|v| clip(v)).collect::<Vec<_>>())
                        }
                    }
                };
                ((*k).to_owned(), value)
            })
            .collect();
        let record = Record {
            time: jiff::Timestamp::now().to_string(),
            principal: question.principal.to_owned(),
            action: question.action.to_owned(),
            resource: question.resource.to_owned(),
            context,
            decision: name,
            determining: decision.determining.iter().map(statement_json).collect(),
            denied_by: decision
                .denied_by
                .map(|s| s.name().into_owned())
                .unwrap_or_default(),
            reason: decision.reason.clone().unwrap_or_default(),
            revision: decision.revision.to_owned(),
            trace_id: trace_id.map(str::to_owned),
        };
        self.enqueue(record);
    }

    /// Queues `record`, or drops and counts it when the queue is full (the
    /// audit mode waits for room instead).
    fn enqueue(&self, record: Record) {
        let size = record.size();
        let (max_count, max_bytes) = (self.options.queue.max(1), self.options.queue_bytes);
        let mut pending = self.queue.lock();
        // With nothing pending any one record fits: the bound in bytes never
        // drops every record larger than it.
        let full = |p: &Pending| {
            p.records.len() >= max_count || (p.bytes > 0 && p.bytes + size > max_bytes)
        };
        if self.options.backpressure {
            while full(&pending) && !pending.closed {
                pending = self
                    .queue
                    .written
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        if pending.closed || full(&pending) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes += size;
        pending.records.push_back((record, size));
        drop(pending);
        self.queue.arrived.notify_one();
    }
}

/// The writer thread: writes what is queued, flushes once per batch, then
/// frees the batch's room.
fn write_records(queue: &Queue, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    loop {
        let batch: Vec<(Record, usize)> = {
            let mut pending = queue.lock();
            while pending.records.is_empty() && !pending.closed {
                pending = queue
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if pending.records.is_empty() {
                return;
            }
            pending.records.drain(..).collect()
        };
        let mut bytes = 0;
        for (r, size) in &batch {
            if serde_json::to_writer(&mut out, r).is_ok() {
                let _ = out.write_all(b"\n");
            }
            bytes += size;
        }
        let _ = out.flush();
        drop(batch);
        let mut pending = queue.lock();
        pending.bytes -= bytes;
        drop(pending);
        queue.written.notify_all();
    }
}

/// `s`, cut to at most `max` bytes at a character boundary, ending with `…`
/// when it was cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Record {
    /// The bytes of its text, about (strings, plus a little for each
    /// field and statement): what it counts against `queue_bytes`.
    fn size(&self) -> usize {
        let strings = self.principal.len()
            + self.action.len()
            + self.resource.len()
            + self.denied_by.len()
            + self.reason.len()
            + self.revision.len()
            + self.trace_id.as_ref().map_or(0, String::len);
        let context: usize = self
            .context
            .iter()
            .map(|(k, v)| {
                k.len()
                    + 8
                    + match v {
                        serde_json::Value::String(s) => s.len(),
                        serde_json::Value::Array(a) => {
                            a.iter().map(|v| v.as_str().map_or(4, str::len) + 3).sum()
                        }
                        _ => 4,
                    }
            })
            .sum();
        192 + strings + context + 96 * self.determining.len()
    }
}

/// A determining statement as the log writes it (`policy`, `layer`,
/// `statement`, `sid`, `effect`: the fields of `iamd.v1`'s
/// `DeterminingStatement`, an absent Sid as `""`).
fn statement_json(s: NamedStatement<'_>) -> serde_json::Value {
    serde_json::json!({"policy": s.policy, "layer": s.layer.name(), "statement": s.index,
        "sid": s.sid.unwrap_or_default(), "effect": s.effect.to_string()})
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued.
        self.queue.lock().closed = true;
        self.queue.arrived.notify_all();
        self.queue.written.notify_all();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The trace id of a W3C `traceparent` header
/// (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`), if valid.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace, span, _flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(trace, 32) && hex(span, 16) && trace.bytes().any(|b| b != b'0')).then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Statements;
    use iamd_policy::eval::{Layer, Outcome};
    use iamd_policy::policy::Effect;
    use std::sync::Mutex;

    /// A writer whose `write` waits for `gate`, and says when it was called.
    #[derive(Clone, Default)]
    struct Sink(
        Arc<Mutex<Vec<u8>>>,
        Arc<Mutex<()>>,
        Arc<std::sync::atomic::AtomicBool>,
    );

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.2.store(true, Ordering::SeqCst);
            let _gate = self
                .1
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn req<'a>(principal: &'a str, context: &[(&'a str, &'a str)]) -> Question<'a> {
        Question {
            principal,
            action: "docs:GetDocument",
            resource: "arn:acme:docs:eu-1:1:doc/1",
            resource_account: None,
            context: context
                .iter()
                .map(|(k, v)| (*k, Value::Single(v)))
                .collect(),
            explain: false,
            session: None,
            session_tags: &[],
        }
    }

    fn answer(outcome: Outcome) -> Answer<'static> {
        Answer {
            outcome,
            denied_by: None,
            revision: "r1",
            determining: Statements::NONE,
            reason: None,
            explanation: None,
        }
    }

    /// A log written to a fresh sink.
    fn log_to(options: Options) -> (Sink, DecisionLog) {
        let sink = Sink::default();
        let log = DecisionLog::new(Box::new(sink.clone()), options).unwrap();
        (sink, log)
    }

    fn lines(sink: &Sink) -> Vec<serde_json::Value> {
        String::from_utf8(sink.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn records_are_json_lines_with_masking_and_trace_ids() {
        let (sink, log) = log_to(Options {
            mask_keys: vec!["X-Api-Key".into()],
            ..Options::default()
        });
        log.record(
            &req(
                "user/alice",
                &[("x-api-key", "secret"), ("aws:SourceIp", "1.2.3.4")],
            ),
            &Answer {
                determining: Statements::named(&[NamedStatement {
                    policy: "DocsRead",
                    layer: Layer::Identity,
                    index: 0,
                    sid: None,
                    effect: Effect::Allow,
                }]),
                ..answer(Outcome::Allow)
            },
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        );
        drop(log);
        let l = lines(&sink);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["principal"], "user/alice");
        assert_eq!(l[0]["decision"], "ALLOW");
        assert_eq!(l[0]["revision"], "r1");
        assert_eq!(l[0]["context"]["x-api-key"], "***");
        assert_eq!(l[0]["context"]["aws:SourceIp"], "1.2.3.4");
        assert_eq!(l[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            l[0]["determining"],
            serde_json::json!([{"policy": "DocsRead", "layer": "identity", "statement": 0, "sid": "", "effect": "Allow"}])
        );
    }

    #[test]
    fn sampling_and_denies_only() {
        let (sink, log) = log_to(Options {
            sample_rate: 0.25,
            ..Options::default()
        });
        for _ in 0..100 {
            log.record(&req("p", &[]), &answer(Outcome::ImplicitDeny), None);
        }
        drop(log);
        assert_eq!(lines(&sink).len(), 25);
        let (sink, log) = log_to(Options {
            denies_only: true,
            ..Options::default()
        });
        log.record(&req("a", &[]), &answer(Outcome::Allow), None);
        log.record(&req("b", &[]), &answer(Outcome::ExplicitDeny), None);
        drop(log);
        let l = lines(&sink);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["principal"], "b");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (sink, log) = log_to(Options {
            queue: 2,
            ..Options::default()
        });
        // Declared after `log`, so that a failing assertion releases the
        // writer before `log` waits for it.
        let gate = sink.1.lock().unwrap();
        stall(&sink, &log);
        for _ in 0..19 {
            log.record(&req("p", &[]), &answer(Outcome::Allow), None);
        }
        // Two records fit in the queue; the other 17 were dropped, and
        // `record` never waited for the writer.
        let dropped = log.dropped();
        drop(gate);
        assert_eq!(dropped, 17);
        drop(log);
        assert_eq!(lines(&sink).len(), 3);
    }

    #[test]
    fn long_values_are_clipped_in_records() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdef", 3), "abc…");
        // Never inside a character: `é` is two bytes.
        assert_eq!(clip("ééé", 3), "é…");
        let (sink, log) = log_to(Options {
            value_bytes: 10,
            ..Options::default()
        });
        let long = "x".repeat(1000);
        let many = vec!["y".repeat(20), "short".to_owned()];
        let mut q = req("p", &[("a", &long)]);
        q.context.push(("b", Value::Multi(&many)));
        log.record(&q, &answer(Outcome::Allow), None);
        drop(log);
        let l = lines(&sink);
        assert_eq!(l[0]["context"]["a"], "xxxxxxxxxx…");
        assert_eq!(
            l[0]["context"]["b"],
            serde_json::json!(["yyyyyyyyyy…", "short"])
        );
    }

    /// Records one decision and waits (bounded) until the writer is stuck
    /// writing it: the gate the caller holds keeps it there.
    fn stall(sink: &Sink, log: &DecisionLog) {
        log.record(&req("p", &[]), &answer(Outcome::Allow), None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !sink.2.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never wrote"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let (sink, log) = log_to(Options {
            queue: 1_000,
            queue_bytes: 8_000,
            value_bytes: 4_096,
            ..Options::default()
        });
        let gate = sink.1.lock().unwrap();
        stall(&sink, &log);
        let big = "v".repeat(2_000);
        for _ in 0..20 {
            log.record(&req("p", &[("k", &big)]), &answer(Outcome::Allow), None);
        }
        // Far below 1,000 records, the bytes filled the queue: each record
        // holds 2 KB, the queue 8 KB.
        let dropped = log.dropped();
        drop(gate);
        drop(log);
        let written = lines(&sink).len() as u64;
        assert!((2..=4).contains(&(written - 1)), "{written} written");
        assert_eq!(dropped + written, 21);
    }

    #[test]
    fn the_audit_mode_waits_for_room_and_drops_nothing() {
        let (sink, log) = log_to(Options {
            queue: 1,
            backpressure: true,
            ..Options::default()
        });
        let log = Arc::new(log);
        let gate = sink.1.lock().unwrap();
        stall(&sink, &log);
        log.record(&req("queued", &[]), &answer(Outcome::Allow), None);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiting = {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                log.record(&req("waited", &[]), &answer(Outcome::Allow), None);
                done.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let waited = !done.load(Ordering::SeqCst);
        drop(gate);
        waiting.join().unwrap();
        assert!(waited, "the third record did not wait for room");
        assert_eq!(log.dropped(), 0);
        drop(Arc::try_unwrap(log).unwrap());
        let principals: Vec<String> = lines(&sink)
            .iter()
            .map(|l| l["principal"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(principals, ["p", "queued", "waited"]);
    }

    #[test]
    fn traceparent_headers() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("garbage"), None);
    }
}
