//! A list file cut into entries ([`crate::items`]) parsed on several
//! threads, its values handed over in file order: what makes a large
//! `users.yaml` load in about half the time on two cores at start-up,
//! where the parse is most of the work and one thread of it leaves the
//! compiling thread half idle.
//!
//! The entries are grouped into chunks of about [`CHUNK_BYTES`]; each
//! thread takes the next chunk not yet taken and parses it as a sequence
//! of its own. The caller takes the chunks in order, and a thread runs at
//! most [`AHEAD`] chunks a thread ahead of it, so that few parsed values
//! wait at once. A chunk that does not parse, or parses into another
//! number of values than it has entries (a piece of the cut that was not
//! an entry), stops the whole: the caller then loads the file another way
//! (in one piece), which reports errors at their places in the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;

use crate::items::Item;

/// About how many bytes of entries a chunk holds (at least one entry).
#[cfg(not(test))]
pub(crate) const CHUNK_BYTES: usize = 256 << 10;
/// Small in tests: the small bundles of the tests are parsed in chunks
/// too (a file of [`crate::load`]'s `PARALLEL_FROM` bytes or more is).
#[cfg(test)]
pub(crate) const CHUNK_BYTES: usize = 512;

/// Chunks a thread may parse ahead of the one handed over next.
const AHEAD: usize = 2;

/// What the threads and the caller share.
struct Shared<T> {
    /// Chunks parsed and not handed over yet, by number; `None` for one
    /// that did not parse as its entries.
    done: BTreeMap<usize, Option<Vec<T>>>,
    /// The chunk handed over next.
    next: usize,
    /// Set when the caller stops taking chunks.
    stopped: bool,
}

/// Parses the entries `items` of `text` as `T`s on `threads` threads, and
/// hands each value to `each` with its entry, in file order. False when a
/// chunk did not parse as exactly its entries or no thread could be
/// started: what was handed over then is only the entries before that
/// chunk, and the caller must load the file in another way.
pub(crate) fn parse_in_order<T: DeserializeOwned + Send>(
    text: &str,
    items: &[Item],
    threads: usize,
    mut each: impl FnMut(T, &Item),
) -> bool {
    let chunks = chunks(items);
    let taken = AtomicUsize::new(0);
    let shared = Mutex::new(Shared::<T> {
        done: BTreeMap::new(),
        next: 0,
        stopped: false,
    });
    let changed = Condvar::new();
    let window = threads.max(1) * AHEAD;
    std::thread::scope(|scope| {
        let parse = || {
            loop {
                let k = taken.fetch_add(1, Ordering::Relaxed);
                let Some(range) = chunks.get(k) else { return };
                let mut s = lock(&shared);
                while !s.stopped && k >= s.next + window {
                    s = changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
                if s.stopped {
                    return;
                }
                drop(s);
                let entries = items.get(range.clone()).unwrap_or_default();
                // A parser that panics fails its chunk, never the wait.
                let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| chunk(text, entries)))
                    .ok()
                    .flatten();
                lock(&shared).done.insert(k, parsed);
                changed.notify_all();
            }
        };
        let mut started = 0;
        for _ in 0..threads {
            let spawned = std::thread::Builder::new()
                .name("iamd-parse".into())
                .spawn_scoped(scope, parse);
            started += usize::from(spawned.is_ok());
        }
        let mut whole = started > 0;
        for (k, range) in chunks.iter().enumerate() {
            if !whole {
                break;
            }
            let parsed = {
                let mut s = lock(&shared);
                loop {
                    if let Some(parsed) = s.done.remove(&k) {
                        s.next = k + 1;
                        break parsed;
                    }
                    s = changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
            };
            changed.notify_all();
            let entries = items.get(range.clone()).unwrap_or_default();
            match parsed {
                Some(values) => {
                    for (value, item) in values.into_iter().zip(entries) {
                        each(value, item);
                        crate::pace::point();
                    }
                }
                None => whole = false,
            }
        }
        lock(&shared).stopped = true;
        changed.notify_all();
        whole
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The entries of each chunk, as ranges of `items`: consecutive entries
/// of about [`CHUNK_BYTES`] together.
fn chunks(items: &[Item]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        bytes += item.range.len();
        if bytes >= CHUNK_BYTES {
            out.push(start..i + 1);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < items.len() {
        out.push(start..items.len());
    }
    out
}

/// The values of one chunk, if it parses as exactly its entries.
fn chunk<T: DeserializeOwned>(text: &str, entries: &[Item]) -> Option<Vec<T>> {
    let start = entries.first()?.range.start;
    let end = entries.last()?.range.end;
    let values: Vec<T> =
        serde_saphyr::from_str_with_options(text.get(start..end)?, crate::load::yaml_options())
            .ok()?;
    (values.len() == entries.len()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the text parsed whole, and each value's name with where
    /// its entry starts.
    fn parsed(text: &str, threads: usize) -> (bool, Vec<(String, usize)>) {
        let items = crate::items::split(text).unwrap();
        let mut got = Vec::new();
        let whole = parse_in_order::<BTreeMap<String, String>>(text, &items, threads, |v, item| {
            got.push((v["name"].clone(), item.range.start));
        });
        (whole, got)
    }

    fn users(n: usize) -> String {
        // Entries of about 100 bytes: a few thousand make several chunks.
        (0..n)
            .map(|i| format!("- name: u{i}\n  note: '{}'\n", "x".repeat(80)))
            .collect()
    }

    #[test]
    fn values_come_in_file_order_with_their_entries() {
        let n = 3 * CHUNK_BYTES / 100 + 17;
        let text = users(n);
        assert!(chunks(&crate::items::split(&text).unwrap()).len() >= 3);
        let items = crate::items::split(&text).unwrap();
        for threads in [1, 2, 4] {
            let (whole, got) = parsed(&text, threads);
            assert!(whole);
            assert_eq!(got.len(), n);
            for (i, (name, at)) in got.iter().enumerate() {
                assert_eq!(name, &format!("u{i}"));
                assert_eq!(*at, items[i].range.start);
            }
        }
    }

    #[test]
    fn a_chunk_that_does_not_parse_stops_the_whole_before_it() {
        let mut text = users(3 * CHUNK_BYTES / 100);
        // A bad entry in the middle: the chunks before it are handed over,
        // nothing after.
        let middle = text.len() / 2;
        let at = middle + text[middle..].find("\n- ").unwrap() + 1;
        text.insert_str(at, "- name: [unclosed\n");
        let (whole, got) = parsed(&text, 2);
        assert!(!whole);
        assert!(!got.is_empty() && got.len() < 3 * CHUNK_BYTES / 100);
        let first_bad = text[..at].matches("\n- ").count() + 1;
        assert!(got.len() < first_bad, "{} >= {first_bad}", got.len());
    }

    #[test]
    fn a_piece_that_is_not_an_entry_stops_the_whole() {
        // A quoted scalar whose second line starts with `- `: two pieces,
        // one entry.
        let text = format!("{}- name: \"a\n- b\"\n{}", users(10), users(10));
        let (whole, _) = parsed(&text, 2);
        assert!(!whole);
    }
}
