//! Hot reload: the live [`Snapshot`] (bundle and status) behind one
//! `ArcSwap` in the [`Store`], a [`Reloader`] that owns the store's one
//! [`Publisher`] and reads a [`BundleSource`], and a watcher thread that
//! tells the reloader when the source may have changed.
//!
//! The reloader always runs read → digest → (unchanged? stop) → validate →
//! compile → publish. A bundle that fails never replaces the live one: the
//! last good bundle keeps serving, and the failure, with every error, goes to
//! the logs and to [`ReloadStatus`]. Before the first good bundle there is no
//! bundle at all, and callers deny.
//!
//! The watcher only says "something may have changed": it watches the
//! directory (recursively) and its parent, so that Kubernetes' `..data`
//! symlink swap, an editor's rename-into-place and a deleted-then-recreated
//! directory are all seen; it debounces bursts of events, re-adds its watches
//! after each burst, checks the digest on a timer as a backstop for missed
//! events, and reloads on `SIGHUP`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use jiff::Timestamp;
use notify::{RecursiveMode, Watcher as _};

use crate::source::{BundleSource, DirectorySource, Fetched};
use iamd_bundle::{Bundle, BundleStats, Revision};
use iamd_source::signature::Verifier;

/// What is live, published as one: the bundle being served and the
/// reloader's report on it. Readers take one snapshot per call and see a
/// bundle and a status that belong together.
///
/// Today a snapshot holds one bundle, the default one. A second live
/// bundle (a tenant's, a shadow candidate) will be a second named slot of
/// the same snapshot: readers keep asking [`Snapshot::bundle`] for the
/// default one, and only the readers that need another name it.
#[derive(Debug, Default)]
pub struct Snapshot {
    bundle: Option<Arc<Bundle>>,
    status: ReloadStatus,
}

impl Snapshot {
    /// The bundle being served, if any: without one every decision is a
    /// refusal, and callers deny.
    pub fn bundle(&self) -> Option<&Arc<Bundle>> {
        self.bundle.as_ref()
    }

    /// The reloader's report: the live bundle, the last failure, counts.
    pub fn status(&self) -> &ReloadStatus {
        &self.status
    }
}

/// The live [`Snapshot`], behind one `ArcSwap`. Only its [`Publisher`]
/// writes it.
#[derive(Debug, Default)]
pub struct Store {
    snapshot: ArcSwap<Snapshot>,
}

impl Store {
    /// An empty store (no bundle: every decision is a deny) and the one
    /// handle that can publish into it.
    pub fn new() -> (Arc<Self>, Publisher) {
        let store = Arc::new(Self::default());
        let publisher = Publisher {
            store: store.clone(),
        };
        (store, publisher)
    }

    /// The live snapshot. The guard is for the stack of one call: readers
    /// never block and always see one whole snapshot.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Whether a bundle is live.
    pub fn serving(&self) -> bool {
        self.snapshot.load().bundle.is_some()
    }

    /// The live bundle, if any (a convenience over [`Store::load`]).
    pub fn bundle(&self) -> Option<Arc<Bundle>> {
        self.snapshot.load().bundle.clone()
    }

    /// The reloader's report (a convenience over [`Store::load`]).
    pub fn status(&self) -> ReloadStatus {
        self.snapshot.load().status.clone()
    }
}

/// The one writer of a [`Store`]: made with it, not cloneable, owned by
/// the [`Reloader`].
///
/// ```
/// use iamd_server::reload::{Reloader, Store};
/// let (store, publisher) = Store::new();
/// let reloader = Reloader::for_dir("bundle".as_ref(), publisher);
/// assert!(!store.serving());
/// ```
///
/// A second writer does not compile:
///
/// ```compile_fail
/// use iamd_server::reload::{Reloader, Store};
/// let (store, publisher) = Store::new();
/// let second = publisher.clone();
/// ```
#[derive(Debug)]
pub struct Publisher {
    store: Arc<Store>,
}

