//! The decision log: one JSON line per decision (request, decision,
//! determining statements, revision, trace id), written by its own thread
//! from a bounded queue. When the queue is full the record is dropped and
//! counted, so a slow disk never slows a decision.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sample_rate: 1.0,
            denies_only: false,
            mask_keys: Vec::new(),
            queue: 10_000,
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
    tx: Option<SyncSender<Record>>,
    seen: AtomicU64,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
}

impl DecisionLog {
    /// A log written to `out` by its own thread.
    pub fn new(out: Box<dyn Write + Send>, options: Options) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Record>(options.queue.max(1));
        let writer = std::thread::Builder::new()
            .name("iamd-decision-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(out);
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    // Write what is queued, then flush once.
                    while let Some(r) = next {
                        if serde_json::to_writer(&mut out, &r).is_ok() {
                            let _ = out.write_all(b"\n");
                        }
                        next = rx.try_recv().ok();
                    }
                    let _ = out.flush();
                }
            })?;
        let masked = options.mask_keys.iter().map(|k| k.to_lowercase()).collect();
        Ok(Self {
            options,
            masked,
            tx: Some(tx),
            seen: AtomicU64::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
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

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Logs one decision if the options say so. Never blocks.
    pub fn record(&self, question: &Question<'_>, decision: &Answer, trace_id: Option<&str>) {
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
        let Some(tx) = &self.tx else { return };
        let context = question
            .context
            .iter()
            .map(|(k, v)| {
                let value = if self.masked.contains(&k.to_lowercase()) {
                    serde_json::Value::from("***")
                } else {
                    match v {
                        Value::Single(s) => serde_json::Value::from(*s),
                        Value::Multi(l) => serde_json::Value::from(l.to_vec()),
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
            revision: decision.revision.clone(),
            trace_id: trace_id.map(str::to_owned),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A determining statement as the log writes it (`policy`, `layer`,
/// `statement`, `sid`, `effect`: the fields of `iamd.v1`'s
/// `DeterminingStatement`, an absent Sid as `""`).
fn statement_json(s: &NamedStatement) -> serde_json::Value {
    serde_json::json!({"policy": s.policy, "layer": s.layer.name(), "statement": s.index,
        "sid": s.sid.as_deref().unwrap_or_default(), "effect": s.effect.to_string()})
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued.
        self.tx.take();
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
        }
    }

    fn answer(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            denied_by: None,
            revision: "r1".into(),
            determining: Vec::new(),
            reason: None,
            explanation: None,
        }
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
        let sink = Sink::default();
        let log = DecisionLog::new(
            Box::new(sink.clone()),
            Options {
                mask_keys: vec!["X-Api-Key".into()],
                ..Options::default()
            },
        )
        .unwrap();
        log.record(
            &req(
                "user/alice",
                &[("x-api-key", "secret"), ("aws:SourceIp", "1.2.3.4")],
            ),
            &Answer {
                determining: vec![NamedStatement {
                    policy: "DocsRead".into(),
                    layer: Layer::Identity,
                    index: 0,
                    sid: None,
                    effect: Effect::Allow,
                }],
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
        let sink = Sink::default();
        let log = DecisionLog::new(
            Box::new(sink.clone()),
            Options {
                sample_rate: 0.25,
                ..Options::default()
            },
        )
        .unwrap();
        for _ in 0..100 {
            log.record(&req("p", &[]), &answer(Outcome::ImplicitDeny), None);
        }
        drop(log);
        assert_eq!(lines(&sink).len(), 25);
        let sink = Sink::default();
        let log = DecisionLog::new(
            Box::new(sink.clone()),
            Options {
                denies_only: true,
                ..Options::default()
            },
        )
        .unwrap();
        log.record(&req("a", &[]), &answer(Outcome::Allow), None);
        log.record(&req("b", &[]), &answer(Outcome::ExplicitDeny), None);
        drop(log);
        let l = lines(&sink);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["principal"], "b");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let sink = Sink::default();
        let log = DecisionLog::new(
            Box::new(sink.clone()),
            Options {
                queue: 2,
                ..Options::default()
            },
        )
        .unwrap();
        // Declared after `log`, so that a failing assertion releases the
        // writer before `log` waits for it.
        let gate = sink.1.lock().unwrap();
        log.record(&req("p", &[]), &answer(Outcome::Allow), None);
        // Wait (bounded) until the writer is stuck writing the first record.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !sink.2.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never wrote"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
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
