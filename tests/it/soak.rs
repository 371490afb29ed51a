//! The reload soak: the daemon answers a steady stream of calls while its
//! bundle is swapped ConfigMap-style every 20 to 200 ms among good, broken,
//! widened, huge and special-file versions, with `SIGHUP` storms. Every
//! answer names the revision it came from; it must be one of the good
//! versions written (label and digest), and its decision the one that
//! version's own bundle gives. It reports wrong answers, failed calls, the
//! revisions seen, and the daemon's RSS and open descriptors.
//!
//! In the suite it runs for `IAMD_SOAK_SECONDS` (default 8), against the
//! `iamd` of this build or `IAMD_SOAK_BINARY`;
//! `benches/soak/run.sh` runs it for 10 minutes on the release build
//! (docs/benchmarks.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iamd_bundle::BundleFiles;
use iamd_policy::json::Source;
use iamd_proto::pb;
use pb::authorizer_client::AuthorizerClient;

use crate::integrity::{mkfifo, swap_data_link, write};

const ACCOUNT: &str = "account: \"123456789012\"\n";
const DOC: &str = "arn:acme:docs:eu-1:123456789012:doc";

/// What a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// bob may not purge: a Deny in `Admin`.
    GoodA,
    /// bob may not purge: his boundary denies it; `Admin` has no Deny (a
    /// mix of A's users and B's policies allows it).
    GoodB,
    /// A, with 3,000 more users (a slow read), carol among them.
    Huge,
    /// B with a YAML error in `users.yaml`.
    Broken,
    /// A whose `Read` lets alice read every document, with an error in
    /// `bundle.yaml`: never to be served.
    Widened,
    /// A with a FIFO in `policies/`.
    Fifo,
    /// A with `policies/Zero.json` a link to `/dev/zero`.
    Zero,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::GoodA,
        Kind::GoodB,
        Kind::Huge,
        Kind::Broken,
        Kind::Widened,
        Kind::Fifo,
        Kind::Zero,
    ];

    fn good(self) -> bool {
        matches!(self, Kind::GoodA | Kind::GoodB | Kind::Huge)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::GoodA => "good-a",
            Kind::GoodB => "good-b",
            Kind::Huge => "huge",
            Kind::Broken => "broken",
            Kind::Widened => "widened",
            Kind::Fifo => "fifo",
            Kind::Zero => "zero",
        }
    }
}

/// The files of version `label` of `kind` (special files aside).
fn files(kind: Kind, label: &str) -> Vec<(String, String)> {
    let b = matches!(kind, Kind::GoodB | Kind::Broken);
    let mut bundle = format!("{ACCOUNT}revision: {label}\n");
    if kind == Kind::Widened {
        bundle.push_str("colour: blue\n");
    }
    let mut users =
        String::from("- name: alice\n  policies: [Read]\n- name: bob\n  policies: [Admin]\n");
    if b {
        users.push_str("  boundary: NoPurge\n");
    }
    if kind == Kind::Broken {
        users.push_str("- name: [\n");
    }
    let admin = if b {
        r#"{"Statement": {"Effect": "Allow", "Action": "docs:*", "Resource": "*"}}"#.to_owned()
    } else {
        r#"{"Statement": [{"Effect": "Allow", "Action": "docs:*", "Resource": "*"}, {"Effect": "Deny", "Action": "docs:PurgeDocuments", "Resource": "*"}]}"#.to_owned()
    };
    let read_resource = if kind == Kind::Widened {
        format!("{DOC}/*")
    } else {
        format!("{DOC}/team/*")
    };
    let mut out = vec![
        ("bundle.yaml".to_owned(), bundle),
        ("users.yaml".to_owned(), users),
        ("policies/Admin.json".to_owned(), admin),
        (
            "policies/NoPurge.json".to_owned(),
            r#"{"Statement": [{"Effect": "Allow", "Action": "docs:*", "Resource": "*"}, {"Effect": "Deny", "Action": "docs:PurgeDocuments", "Resource": "*"}]}"#.to_owned(),
        ),
        (
            "policies/Read.json".to_owned(),
            format!(
                r#"{{"Statement": {{"Effect": "Allow", "Action": "docs:GetDocument", "Resource": "{read_resource}"}}}}"#
            ),
        ),
    ];
    if kind == Kind::Huge {
        out.push((
            "users.d/carol.yaml".to_owned(),
            "- name: carol\n  policies: [Admin]\n".to_owned(),
        ));
        for i in 0..3000 {
            out.push((
                format!("users.d/u{i:04}.yaml"),
                format!("- name: u{i}\n  tags: {{n: \"{i}\"}}\n"),
            ));
        }
    }
    out
}