impl Publisher {
    /// The store it publishes into.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Makes `bundle` live with `status`, in one swap, and returns the
    /// bundle it replaced.
    fn publish(&mut self, bundle: Arc<Bundle>, status: ReloadStatus) -> Option<Arc<Bundle>> {
        let old = self.store.snapshot.swap(Arc::new(Snapshot {
            bundle: Some(bundle),
            status,
        }));
        old.bundle.clone()
    }

    /// Stops serving (a stale bundle): no bundle, with `status`; returns
    /// the bundle withdrawn.
    fn withdraw(&mut self, status: ReloadStatus) -> Option<Arc<Bundle>> {
        let old = self.store.snapshot.swap(Arc::new(Snapshot {
            bundle: None,
            status,
        }));
        old.bundle.clone()
    }

    /// Changes the status beside the live bundle.
    fn report(&mut self, f: impl FnOnce(&mut ReloadStatus)) {
        let current = self.store.snapshot.load_full();
        let mut status = current.status.clone();
        f(&mut status);
        self.store.snapshot.store(Arc::new(Snapshot {
            bundle: current.bundle.clone(),
            status,
        }));
    }
}

/// What the reloader reports: the live bundle, the last failure, counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// The bundle being served.
    pub live: Option<Live>,
    /// The last reload that failed, with every error, until a good one.
    pub last_failure: Option<Failure>,
    /// Reloads by result.
    pub reloads: ReloadCounts,
    /// The source's health: its last confirmation, failures in a row, and
    /// whether the bundle was withdrawn as stale.
    pub freshness: Freshness,
}

/// How current the live bundle is known to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    /// The last read that found the source's bundle live: published, the
    /// same files as the live ones, or not modified (an HTTP 304). The
    /// staleness policy's clock.
    pub last_success: Option<Timestamp>,
    /// Reads in a row that failed (the source could not be read, or its
    /// bundle was refused).
    pub consecutive_failures: u64,
    /// Set while the bundle is withdrawn as stale: since when, and the
    /// configured age it passed.
    pub stale: Option<Stale>,
}

/// A bundle withdrawn because it was not confirmed for longer than the
/// staleness policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// When it was withdrawn.
    pub since: Timestamp,
    /// The policy's age.
    pub max_age: Duration,
}

/// The bundle being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// Its revision.
    pub revision: Revision,
    /// When it was published.
    pub loaded_at: Timestamp,
    /// Where it came from ([`BundleSource::describe`]: a directory's path).
    pub source: String,
    /// What it holds.
    pub stats: BundleStats,
    /// Read from the persisted copy, the source being unreachable.
    pub persisted: bool,
    /// The key whose signature it carried, when signatures are required.
    pub signed_by: Option<String>,
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
pub enum ReloadOutcome {
    /// A new bundle is live.
    Loaded(Revision),
    /// Nothing changed (or the same rejected files again).
    Unchanged,
    /// The files were rejected; the previous bundle, if any, stays live.
    Failed(Vec<String>),
}

/// Loads a bundle from its [`BundleSource`] and publishes it: a
/// [`Store`]'s only writer, since it owns the store's [`Publisher`].
#[derive(Debug)]
pub struct Reloader {
    source: Box<dyn BundleSource>,
    publisher: Publisher,
    live_digest: Option<String>,
    rejected: Option<(Option<String>, Vec<String>)>,
    settle: Duration,
    /// Set when the watcher running this reloader is dropped: a reload that
    /// finishes afterwards publishes nothing.
    stopping: Option<Arc<AtomicBool>>,
    /// The keys a bundle must be signed by (none: signatures not required).
    verifier: Option<Verifier>,
    /// The staleness policy: withdraw the bundle after this long without the
    /// source confirming it (none: serve the last good bundle forever).
    max_age: Option<Duration>,
    /// When the live bundle was last confirmed by the source (or, never
    /// confirmed, published): the staleness clock.
    confirmed: Option<Instant>,
    /// The bundle withdrawn as stale, to serve again once confirmed.
    withdrawn: Option<Arc<Bundle>>,
    /// The last read failed.
    failed: bool,
    /// Compiled work of the last load, reused by the next: a reload
    /// compiles only what changed (`iamd_bundle::cache`).
    cache: iamd_bundle::Cache,
}

