//! Hot reload: the live bundle behind one `ArcSwap`, a reloader that is its
//! only writer, and a watcher thread that tells the reloader when the bundle
//! directory may have changed.
//!
//! The reloader always runs read → digest → (unchanged? stop) → validate →
//! compile → publish. A bundle that fails never replaces the live one: the
//! last good bundle keeps serving, and the failure, with every error, goes to
//! the logs and to [`Status`]. Before the first good bundle there is no
//! bundle at all, and callers deny.
//!
//! The watcher only says "something may have changed": it watches the
//! directory (recursively) and its parent, so that Kubernetes' `..data`
//! symlink swap, an editor's rename-into-place and a deleted-then-recreated
//! directory are all seen; it debounces bursts of events, re-adds its watches
//! after each burst, checks the digest on a timer as a backstop for missed
//! events, and reloads on `SIGHUP`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use jiff::Timestamp;
use notify::{RecursiveMode, Watcher as _};

use iamd_bundle::{Bundle, BundleFiles, BundleStats, Revision};

/// The live bundle, and what the reloader has to say about it.
#[derive(Debug, Default)]
pub struct Store {
    live: ArcSwapOption<Bundle>,
    status: ArcSwap<Status>,
}

impl Store {
    /// An empty store: no bundle, so every decision is a deny.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The live bundle, if any. The guard is for the stack of one decision;
    /// readers never block and always see one whole bundle.
    pub fn bundle(&self) -> Guard<Option<Arc<Bundle>>> {
        self.live.load()
    }

    /// The reloader's report.
    pub fn status(&self) -> Arc<Status> {
        self.status.load_full()
    }
}

/// What the reloader reports: the live bundle, the last failure, counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The bundle being served.
    pub live: Option<Live>,
    /// The last reload that failed, with every error, until a good one.
    pub last_failure: Option<Failure>,
    /// Reloads by result.
    pub reloads: ReloadCounts,
}

/// The bundle being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// Its revision.
    pub revision: Revision,
    /// When it was published.
    pub loaded_at: Timestamp,
    /// The directory it came from.
    pub source: PathBuf,
    /// What it holds.
    pub stats: BundleStats,
}

/// A reload that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When.
    pub at: Timestamp,
    /// The digest of the rejected files (none when they could not be read).
    pub digest: Option<String>,
    /// Every error, one line each.
    pub errors: Vec<String>,
}

/// Reloads by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadCounts {
    /// A new bundle was published.
    pub loaded: u64,
    /// The files had not changed.
    pub unchanged: u64,
    /// The files were rejected (the live bundle stayed).
    pub failed: u64,
}

/// What asked for a reload, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first load.
    Start,
    /// A file system event.
    Event,
    /// The periodic digest check.
    Timer,
    /// `SIGHUP`.
    Signal,
}

/// The result of one reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new bundle is live.
    Loaded(Revision),
    /// Nothing changed (or the same rejected files again).
    Unchanged,
    /// The files were rejected; the previous bundle, if any, stays live.
    Failed(Vec<String>),
}

/// Loads the bundle directory into a [`Store`]: the store's only writer.
#[derive(Debug)]
pub struct Reloader {
    dir: PathBuf,
    store: Arc<Store>,
    live_digest: Option<String>,
    rejected: Option<(Option<String>, Vec<String>)>,
    settle: Duration,
    /// Set when the watcher running this reloader is dropped: a reload that
    /// finishes afterwards publishes nothing.
    stopping: Option<Arc<AtomicBool>>,
}

impl Reloader {
    /// A reloader of `dir` into `store`.
    pub fn new(dir: &Path, store: Arc<Store>) -> Self {
        Self {
            dir: dir.to_owned(),
            store,
            live_digest: None,
            rejected: None,
            settle: SETTLE,
            stopping: None,
        }
    }