/// The requests of the soak: each tells a torn or widened bundle from a
/// good one.
fn requests() -> Vec<pb::AuthorizeRequest> {
    let r = |principal: &str, action: &str, resource: String| pb::AuthorizeRequest {
        principal: principal.into(),
        action: action.into(),
        resource,
        ..Default::default()
    };
    vec![
        r("user/bob", "docs:PurgeDocuments", format!("{DOC}/x")),
        r("user/alice", "docs:GetDocument", format!("{DOC}/team/x")),
        r("user/alice", "docs:GetDocument", format!("{DOC}/other/x")),
        r("user/carol", "docs:GetDocument", format!("{DOC}/x")),
    ]
}

/// Each good kind's decisions for [`requests`], from its own bundle.
fn expectations(kind: Kind) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files(kind, "expect") {
        write(dir.path(), &name, &text);
    }
    let bundle = iamd_bundle::load(dir.path()).unwrap();
    requests()
        .iter()
        .map(|r| {
            let case = serde_json::json!({"request": {
                "principal": r.principal, "action": r.action, "resource": r.resource,
            }})
            .to_string();
            let a = iamd_tools::simulate::run_bundle(
                &Source::new("soak", &case),
                &bundle,
                jiff::Timestamp::now(),
            );
            a.decision.to_owned()
        })
        .collect()
}

/// Writes version `n` as `..vN`, swaps `..data` to it, removes the one
/// before (the kubelet's order); returns the digest of the good ones.
fn swap_in(dir: &Path, n: u64, kind: Kind, label: &str) -> Option<String> {
    let real = dir.join(format!("..v{n}"));
    for (name, text) in files(kind, label) {
        write(&real, &name, &text);
    }
    match kind {
        Kind::Fifo => mkfifo(&real.join("policies/Fifo.json")),
        Kind::Zero => {
            std::os::unix::fs::symlink("/dev/zero", real.join("policies/Zero.json")).unwrap();
        }
        _ => {}
    }
    let digest = kind
        .good()
        .then(|| BundleFiles::read(&real).unwrap().digest().to_owned());
    swap_data_link(dir, &format!("v{n}"));
    if n > 0 {
        let _ = std::fs::remove_dir_all(dir.join(format!("..v{}", n - 1)));
    }
    digest
}

/// A small deterministic generator (xorshift), for swap intervals and kinds.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The daemon's resident memory (KiB) and open descriptors.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

/// Label to kind and digest (of the good ones) of every version written.
type Written = Arc<Mutex<BTreeMap<String, (Kind, Option<String>)>>>;

#[derive(Default)]
struct Tally {
    answers: u64,
    failed: u64,
    wrong: Vec<String>,
    /// Revision label to answers served from it.
    seen: BTreeMap<String, u64>,
}