impl Reloader {
    /// A reloader of `source` into the store of `publisher`.
    pub fn new(source: Box<dyn BundleSource>, publisher: Publisher) -> Self {
        Self {
            source,
            publisher,
            live_digest: None,
            rejected: None,
            settle: SETTLE,
            stopping: None,
            verifier: None,
            max_age: None,
            confirmed: None,
            withdrawn: None,
            failed: false,
            cache: iamd_bundle::Cache::new(),
        }
    }

    /// Requires every bundle to be signed by one of `verifier`'s keys: an
    /// unsigned bundle, a bad signature or an unknown key is refused and
    /// the last good bundle keeps serving.
    pub fn with_verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The staleness policy: after `max_age` without a successful read,
    /// stop serving (health NOT_SERVING, calls UNAVAILABLE) until the
    /// source is read again. `None` (the default) serves the last good
    /// bundle forever.
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// A reloader of the bundle directory (or AWS export file) `dir`.
    pub fn for_dir(dir: &Path, publisher: Publisher) -> Self {
        Self::new(Box::new(DirectorySource::new(dir)), publisher)
    }

    /// How long a file must go unmodified before a reload (other than the
    /// first) reads it ([`SETTLE`] by default).
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The source it reloads.
    pub fn source(&self) -> &dyn BundleSource {
        &*self.source
    }

    /// The store it publishes into.
    pub fn store(&self) -> &Arc<Store> {
        self.publisher.store()
    }

    /// Reads the source and publishes its bundle if it changed and is good.
    pub fn reload(&mut self, trigger: Trigger) -> ReloadOutcome {
        let outcome = self.reload_inner(trigger);
        self.failed = matches!(outcome, ReloadOutcome::Failed(_));
        outcome
    }