    /// How long a file must go unmodified before a reload (other than the
    /// first) reads it ([`SETTLE`] by default).
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The directory it reloads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory and publishes its bundle if it changed and is good.
    pub fn reload(&mut self, trigger: Trigger) -> Outcome {
        // At start nothing is served yet; afterwards a file written moments
        // ago may be half-written: wait until it has settled.
        let settle = if trigger == Trigger::Start {
            Duration::ZERO
        } else {
            self.settle
        };
        let files = match BundleFiles::read_settled(&self.dir, settle) {
            Ok(f) => f,
            Err(e) => return self.reject(trigger, None, e.diagnostics),
        };
        let digest = files.digest().to_owned();
        if self.live_digest.as_deref() == Some(digest.as_str()) {
            self.count(|c| c.unchanged += 1);
            return Outcome::Unchanged;
        }
        if let Some((Some(d), _)) = &self.rejected
            && *d == digest
        {
            // The same rejected files: already reported.
            self.count(|c| c.unchanged += 1);
            return Outcome::Unchanged;
        }
        let started = Instant::now();
        let before = iamd_bundle::pace::counts().unwrap_or_default();
        let compiled = files.compile();
        // The time the compilation left the CPU to others (zero on a
        // thread that is not paced).
        let paused = iamd_bundle::pace::counts()
            .unwrap_or_default()
            .paused_since(&before);
        if self
            .stopping
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return Outcome::Unchanged;
        }
        match compiled {
            Ok(bundle) => {
                let revision = bundle.revision().clone();
                let stats = bundle.stats();
                let old = self.store.live.swap(Some(Arc::new(bundle)));
                if let Some(old) = old {
                    retire(old);
                }
                self.live_digest = Some(digest);
                self.rejected = None;
                tracing::info!(
                    revision = %revision,
                    ?trigger,
                    users = stats.users,
                    roles = stats.roles,
                    statements = stats.statements,
                    compile_ms = started.elapsed().as_millis() as u64,
                    paused_ms = paused.as_millis() as u64,
                    "bundle loaded"
                );
                let live = Live {
                    revision: revision.clone(),
                    loaded_at: Timestamp::now(),
                    source: self.dir.clone(),
                    stats,
                };
                self.update(|s| {
                    s.live = Some(live);
                    s.last_failure = None;
                    s.reloads.loaded += 1;
                });
                Outcome::Loaded(revision)
            }
            Err(e) => self.reject(trigger, Some(digest), e.diagnostics),
        }
    }

    fn reject(&mut self, trigger: Trigger, digest: Option<String>, errors: Vec<String>) -> Outcome {
        let again = self
            .rejected
            .as_ref()
            .is_some_and(|(d, e)| *d == digest && *e == errors);
        if again {
            self.count(|c| c.unchanged += 1);
            return Outcome::Unchanged;
        }
        let keeping = self.store.bundle().as_ref().map_or_else(
            || "no bundle: every request is denied".to_owned(),
            |b| format!("keeping revision {}", b.revision()),
        );
        let total = errors.len();
        let reported = reported(&errors, &self.dir);
        tracing::warn!(
            dir = %self.dir.display(),
            ?trigger,
            errors = total,
            "bundle rejected ({keeping}):\n{}",
            reported.join("\n")
        );
        self.rejected = Some((digest.clone(), errors.clone()));
        let failure = Failure {
            at: Timestamp::now(),
            digest,
            errors: reported,
        };
        self.update(|s| {
            s.last_failure = Some(failure);
            s.reloads.failed += 1;
        });
        Outcome::Failed(errors)
    }

    fn count(&self, f: impl FnOnce(&mut ReloadCounts)) {
        self.update(|s| f(&mut s.reloads));
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut next = (*self.store.status.load_full()).clone();
        f(&mut next);
        self.store.status.store(Arc::new(next));
    }
}

/// The errors of a rejected bundle kept in [`Status`] and logged: the
/// first [`REPORTED_ERRORS`], then one line saying how many more there are.
/// Each is already one short line ([`iamd_bundle::BundleError::new`]).
pub const REPORTED_ERRORS: usize = 100;

