//! Hot reload with real files in temporary directories: the reloader's
//! rules (last good kept, unchanged is a no-op, fail closed before the first
//! good bundle), the watcher's triggers (edit, rename-into-place, Kubernetes
//! `..data` symlink swap, rapid writes, deleted directory, SIGHUP, the timer),
//! and readers that never see a mix of two bundles.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iamd_policy::arn::Principal;
use iamd_policy::context::Context;
use iamd_policy::eval::{Outcome, Request, evaluate};
use iamd_server::reload::{self, ReloadOutcome as Reload, Reloader, Store, Trigger, WatchOptions};

const ACCOUNT: &str = "account: \"123456789012\"\n";

/// A bundle whose single user `alice` may do `docs:<verb>` (and nothing
/// else), and whose revision label is `verb`.
fn files(verb: &str) -> Vec<(String, String)> {
    vec![
        ("bundle.yaml".into(), format!("{ACCOUNT}revision: {verb}\n")),
        (
            "users.yaml".into(),
            format!(
                "- name: alice\n  inline:\n    p:\n      Statement: {{Effect: Allow, Action: 'docs:{verb}', Resource: '*'}}\n"
            ),
        ),
    ]
}

fn write_all(dir: &Path, files: &[(String, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// The live revision label, if any.
fn label(store: &Store) -> Option<String> {
    store
        .bundle()
        .as_ref()
        .and_then(|b| b.revision().label.clone())
}

/// Waits (at most 20 s: a bound against hanging, not a timing goal) until
/// the live label is `want`.
fn wait_for(store: &Store, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while label(store).as_deref() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "still {:?}, waiting for {want}; status {:?}",
            label(store),
            store.status()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Bundle `A` in a new temporary directory, loaded and watched: the
/// directory (keep it), the bundle's path, the store and the watcher.
fn watched() -> (tempfile::TempDir, PathBuf, Arc<Store>, reload::Watcher) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    write_all(&dir, &files("A"));
    let (store, w) = loaded_and_watched(&dir, options());
    (tmp, dir, store, w)
}

/// The bundle in `dir` loaded (it must load) into a new store, and
/// watched with `options`.
fn loaded_and_watched(dir: &Path, options: WatchOptions) -> (Arc<Store>, reload::Watcher) {
    let (store, publisher) = Store::new();
    let mut r = Reloader::for_dir(dir, publisher);
    assert!(matches!(r.reload(Trigger::Start), Reload::Loaded(_)));
    (store, reload::watch(r, options).unwrap())
}

fn options() -> WatchOptions {
    WatchOptions {
        debounce: Duration::from_millis(50),
        poll_interval: Duration::from_secs(3600),
        events: true,
        sighup: false,
    }
}

#[test]
fn the_last_good_bundle_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let (store, publisher) = Store::new();
    let mut r = Reloader::for_dir(&dir, publisher);
    // No directory yet: a failure, and no bundle (every request denied).
    assert!(matches!(r.reload(Trigger::Start), Reload::Failed(_)));
    assert!(store.bundle().is_none());
    assert!(
        store.status().last_failure.as_ref().unwrap().errors[0]
            .contains("cannot read the bundle directory")
    );
    write_all(&dir, &files("GetDocument"));
    assert!(matches!(r.reload(Trigger::Event), Reload::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("GetDocument"));
    assert_eq!(r.reload(Trigger::Timer), Reload::Unchanged);
    // A broken bundle: rejected with every error, the last good one stays.
    std::fs::write(
        dir.join("users.yaml"),
        "- name: alice\n  groups: [nope]\n  policies: [Missing]\n",
    )
    .unwrap();
    match r.reload(Trigger::Event) {
        Reload::Failed(errors) => assert_eq!(errors.len(), 2, "{errors:#?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(label(&store).as_deref(), Some("GetDocument"));
    let status = store.status();
    assert_eq!(
        status.live.as_ref().unwrap().revision.label.as_deref(),
        Some("GetDocument")
    );
    assert_eq!(status.last_failure.as_ref().unwrap().errors.len(), 2);
    // The same broken files again: reported once.
    assert_eq!(r.reload(Trigger::Timer), Reload::Unchanged);
    assert_eq!(store.status().reloads.failed, 2);
    // Fixed: picked up, the failure cleared.
    write_all(&dir, &files("ListDocuments"));
    assert!(matches!(r.reload(Trigger::Event), Reload::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("ListDocuments"));
    assert!(store.status().last_failure.is_none());
    assert_eq!(store.status().reloads.loaded, 2);
}

#[test]
fn the_reloader_frees_the_replaced_bundle_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    write_all(&dir, &files("GetDocument"));
    let (store, publisher) = Store::new();
    let mut r = Reloader::for_dir(&dir, publisher);
    assert!(matches!(r.reload(Trigger::Start), Reload::Loaded(_)));
    let old = Arc::downgrade(store.bundle().as_ref().unwrap());
    // A call still deciding on the old bundle when the new one is swapped
    // in (held much longer than a decision takes).
    let (held_tx, held) = std::sync::mpsc::channel();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let guard = store.bundle();
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            drop(guard);
        })
    };
    held.recv().unwrap();
    write_all(&dir, &files("ListDocuments"));
    assert!(matches!(r.reload(Trigger::Event), Reload::Loaded(_)));
    // The reloader waited for the call and freed the old bundle on its own
    // thread: the call's thread did not pay for it.
    assert!(
        old.upgrade().is_none(),
        "the old bundle outlived the reload"
    );
    reader.join().unwrap();
    assert_eq!(label(&store).as_deref(), Some("ListDocuments"));
}

/// The reload thread runs at a lower priority than the threads answering
/// calls (nice 10), so that compiling a large bundle on a busy machine
/// leaves them their CPU.
#[cfg(target_os = "linux")]
#[test]
fn the_reload_thread_runs_at_a_lower_priority() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    write_all(&dir, &files("A"));
    let (_store, publisher) = Store::new();
    let w = reload::watch(Reloader::for_dir(&dir, publisher), options()).unwrap();
    // The thread's nice value: field 19 of its stat line (after the name).
    let nice = |task: &Path| -> Option<i64> {
        let stat = std::fs::read_to_string(task.join("stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 2..];
        after_name.split(' ').nth(16)?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let found = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .map(|t| t.path())
            .find(|t| {
                std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "iamd-reload")
                    && nice(t) == Some(10)
            });
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(found.is_some(), "no `iamd-reload` thread at nice 10");
    drop(w);
}

#[test]
fn edits_are_picked_up_by_the_watcher() {
    let (_tmp, dir, store, _w) = watched();
    wait_for(&store, "A");
    // Edit in place.
    write_all(&dir, &files("B"));
    wait_for(&store, "B");
    // Rename into place, as editors do.
    let tmpfile = dir.join(".users.yaml.swp");
    std::fs::write(&tmpfile, &files("C")[1].1).unwrap();
    std::fs::write(dir.join("bundle.yaml"), format!("{ACCOUNT}revision: C\n")).unwrap();
    std::fs::rename(&tmpfile, dir.join("users.yaml")).unwrap();
    wait_for(&store, "C");
    // A broken write keeps C; the fix after it is picked up.
    std::fs::write(dir.join("users.yaml"), "- name: [").unwrap();
    std::fs::write(
        dir.join("bundle.yaml"),
        format!("{ACCOUNT}revision: broken\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.status().last_failure.is_none() {
        assert!(Instant::now() < deadline, "the broken bundle was not seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(label(&store).as_deref(), Some("C"));
    write_all(&dir, &files("D"));
    wait_for(&store, "D");
    // Rapid successive writes end on the final content.
    for i in 0..30 {
        write_all(&dir, &files(&format!("Rapid{i}")));
    }
    wait_for(&store, "Rapid29");
}

#[test]
fn reading_the_bundle_or_writing_beside_it_reloads_nothing() {
    let (tmp, dir, store, _w) = watched();
    // The reloader opens and reads every file to digest it: if reads
    // counted as changes, each reload would start the next one. Readers,
    // and writes to the parent directory's other entries, must not either.
    for i in 0..20 {
        for (name, _) in files("A") {
            std::fs::read(dir.join(name)).unwrap();
        }
        std::fs::write(tmp.path().join(format!("beside-{i}.json")), "{}").unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let reloads = store.status().reloads;
    assert_eq!(
        (reloads.loaded, reloads.unchanged, reloads.failed),
        (1, 0, 0),
        "only the first load"
    );
    // The watcher is alive: a change is still picked up.
    write_all(&dir, &files("B"));
    wait_for(&store, "B");
}

#[test]
fn a_bundle_given_by_a_relative_path_is_watched_too() {
    // Tests run in the package's directory: a directory under `target/`,
    // named relatively, as `iamd serve --bundle examples/bundle` does.
    std::fs::create_dir_all("target/tmp").unwrap();
    let tmp = tempfile::tempdir_in("target/tmp").unwrap();
    let cwd = std::env::current_dir().unwrap();
    let dir = tmp.path().strip_prefix(&cwd).unwrap().join("bundle");
    assert!(dir.is_relative(), "{}", dir.display());
    write_all(&dir, &files("A"));
    let (store, _w) = loaded_and_watched(&dir, options());
    write_all(&dir, &files("B"));
    wait_for(&store, "B");
}

#[test]
fn a_background_load_on_busy_cpus_pauses_after_each_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let users: String = (0..200)
        .map(|i| format!("- name: user{i}\n  inline:\n    p:\n      Statement: {{Effect: Allow, Action: 'docs:Get*', Resource: 'arn:acme:docs:eu-1:123456789012:doc/{i}/*'}}\n"))
        .collect();
    write_all(
        &dir,
        &[
            ("bundle.yaml".into(), ACCOUNT.into()),
            ("users.yaml".into(), users),
        ],
    );
    // Busy CPUs: more spinning threads than CPUs.
    let stop = Arc::new(AtomicBool::new(false));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spinners: Vec<_> = (0..=cpus)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let (users, counts) = std::thread::spawn(move || {
        iamd_bundle::pace::background();
        let bundle = iamd_bundle::load(&dir).unwrap();
        (bundle.stats().users, iamd_bundle::pace::counts())
    })
    .join()
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    assert_eq!(users, 200);
    let counts = counts.expect("a background thread counts");
    assert!(
        counts.points >= 200,
        "a point per user at least: {counts:?}"
    );
    assert!(counts.windows >= 1, "{counts:?}");
    assert_eq!(
        counts.pauses, counts.windows,
        "busy CPUs: a pause after every window"
    );
}

#[test]
fn a_deleted_and_recreated_directory_is_picked_up() {
    let (_tmp, dir, store, _w) = watched();
    std::fs::remove_dir_all(&dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.status().last_failure.is_none() {
        assert!(Instant::now() < deadline, "the deletion was not seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        label(&store).as_deref(),
        Some("A"),
        "the last good bundle keeps serving"
    );
    write_all(&dir, &files("B"));
    wait_for(&store, "B");
}

/// Lays out a bundle as the kubelet does for a ConfigMap volume: the files
/// live in a timestamped directory, `..data` links to it, and each file name
/// is a link through `..data`. An update writes a new directory and swaps
/// `..data` atomically.
fn configmap_update(dir: &Path, version: &str, files: &[(String, String)]) {
    let real = dir.join(format!("..{version}"));
    write_all(&real, files);
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp_link).unwrap();
    std::fs::rename(&tmp_link, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from("..data").join(name), &link).unwrap();
        }
    }
}

#[test]
fn a_configmap_symlink_swap_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    std::fs::create_dir_all(&dir).unwrap();
    configmap_update(&dir, "2026_11_28_01", &files("A"));
    let (store, _w) = loaded_and_watched(&dir, options());
    configmap_update(&dir, "2026_11_28_02", &files("B"));
    std::fs::remove_dir_all(dir.join("..2026_11_28_01")).unwrap();
    wait_for(&store, "B");
}

#[test]
fn the_timer_and_sighup_reload_without_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    write_all(&dir, &files("A"));
    let polling = WatchOptions {
        events: false,
        poll_interval: Duration::from_millis(100),
        ..options()
    };
    let (store, w) = loaded_and_watched(&dir, polling);
    write_all(&dir, &files("B"));
    wait_for(&store, "B");
    drop(w);

    let on_signal = WatchOptions {
        events: false,
        poll_interval: Duration::from_secs(3600),
        sighup: true,
        ..options()
    };
    let (store, _w) = loaded_and_watched(&dir, on_signal);
    write_all(&dir, &files("C"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        label(&store).as_deref(),
        Some("B"),
        "no event, no timer: nothing reloads yet"
    );
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
    wait_for(&store, "C");
}

#[test]
fn readers_never_see_a_mix_of_two_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let verbs = ["GetDocument", "PutDocument"];
    write_all(&dir, &files(verbs[0]));
    let (store, publisher) = Store::new();
    // Each version is written whole before its reload: nothing to settle.
    let mut r = Reloader::for_dir(&dir, publisher).with_settle(Duration::ZERO);
    assert!(matches!(r.reload(Trigger::Start), Reload::Loaded(_)));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop, answers) = (store.clone(), stop.clone(), answers.clone());
            std::thread::spawn(move || {
                let ctx = Context::new();
                let mut matched = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let guard = store.bundle();
                    let bundle = guard.as_ref().expect("a bundle is live throughout");
                    let who = bundle.resolve("user/alice").unwrap();
                    let p: &Principal = &who.principal;
                    let verb = bundle.revision().label.clone().unwrap();
                    for action in ["docs:GetDocument", "docs:PutDocument"] {
                        let req = Request::new(p, action, "*", &ctx);
                        let d = evaluate(&bundle.layers(&who, &req, None), &req, &mut matched);
                        // Every answer comes from exactly the revision read.
                        let want = if action.ends_with(&verb) {
                            Outcome::Allow
                        } else {
                            Outcome::ImplicitDeny
                        };
                        assert_eq!(d.outcome, want, "revision {verb}, {action}");
                        answers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for i in 1..=300 {
        write_all(&dir, &files(verbs[i % 2]));
        assert!(
            matches!(r.reload(Trigger::Event), Reload::Loaded(_)),
            "swap {i}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(store.status().reloads.loaded, 301);
    assert!(answers.load(Ordering::Relaxed) > 0);
}

/// The reloader's logs, from the daemon's own process: tracing's callsite
/// registry is global, so a test of this binary that installed a scoped
/// subscriber raced with the other tests registering the same callsites.
/// A daemon serving `dir` (with `extra` flags), its log lines gathered as
/// they come.
struct Logged {
    daemon: std::process::Child,
    logs: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Logged {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        use std::io::BufRead as _;
        let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_iamd"))
            .arg("serve")
            .arg("--bundle")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = daemon.stderr.take().unwrap();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Self {
            daemon,
            logs,
            reader: Some(reader),
        }
    }

    /// Waits (10 s at most) until the logs hold `needle`.
    fn wait_for(&self, needle: &str) {
        for _ in 0..200 {
            if self.logs.lock().unwrap().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no `{needle}` in the logs:\n{}", self.logs.lock().unwrap());
    }

    /// Stops the daemon (SIGTERM, exit 0); its whole log.
    fn stop(mut self) -> String {
        crate::cli::stop(&mut self.daemon);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.logs.lock().unwrap().clone()
    }
}

#[test]
fn loads_and_rejections_are_logged_with_every_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    write_all(&dir, &files("GetDocument"));
    let daemon = Logged::start(&dir, &["--poll-interval", "1"]);
    let wait_for = |needle: &str| daemon.wait_for(needle);
    wait_for("bundle loaded");
    std::fs::write(
        dir.join("users.yaml"),
        "- name: alice\n  groups: [nope]\n  policies: [Missing]\n",
    )
    .unwrap();
    wait_for("bundle rejected");
    let text = daemon.stop();
    assert!(
        text.contains("INFO")
            && text.contains("bundle loaded")
            && text.contains("revision=GetDocument (sha256:"),
        "{text}"
    );
    assert!(
        text.contains("WARN") && text.contains("bundle rejected (keeping revision GetDocument"),
        "{text}"
    );
    assert!(
        text.contains("users.yaml:2:12: user `alice` is in unknown group `nope`"),
        "{text}"
    );
    assert!(
        text.contains("users.yaml:3:14: unknown managed policy `Missing`"),
        "{text}"
    );
}

/// `bundle.maxFileBytes` of the configuration is the reader's limit: a file
/// one byte over it is refused, naming the file and the setting; at its
/// size, the bundle loads.
#[test]
fn the_configured_file_limit_is_the_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let files = files("GetDocument");
    write_all(&dir, &files);
    let largest = files.iter().map(|(_, t)| t.len()).max().unwrap();
    let (name, _) = files.iter().find(|(_, t)| t.len() == largest).unwrap();
    for (limit, want) in [
        (
            largest - 1,
            format!("{name}: the file has more than {} bytes", largest - 1),
        ),
        (largest, "bundle loaded".to_owned()),
    ] {
        let cfg = tmp.path().join("iamd.yaml");
        std::fs::write(
            &cfg,
            format!(
                "bundle: {{source: {}, maxFileBytes: {limit}}}\n",
                dir.display()
            ),
        )
        .unwrap();
        let daemon = Logged::start(&dir, &["--config", cfg.to_str().unwrap()]);
        daemon.wait_for(&want);
        let text = daemon.stop();
        if limit < largest {
            assert!(text.contains("bundle.maxFileBytes"), "{text}");
            assert!(!text.contains("bundle loaded"), "{text}");
        }
    }
}