    fn reload_inner(&mut self, trigger: Trigger) -> ReloadOutcome {
        // At start nothing is served yet; afterwards a file written moments
        // ago may be half-written: wait until it has settled.
        let settle = if trigger == Trigger::Start {
            Duration::ZERO
        } else {
            self.settle
        };
        let fetched = match self.source.read(settle) {
            Ok(Some(f)) => f,
            Ok(None) => {
                // Not modified since the bundle that is live.
                self.confirm();
                self.count(|c| c.unchanged += 1);
                return ReloadOutcome::Unchanged;
            }
            Err(e) => return self.reject(trigger, None, e.lines()),
        };
        let digest = fetched.files.digest().to_owned();
        if self.live_digest.as_deref() == Some(digest.as_str()) {
            self.source.settled(true);
            if !fetched.persisted {
                self.confirm();
            }
            self.count(|c| c.unchanged += 1);
            return ReloadOutcome::Unchanged;
        }
        let key = Some(rejection_key(&fetched));
        if let Some((Some(d), _)) = &self.rejected
            && Some(d) == key.as_ref()
        {
            // The same rejected files: already reported.
            self.source.settled(false);
            self.count(|c| c.unchanged += 1);
            return ReloadOutcome::Unchanged;
        }
        let signed = match &self.verifier {
            None => None,
            Some(v) => match v.verify(fetched.signatures.as_deref(), &digest) {
                Ok(verified) => Some(verified),
                Err(e) => {
                    self.source.settled(false);
                    return self.reject(
                        trigger,
                        key,
                        vec![format!("{}: {e}", self.source.describe())],
                    );
                }
            },
        };
        let started = Instant::now();
        let before = iamd_bundle::pace::counts().unwrap_or_default();
        let compiled = fetched.files.compile_cached(&mut self.cache);
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
            return ReloadOutcome::Unchanged;
        }
        let compiled = compiled.map_err(|e| e.lines()).and_then(|bundle| match &signed {
            // The signature names the revision it signed: the files must
            // say the same.
            Some(v) if v.revision != bundle.revision().label => Err(vec![format!(
                "{}: the signature is for revision {:?}, and bundle.yaml says {:?}: sign the bundle again",
                self.source.describe(),
                v.revision.as_deref().unwrap_or(""),
                bundle.revision().label.as_deref().unwrap_or("")
            )]),
            _ => Ok(bundle),
        });
        match compiled {
            Ok(bundle) => {
                let revision = bundle.revision().clone();
                let stats = bundle.stats();
                tracing::info!(target: "iamd::reload",
                    revision = %revision,
                    ?trigger,
                    users = stats.users,
                    roles = stats.roles,
                    statements = stats.statements,
                    compile_ms = started.elapsed().as_millis() as u64,
                    reused = self.cache.last_load().0,
                    compiled = self.cache.last_load().1,
                    paused_ms = paused.as_millis() as u64,
                    persisted = fetched.persisted,
                    signed_by = signed.as_ref().map(|v| v.keyid.as_str()),
                    "bundle loaded"
                );
                let mut status = self.store().status();
                status.live = Some(Live {
                    revision: revision.clone(),
                    loaded_at: Timestamp::now(),
                    source: self.source.describe(),
                    stats,
                    persisted: fetched.persisted,
                    signed_by: signed.map(|v| v.keyid),
                });
                status.last_failure = None;
                status.reloads.loaded += 1;
                status.freshness.consecutive_failures = 0;
                status.freshness.stale = None;
                if !fetched.persisted {
                    status.freshness.last_success = Some(Timestamp::now());
                }
                self.confirmed = Some(Instant::now());
                let old = self.publisher.publish(Arc::new(bundle), status);
                self.source.settled(true);
                self.live_digest = Some(digest);
                self.rejected = None;
                drop(fetched);
                for old in [old, self.withdrawn.take()].into_iter().flatten() {
                    retire(old);
                }
                self.cache.release();
                ReloadOutcome::Loaded(revision)
            }
            Err(errors) => {
                self.source.settled(false);
                self.reject(trigger, key, errors)
            }
        }
    }

    /// The live bundle is what the source has now (published, the same
    /// files, or not modified): the staleness clock starts again, a bundle
    /// withdrawn as stale serves again, no failure in a row, and a
    /// persisted copy the source confirms is the source's.
    ///
    /// A bundle the source offers and iamd refuses confirms nothing: the
    /// last good one keeps serving until the policy's age, then nothing
    /// does, since what is served is no longer what the source intends.
    fn confirm(&mut self) {
        self.confirmed = Some(Instant::now());
        let now = Timestamp::now();
        let fresh = |s: &mut ReloadStatus| {
            s.freshness = Freshness {
                last_success: Some(now),
                consecutive_failures: 0,
                stale: None,
            };
            if let Some(live) = &mut s.live {
                live.persisted = false;
            }
        };
        if let Some(bundle) = self.withdrawn.take() {
            let mut status = self.store().status();
            fresh(&mut status);
            tracing::info!(target: "iamd::reload",
                revision = %bundle.revision(),
                "the bundle source confirmed the bundle again: serving it again"
            );
            self.publisher.publish(bundle, status);
            return;
        }
        self.publisher.report(fresh);
    }

    /// Applies the staleness policy: withdraws the live bundle once it has
    /// gone unconfirmed for longer than the configured age. Called by the
    /// watcher between reads.
    pub fn check_staleness(&mut self) {
        let (Some(max_age), Some(confirmed)) = (self.max_age, self.confirmed) else {
            return;
        };
        if self.withdrawn.is_some() || confirmed.elapsed() <= max_age {
            return;
        }
        let mut status = self.store().status();
        status.freshness.stale = Some(Stale {
            since: Timestamp::now(),
            max_age,
        });
        let Some(bundle) = self.publisher.withdraw(status) else {
            return;
        };
        tracing::error!(target: "iamd::reload",
            revision = %bundle.revision(),
            source = %self.source.describe(),
            "the bundle was not confirmed by its source for {} s (`bundle.staleness.maxAgeSeconds`): no longer serving it; every request is refused (UNAVAILABLE) until the source confirms a bundle",
            max_age.as_secs()
        );
        self.withdrawn = Some(bundle);
    }

    /// How long the watcher waits before the next timed read: the
    /// source's choice (polling with jitter, back-off after a failure), or
    /// `default`.
    pub fn next_read(&mut self, default: Duration) -> Duration {
        self.source.next_read(self.failed).unwrap_or(default)
    }

    fn reject(
        &mut self,
        trigger: Trigger,
        digest: Option<String>,
        errors: Vec<String>,
    ) -> ReloadOutcome {
        let again = self
            .rejected
            .as_ref()
            .is_some_and(|(d, e)| *d == digest && *e == errors);
        if again {
            self.publisher.report(|s| {
                s.reloads.unchanged += 1;
                s.freshness.consecutive_failures += 1;
            });
            return ReloadOutcome::Unchanged;
        }
        let keeping = self.store().bundle().map_or_else(
            || "no bundle: every request is denied".to_owned(),
            |b| format!("keeping revision {}", b.revision()),
        );
        let total = errors.len();
        let origin = self.source.describe();
        let reported = reported(&errors, &origin);
        tracing::warn!(target: "iamd::reload",
            dir = %origin,
            ?trigger,
            errors = total,
            "bundle rejected ({keeping}):\n{}",
            reported.join("\n")
        );
        self.rejected = Some((digest.clone(), errors.clone()));
        let failure = Failure {
            at: Timestamp::now(),
            digest: digest
                .as_deref()
                .and_then(|k| k.split('+').next())
                .map(str::to_owned),
            errors: reported,
        };
        self.publisher.report(|s| {
            s.last_failure = Some(failure);
            s.reloads.failed += 1;
            s.freshness.consecutive_failures += 1;
        });
        ReloadOutcome::Failed(errors)
    }

    fn count(&mut self, f: impl FnOnce(&mut ReloadCounts)) {
        self.publisher.report(|s| f(&mut s.reloads));
    }
}