fn reported(errors: &[String], dir: &Path) -> Vec<String> {
    let mut kept: Vec<String> = errors.iter().take(REPORTED_ERRORS).cloned().collect();
    if errors.len() > REPORTED_ERRORS {
        kept.push(format!(
            "… and {} more errors: `iamd validate {}` lists them all",
            errors.len() - REPORTED_ERRORS,
            dir.display()
        ));
    }
    kept
}

/// How the watcher works.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Wait for this long without events before reloading.
    pub debounce: Duration,
    /// Check the digest this often, events or not (a backstop for missed
    /// events and file systems without them).
    pub poll_interval: Duration,
    /// Use file system events (off: the timer alone).
    pub events: bool,
    /// Reload on `SIGHUP`.
    pub sighup: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_secs(10),
            events: true,
            sighup: true,
        }
    }
}

/// How long a bundle file must go unmodified before a reload reads it: a
/// writer that writes a file in pieces (`cat > file`, an editor saving in
/// place, a network copy) is given this long between two writes. Writers
/// that write a temporary file and rename it, and ConfigMap swaps, are
/// never read half-written (docs/bundles.md).
pub const SETTLE: Duration = Duration::from_secs(1);

/// Drops a replaced bundle on the reloader's thread. Calls still deciding
/// on it hold it for microseconds; the last of them to finish would
/// otherwise free it, and freeing a large bundle (hundreds of milliseconds
/// for 10,000 users) on the thread that answers calls would stall every
/// call behind it. Waits for them (at most a second), then frees it here.
fn retire(old: Arc<Bundle>) {
    for _ in 0..1000 {
        if Arc::strong_count(&old) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match Arc::try_unwrap(old) {
        Ok(bundle) => bundle.dismantle(),
        Err(shared) => drop(shared),
    }
}

/// Lowers the calling thread's scheduling priority (nice 10, Linux): a
/// reload compiles a whole bundle, hundreds of milliseconds of CPU for a
/// large one, and on a busy machine it must not take the CPU the thread
/// answering calls needs. An idle CPU still runs it at full speed.
fn background_priority() {
    // On Linux a nice value belongs to a thread: `PRIO_PROCESS` with no
    // PID is the calling thread.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!("cannot lower the reload thread's priority: {e}");
    }
}

/// Whether a file system event may have changed the bundle in `dir`. Not
/// when a file was only opened or read: the reloader itself opens every
/// file to digest it, and each of those events would start another reload
/// (a large bundle was read and digested ten times a second, forever). Not
/// for the other entries of the parent directory, which is watched only to
/// see `dir` itself deleted, created or renamed.
fn may_change(event: &notify::Event, dir: &Path) -> bool {
    use notify::EventKind::Access;
    use notify::event::{AccessKind, AccessMode};
    let kind = match event.kind {
        Access(AccessKind::Close(AccessMode::Write)) => true,
        Access(_) => false,
        _ => true,
    };
    kind && (event.paths.is_empty() || event.paths.iter().any(|p| p.starts_with(dir)))
}

/// A running watcher thread; dropping it stops the thread.
///
/// A reload in progress is not waited for beyond [`STOP_WAIT`]: a slow
/// read (a huge bundle, files that keep changing) must never hold up a
/// shutdown. The thread is then left to end with the process, and a reload
/// that finishes after the drop is not published.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// How long dropping a [`Watcher`] waits for a reload in progress.
pub const STOP_WAIT: Duration = Duration::from_secs(1);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        match self.done.recv_timeout(STOP_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    "a bundle reload is still running after {} ms: not waiting for it",
                    STOP_WAIT.as_millis()
                );
            }
        }
    }
}

