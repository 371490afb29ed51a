//! Pacing of background work: a reload takes little CPU time from threads
//! that wait for it.
//!
//! A reload reads and compiles a whole bundle: hundreds of milliseconds of
//! CPU for a large one. On a machine whose CPUs are busy (the serving
//! thread, the application next to the sidecar), that time comes from
//! someone: measured on 2 busy cores, a 10,000-user reload at nice 10 took
//! a quarter to a half of the answers away for its 0.8 s and multiplied
//! their p99 by 5 to 6. A lower priority does not prevent it: the scheduler
//! lets the reload finish its time slice, and places the threads that wake
//! up to answer calls together on the other CPU rather than preempt it.
//!
//! So a thread marked [`background`] paces itself. The long loops of
//! loading and compiling call [`point`]; every [`WINDOW`] of running, a
//! point asks the kernel how many tasks are runnable right now (Linux's
//! `/proc/loadavg`, which counts the running ones too). More than the CPUs
//! this process may use means some task waits for one: the thread sleeps
//! for [`PAUSE`], leaving its CPU to the others, and goes on pausing after
//! each window until it has seen the machine calm for a while. On a busy
//! machine a reload thus runs about a tenth of the time (it still
//! progresses however busy the CPUs: each window runs) and takes ten to
//! twenty times as long; on an idle one it runs as fast as it can. Where
//! the kernel does not tell (other systems), a background thread always
//! pauses: slower reloads, never a stolen CPU. The bundle being replaced
//! keeps serving meanwhile.
//!
//! Large values are freed the same way: a [`PacedDrop`] frees a
//! collection an entry at a time, a point after each.
//!
//! On a thread not marked background (the authoring tools, the first load
//! at start-up, tests), a point costs one thread-local read.

use std::cell::RefCell;
use std::fs::File;
use std::time::{Duration, Instant};

/// How long a background thread runs between two looks at the load.
pub const WINDOW: Duration = Duration::from_micros(100);

/// How long a background thread sleeps after a window on a busy machine.
pub const PAUSE: Duration = Duration::from_micros(900);

/// After seeing the machine busy, a thread pauses after each window until
/// this many windows in a row saw it calm (the count of runnable tasks is a
/// snapshot).
const CALM: u32 = 32;

/// Where the kernel tells how many tasks are runnable.
const LOADAVG: &str = "/proc/loadavg";

struct Pacing {
    since: Instant,
    /// Windows in a row that saw the machine calm.
    calm: u32,
    /// `/proc/loadavg`, open, and the most runnable tasks that is still
    /// calm; `None` where the kernel does not tell.
    load: Option<(File, u64)>,
    counts: Counts,
}

/// What a background thread's points did since it was marked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Points passed.
    pub points: u64,
    /// Windows that ended at a point (the load was looked at).
    pub windows: u64,
    /// Windows after which the thread paused.
    pub pauses: u64,
}

impl Counts {
    /// The time slept in the pauses since `before` (earlier counts of the
    /// same thread).
    pub fn paused_since(&self, before: &Counts) -> Duration {
        let pauses = self.pauses.saturating_sub(before.pauses);
        PAUSE * u32::try_from(pauses).unwrap_or(u32::MAX)
    }
}

thread_local! {
    static PACING: RefCell<Option<Pacing>> = const { RefCell::new(None) };
}

/// Marks the calling thread as background work: from now on its
/// [`point`]s pace it.
pub fn background() {
    // Calm: no more runnable tasks than CPUs this process may use (this
    // one included): none of them waits for a CPU.
    let calm = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let load = File::open(LOADAVG)
        .ok()
        .filter(|f| runnable(f).is_some())
        .map(|f| (f, calm));
    if load.is_none() {
        tracing::debug!(target: "iamd::pace", "no count of runnable tasks ({LOADAVG}): background work always pauses");
    }
    PACING.set(Some(Pacing {
        since: Instant::now(),
        // Full speed until the machine is seen busy: one window at most.
        calm: CALM,
        load,
        counts: Counts::default(),
    }));
}

/// A place where background work may pause: call it at least every few
/// tens of microseconds of work.
#[inline]
pub fn point() {
    PACING.with_borrow_mut(|p| {
        if let Some(p) = p {
            p.counts.points += 1;
            if p.since.elapsed() >= WINDOW {
                p.window_ends();
            }
        }
    });
}