/// What identifies a refused read: the files' digest and their signatures
/// (the same files signed afterwards are judged again).
fn rejection_key(fetched: &Fetched) -> String {
    use sha2::Digest as _;
    match &fetched.signatures {
        None => fetched.files.digest().to_owned(),
        Some(s) => {
            let h = sha2::Sha256::digest(s.as_bytes());
            let h: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("{}+{h}", fetched.files.digest())
        }
    }
}

/// The errors of a rejected bundle kept in [`ReloadStatus`] and logged: the
/// first [`REPORTED_ERRORS`], then one line saying how many more there are.
/// Each is already one short line ([`iamd_bundle::BundleError::new`]).
pub const REPORTED_ERRORS: usize = 100;

fn reported(errors: &[String], origin: &str) -> Vec<String> {
    let mut kept: Vec<String> = errors.iter().take(REPORTED_ERRORS).cloned().collect();
    if errors.len() > REPORTED_ERRORS {
        kept.push(format!(
            "… and {} more errors: `iamd validate {origin}` lists them all",
            errors.len() - REPORTED_ERRORS,
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
        tracing::debug!(target: "iamd::reload", "cannot lower the reload thread's priority: {e}");
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
                tracing::warn!(target: "iamd::reload",
                    "a bundle reload is still running after {} ms: not waiting for it",
                    STOP_WAIT.as_millis()
                );
            }
        }
    }
}