/// Starts a thread that reloads `reloader`'s directory when it may have
/// changed. Call [`Reloader::reload`] once first for the initial load.
pub fn watch(mut reloader: Reloader, options: WatchOptions) -> std::io::Result<Watcher> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut fs_watcher = if options.events {
        let tx = tx.clone();
        // notify reports the paths under a relative watch joined to the
        // working directory: compare with the same.
        let watched =
            std::path::absolute(reloader.dir()).unwrap_or_else(|_| reloader.dir().to_owned());
        let w = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_err() || event.is_ok_and(|e| may_change(&e, &watched)) {
                let _ = tx.send(());
            }
        })
        .map_err(std::io::Error::other)?;
        Some(w)
    } else {
        None
    };
    let hup = Arc::new(AtomicBool::new(false));
    if options.sighup {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    reloader.stopping = Some(stop.clone());
    let (done_tx, done) = mpsc::channel::<()>();
    let dir = reloader.dir().to_owned();
    let parent = dir.parent().map(Path::to_owned);
    // A path that does not exist (a directory being replaced) cannot be
    // watched: not an error, the parent's watch sees it come back, and the
    // next burst of events or the timer adds its watch again.
    let add_watches = move |w: &mut Option<notify::RecommendedWatcher>| {
        if let Some(w) = w {
            if let Some(p) = &parent {
                let _ = w.watch(p, RecursiveMode::NonRecursive);
            }
            let _ = w.watch(&dir, RecursiveMode::Recursive);
        }
    };
    add_watches(&mut fs_watcher);
    let thread = std::thread::Builder::new()
        .name("iamd-reload".into())
        .spawn(move || {
            background_priority();
            iamd_bundle::pace::background();
            let tick = Duration::from_millis(100).min(options.poll_interval);
            let mut next_poll = Instant::now() + options.poll_interval;
            while !stopping.load(Ordering::Relaxed) {
                match rx.recv_timeout(tick) {
                    Ok(()) => {
                        // Consume events until the directory is quiet.
                        while rx.recv_timeout(options.debounce).is_ok() {}
                        // Files and directories may have been replaced: watch
                        // the new ones.
                        add_watches(&mut fs_watcher);
                        reloader.reload(Trigger::Event);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(tick),
                }
                if hup.swap(false, Ordering::Relaxed) {
                    reloader.reload(Trigger::Signal);
                }
                if Instant::now() >= next_poll {
                    add_watches(&mut fs_watcher);
                    reloader.reload(Trigger::Timer);
                    next_poll = Instant::now() + options.poll_interval;
                }
            }
            drop(tx);
            let _ = done_tx.send(());
        })?;
    Ok(Watcher {
        stop,
        done,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::may_change;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind};
    use notify::{Event, EventKind};
    use std::path::Path;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(path.into())
    }

    #[test]
    fn reads_of_the_bundle_and_other_entries_of_its_parent_are_no_change() {
        let dir = Path::new("/srv/bundle");
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read_closed = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let modified = EventKind::Modify(ModifyKind::Any);
        assert!(!may_change(&event(open, "/srv/bundle/users.yaml"), dir));
        assert!(!may_change(
            &event(read_closed, "/srv/bundle/users.yaml"),
            dir
        ));
        assert!(may_change(&event(written, "/srv/bundle/users.yaml"), dir));
        assert!(may_change(
            &event(modified, "/srv/bundle/policies/P.json"),
            dir
        ));
        assert!(may_change(
            &event(EventKind::Create(CreateKind::Folder), "/srv/bundle"),
            dir
        ));
        assert!(may_change(
            &event(EventKind::Remove(RemoveKind::Any), "/srv/bundle"),
            dir
        ));
        // The parent's other entries, even with a name that starts the same.
        assert!(!may_change(&event(modified, "/srv/other.json"), dir));
        assert!(!may_change(
            &event(modified, "/srv/bundle-old/users.yaml"),
            dir
        ));
        // An event without paths (a rescan, an overflow): look again.
        assert!(may_change(&Event::new(EventKind::Any), dir));
    }
}