#[test]
fn the_daemon_serves_only_written_bundles_through_a_swap_storm() {
    let seconds: u64 = std::env::var("IAMD_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let expected: BTreeMap<Kind, Vec<String>> = Kind::ALL
        .iter()
        .filter(|k| k.good())
        .map(|&k| (k, expectations(k)))
        .collect();
    // The cases tell the versions apart: bob never purges, alice reads
    // only her team's documents, carol exists only in the huge version.
    assert_eq!(expected[&Kind::GoodA][0], "ExplicitlyDenied");
    assert_eq!(expected[&Kind::Huge][3], "Allowed");
    assert_eq!(expected[&Kind::GoodB][2], "ImplicitlyDenied");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    std::fs::create_dir_all(&dir).unwrap();
    // Label to (kind, digest) of every version written.
    let written: Written = Arc::default();
    let first = "good-a-0".to_owned();
    let digest = swap_in(&dir, 0, Kind::GoodA, &first);
    written.lock().unwrap().insert(first, (Kind::GoodA, digest));

    let addr = format!("127.0.0.1:{}", crate::cli::free_port());
    // `IAMD_SOAK_BINARY`: soak another build (an older one, to see what
    // the soak catches).
    let binary = std::env::var_os("IAMD_SOAK_BINARY")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_iamd")), PathBuf::from);
    let mut server = std::process::Command::new(binary)
        .args(["serve", "--bundle"])
        .arg(&dir)
        .args(["--listen", &addr, "--admin-listen", "127.0.0.1:0"])
        .args(["--log-level", "error"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::cli::wait_serving(&mut server, &addr);
    let pid = server.id();
    let start_usage = usage(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, dir, written, swaps) = (stop.clone(), dir, written.clone(), swaps.clone());
        std::thread::spawn(move || {
            let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let kind = Kind::ALL[(dice.next() % Kind::ALL.len() as u64) as usize];
                let label = format!("{}-{n}", kind.name());
                // Known before it is live: an answer may name it at once.
                written.lock().unwrap().insert(label.clone(), (kind, None));
                let digest = swap_in(&dir, n, kind, &label);
                written.lock().unwrap().insert(label, (kind, digest));
                swaps.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20 + dice.next() % 181));
            }
        })
    };
    let hupper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut storms = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A storm: ten signals 5 ms apart, then a pause.
                for _ in 0..10 {
                    let _ = std::process::Command::new("kill")
                        .args(["-HUP", &pid.to_string()])
                        .status();
                    std::thread::sleep(Duration::from_millis(5));
                }
                storms += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
            storms
        })
    };
    let peak = Arc::new(Mutex::new(start_usage));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let u = usage(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = (p.0.max(u.0), p.1.max(u.1));
                }
                samples.push(u);
                std::thread::sleep(Duration::from_millis(500));
            }
            samples
        })
    };

    let tally = Arc::new(Mutex::new(Tally::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut callers = Vec::new();
        for c in 0..4 {
            let (addr, tally, written, expected) = (
                addr.clone(),
                tally.clone(),
                written.clone(),
                expected.clone(),
            );
            callers.push(tokio::spawn(async move {
                let mut client = AuthorizerClient::connect(format!("http://{addr}"))
                    .await
                    .unwrap();
                let requests = requests();
                let mut i = c;
                while Instant::now() < deadline {
                    i += 1;
                    let which = i % requests.len();
                    let call = tokio::time::timeout(
                        Duration::from_secs(5),
                        client.authorize(requests[which].clone()),
                    )
                    .await;
                    let mut t = tally.lock().unwrap();
                    t.answers += 1;
                    let Ok(Ok(answer)) = call else {
                        t.failed += 1;
                        continue;
                    };
                    let answer = answer.into_inner();
                    // `LABEL (sha256:0123456789ab)`.
                    let (label, short) = answer
                        .revision
                        .split_once(" (sha256:")
                        .map_or((answer.revision.as_str(), ""), |(l, d)| {
                            (l, d.trim_end_matches(')'))
                        });
                    *t.seen.entry(label.to_owned()).or_default() += 1;
                    let known = written.lock().unwrap().get(label).cloned();
                    let decision = match answer.decision() {
                        pb::Decision::Allow => "Allowed",
                        pb::Decision::ExplicitDeny => "ExplicitlyDenied",
                        _ => "ImplicitlyDenied",
                    };
                    match known {
                        None => t.wrong.push(format!("{label}: never written")),
                        Some((kind, _)) if !kind.good() => {
                            t.wrong.push(format!("{label}: a rejected version served"));
                        }
                        Some((_, Some(digest)))
                            if !digest.starts_with(short) || short.is_empty() =>
                        {
                            t.wrong.push(format!(
                                "{label}: digest {short} is not the written {digest}"
                            ));
                        }
                        Some((kind, _)) if expected[&kind][which] != decision => {
                            t.wrong.push(format!(
                                "{label}: request {which} got {decision}, its bundle says {}",
                                expected[&kind][which]
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }));
        }
        for c in callers {
            c.await.unwrap();
        }
    });
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let storms = hupper.join().unwrap();
    let samples = sampler.join().unwrap();
    let end_usage = usage(pid);

    let t = tally.lock().unwrap();
    let written = written.lock().unwrap();
    let good_written = written.values().filter(|(k, _)| k.good()).count();
    let kinds_seen: BTreeSet<&str> = t
        .seen
        .keys()
        .filter_map(|l| written.get(l))
        .map(|(k, _)| k.name())
        .collect();
    let peak = *peak.lock().unwrap();
    eprintln!(
        "soak: {seconds} s, {} swaps ({good_written} good), {storms} SIGHUP storms of 10; {} answers, {} failed, {} wrong; {} revisions served ({kinds_seen:?}); RSS {} -> {} KiB (peak {}), descriptors {} -> {} (peak {}), {} samples",
        swaps.load(Ordering::Relaxed),
        t.answers,
        t.failed,
        t.wrong.len(),
        t.seen.len(),
        start_usage.0,
        end_usage.0,
        peak.0,
        start_usage.1,
        end_usage.1,
        peak.1,
        samples.len(),
    );
    // The daemon must still stop cleanly after all that.
    crate::cli::stop(&mut server);
    assert!(
        t.wrong.is_empty(),
        "{} wrong answers: {:#?}",
        t.wrong.len(),
        &t.wrong[..t.wrong.len().min(20)]
    );
    assert_eq!(t.failed, 0, "failed calls");
    assert!(t.answers > 100, "only {} answers", t.answers);
    assert!(swaps.load(Ordering::Relaxed) >= seconds, "too few swaps");
    // More than the first version was served: reloads happened.
    assert!(t.seen.len() > 1, "{:?}", t.seen);
    // Memory stays bounded (a link to /dev/zero once grew it by a
    // gigabyte), and descriptors do not leak with each swap (a few for connections).
    assert!(
        peak.0 < start_usage.0 + 256 * 1024,
        "RSS {} -> peak {} KiB",
        start_usage.0,
        peak.0
    );
    assert!(
        end_usage.1 <= start_usage.1 + 16,
        "descriptors {start_usage:?} -> {end_usage:?}"
    );
}