/// Starts a thread that reloads `reloader`'s source when it may have
/// changed: on file system events under its [`BundleSource::watch_path`],
/// if it has one, on `SIGHUP`, and on the timer. Call [`Reloader::reload`]
/// once first for the initial load.
pub fn watch(mut reloader: Reloader, options: WatchOptions) -> std::io::Result<Watcher> {
    let (tx, rx) = mpsc::channel::<()>();
    let watch_path = reloader.source().watch_path().map(Path::to_owned);
    let mut fs_watcher = match &watch_path {
        Some(path) if options.events => {
            let tx = tx.clone();
            // notify reports the paths under a relative watch joined to the
            // working directory: compare with the same.
            let watched = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let w = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_err() || event.is_ok_and(|e| may_change(&e, &watched)) {
                    let _ = tx.send(());
                }
            })
            .map_err(std::io::Error::other)?;
            Some(w)
        }
        _ => None,
    };
    let hup = Arc::new(AtomicBool::new(false));
    if options.sighup {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    reloader.stopping = Some(stop.clone());
    let (done_tx, done) = mpsc::channel::<()>();
    let parent = watch_path
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_owned);
    // A path that does not exist (a directory being replaced) cannot be
    // watched: not an error, the parent's watch sees it come back, and the
    // next burst of events or the timer adds its watch again.
    let add_watches = move |w: &mut Option<notify::RecommendedWatcher>| {
        if let (Some(w), Some(path)) = (w, &watch_path) {
            if let Some(p) = &parent {
                let _ = w.watch(p, RecursiveMode::NonRecursive);
            }
            let _ = w.watch(path, RecursiveMode::Recursive);
        }
    };
    add_watches(&mut fs_watcher);
    let thread = std::thread::Builder::new()
        .name("iamd-reload".into())
        .spawn(move || {
            background_priority();
            iamd_bundle::pace::background();
            let tick = Duration::from_millis(100).min(options.poll_interval);
            let mut next_poll = Instant::now() + reloader.next_read(options.poll_interval);
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
                    next_poll = Instant::now() + reloader.next_read(options.poll_interval);
                }
                reloader.check_staleness();
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

    mod sources {
        #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

        use std::sync::{Arc, Mutex};
        use std::time::{Duration, Instant};

        use iamd_bundle::{BundleError, BundleFiles, ReadLimits};

        use crate::reload::{ReloadOutcome, Reloader, Store, Trigger, WatchOptions, watch};
        use crate::source::{BundleSource, Fetched};

        /// A bundle held in memory, as a remote source would hand it over:
        /// its files, its signature file, and whether it can be reached.
        #[derive(Debug, Clone, Default)]
        struct Memory {
            files: Arc<Mutex<Files>>,
            signatures: Arc<Mutex<Option<String>>>,
            down: Arc<std::sync::atomic::AtomicBool>,
        }

        /// Paths and contents.
        type Files = Vec<(String, Vec<u8>)>;

        impl Memory {
            fn set(&self, label: &str) {
                let bundle = format!("account: \"123456789012\"\nrevision: {label}\n");
                let users = "- name: alice\n  policies: [Read]\n";
                let read =
                    r#"{"Statement":{"Effect":"Allow","Action":"docs:Get*","Resource":"*"}}"#;
                *self.files.lock().unwrap() = vec![
                    ("bundle.yaml".into(), bundle.into_bytes()),
                    ("users.yaml".into(), users.into()),
                    ("policies/Read.json".into(), read.into()),
                ];
            }
        }

        impl Memory {
            /// Adds an entry that leaves the bundle: the files are refused.
            fn break_it(&self) {
                self.files
                    .lock()
                    .unwrap()
                    .push(("policies/../x.json".into(), b"{}".to_vec()));
            }
        }

        impl BundleSource for Memory {
            fn read(&mut self, _settle: Duration) -> Result<Option<Fetched>, BundleError> {
                if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(BundleError::new(vec![iamd_bundle::Diagnostic::file(
                        "memory",
                        "cannot connect",
                    )]));
                }
                let files = self.files.lock().unwrap().clone();
                let files =
                    BundleFiles::from_files("memory".as_ref(), files, &ReadLimits::default())?;
                Ok(Some(Fetched {
                    files,
                    signatures: self.signatures.lock().unwrap().clone(),
                    persisted: false,
                }))
            }

            fn describe(&self) -> String {
                "memory:test".into()
            }
        }

        fn label(store: &Store) -> Option<String> {
            store.bundle().and_then(|b| b.revision().label.clone())
        }

        #[test]
        fn a_source_without_files_on_disk_is_reloaded_and_reported() {
            let memory = Memory::default();
            memory.set("one");
            let (store, publisher) = Store::new();
            let mut r = Reloader::new(Box::new(memory.clone()), publisher);
            assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
            assert_eq!(label(&store).as_deref(), Some("one"));
            assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
            let status = store.status();
            assert_eq!(status.live.unwrap().source, "memory:test");
            assert_eq!((status.reloads.loaded, status.reloads.unchanged), (1, 1));
            // A bad bundle: refused, reported, the good one stays.
            memory.break_it();
            assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Failed(_)));
            assert_eq!(label(&store).as_deref(), Some("one"));
            let failure = store.status().last_failure.unwrap();
            assert!(
                failure.errors[0].contains("leaves the bundle"),
                "{failure:?}"
            );
            // Without a path to watch, the timer finds the change.
            memory.set("two");
            let options = WatchOptions {
                poll_interval: Duration::from_millis(20),
                sighup: false,
                ..WatchOptions::default()
            };
            let w = watch(r, options).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while label(&store).as_deref() != Some("two") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(w);
            assert_eq!(label(&store).as_deref(), Some("two"));
            assert_eq!(store.status().last_failure, None);
        }

        /// Keys in a temporary directory: signing keys and a verifier
        /// trusting the first `trusted` of them.
        fn keys(
            n: usize,
            trusted: usize,
        ) -> (
            Vec<iamd_source::signature::SigningKey>,
            iamd_source::signature::Verifier,
            tempfile::TempDir,
        ) {
            use iamd_source::signature::{SigningKey, Verifier};
            let dir = tempfile::tempdir().unwrap();
            let mut signers = Vec::new();
            let mut public = Vec::new();
            for i in 0..n {
                let (k, p) = SigningKey::generate().unwrap();
                let (kp, pp) = (
                    dir.path().join(format!("{i}.key")),
                    dir.path().join(format!("{i}.pub")),
                );
                std::fs::write(&kp, k).unwrap();
                std::fs::write(&pp, p).unwrap();
                signers.push(SigningKey::read(&kp).unwrap());
                public.push(pp);
            }
            let verifier = Verifier::read(&public[..trusted]).unwrap();
            (signers, verifier, dir)
        }

        /// Signs what `memory` holds with `key`.
        fn sign(memory: &Memory, key: &iamd_source::signature::SigningKey, label: &str) {
            let files = memory.files.lock().unwrap().clone();
            let files =
                BundleFiles::from_files("m".as_ref(), files, &ReadLimits::default()).unwrap();
            let text = iamd_source::signature::sign(
                std::slice::from_ref(key),
                files.digest(),
                Some(label),
                None,
            )
            .to_text();
            *memory.signatures.lock().unwrap() = Some(text);
        }

        #[test]
        fn only_bundles_signed_by_a_trusted_key_go_live() {
            let (signers, verifier, _dir) = keys(2, 1);
            let memory = Memory::default();
            memory.set("one");
            let (store, publisher) = Store::new();
            let mut r = Reloader::new(Box::new(memory.clone()), publisher).with_verifier(verifier);
            // Unsigned: refused, nothing served.
            let ReloadOutcome::Failed(e) = r.reload(Trigger::Start) else {
                panic!()
            };
            assert!(e[0].starts_with("memory:test: unsigned:"), "{e:?}");
            assert!(!store.serving());
            // The same files, signed afterwards: judged again, and live.
            sign(&memory, &signers[0], "one");
            assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Loaded(_)));
            let live = store.status().live.unwrap();
            assert_eq!(live.signed_by.as_deref(), Some(signers[0].id()));
            // A new bundle signed by a key nobody trusts: refused, the
            // good one stays.
            memory.set("two");
            sign(&memory, &signers[1], "two");
            let ReloadOutcome::Failed(e) = r.reload(Trigger::Timer) else {
                panic!()
            };
            assert!(e[0].contains("signed only by unknown keys"), "{e:?}");
            assert_eq!(label(&store).as_deref(), Some("one"));
            assert_eq!(store.status().freshness.consecutive_failures, 1);
            // Files changed after signing.
            sign(&memory, &signers[0], "two");
            memory.set("three");
            let ReloadOutcome::Failed(e) = r.reload(Trigger::Timer) else {
                panic!()
            };
            assert!(e[0].contains("the signature is for other files"), "{e:?}");
            // A signature whose revision is not the files': refused after
            // compiling.
            sign(&memory, &signers[0], "not-three");
            let ReloadOutcome::Failed(e) = r.reload(Trigger::Timer) else {
                panic!()
            };
            assert!(
                e[0].contains("the signature is for revision \"not-three\""),
                "{e:?}"
            );
            assert_eq!(label(&store).as_deref(), Some("one"));
            sign(&memory, &signers[0], "three");
            assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Loaded(_)));
            assert_eq!(store.status().freshness.consecutive_failures, 0);
        }

        #[test]
        fn a_bundle_unconfirmed_past_the_policys_age_stops_serving_until_the_source_answers() {
            let memory = Memory::default();
            memory.set("one");
            let (store, publisher) = Store::new();
            let mut r = Reloader::new(Box::new(memory.clone()), publisher)
                .with_max_age(Some(Duration::from_millis(50)));
            assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
            r.check_staleness();
            assert!(store.serving(), "fresh");
            memory
                .down
                .store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Failed(_)));
            assert!(store.serving(), "a failure alone does not withdraw it");
            std::thread::sleep(Duration::from_millis(80));
            r.check_staleness();
            assert!(!store.serving());
            let status = store.status();
            let stale = status.freshness.stale.unwrap();
            assert_eq!(stale.max_age, Duration::from_millis(50));
            assert_eq!(status.live.unwrap().revision.label.as_deref(), Some("one"));
            // The source answers again, with a broken bundle: that
            // confirms nothing, and nothing serves.
            memory
                .down
                .store(false, std::sync::atomic::Ordering::Relaxed);
            let good = memory.files.lock().unwrap().clone();
            memory.break_it();
            assert!(matches!(r.reload(Trigger::Timer), ReloadOutcome::Failed(_)));
            assert!(!store.serving());
            // The source has the live bundle again: served again.
            *memory.files.lock().unwrap() = good;
            assert_eq!(r.reload(Trigger::Timer), ReloadOutcome::Unchanged);
            assert!(store.serving());
            assert_eq!(label(&store).as_deref(), Some("one"));
            assert_eq!(store.status().freshness.stale, None);
            assert!(store.status().freshness.last_success.is_some());
            // Without a policy, a bundle is served however old.
            let (store, publisher) = Store::new();
            let mut r = Reloader::new(Box::new(memory.clone()), publisher);
            r.reload(Trigger::Start);
            memory
                .down
                .store(true, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(60));
            r.check_staleness();
            assert!(store.serving());
        }

        /// The bundle and its status are one snapshot: a reader never sees
        /// a bundle beside another bundle's status.
        #[test]
        fn readers_see_a_bundle_with_its_own_status() {
            let memory = Memory::default();
            memory.set("a");
            let (store, publisher) = Store::new();
            let mut r = Reloader::new(Box::new(memory.clone()), publisher);
            r.reload(Trigger::Start);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader = {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let snapshot = store.load();
                        let bundle = snapshot.bundle().map(|b| b.revision().clone());
                        let status = snapshot.status().live.as_ref().map(|l| l.revision.clone());
                        assert_eq!(bundle, status);
                        seen += 1;
                    }
                    seen
                })
            };
            for i in 0..200 {
                memory.set(if i % 2 == 0 { "b" } else { "a" });
                assert!(matches!(r.reload(Trigger::Event), ReloadOutcome::Loaded(_)));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
            assert_eq!(store.status().reloads.loaded, 201);
        }
    }
}