impl Pacing {
    #[cold]
    fn window_ends(&mut self) {
        self.counts.windows += 1;
        let busy = match &self.load {
            Some((file, calm)) => runnable(file).is_none_or(|n| n > *calm),
            None => true,
        };
        self.calm = if busy { 0 } else { self.calm.saturating_add(1) };
        if self.calm < CALM {
            self.counts.pauses += 1;
            std::thread::sleep(PAUSE);
        }
        self.since = Instant::now();
    }
}

/// A value deserialized at a [`point`]: the entries of a long list (a
/// `users.yaml` of 10,000 users is one parse of hundreds of milliseconds).
#[derive(Debug)]
pub struct Paced<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Paced<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        point();
        T::deserialize(d).map(Paced)
    }
}

impl<T> std::ops::Deref for Paced<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A collection freed an entry at a time, with a [`point`] after each
/// (the raw lists of a 10,000-user bundle are millions of blocks, tens of
/// milliseconds to free at once).
#[derive(Debug)]
pub struct PacedDrop<C: Default + IntoIterator>(pub C);

impl<C: Default + IntoIterator> std::ops::Deref for PacedDrop<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C: Default + IntoIterator> std::ops::DerefMut for PacedDrop<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

impl<C: Default + IntoIterator> Drop for PacedDrop<C> {
    fn drop(&mut self) {
        for entry in std::mem::take(&mut self.0) {
            drop(entry);
            point();
        }
    }
}

/// The points `work` passes, run on a new thread marked background (for
/// tests: a point elsewhere counts nothing).
#[cfg(test)]
pub(crate) fn points_in_background(work: impl FnOnce() + Send + 'static) -> u64 {
    std::thread::spawn(|| {
        background();
        work();
        counts().map_or(0, |c| c.points)
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// What the calling thread's points did since it was marked background;
/// `None` on a thread that is not.
pub fn counts() -> Option<Counts> {
    PACING.with_borrow(|p| p.as_ref().map(|p| p.counts))
}

/// The tasks runnable now, from `/proc/loadavg` read again from its start
/// (`0.64 1.32 2.11 3/76 25760`: 3 runnable of 76).
#[cfg(unix)]
fn runnable(file: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_runnable(std::str::from_utf8(buf.get(..n)?).ok()?)
}

#[cfg(not(unix))]
fn runnable(_: &File) -> Option<u64> {
    None
}

fn parse_runnable(text: &str) -> Option<u64> {
    let (running, _) = text.split_whitespace().nth(3)?.split_once('/')?;
    running.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runnable_count_is_read_from_loadavg() {
        assert_eq!(parse_runnable("0.64 1.32 2.11 3/76 25760\n"), Some(3));
        assert_eq!(parse_runnable("0.64 1.32 2.11\n"), None);
        assert_eq!(parse_runnable("0.64 1.32 2.11 x/76 25760\n"), None);
    }

    #[test]
    fn a_paced_drop_is_a_point_per_entry() {
        let list = PacedDrop(vec![
            String::from("a"),
            String::from("b"),
            String::from("c"),
        ]);
        assert_eq!(list.len(), 3);
        assert_eq!(points_in_background(move || drop(list)), 3);
    }

    #[test]
    fn each_paced_entry_of_a_list_is_a_point() {
        let points = points_in_background(|| {
            let list: Vec<Paced<u32>> = serde_json::from_str("[1, 2, 3, 4, 5]").unwrap();
            assert_eq!(list.iter().map(|p| **p).sum::<u32>(), 15);
        });
        assert_eq!(points, 5);
    }

    #[test]
    fn only_background_threads_are_paced() {
        std::thread::spawn(|| {
            point();
            assert_eq!(counts(), None, "a thread is not background by default");
            background();
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed() < WINDOW * 30 {
                point();
                n += 1;
            }
            let c = counts().unwrap();
            assert_eq!(c.points, n);
            assert!(c.windows >= 1, "{c:?}: a window ends every {WINDOW:?}");
            assert!(c.pauses <= c.windows, "{c:?}");
        })
        .join()
        .unwrap();
    }
}
