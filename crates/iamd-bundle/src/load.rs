//! Reading a bundle directory: files, digest, validation, compilation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::cache::{Cache, Kept, KeptRole, KeptUser};
use super::catalog::{Catalog, Document, DocumentRole, Recorder};
use super::items::{Hash, Item};
use super::raw::{RawAccount, RawDocument, RawGroup, RawLimits, RawResource, RawRole, RawUser};
use super::{
    At, Bundle, BundleError, BundleStats, Diagnostic, Entity, Limits, Revision, resource_pattern,
};
use crate::pace::{Paced, PacedDrop};
use crate::regular_file::kind_of;
use iamd_policy::arn::{Principal, is_account_id};
use iamd_policy::eval::StatementSet;
use iamd_policy::json::Source;
use iamd_policy::policy::{Policy, PolicyKind};

/// Loads and compiles the bundle in `dir`.
pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
    BundleFiles::read(dir)?.compile()
}

// === files ===

/// A bundle's files, read once (relative path to text): what a reloader
/// digests to see whether anything changed before compiling.
#[derive(Debug, Clone)]
pub struct BundleFiles {
    dir: PathBuf,
    texts: BTreeMap<String, String>,
    /// The bundle is one `aws iam get-account-authorization-details` file.
    aws: bool,
    /// [`Self::digest`], computed once as the files are read: a reload
    /// needs it to see whether anything changed, then for the revision.
    digest: String,
}

type Files = BundleFiles;

const TOP: &[&str] = &[
    "bundle",
    "users",
    "groups",
    "roles",
    "resources",
    "aws-export",
];

/// The directories of a bundle and the extensions of the files read in
/// each.
const SUBDIRS: &[(&str, &[&str])] = &[
    ("users.d", &[".yaml", ".yml", ".json"]),
    ("groups.d", &[".yaml", ".yml", ".json"]),
    ("roles.d", &[".yaml", ".yml", ".json"]),
    ("resources.d", &[".yaml", ".yml", ".json"]),
    ("policies", &[".json"]),
    ("scps", &[".json"]),
    ("rcps", &[".json"]),
    ("documents", &[".json"]),
];

impl BundleFiles {
    /// A bundle's files given as bytes (an archive's entries, a fetch):
    /// the rules of a directory read apply, so that the same files make the
    /// same bundle and the same [`BundleFiles::digest`] however they came.
    /// `origin` names the bundle in errors.
    ///
    /// Entries that are not bundle files (by the directory's rules) are
    /// left out; an absolute path, a `..`, an entry given twice, a part
    /// given in two formats (`users.yaml` and `users.json`), text that is
    /// not UTF-8, and more than [`ReadLimits::files`],
    /// [`ReadLimits::file_bytes`] or [`ReadLimits::bundle_bytes`] are
    /// errors, all of them reported.
    pub fn from_files(
        origin: &Path,
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
        limits: &ReadLimits,
    ) -> Result<Self, BundleError> {
        let mut texts = BTreeMap::new();
        let mut problems = Vec::new();
        let (mut count, mut total) = (0usize, 0u64);
        for (name, bytes) in files {
            let rel = match relative(&name) {
                Ok(rel) => rel,
                Err(e) => {
                    problems.push(Diagnostic::file(name, e.to_string()));
                    continue;
                }
            };
            if !bundle_file(&rel) {
                continue;
            }
            count += 1;
            if count > limits.files {
                problems.push(Diagnostic::file(rel, limits.too_many_files()));
                break;
            }
            let size = bytes.len() as u64;
            if size > limits.file_bytes {
                problems.push(Diagnostic::file(rel, limits.file_too_big()));
                continue;
            }
            total += size;
            if total > limits.bundle_bytes {
                problems.push(Diagnostic::file(rel, limits.bundle_too_big()));
                break;
            }
            let Ok(text) = String::from_utf8(bytes) else {
                problems.push(Diagnostic::file(rel, "not UTF-8 text"));
                continue;
            };
            if texts.insert(rel.clone(), text).is_some() {
                problems.push(Diagnostic::file(
                    rel,
                    "given twice: a bundle holds one file of each name",
                ));
            }
        }
        for name in TOP {
            let found: Vec<String> = ["yaml", "yml", "json"]
                .iter()
                .map(|ext| format!("{name}.{ext}"))
                .filter(|f| texts.contains_key(f))
                .collect();
            if found.len() > 1 {
                problems.push(two_formats(origin, &found));
            }
        }
        finish(origin, texts, problems)
    }

    /// Reads the bundle's files from `dir`, as one consistent snapshot
    /// (see [`BundleFiles::read_settled`]), without waiting for recent
    /// writes to settle.
    pub fn read(dir: &Path) -> Result<Self, BundleError> {
        Self::read_settled(dir, Duration::ZERO)
    }

    /// Reads the bundle's files from `dir` as one consistent snapshot.
    ///
    /// - In the Kubernetes layout (a `..data` symlink), everything is read
    ///   from the directory `..data` points to, resolved once; otherwise
    ///   from `dir` resolved once (a symlinked root is pinned to its
    ///   target).
    /// - After the read, the root must still resolve to the same directory
    ///   and every file and listing must be as it was (size, modification
    ///   time, inode); if not, a writer or a swap came between, and the read
    ///   starts again (a few times, then an error).
    /// - A file modified less than `settle` ago may still be being written:
    ///   the read waits until it is `settle` old. Not through `..data`: a
    ///   version swapped in is complete.
    /// - Only regular files are read, without blocking (a FIFO is an error,
    ///   not a hang; a device is an error, not an endless read), each up to
    ///   [`ReadLimits::file_bytes`], the whole bundle up to
    ///   [`ReadLimits::bundle_bytes`] and [`ReadLimits::files`], within
    ///   [`ReadLimits::deadline`]. A name that exists but is not readable
    ///   (a dangling link, a loop, a directory where a file belongs, no
    ///   permission) is an error: it never silently drops a part of the
    ///   bundle.
    pub fn read_settled(dir: &Path, settle: Duration) -> Result<Self, BundleError> {
        Self::read_with(dir, settle, &ReadLimits::default())
    }

    /// [`BundleFiles::read_settled`] with other limits.
    pub fn read_with(
        dir: &Path,
        settle: Duration,
        limits: &ReadLimits,
    ) -> Result<Self, BundleError> {
        let fail =
            |m: String| BundleError::new(vec![Diagnostic::file(dir.display().to_string(), m)]);
        let started = Instant::now();
        for _ in 0..ATTEMPTS {
            let root = Root::resolve(dir).map_err(fail)?;
            let mut reader = Reader {
                root: root.path.clone(),
                limits,
                started,
                total: 0,
                seen: Vec::new(),
                newest: None,
            };
            let result = if root.file {
                reader.read_export(dir)
            } else {
                reader.read_dir(dir)
            };
            // The snapshot holds only if nothing moved under it.
            let same = Root::resolve(dir).is_ok_and(|now| now == root) && reader.unchanged();
            if !same {
                if started.elapsed() > limits.deadline {
                    break;
                }
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
            if let Some(newest) = reader.newest
                && !root.swapped
                && let Ok(age) = SystemTime::now().duration_since(newest)
                && age < settle
            {
                if started.elapsed() + (settle - age) > limits.deadline {
                    break;
                }
                // A file was written moments ago: its writer may not be done.
                std::thread::sleep(settle - age);
                continue;
            }
            return result;
        }
        Err(fail(format!(
            "the bundle kept changing while it was read ({ATTEMPTS} attempts in {} ms): the last good bundle stays; write a new version beside it and swap it in at once (docs/bundles.md)",
            started.elapsed().as_millis()
        )))
    }

    /// Each file's path relative to the bundle and its text, in path
    /// order: what [`BundleFiles::digest`] covers (an archive of a bundle
    /// holds exactly these).
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.texts.iter().map(|(p, t)| (p.as_str(), t.as_str()))
    }

    /// Whether the files are one `aws iam get-account-authorization-details`
    /// export rather than a bundle directory.
    pub fn is_export(&self) -> bool {
        self.aws
    }

    /// The directory the files were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Compiles the files into a bundle, reporting every problem.
    pub fn compile(&self) -> Result<Bundle, BundleError> {
        self.compile_recording(None).map(|(b, _)| b)
    }

    /// Compiles the files and catalogs their documents and uses, for the
    /// authoring tools.
    pub fn catalog(&self) -> Result<(Bundle, Catalog), BundleError> {
        let (bundle, recorder) = self.compile_recording(Some(Recorder::default()))?;
        let catalog = recorder.unwrap_or_default().finish(bundle.account());
        Ok((bundle, catalog))
    }

    /// The catalog alone, for checks that read nothing else (`iamd
    /// validate`): every problem a compile finds is still found, but the
    /// principals' statement sets, most of a compiled bundle's memory, are
    /// never built.
    pub fn catalog_only(&self) -> Result<Catalog, BundleError> {
        let mut loader = Loader::new(
            self,
            Some(Recorder::default()),
            None,
            FxHashMap::default(),
            false,
        );
        loader.principals = false;
        let (bundle, recorder) = loader.run()?;
        Ok(recorder.unwrap_or_default().finish(bundle.account()))
    }

    fn compile_recording(
        &self,
        recorder: Option<Recorder>,
    ) -> Result<(Bundle, Option<Recorder>), BundleError> {
        let mut loader = Loader::new(self, recorder, None, FxHashMap::default(), false);
        loader.run()
    }

    /// Compiles the files into a bundle, reusing what `cache` kept from the
    /// last load that succeeded and keeping this one's work in it for the
    /// next ([`crate::cache`]): a reload compiles only what changed. The
    /// bundle, its revision and its answers are those of
    /// [`BundleFiles::compile`]; so are the errors (a load that finds a
    /// problem runs again without the cache). A load that fails leaves the
    /// cache as it was.
    pub fn compile_cached(&self, cache: &mut Cache) -> Result<Bundle, BundleError> {
        if self.aws {
            // An export is one JSON document: nothing to take apart.
            cache.clear();
            return self.compile();
        }
        let documents = std::mem::take(&mut cache.documents);
        let (result, documents, in_chunks) =
            self.compile_keeping(cache.kept.as_ref(), documents, true);
        let (result, documents) = match result {
            // Errors as a full compile in one piece finds them, at their
            // places.
            Err(_) if cache.kept.is_some() || in_chunks => {
                let (result, documents, _) = self.compile_keeping(None, documents, false);
                (result, documents)
            }
            result => (result, documents),
        };
        cache.documents = documents;
        let (bundle, kept) = result?;
        cache.retired = std::mem::replace(&mut cache.kept, kept);
        cache.sweep();
        Ok(bundle)
    }

    /// A compilation that reuses `prev` (when given) and keeps its work,
    /// its large list files parsed on several threads if `parallel`; the
    /// documents map comes back either way, and whether a file was parsed
    /// so.
    #[allow(clippy::type_complexity, reason = "one private call site")]
    fn compile_keeping(
        &self,
        prev: Option<&Kept>,
        documents: FxHashMap<(PolicyKind, String), Policy>,
        parallel: bool,
    ) -> (
        Result<(Bundle, Option<Kept>), BundleError>,
        FxHashMap<(PolicyKind, String), Policy>,
        bool,
    ) {
        let mut loader = Loader::new(self, None, prev, documents, true);
        loader.parallel = parallel;
        let result = loader.run();
        let documents = std::mem::take(&mut loader.compiled);
        let kept = loader.next.take();
        (result.map(|(b, _)| (b, kept)), documents, loader.in_chunks)
    }

    /// SHA-256 over every file's relative path and contents, in path order,
    /// as lowercase hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn top(&self, name: &str) -> Option<(&str, &str)> {
        ["yaml", "yml", "json"].iter().find_map(|ext| {
            let key = format!("{name}.{ext}");
            self.texts
                .get_key_value(key.as_str())
                .map(|(k, v)| (k.as_str(), v.as_str()))
        })
    }

    fn under<'a>(&'a self, sub: &'a str) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
        self.texts.iter().filter_map(move |(k, v)| {
            let name = k
                .strip_prefix(sub)?
                .strip_prefix('/')?
                .strip_suffix(".json")?;
            Some((k.as_str(), name, v.as_str()))
        })
    }
}

/// [`BundleFiles::digest`] of `texts`.
fn digest(texts: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (path, text) in texts {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        // In pieces of about 20 µs of hashing: a large file is megabytes.
        for piece in text.as_bytes().chunks(1 << 14) {
            crate::pace::point();
            h.update(piece);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Limits on reading a bundle's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Bytes in one file (default 64 MiB).
    pub file_bytes: u64,
    /// Bytes in the whole bundle (default 1 GiB).
    pub bundle_bytes: u64,
    /// Files in the bundle (default 100,000).
    pub files: usize,
    /// The longest a read may take, retries and settling included
    /// (default 60 s).
    pub deadline: Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            file_bytes: 64 << 20,
            bundle_bytes: 1 << 30,
            files: 100_000,
            deadline: Duration::from_secs(60),
        }
    }
}

impl ReadLimits {
    /// Past [`ReadLimits::files`]: what the reader says, whatever it reads.
    fn too_many_files(&self) -> String {
        format!(
            "the bundle has more than {} files: raise the limit (the daemon's `bundle.maxFiles`)",
            self.files
        )
    }

    /// Past [`ReadLimits::file_bytes`].
    fn file_too_big(&self) -> String {
        format!(
            "the file has more than {} bytes: split it, or raise the limit (the daemon's `bundle.maxFileBytes`); the last good bundle stays",
            self.file_bytes
        )
    }

    /// Past [`ReadLimits::bundle_bytes`].
    fn bundle_too_big(&self) -> String {
        format!(
            "the bundle has more than {} bytes: raise the limit (the daemon's `bundle.maxTotalBytes`); the last good bundle stays",
            self.bundle_bytes
        )
    }
}

/// Two formats of one part (`users.yaml` and `users.json`) in the bundle
/// at `dir`.
fn two_formats(dir: &Path, found: &[String]) -> Diagnostic {
    Diagnostic::file(
        dir.display().to_string(),
        format!(
            "{} give the same part of the bundle: keep one",
            found.join(" and ")
        ),
    )
}

/// Reads of a changing bundle are tried this often before giving up.
const ATTEMPTS: usize = 8;
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Where a bundle is read from: the real directory (or export file), once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Root {
    path: PathBuf,
    /// The bundle is one AWS export file.
    file: bool,
    /// Device and inode of the resolved root.
    id: (u64, u64),
    /// Read through `..data`: a version its writer finished before
    /// swapping it in (the kubelet's protocol), never edited in place.
    swapped: bool,
}

impl Root {
    fn resolve(dir: &Path) -> Result<Self, String> {
        use std::os::unix::fs::MetadataExt;
        let cannot = |e: std::io::Error| format!("cannot read the bundle directory: {e}");
        // The kubelet's layout: every name is a link through `..data`, which
        // it swaps at once; read the version `..data` names, resolved once.
        let data = dir.join("..data");
        let found = std::fs::symlink_metadata(&data);
        let swapped = found.is_ok();
        let base = match found {
            Ok(_) => data,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                dir.to_owned()
            }
            Err(e) => return Err(cannot(e)),
        };
        let path = std::fs::canonicalize(&base).map_err(cannot)?;
        let meta = std::fs::metadata(&path).map_err(cannot)?;
        if !meta.is_dir() && !meta.is_file() {
            return Err("not a directory: a bundle is a directory with `bundle.yaml`".to_owned());
        }
        Ok(Self {
            path,
            file: meta.is_file(),
            id: (meta.dev(), meta.ino()),
            swapped,
        })
    }
}

/// What was seen of one file or directory listing, to compare after the
/// read.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    File {
        path: PathBuf,
        stamp: (u64, u64, u64, i64, i64),
    },
    Listing {
        path: PathBuf,
        extensions: &'static [&'static str],
        names: Vec<String>,
    },
    Absent(PathBuf),
}

struct Reader<'l> {
    root: PathBuf,
    limits: &'l ReadLimits,
    started: Instant,
    total: u64,
    seen: Vec<Seen>,
    /// The newest modification time of the files read.
    newest: Option<SystemTime>,
}

fn stamp(m: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())
}

impl Reader<'_> {
    fn read_export(&mut self, dir: &Path) -> Result<BundleFiles, BundleError> {
        let fail =
            |m: String| BundleError::new(vec![Diagnostic::file(dir.display().to_string(), m)]);
        let path = self.root.clone();
        let name = dir.file_name().map_or_else(
            || "details.json".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = self.read_file(&path).map_err(fail)?;
        let parent = dir.parent().map_or_else(PathBuf::new, Path::to_owned);
        let texts = BTreeMap::from([(name, text)]);
        Ok(BundleFiles {
            dir: parent,
            digest: digest(&texts),
            texts,
            aws: true,
        })
    }

    fn read_dir(&mut self, dir: &Path) -> Result<BundleFiles, BundleError> {
        let mut texts = BTreeMap::new();
        let mut problems = Vec::new();
        for name in TOP {
            let mut found = Vec::new();
            for ext in ["yaml", "yml", "json"] {
                let f = format!("{name}.{ext}");
                match self.exists(&f) {
                    Ok(true) => found.push(f),
                    Ok(false) => {}
                    Err(e) => problems.push(e),
                }
            }
            if found.len() > 1 {
                problems.push(two_formats(dir, &found));
            }
            for f in found {
                self.read_into(&f, &mut texts, &mut problems);
            }
        }
        for (sub, extensions) in SUBDIRS {
            self.read_subdir(sub, extensions, &mut texts, &mut problems);
        }
        finish(dir, texts, problems)
    }

    /// Whether `rel` names something (absent is no error; something that is
    /// there but cannot be looked at is).
    fn exists(&mut self, rel: &str) -> Result<bool, Diagnostic> {
        let path = self.root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.seen.push(Seen::Absent(path));
                Ok(false)
            }
            Err(e) => Err(Diagnostic::file(rel, format!("cannot read: {e}"))),
        }
    }

    /// Reads the files of `sub` whose names end in one of `extensions`
    /// (hidden files left out), in name order; a missing `sub` is no error,
    /// one that is there but cannot be listed is.
    fn read_subdir(
        &mut self,
        sub: &str,
        extensions: &'static [&'static str],
        texts: &mut BTreeMap<String, String>,
        problems: &mut Vec<Diagnostic>,
    ) {
        match self.exists(sub) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return problems.push(e),
        }
        let path = self.root.join(sub);
        let entries = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::read_dir(&path),
            Ok(m) => {
                return problems.push(Diagnostic::file(
                    sub,
                    format!("is {}: `{sub}` must be a directory", kind_of(m.file_type())),
                ));
            }
            Err(e) => Err(e),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return problems.push(Diagnostic::file(sub, format!("cannot list: {e}"))),
        };
        let mut names = Vec::new();
        for e in entries {
            match e {
                Ok(e) => match e.file_name().into_string() {
                    Ok(n) if wanted(&n, extensions) => names.push(n),
                    Ok(_) => {}
                    Err(n) => problems.push(Diagnostic::file(
                        format!("{sub}/{}", n.to_string_lossy()),
                        "the file name is not UTF-8: rename it",
                    )),
                },
                Err(e) => problems.push(Diagnostic::file(sub, format!("cannot list: {e}"))),
            }
        }
        names.sort();
        self.seen.push(Seen::Listing {
            path,
            extensions,
            names: names.clone(),
        });
        for n in names {
            self.read_into(&format!("{sub}/{n}"), texts, problems);
        }
    }

    fn read_into(
        &mut self,
        rel: &str,
        texts: &mut BTreeMap<String, String>,
        problems: &mut Vec<Diagnostic>,
    ) {
        if self.seen.len() > self.limits.files {
            problems.push(Diagnostic::file(rel, self.limits.too_many_files()));
            return;
        }
        match self.read_file(&self.root.join(rel)) {
            Ok(t) => {
                texts.insert(rel.to_owned(), t);
            }
            Err(e) => problems.push(Diagnostic::file(rel, e)),
        }
    }

    /// A regular file's text, opened without blocking and read with the
    /// limits applied as it is read, 64 KiB at a time with a
    /// [`crate::pace::point`] before each read.
    fn read_file(&mut self, path: &Path) -> Result<String, String> {
        use std::io::Read;
        crate::pace::point();
        if self.started.elapsed() > self.limits.deadline {
            return Err(format!(
                "reading the bundle took longer than {} s: the last good bundle stays",
                self.limits.deadline.as_secs()
            ));
        }
        let (file, meta) = crate::regular_file::open(path).map_err(|e| match e {
            crate::regular_file::ReadError::NotRegular(kind) => {
                format!("is {kind}: a bundle file must be a regular file")
            }
            e => e.to_string(),
        })?;
        if meta.len() > self.limits.file_bytes {
            return Err(self.limits.file_too_big());
        }
        let room = self.limits.bundle_bytes.saturating_sub(self.total);
        let cap = self.limits.file_bytes.min(room);
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(cap)).unwrap_or(0));
        let mut limited = (&file).take(cap + 1);
        loop {
            crate::pace::point();
            let n = (&mut limited)
                .take(1 << 16)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read: {e}"))?;
            if n == 0 {
                break;
            }
        }
        if bytes.len() as u64 > cap {
            return Err(if cap == self.limits.file_bytes {
                self.limits.file_too_big()
            } else {
                self.limits.bundle_too_big()
            });
        }
        self.total += bytes.len() as u64;
        if let Ok(m) = meta.modified() {
            self.newest = Some(self.newest.map_or(m, |n| n.max(m)));
        }
        self.seen.push(Seen::File {
            path: path.to_owned(),
            stamp: stamp(&meta),
        });
        String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
    }

    /// Whether everything read is still as it was read.
    fn unchanged(&self) -> bool {
        self.seen.iter().all(|s| match s {
            Seen::File { path, stamp: was } => {
                std::fs::metadata(path).is_ok_and(|m| stamp(&m) == *was)
            }
            Seen::Listing {
                path,
                extensions,
                names,
            } => std::fs::read_dir(path).is_ok_and(|entries| {
                let mut now: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| wanted(n, extensions))
                    .collect();
                now.sort();
                now == *names
            }),
            Seen::Absent(path) => std::fs::symlink_metadata(path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
        })
    }
}

/// A bundle directory's files, checked for what only the whole can tell:
/// `bundle.yaml` is there.
fn finish(
    dir: &Path,
    texts: BTreeMap<String, String>,
    mut problems: Vec<Diagnostic>,
) -> Result<BundleFiles, BundleError> {
    if problems.is_empty() && !texts.keys().any(|k| k.starts_with("bundle.")) {
        problems.push(Diagnostic::file(
            dir.display().to_string(),
            "no `bundle.yaml`: a bundle names its account there (`account: \"123456789012\"`)",
        ));
    }
    if !problems.is_empty() {
        return Err(BundleError::new(problems));
    }
    Ok(BundleFiles {
        dir: dir.to_owned(),
        digest: digest(&texts),
        texts,
        aws: false,
    })
}

/// The relative path of an archive's or a fetch's entry (`./` and empty
/// components dropped), or why it cannot be part of a bundle.
fn relative(name: &str) -> Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("is an absolute path: a bundle's entries are relative to it");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("leaves the bundle (`..`): refused"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether the relative path `rel` is one of a bundle's files, by the rules
/// a directory is read by: a part at the top (`bundle.yaml`...), or a file
/// directly inside one of [`SUBDIRS`] with one of its extensions, not
/// hidden. Anything else is not read.
fn bundle_file(rel: &str) -> bool {
    match rel.split_once('/') {
        None => TOP.iter().any(|name| {
            rel.strip_prefix(name)
                .and_then(|x| x.strip_prefix('.'))
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        }),
        Some((sub, name)) => SUBDIRS
            .iter()
            .any(|(s, extensions)| *s == sub && !name.contains('/') && wanted(name, extensions)),
    }
}

/// Whether a directory entry is one of the bundle's files: not hidden, and
/// with one of `extensions`.
fn wanted(name: &str, extensions: &[&str]) -> bool {
    !name.starts_with('.') && extensions.iter().any(|x| name.ends_with(x))
}

// === loading ===

/// A managed policy or SCP document: its file, name and JSON text, and for
/// documents embedded in a larger file (AWS import), where they are.
pub(crate) struct DocumentSource {
    pub file: String,
    pub name: String,
    pub text: String,
    pub at: Option<At>,
}

/// Everything a bundle is made of, read and parsed, before validation.
pub(crate) struct Parts {
    pub account_file: String,
    pub account: RawAccount,
    /// Each entry with the file it came from (an AWS export's).
    pub users: Vec<(String, RawUser)>,
    /// The users files of a bundle directory, parsed while the users are
    /// compiled, one user at a time ([`Loader::stream_users`]): the raw
    /// users of a large bundle never all exist at once.
    pub user_files: Vec<String>,
    pub groups: Vec<(String, RawGroup)>,
    /// Each role with its file and, when the load keeps its work, its
    /// entry's digest.
    pub roles: Vec<(String, RawRole, Option<Hash>)>,
    /// The roles files of a reload that may reuse kept roles: parsed in
    /// [`Loader::build`], the unchanged entries not at all.
    pub role_files: Vec<String>,
    pub resources: Vec<(String, RawResource)>,
    pub managed: Vec<DocumentSource>,
    pub scps: Vec<DocumentSource>,
    pub rcps: Vec<DocumentSource>,
    /// The bundle is an AWS export (hints name its lists, not files).
    pub aws: bool,
}

/// Users handed over at once: one wake-up of the compiling thread per
/// batch, not per user (a handover per user spent an eighth of the time in
/// futex calls).
const BATCH: usize = 64;
/// A run of changed users at least this long (bytes) is parsed on a
/// thread of its own, streamed; a shorter one at once.
const STREAM_FROM: usize = 1 << 16;
/// Batches parsed and not yet compiled, at most.
const QUEUED_BATCHES: usize = 4;
/// A list file at least this long (bytes) is parsed on several threads at
/// a first load ([`crate::chunks`]).
const PARALLEL_FROM: usize = 4 * crate::chunks::CHUNK_BYTES;
/// Threads parsing one list file, at most.
const MAX_PARSERS: usize = 4;
/// The problem of a load whose list file did not parse chunk by chunk:
/// the load is run again (in one piece), which reports the file's errors
/// at their places.
const CHUNKS_FAILED: &str = "the file's entries did not parse chunk by chunk";

thread_local! {
    /// Where a parser thread of [`Loader::stream_users`] hands its users.
    static USERS: std::cell::RefCell<Option<std::sync::mpsc::SyncSender<Vec<RawUser>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Hands `batch` to the compiling thread; false once it has stopped.
fn hand_over(batch: Vec<RawUser>) -> bool {
    USERS.with(|sink| {
        sink.borrow()
            .as_ref()
            .is_some_and(|tx| tx.send(batch).is_ok())
    })
}

/// A users file, parsed into the queue of its thread's [`USERS`] instead of
/// a list.
struct StreamedUsers;

impl<'de> serde::Deserialize<'de> for StreamedUsers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> serde::de::Visitor<'de> for Each {
            type Value = StreamedUsers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StreamedUsers, A::Error> {
                let stopped = || serde::de::Error::custom("the compilation stopped");
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(user) = seq.next_element::<RawUser>()? {
                    batch.push(user);
                    if batch.len() == BATCH
                        && !hand_over(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    {
                        return Err(stopped());
                    }
                }
                if !batch.is_empty() && !hand_over(batch) {
                    return Err(stopped());
                }
                Ok(StreamedUsers)
            }
        }
        d.deserialize_seq(Each)
    }
}

struct Loader<'f> {
    files: &'f Files,
    problems: Vec<Diagnostic>,
    recorder: Option<Recorder>,
    /// `organizationId`: the organization of the account's principals.
    organization: Option<Arc<str>>,
    /// Documents compiled so far, by kind and text: a document given many
    /// times (every user's same inline policy, one file referenced by many)
    /// is compiled once, and its policies share one body.
    compiled: FxHashMap<(PolicyKind, String), Policy>,
    /// The digests of the `documents/` files' texts, by path.
    doc_hashes: FxHashMap<String, Hash>,
    /// What the last load kept, when this one may reuse it.
    prev: Option<&'f Kept>,
    /// `prev`, once its settings are known to be this bundle's too.
    reuse: Option<&'f Kept>,
    /// For each dependency number of `reuse`: whether it is unchanged.
    valid: Vec<bool>,
    /// What this load keeps for the next, when it keeps anything.
    next: Option<Kept>,
    /// Whether a large list file may be parsed on several threads.
    parallel: bool,
    /// Whether one was: a problem of this load is then found again by a
    /// load in one piece, at its place.
    in_chunks: bool,
    /// Whether users and roles are built into the bundle (not for
    /// [`BundleFiles::catalog_only`]: they are checked and catalogued only).
    principals: bool,
}

/// A step of [`Loader::each_entry`]: an entry that may be kept, or a run
/// of entries to parse (their text and pieces).
enum Step<'s> {
    Kept(&'s Hash),
    Parse(&'s str, &'s [Item]),
}

/// A user or role entry as a load takes it: parsed now (with its text's
/// digest when its file was cut into entries), or kept from the last load.
enum Entry<'e, R, K> {
    Parsed(&'e R, Option<Hash>),
    Kept(&'e Arc<K>, Hash),
}

/// YAML limits sized for bundles of 100,000 users and more, still bounded
/// (anchors and aliases keep the parser's defaults against YAML bombs).
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_reader_input_bytes = Some(1 << 30);
    budget.max_events = 400_000_000;
    budget.max_nodes = 200_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
    serde_saphyr::options! { budget: Some(budget) }
}

/// A YAML (or JSON) error as one line: `file:line:column: message`.
pub fn yaml_error(file: &str, e: &serde_saphyr::Error) -> String {
    yaml_diagnostic(file, e).to_string()
}

/// A YAML (or JSON) error of `file`, at its place when it has one.
pub fn yaml_diagnostic(file: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or("invalid YAML").trim();
    // The message repeats the place that `at` already gives.
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, rest)) => rest,
        None => first,
    };
    match e.location() {
        Some(l) => Diagnostic::new(&yaml_at(file, &l), first),
        None => Diagnostic::file(file, first),
    }
}

/// The place of a YAML location in `file`.
pub(crate) fn yaml_at(file: &str, loc: &serde_saphyr::Location) -> At {
    At {
        file: file.to_owned(),
        line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
        column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
    }
}

/// A policy attached by reference, with where the reference is.
type Ref<'r> = &'r Spanned<String>;

impl<'f> Loader<'f> {
    fn new(
        files: &'f Files,
        recorder: Option<Recorder>,
        prev: Option<&'f Kept>,
        compiled: FxHashMap<(PolicyKind, String), Policy>,
        keep: bool,
    ) -> Self {
        let doc_hashes = if keep {
            files
                .under("documents")
                .map(|(path, _, text)| (path.to_owned(), Sha256::digest(text.as_bytes()).into()))
                .collect()
        } else {
            FxHashMap::default()
        };
        Self {
            files,
            problems: Vec::new(),
            recorder,
            organization: None,
            compiled,
            doc_hashes,
            prev,
            reuse: None,
            valid: Vec::new(),
            next: keep.then(Kept::default),
            parallel: false,
            in_chunks: false,
            principals: true,
        }
    }

    /// Reads, validates and compiles the files.
    fn run(&mut self) -> Result<(Bundle, Option<Recorder>), BundleError> {
        let parts = if self.files.aws {
            let files = self.files;
            files
                .texts
                .iter()
                .next()
                .and_then(|(file, text)| super::aws::parts(file, text, &mut self.problems))
        } else {
            self.parts()
        };
        match parts {
            Some(parts) => self.build(parts, self.files.digest.clone()),
            None => Err(BundleError::new(std::mem::take(&mut self.problems))),
        }
    }

    /// The key of a `documents/` file in [`Loader::compiled`]: its path,
    /// and its text's digest when the map outlives this load.
    fn document_key(&self, path: &str) -> String {
        match self.doc_hashes.get(path) {
            Some(h) => {
                let mut key = format!("\0{path}\0");
                for b in h {
                    use std::fmt::Write as _;
                    let _ = write!(key, "{b:02x}");
                }
                key
            }
            None => format!("\0{path}"),
        }
    }

    fn parse_yaml<T: DeserializeOwned>(&mut self, part: &str) -> Option<(String, T)> {
        let (file, text) = self.files.top(part)?;
        self.parse_file(file, text).map(|v| (file.to_owned(), v))
    }

    fn parse_file<T: DeserializeOwned>(&mut self, file: &str, text: &str) -> Option<T> {
        match serde_saphyr::from_str_with_options::<T>(text, yaml_options()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(yaml_diagnostic(file, &e));
                None
            }
        }
    }

    /// The files of a list part: its top-level file, then the files of
    /// `PART.d/` in name order.
    fn sources(&self, part: &str) -> Vec<(&'f str, &'f str)> {
        let files = self.files;
        let prefix = format!("{part}.d/");
        files
            .top(part)
            .into_iter()
            .chain(
                files
                    .texts
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .collect()
    }

    /// Parses the users of `text` (a users file, or a run of its entries),
    /// calling `each` for each user as it is parsed: the parse runs on a
    /// thread of its own and hands the users over a short queue, in
    /// batches, so that a large `users.yaml` is parsed while its users are
    /// compiled and its raw users never all exist at once. The parser is
    /// paced when the caller is ([`crate::pace`]).
    fn stream(&mut self, file: &str, text: &str, mut each: impl FnMut(&mut Self, &RawUser)) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<RawUser>>(QUEUED_BATCHES);
        let paced = crate::pace::counts().is_some();
        let parsed = std::thread::scope(|scope| {
            let parser = std::thread::Builder::new()
                .name("iamd-parse".into())
                .spawn_scoped(scope, move || {
                    if paced {
                        crate::pace::background();
                    }
                    USERS.with(|sink| *sink.borrow_mut() = Some(tx));
                    let parsed =
                        serde_saphyr::from_str_with_options::<StreamedUsers>(text, yaml_options());
                    // The queue ends with the parse.
                    USERS.with(|sink| sink.borrow_mut().take());
                    parsed
                });
            let parser = match parser {
                Ok(p) => p,
                Err(e) => return Err(format!("cannot start a parser thread: {e}")),
            };
            for batch in rx.iter() {
                for user in batch {
                    each(self, &user);
                    crate::pace::point();
                }
            }
            parser.join().map_err(|_| "the parser failed".to_owned())
        });
        match parsed {
            Ok(Ok(StreamedUsers)) => {}
            Ok(Err(e)) => self.problems.push(yaml_diagnostic(file, &e)),
            Err(e) => self.problems.push(Diagnostic::file(file, e)),
        }
    }

    /// The users of the users files `files`, each handed to `add`: parsed,
    /// or kept from the last load when neither its text nor what it depends
    /// on changed.
    fn users_from_files(
        &mut self,
        files: &[String],
        add: &mut impl FnMut(&mut Self, &str, Entry<'_, RawUser, KeptUser>),
    ) {
        let all = self.files;
        for file in files {
            let Some(text) = all.texts.get(file.as_str()).map(String::as_str) else {
                continue;
            };
            let items = self.cut(text);
            let Some(items) = items else {
                self.stream(file, text, |this, u| {
                    add(this, file, Entry::Parsed(u, None))
                });
                continue;
            };
            if self.prev.is_none() {
                // Everything is parsed; each user is kept by its entry's
                // digest, if the entries are what the parser finds.
                if let Some(threads) = self.threads_for(text) {
                    let whole = crate::chunks::parse_in_order(text, &items, threads, |u, item| {
                        add(self, file, Entry::Parsed(&u, Some(item.hash)));
                    });
                    self.parsed_in_chunks(file, whole);
                    continue;
                }
                let mut n = 0;
                self.stream(file, text, |this, u| {
                    let hash = items.get(n).map(|i| i.hash);
                    n += 1;
                    add(this, file, Entry::Parsed(u, hash));
                });
                if n != items.len() {
                    self.forget(&items, |k, h| {
                        k.users.remove(h);
                    });
                }
                continue;
            }
            self.each_entry(text, &items, |this, step| match step {
                Step::Kept(hash) => match this.kept_user(hash) {
                    Some(k) => {
                        add(this, file, Entry::Kept(k, *hash));
                        true
                    }
                    None => false,
                },
                // A short run (a user or a few changed) is parsed here: a
                // thread for it would cost more than its parse.
                Step::Parse(run, items) if run.len() < STREAM_FROM => {
                    let Some(users) = this.parse_file::<Vec<RawUser>>(file, run) else {
                        return true;
                    };
                    for (u, item) in users.iter().zip(items) {
                        add(this, file, Entry::Parsed(u, Some(item.hash)));
                    }
                    users.len() == items.len()
                }
                Step::Parse(run, items) => {
                    let mut n = 0;
                    this.stream(file, run, |this, u| {
                        let hash = items.get(n).map(|i| i.hash);
                        n += 1;
                        add(this, file, Entry::Parsed(u, hash));
                    });
                    n == items.len()
                }
            });
        }
    }

    /// The roles of the roles files `files` (a reload's), each handed to
    /// `add`: parsed, or kept from the last load.
    fn roles_from_files(
        &mut self,
        files: &[String],
        add: &mut impl FnMut(&mut Self, &str, Entry<'_, RawRole, KeptRole>),
    ) {
        let all = self.files;
        for file in files {
            let Some(text) = all.texts.get(file.as_str()).map(String::as_str) else {
                continue;
            };
            let Some(items) = self.cut(text) else {
                if let Some(roles) = self.parse_file::<Vec<Paced<RawRole>>>(file, text) {
                    for r in &roles {
                        add(self, file, Entry::Parsed(r, None));
                    }
                }
                continue;
            };
            self.each_entry(text, &items, |this, step| match step {
                Step::Kept(hash) => match this.kept_role(hash) {
                    Some(k) => {
                        add(this, file, Entry::Kept(k, *hash));
                        true
                    }
                    None => false,
                },
                Step::Parse(run, items) => {
                    let Some(roles) = this.parse_file::<Vec<Paced<RawRole>>>(file, run) else {
                        return true;
                    };
                    for (r, item) in roles.iter().zip(items) {
                        add(this, file, Entry::Parsed(r, Some(item.hash)));
                    }
                    roles.len() == items.len()
                }
            });
        }
    }

    /// How many threads parse the entries of `text` at once
    /// ([`crate::chunks`]): on a first load that keeps its work, when the
    /// file is large, there are CPUs for it and the thread is not paced (a
    /// reload leaves the CPUs to the serving threads).
    fn threads_for(&self, text: &str) -> Option<usize> {
        if !self.parallel || text.len() < PARALLEL_FROM || crate::pace::counts().is_some() {
            return None;
        }
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        (cpus > 1).then_some(cpus.min(MAX_PARSERS))
    }

    /// Records that `file` was parsed in chunks, and (when not `whole`)
    /// the problem that makes the load run again in one piece.
    fn parsed_in_chunks(&mut self, file: &str, whole: bool) {
        self.in_chunks = true;
        if !whole {
            self.problems.push(Diagnostic::file(file, CHUNKS_FAILED));
        }
    }

    /// The entries of a list file, when this load keeps its work and the
    /// file can be cut ([`crate::items`]).
    fn cut(&self, text: &str) -> Option<Vec<Item>> {
        self.next.as_ref()?;
        crate::items::split(text)
    }

    /// Walks the entries `items` of `text` in order: `step` takes each
    /// kept entry it can (`Step::Kept`, true if taken) and parses each run
    /// of the others (`Step::Parse`, true if the run held as many entries
    /// as it has pieces; if not, the load is run again whole).
    fn each_entry(
        &mut self,
        text: &'f str,
        items: &[Item],
        mut step: impl FnMut(&mut Self, Step<'_>) -> bool,
    ) {
        let mut i = 0;
        while let Some(item) = items.get(i) {
            if step(self, Step::Kept(&item.hash)) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while items.get(j).is_some_and(|next| !self.kept(&next.hash)) {
                j += 1;
            }
            let run = items.get(i..j).unwrap_or_default();
            let start = item.range.start;
            let end = run.last().map_or(start, |l| l.range.end);
            if !step(self, Step::Parse(text.get(start..end).unwrap_or(""), run)) {
                self.problems.push(Diagnostic::file(
                    self.files.dir.display().to_string(),
                    "a list file's entries did not parse one by one: compiled again whole",
                ));
            }
            i = j;
        }
    }

    /// Whether an entry of this digest is kept (a user or a role) and may
    /// be reused.
    fn kept(&self, hash: &Hash) -> bool {
        self.kept_user(hash).is_some() || self.kept_role(hash).is_some()
    }

    /// The kept user of this digest, if what it depends on is unchanged.
    fn kept_user(&self, hash: &Hash) -> Option<&'f Arc<KeptUser>> {
        let reuse: &'f Kept = self.reuse?;
        reuse.users.get(hash).filter(|k| self.unchanged(&k.deps))
    }

    /// The kept role of this digest, if what it depends on is unchanged.
    fn kept_role(&self, hash: &Hash) -> Option<&'f Arc<KeptRole>> {
        let reuse: &'f Kept = self.reuse?;
        reuse.roles.get(hash).filter(|k| self.unchanged(&k.deps))
    }

    fn unchanged(&self, deps: &[u32]) -> bool {
        deps.iter()
            .all(|d| self.valid.get(*d as usize).copied().unwrap_or(false))
    }

    /// Keeps none of `items` (their file did not parse into as many
    /// entries).
    fn forget(&mut self, items: &[Item], mut remove: impl FnMut(&mut Kept, &Hash)) {
        if let Some(next) = &mut self.next {
            for i in items {
                remove(next, &i.hash);
            }
        }
    }

    /// The entries of a list part: its top-level file, then the files of
    /// `PART.d/` in name order, each entry with its file.
    fn list<T: DeserializeOwned>(&mut self, part: &str) -> Vec<(String, T)> {
        let mut out = Vec::new();
        for (file, text) in self.sources(part) {
            // A large `users.yaml` is one parse of hundreds of
            // milliseconds: a point per entry.
            if let Some(items) = self.parse_file::<Vec<Paced<T>>>(file, text) {
                out.extend(items.into_iter().map(|i| (file.to_owned(), i.0)));
            }
        }
        out
    }

    /// Reads the directory format's files.
    fn parts(&mut self) -> Option<Parts> {
        let account = self.parse_yaml::<RawAccount>("bundle");
        let user_files: Vec<String> = self
            .sources("users")
            .into_iter()
            .map(|(f, _)| f.to_owned())
            .collect();
        let groups = self.list("groups");
        // A reload that may reuse kept roles parses them in `build`, once it
        // knows which are unchanged.
        let (roles, role_files) = if self.prev.is_some() {
            let files = self.sources("roles");
            (
                Vec::new(),
                files.into_iter().map(|(f, _)| f.to_owned()).collect(),
            )
        } else {
            (self.roles_parsed(), Vec::new())
        };
        let resources = self.list("resources");
        let docs = |sub: &str| {
            self.files
                .under(sub)
                .map(|(file, name, text)| DocumentSource {
                    file: file.to_owned(),
                    name: name.to_owned(),
                    text: text.to_owned(),
                    at: None,
                })
                .collect()
        };
        let managed: Vec<DocumentSource> = docs("policies");
        let scps: Vec<DocumentSource> = docs("scps");
        let rcps: Vec<DocumentSource> = docs("rcps");
        let Some((account_file, account)) = account else {
            // No account to build a bundle for: still report every error
            // of the users files and the policy files, with the default
            // limits.
            drop(self.list::<RawUser>("users"));
            let limits = limits(&RawLimits::default());
            for doc in &managed {
                self.policy_file(
                    doc,
                    PolicyKind::Identity,
                    Some(limits.managed_policy_size),
                    "managedPolicySize",
                );
            }
            self.guardrails(&scps, PolicyKind::Scp);
            self.guardrails(&rcps, PolicyKind::Rcp);
            return None;
        };
        if let Some((file, text)) = self.files.top("aws-export") {
            // An AWS export beside the organization's policies: the
            // export gives the identities and managed policies, the
            // directory the SCP and RCP levels and resource policies.
            let from_dir = !user_files.is_empty()
                || !groups.is_empty()
                || !roles.is_empty()
                || !role_files.is_empty()
                || !managed.is_empty();
            if from_dir {
                self.problems.push(Diagnostic::file(file, "the bundle also has users, groups, roles or `policies/`: with an AWS export they come from the export alone; remove them"));
            }
            let mut parts = super::aws::parts(file, text, &mut self.problems)?;
            if parts.account.account.value != account.account.value {
                self.problems.push(Diagnostic::new(
                    &yaml_at(&account_file, &account.account.referenced),
                    format!(
                        "account `{}` is not the export's account `{}`: they must be the same",
                        account.account.value, parts.account.account.value
                    ),
                ));
                // Every reference of the export would be another error.
                return None;
            }
            let partition = account.partition.clone().or(parts.account.partition);
            parts.account = RawAccount {
                partition,
                ..account
            };
            parts.account_file = account_file;
            parts.resources = resources;
            parts.scps = scps;
            parts.rcps = rcps;
            return Some(parts);
        }
        Some(Parts {
            account_file,
            account,
            users: Vec::new(),
            user_files,
            groups,
            roles,
            role_files,
            resources,
            managed,
            scps,
            rcps,
            aws: false,
        })
    }

    /// The roles of the roles files, each with its entry's digest when the
    /// load keeps its work and the file was cut into as many entries.
    fn roles_parsed(&mut self) -> Vec<(String, RawRole, Option<Hash>)> {
        let mut out = Vec::new();
        for (file, text) in self.sources("roles") {
            let threads = self.threads_for(text);
            if let (Some(threads), Some(items)) = (threads, self.cut(text)) {
                let whole = crate::chunks::parse_in_order(
                    text,
                    &items,
                    threads,
                    |r: Paced<RawRole>, item| out.push((file.to_owned(), r.0, Some(item.hash))),
                );
                self.parsed_in_chunks(file, whole);
                continue;
            }
            if let Some(roles) = self.parse_file::<Vec<Paced<RawRole>>>(file, text) {
                let cut = self.cut(text).filter(|c| c.len() == roles.len());
                let hash = |i: usize| cut.as_ref().and_then(|c| c.get(i)).map(|c| c.hash);
                out.extend(
                    roles
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| (file.to_owned(), r.0, hash(i))),
                );
            }
        }
        out
    }

    /// Validates and compiles the parts: every problem is collected.
    pub(crate) fn build(
        &mut self,
        parts: Parts,
        digest: String,
    ) -> Result<(Bundle, Option<Recorder>), BundleError> {
        let Parts {
            account_file,
            account,
            users,
            user_files,
            groups,
            roles,
            role_files,
            resources,
            managed: managed_docs,
            scps: scp_sources,
            rcps: rcp_sources,
            aws,
        } = parts;
        // Freed an entry at a time when this returns, either way: the raw
        // lists of 10,000 users are millions of small blocks.
        let (users, groups, roles, resources) = (
            PacedDrop(users),
            PacedDrop(groups),
            PacedDrop(roles),
            PacedDrop(resources),
        );
        let (managed_docs, scp_sources, rcp_sources) = (
            PacedDrop(managed_docs),
            PacedDrop(scp_sources),
            PacedDrop(rcp_sources),
        );
        let limits = limits(&account.limits);
        let account_id = account.account.value.clone();
        if !is_account_id(&account_id) {
            self.problems.push(Diagnostic::new(
                &yaml_at(&account_file, &account.account.referenced),
                format!("account `{account_id}` is not a 12-digit account id"),
            ));
        }
        let partition = account
            .partition
            .as_ref()
            .map_or_else(|| "aws".to_owned(), |p| p.value.clone());
        if let Some(org) = &account.organization_id {
            if is_organization_id(&org.value) {
                self.organization = Some(org.value.as_str().into());
            } else {
                self.problems.push(Diagnostic::new(&yaml_at(&account_file, &org.referenced), format!("organizationId `{}` is not an organization id: write `o-` and 10 to 32 lowercase letters or digits (`o-a1b2c3d4e5`)", org.value)));
            }
        }

        // What every entry depends on: kept entries serve only under the
        // same settings.
        let context = format!(
            "{account_id}\0{partition}\0{:?}\0{limits:?}",
            self.organization
        );
        self.reuse = self.prev.filter(|p| p.context == context);
        let reuse = self.reuse;
        if let Some(next) = &mut self.next {
            next.context = context;
            next.document_files = self.doc_hashes.clone();
            if let Some(p) = reuse {
                next.deps = p.deps.clone();
            }
        }

        // Managed policies and SCPs: one document per file, compiled once
        // (a kept one whose text is the same is not compiled again).
        let mut managed: FxHashMap<String, (Arc<Policy>, usize)> = FxHashMap::default();
        let mut managed_lower: FxHashMap<String, String> = FxHashMap::default();
        // Policies whose files have errors: those errors are reported, and
        // each reference to them is not one more ("unknown").
        let mut broken: FxHashSet<String> = FxHashSet::default();
        for doc in managed_docs.iter() {
            crate::pace::point();
            let (file, name) = (&doc.file, &doc.name);
            if let Some(prev) = managed_lower.insert(name.to_lowercase(), name.to_owned()) {
                let d = format!(
                    "managed policy `{name}` has the same name as `{prev}` (names are case-insensitive)"
                );
                self.problems.push(match &doc.at {
                    Some(at) => Diagnostic::new(at, d),
                    None => Diagnostic::file(file.as_str(), d),
                });
            }
            let hash: Option<Hash> = self
                .next
                .as_ref()
                .map(|_| Sha256::digest(doc.text.as_bytes()).into());
            let kept = reuse
                .and_then(|k| k.managed.get(name))
                .filter(|(h, _)| Some(*h) == hash)
                .map(|(_, p)| p.clone());
            let compiled = kept.or_else(|| {
                self.policy_file(
                    doc,
                    PolicyKind::Identity,
                    Some(limits.managed_policy_size),
                    "managedPolicySize",
                )
            });
            if let Some(p) = compiled {
                if let (Some(next), Some(hash)) = (&mut self.next, hash) {
                    next.managed.insert(name.to_owned(), (hash, p.clone()));
                }
                let statements = p.statements().len();
                managed.insert(name.to_owned(), (p, statements));
            } else {
                broken.insert(name.to_owned());
            }
        }
        let scp_docs = self.guardrails(&scp_sources, PolicyKind::Scp);
        let rcp_docs = self.guardrails(&rcp_sources, PolicyKind::Rcp);
        let lookup = |this: &mut Self, file: &str, r: Ref<'_>| -> Option<Arc<Policy>> {
            let name = this.managed_name(file, r, &account_id, &partition)?;
            match managed.get(name) {
                Some((p, _)) => {
                    if let Some(r) = &mut this.recorder {
                        r.managed_use(p.name());
                    }
                    Some(p.clone())
                }
                None if broken.contains(name) => None,
                None => {
                    let hint = match managed_lower.get(&name.to_lowercase()) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None if aws => "the export's `Policies` does not hold it (export without a `--filter` that leaves it out)".to_owned(),
                        None => format!("add `policies/{name}.json`"),
                    };
                    this.problems.push(Diagnostic::new(
                        &yaml_at(file, &r.referenced),
                        format!("unknown managed policy `{}`: {hint}", r.value),
                    ));
                    None
                }
            }
        };

        // SCP levels; RCP levels, where `RCPFullAWSAccess` is implicit at
        // each, so that a level may list none.
        let scps = self.levels(
            &account_file,
            &account.organization,
            &scp_docs,
            "SCP",
            "scps",
        );
        for level in account.organization.iter().filter(|l| l.value.is_empty()) {
            self.problems.push(Diagnostic::new(&yaml_at(&account_file, &level.referenced), "an organization level lists no SCP: every level must allow, so an empty level denies everything; list at least one"));
        }
        let rcps = self.levels(
            &account_file,
            &account.resource_controls,
            &rcp_docs,
            "RCP",
            "rcps",
        );

        // Groups.
        let mut group_names = Names::new(false, 0);
        let mut group_policies: FxHashMap<String, Vec<Arc<Policy>>> = FxHashMap::default();
        for (groups_file, g) in groups.iter() {
            crate::pace::point();
            let groups_file = groups_file.as_str();
            self.name(groups_file, &g.name, "group", 128, &mut group_names);
            if let Some(r) = &mut self.recorder {
                r.group(&g.name.value, yaml_at(groups_file, &g.name.referenced));
            }
            self.path(groups_file, g.path.as_ref());
            if g.policies.len() > limits.group_attached_policies {
                self.problems.push(Diagnostic::new(&yaml_at(groups_file, &g.name.referenced), format!("group `{}` attaches {} managed policies; the limit is {} (AWS quota: managed policies per group; raise `limits.groupAttachedPolicies`)", g.name.value, g.policies.len(), limits.group_attached_policies)));
            }
            let mut docs: Vec<Arc<Policy>> = g
                .policies
                .iter()
                .filter_map(|r| lookup(self, groups_file, r))
                .collect();
            docs.extend(self.inline(
                groups_file,
                &g.name.value,
                "group",
                &g.inline,
                limits.group_inline_size,
                "groupInlineSize",
            ));
            group_policies.insert(g.name.value.clone(), docs);
        }
        if let Some(next) = &mut self.next {
            next.groups = group_policies.clone();
        }
        // Which of what kept entries depend on is as it was.
        if let Some(k) = reuse {
            self.valid = k
                .deps
                .names()
                .map(|(kind, name)| match kind {
                    'm' => match (k.managed.get(name), managed.get(name)) {
                        (Some((_, was)), Some((now, _))) => Arc::ptr_eq(was, now),
                        _ => false,
                    },
                    'g' => match (k.groups.get(name), group_policies.get(name)) {
                        (Some(was), Some(now)) => same_policies(was, now),
                        _ => false,
                    },
                    'd' => k
                        .document_files
                        .get(name)
                        .is_some_and(|h| self.doc_hashes.get(name) == Some(h)),
                    _ => false,
                })
                .collect();
        }

        // Users. The maps are sized once (growing a map of 10,000 entries
        // rehashes it all at once, milliseconds without a pace point): for
        // a users file still to be parsed, a user every eight lines.
        let expected = users.len()
            + user_files
                .iter()
                .filter_map(|f| self.files.texts.get(f.as_str()))
                .map(|t| memchr::memchr_iter(b'\n', t.as_bytes()).count() / 8)
                .sum::<usize>();
        let mut entities: FxHashMap<Arc<str>, Arc<Entity>> =
            FxHashMap::with_capacity_and_hasher(expected + roles.len(), Default::default());
        // Reusing kept entries, names are only checked for repeats: a
        // repeat runs the load again whole, which says where.
        let mut user_names = Names::new(reuse.is_some(), expected);
        if let (Some(next), Some(k)) = (&mut self.next, reuse) {
            next.users.reserve(k.users.len());
            next.roles.reserve(k.roles.len());
        }
        let mut user_count = 0usize;
        let mut add_user = |this: &mut Self,
                            users_file: &str,
                            entry: Entry<'_, RawUser, KeptUser>| {
            user_count += 1;
            let (u, hash) = match entry {
                Entry::Parsed(u, hash) => (u, hash),
                Entry::Kept(k, hash) => {
                    let name = k.key.strip_prefix("user/").unwrap_or(&k.key);
                    this.kept_name(users_file, "user", name, &mut user_names);
                    entities.insert(k.key.clone(), k.entity.clone());
                    if let Some(next) = &mut this.next {
                        next.users.insert(hash, k.clone());
                        next.reused += 1;
                    }
                    return;
                }
            };
            if let Some(next) = &mut this.next {
                next.built += 1;
            }
            this.name(users_file, &u.name, "user", 64, &mut user_names);
            let path = this.path(users_file, u.path.as_ref());
            let at = yaml_at(users_file, &u.name.referenced);
            let who = &u.name.value;
            if u.groups.len() > limits.groups_per_user {
                this.problems.push(Diagnostic::new(&at, format!("user `{who}` is in {} groups; the limit is {} (AWS quota: groups per user; raise `limits.groupsPerUser`)", u.groups.len(), limits.groups_per_user)));
            }
            this.attached(&at, "user", who, u.policies.len(), limits.attached_policies);
            this.tags(&at, who, &u.tags, limits.tags);
            let mut docs: Vec<Arc<Policy>> = u
                .policies
                .iter()
                .filter_map(|r| lookup(this, users_file, r))
                .collect();
            docs.extend(this.inline(
                users_file,
                who,
                "user",
                &u.inline,
                limits.user_inline_size,
                "userInlineSize",
            ));
            for g in &u.groups {
                match group_policies.get(&g.value) {
                    Some(p) => {
                        docs.extend(p.iter().cloned());
                        if let Some(r) = &mut this.recorder {
                            r.member(&g.value);
                        }
                    }
                    None => {
                        let hint = match group_names.spelled(&g.value) {
                            Some(n) => format!(
                                "did you mean `{n}`? (group names are case-insensitive in IAM but written as defined)"
                            ),
                            None if aws => {
                                "the export's `GroupDetailList` does not hold it".to_owned()
                            }
                            None => "define it in groups.yaml or groups.d/".to_owned(),
                        };
                        this.problems.push(Diagnostic::new(
                            &yaml_at(users_file, &g.referenced),
                            format!("user `{who}` is in unknown group `{}`: {hint}", g.value),
                        ));
                    }
                }
            }
            let boundary = u
                .boundary
                .as_ref()
                .and_then(|r| lookup(this, users_file, r));
            let arn = format!("arn:{partition}:iam::{account_id}:user{path}{who}");
            let entity = this.entity(
                ("user", who, &arn),
                docs,
                boundary,
                &u.tags,
                None,
                &mut entities,
            );
            if let (Some(hash), Some((key, entity)), Some(next)) = (hash, entity, &mut this.next) {
                let refs = u.policies.iter().chain(&u.boundary);
                let mut deps = depends(
                    &mut next.deps,
                    (&account_id, &partition),
                    refs,
                    &u.inline,
                    None,
                );
                deps.extend(u.groups.iter().map(|g| next.deps.id('g', &g.value)));
                let deps = deps.into_boxed_slice();
                next.users
                    .insert(hash, Arc::new(KeptUser { key, entity, deps }));
            }
        };
        for (users_file, u) in users.iter() {
            crate::pace::point();
            add_user(self, users_file, Entry::Parsed(u, None));
        }
        self.users_from_files(&user_files, &mut add_user);

        // Roles, and their trust policies as the roles' resource policies.
        let mut exact_resources: FxHashMap<Box<str>, Arc<StatementSet>> =
            FxHashMap::with_capacity_and_hasher(roles.len() + resources.len(), Default::default());
        let mut role_names = Names::new(reuse.is_some(), roles.len());
        let mut role_count = 0usize;
        let mut add_role = |this: &mut Self,
                            roles_file: &str,
                            entry: Entry<'_, RawRole, KeptRole>| {
            crate::pace::point();
            role_count += 1;
            let (r, hash) = match entry {
                Entry::Parsed(r, hash) => (r, hash),
                Entry::Kept(k, hash) => {
                    let name = k.key.strip_prefix("role/").unwrap_or(&k.key);
                    this.kept_name(roles_file, "role", name, &mut role_names);
                    if let Some((set, arns)) = &k.trust {
                        for arn in arns {
                            exact_resources.insert(arn.clone(), set.clone());
                        }
                    }
                    entities.insert(k.key.clone(), k.entity.clone());
                    if let Some(next) = &mut this.next {
                        next.roles.insert(hash, k.clone());
                        next.reused += 1;
                    }
                    return;
                }
            };
            if let Some(next) = &mut this.next {
                next.built += 1;
            }
            this.name(roles_file, &r.name, "role", 64, &mut role_names);
            let path = this.path(roles_file, r.path.as_ref());
            let at = yaml_at(roles_file, &r.name.referenced);
            let who = &r.name.value;
            this.attached(&at, "role", who, r.policies.len(), limits.attached_policies);
            if let Some(d) = &r.max_session_duration
                && !(3600..=43200).contains(&d.value)
            {
                this.problems.push(Diagnostic::new(&yaml_at(roles_file, &d.referenced), format!("role `{who}`: `maxSessionDuration` is {} seconds; IAM allows 3600 to 43200", d.value)));
            }
            this.tags(&at, who, &r.tags, limits.tags);
            let mut docs: Vec<Arc<Policy>> = r
                .policies
                .iter()
                .filter_map(|p| lookup(this, roles_file, p))
                .collect();
            docs.extend(this.inline(
                roles_file,
                who,
                "role",
                &r.inline,
                limits.role_inline_size,
                "roleInlineSize",
            ));
            let boundary = r
                .boundary
                .as_ref()
                .and_then(|p| lookup(this, roles_file, p));
            let trust = this.document(
                roles_file,
                &r.trust,
                (
                    &format!("role/{who}#trust"),
                    &format!("trust policy of role `{who}`"),
                ),
                PolicyKind::Resource,
                Some((limits.trust_policy_size, "trustPolicySize")),
            );
            let arn = format!("arn:{partition}:iam::{account_id}:role{path}{who}");
            let mut kept_trust = None;
            if let Some(trust) = trust {
                let set = Arc::new(StatementSet::new([trust]));
                // Sessions name the role without its path.
                let arns: [Box<str>; 2] = [
                    arn.as_str().into(),
                    format!("arn:{partition}:iam::{account_id}:role/{who}").into(),
                ];
                for a in &arns {
                    exact_resources.insert(a.clone(), set.clone());
                }
                kept_trust = Some((set, arns));
            }
            let max_session = r.max_session_duration.as_ref().map(|d| d.value);
            let entity = this.entity(
                ("role", who, &arn),
                docs,
                boundary,
                &r.tags,
                max_session,
                &mut entities,
            );
            if let (Some(hash), Some((key, entity)), Some(next)) = (hash, entity, &mut this.next) {
                let refs = r.policies.iter().chain(&r.boundary);
                let deps = depends(
                    &mut next.deps,
                    (&account_id, &partition),
                    refs,
                    &r.inline,
                    Some(&r.trust),
                )
                .into_boxed_slice();
                next.roles.insert(
                    hash,
                    Arc::new(KeptRole {
                        key,
                        entity,
                        trust: kept_trust,
                        deps,
                    }),
                );
            }
        };
        for (roles_file, r, hash) in roles.iter() {
            add_role(self, roles_file, Entry::Parsed(r, *hash));
        }
        self.roles_from_files(&role_files, &mut add_role);

        // Resource-based policies.
        let mut pattern_resources = Vec::new();
        let mut resource_policies = 0;
        for (i, (resources_file, res)) in resources.iter().enumerate() {
            crate::pace::point();
            let resources_file = resources_file.as_str();
            let at = yaml_at(resources_file, &res.resource.referenced);
            let text = &res.resource.value;
            let label = format!("resource policy of `{text}`");
            let Some(doc) = self.document(
                resources_file,
                &res.policy,
                (&format!("resource/{text}"), &label),
                PolicyKind::Resource,
                None,
            ) else {
                continue;
            };
            resource_policies += 1;
            let set = Arc::new(StatementSet::new([doc]));
            if text.contains('*') || text.contains('?') {
                match resource_pattern(text) {
                    Ok(p) => pattern_resources.push((p, set)),
                    Err(e) => self
                        .problems
                        .push(Diagnostic::new(&at, format!("resource `{text}`: {e}"))),
                }
            } else if iamd_policy::arn::Arn::parse(text).is_none() {
                self.problems.push(Diagnostic::new(&at, format!("resource `{text}` is not an ARN: write `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`")));
            } else if exact_resources.insert(text.as_str().into(), set).is_some() {
                self.problems.push(Diagnostic::new(&at, format!("resource `{text}` already has a policy (entry {i} repeats it, or it is a role with a trust policy): a resource has one policy")));
            }
        }

        let declared = self.declared(&account_file, &account.search);

        if !self.problems.is_empty() {
            return Err(BundleError::new(std::mem::take(&mut self.problems)));
        }
        let statements = managed.values().map(|(_, n)| n).sum::<usize>()
            + entities
                .values()
                .map(|e| e.identity.stats().statements)
                .sum::<usize>();
        let stats = BundleStats {
            users: user_count,
            groups: groups.len(),
            roles: role_count,
            managed_policies: managed.len(),
            resource_policies,
            statements,
        };
        let root_arn = format!("arn:{partition}:iam::{account_id}:root");
        let root = Principal::parse(&root_arn).map_err(|e| {
            BundleError::new(vec![Diagnostic::file(
                self.files.dir.display().to_string(),
                e.to_string(),
            )])
        })?;
        let revision = Revision {
            digest,
            label: account.revision,
        };
        let bundle = Bundle {
            revision_text: revision.to_string(),
            revision,
            account: account_id,
            partition,
            entities,
            // Callers from outside: their organization is not known.
            outsider: Arc::new(Entity::new(
                Principal::parse("*").map_err(|e| {
                    BundleError::new(vec![Diagnostic::file(
                        self.files.dir.display().to_string(),
                        e.to_string(),
                    )])
                })?,
                StatementSet::default(),
                None,
                Vec::new(),
                None,
            )),
            root: Arc::new(Entity::new(
                root,
                StatementSet::default(),
                None,
                Vec::new(),
                self.organization.clone(),
            )),
            exact_resources,
            pattern_resources,
            scps,
            rcps,
            stats,
            declared,
            known: std::sync::OnceLock::new(),
        };
        Ok((bundle, self.recorder.take()))
    }

    /// `search:` of `bundle.yaml`, checked: resources are ARNs without
    /// wildcards, actions `service:Action` without wildcards.
    fn declared(&mut self, file: &str, search: &super::raw::RawSearch) -> crate::Declared {
        let mut out = crate::Declared::default();
        for r in &search.resources {
            let text = &r.value;
            if text.contains(['*', '?']) || iamd_policy::arn::Arn::parse(text).is_none() {
                self.problems.push(Diagnostic::new(&yaml_at(file, &r.referenced), format!("search.resources: `{text}` is not a resource ARN: write one resource, as `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, without wildcards")));
            } else {
                out.resources.push(text.as_str().into());
            }
        }
        for a in &search.actions {
            let text = &a.value;
            let ok = !text.contains(['*', '?'])
                && text
                    .split_once(':')
                    .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty());
            if ok {
                out.actions.push(text.as_str().into());
            } else {
                self.problems.push(Diagnostic::new(&yaml_at(file, &a.referenced), format!("search.actions: `{text}` is not an action: write `service:Action`, without wildcards")));
            }
        }
        out
    }

    /// The managed policy name a reference names: `Name`, or the ARN
    /// `arn:PARTITION:iam::ACCOUNT:policy/PATH/Name` (the bundle's account or
    /// `aws` for AWS managed policies).
    fn managed_name<'r>(
        &mut self,
        file: &str,
        r: Ref<'r>,
        account: &str,
        partition: &str,
    ) -> Option<&'r str> {
        let text = r.value.as_str();
        if let Some(name) = managed_ref(text, account, partition) {
            return Some(name);
        }
        self.problems.push(Diagnostic::new(&yaml_at(file, &r.referenced), format!("`{text}` is not a managed policy of this bundle: write its name, or `arn:{partition}:iam::{account}:policy/NAME` (`arn:{partition}:iam::aws:policy/NAME` for an AWS managed policy)")));
        None
    }

    fn name(
        &mut self,
        file: &str,
        name: &Spanned<String>,
        what: &str,
        max: usize,
        seen: &mut Names,
    ) {
        let at = yaml_at(file, &name.referenced);
        let n = &name.value;
        let valid = !n.is_empty()
            && n.len() <= max
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !valid {
            self.problems.push(Diagnostic::new(
                &at,
                format!("{what} name `{n}` is not valid: 1 to {max} letters, digits and `+=,.@_-`"),
            ));
        }
        if let Some(prev) = seen.add(n) {
            self.problems.push(Diagnostic::new(&at, format!("{what} `{n}` is defined twice (as `{prev}` before; IAM names are case-insensitive): keep one")));
        }
    }

    /// A path (`/`, `/engineering/`); returns it, `/` when absent.
    fn path(&mut self, file: &str, path: Option<&Spanned<String>>) -> String {
        let Some(p) = path else { return "/".to_owned() };
        let v = &p.value;
        let valid = v.starts_with('/')
            && v.ends_with('/')
            && v.len() <= 512
            && v.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
        if !valid {
            self.problems.push(Diagnostic::new(
                &yaml_at(file, &p.referenced),
                format!(
                    "path `{v}` is not valid: it starts and ends with `/` (e.g. `/engineering/`)"
                ),
            ));
        }
        v.clone()
    }

    /// A user's or role's (`kind`) count of attached managed policies
    /// against its quota.
    fn attached(&mut self, at: &At, kind: &str, who: &str, n: usize, max: usize) {
        if n > max {
            self.problems.push(Diagnostic::new(at, format!("{kind} `{who}` attaches {n} managed policies; the limit is {max} (AWS quota: managed policies per {kind}; raise `limits.attachedPolicies`)")));
        }
    }

    /// The entity of a user or role (`kind`, its name and ARN) with its
    /// identity policies and boundary, catalogued when a catalog is asked
    /// for.
    fn entity(
        &mut self,
        (kind, who, arn): (&str, &str, &str),
        identity: Vec<Arc<Policy>>,
        boundary: Option<Arc<Policy>>,
        tags: &BTreeMap<String, String>,
        max_session: Option<u32>,
        entities: &mut FxHashMap<Arc<str>, Arc<Entity>>,
    ) -> Option<(Arc<str>, Arc<Entity>)> {
        if let Some(r) = &mut self.recorder {
            r.principal(kind, who, &identity, boundary.as_ref());
        }
        let principal = Principal::parse(arn).ok()?;
        if !self.principals {
            return None;
        }
        let entity = Arc::new(
            Entity::new(
                principal,
                StatementSet::new(identity),
                boundary.map(|p| StatementSet::new([p])),
                tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                self.organization.clone(),
            )
            .with_max_session(max_session),
        );
        let key: Arc<str> = format!("{kind}/{who}").into();
        entities.insert(key.clone(), entity.clone());
        Some((key, entity))
    }

    /// The name of a kept user or role (`what`), checked against the names
    /// seen so far (a name given twice is reported by the full compile that
    /// follows).
    fn kept_name(&mut self, file: &str, what: &str, name: &str, seen: &mut Names) {
        if seen.add(name).is_some() {
            self.problems.push(Diagnostic::file(
                file,
                format!("{what} `{name}` is defined twice"),
            ));
        }
    }

    fn tags(&mut self, at: &At, who: &str, tags: &BTreeMap<String, String>, max: usize) {
        if tags.len() > max {
            self.problems.push(Diagnostic::new(at, format!("`{who}` has {} tags; the limit is {max} (AWS quota: tags per user or role; raise `limits.tags`)", tags.len())));
        }
        for (k, v) in tags {
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                self.problems.push(Diagnostic::new(
                    at,
                    format!(
                        "`{who}`: tag `{k}`: keys have 1 to 128 characters, values at most 256"
                    ),
                ));
            }
        }
    }

    fn inline(
        &mut self,
        file: &str,
        who: &str,
        what: &str,
        inline: &BTreeMap<String, RawDocument>,
        max: usize,
        limit_name: &str,
    ) -> Vec<Arc<Policy>> {
        let mut out = Vec::new();
        let mut total = 0;
        let mut first = None;
        for (name, doc) in inline {
            first.get_or_insert(&doc.referenced);
            if name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || "\\/*?".contains(c))
            {
                self.problems.push(Diagnostic::new(&yaml_at(file, &doc.referenced), format!("inline policy name `{name}` is not valid: no white space and none of `\\ / * ?`")));
            }
            let label = format!("inline policy `{name}` of {what} `{who}`");
            let policy_name = format!("{what}/{who}#{name}");
            if let Some((p, size)) =
                self.document_sized(file, doc, (&policy_name, &label), PolicyKind::Identity)
            {
                total += size;
                out.push(p);
            }
        }
        if total > max
            && let Some(loc) = first
        {
            self.problems.push(Diagnostic::new(&yaml_at(file, loc), format!("the inline policies of {what} `{who}` have {total} characters (white space not counted); the limit is {max} (AWS quota: inline policy size per {what}; raise `limits.{limit_name}`)")));
        }
        out
    }

    fn document(
        &mut self,
        file: &str,
        doc: &RawDocument,
        (name, label): (&str, &str),
        kind: PolicyKind,
        limit: Option<(usize, &str)>,
    ) -> Option<Arc<Policy>> {
        let (p, size) = self.document_sized(file, doc, (name, label), kind)?;
        if let Some((max, name)) = limit
            && size > max
        {
            self.problems.push(Diagnostic::new(&yaml_at(file, &doc.referenced), format!("the {label} has {size} characters (white space not counted); the limit is {max} (raise `limits.{name}`)")));
        }
        Some(p)
    }

    /// A document given inline (a mapping, compiled from its JSON form; errors
    /// point at the mapping's line) or as a path to a JSON file in the bundle.
    fn document_sized(
        &mut self,
        file: &str,
        doc: &RawDocument,
        (name, label): (&str, &str),
        kind: PolicyKind,
    ) -> Option<(Arc<Policy>, usize)> {
        let at = yaml_at(file, &doc.referenced);
        match &doc.value {
            serde_json::Value::String(path) => {
                let Some(text) = self
                    .files
                    .texts
                    .get(path.as_str())
                    .filter(|_| path.starts_with("documents/"))
                else {
                    self.problems.push(Diagnostic::new(&at, format!("{label}: `{path}` is not a file of the bundle: give the policy inline, or as `documents/NAME.json`")));
                    return None;
                };
                let size = size_without_whitespace(text);
                // By path (a NUL cannot begin a JSON text): the same file.
                let key = (kind, self.document_key(path));
                if let Some(p) = self.compiled.get(&key) {
                    let p = Arc::new(p.renamed(name));
                    self.record(label, kind, (path, text, None), &p);
                    return Some((p, size));
                }
                match Policy::parse(&Source::new(path, text), kind) {
                    Ok(p) => {
                        let p = Arc::new(p.with_name(name));
                        self.compiled.insert(key, p.renamed(name));
                        self.record(label, kind, (path, text, None), &p);
                        Some((p, size))
                    }
                    Err(e) => {
                        self.problems.extend(e.diagnostics.iter().map(|d| {
                            let mut d = Diagnostic::from(d);
                            d.message = format!("{} ({label})", d.message);
                            d
                        }));
                        None
                    }
                }
            }
            serde_json::Value::Object(_) => {
                let key = (kind, doc.value.to_string());
                let text = key.1.as_str();
                let size = size_without_whitespace(text);
                if let Some(p) = self.compiled.get(&key) {
                    let p = Arc::new(p.renamed(name));
                    self.record(label, kind, (file, text, Some(&at)), &p);
                    return Some((p, size));
                }
                match Policy::parse(&Source::new(name, text), kind) {
                    Ok(p) => {
                        let p = Arc::new(p);
                        self.record(label, kind, (file, text, Some(&at)), &p);
                        self.compiled.insert(key, p.renamed(""));
                        Some((p, size))
                    }
                    Err(e) => {
                        self.problems.extend(
                            e.diagnostics
                                .iter()
                                .map(|d| Diagnostic::embedded(&at, label, d)),
                        );
                        None
                    }
                }
            }
            other => {
                self.problems.push(Diagnostic::new(&at, format!("{label}: expected a policy document (a mapping) or the path of a JSON file, found {other}")));
                None
            }
        }
    }

    /// SCPs or RCPs compiled, by name; `None` for those whose files have
    /// errors (reported once, not again at each reference).
    fn guardrails(
        &mut self,
        sources: &[DocumentSource],
        kind: PolicyKind,
    ) -> FxHashMap<String, Option<Arc<Policy>>> {
        let mut docs = FxHashMap::default();
        for doc in sources {
            crate::pace::point();
            let compiled = self.policy_file(doc, kind, None, "");
            docs.insert(doc.name.clone(), compiled);
        }
        docs
    }

    /// The organization levels `levels` of `bundle.yaml` (`file`), each a
    /// list of names of `docs` (`what`: SCP or RCP, files under `dir/`).
    fn levels(
        &mut self,
        file: &str,
        levels: &[Spanned<Vec<Spanned<String>>>],
        docs: &FxHashMap<String, Option<Arc<Policy>>>,
        what: &str,
        dir: &str,
    ) -> Vec<StatementSet> {
        let mut sets = Vec::with_capacity(levels.len());
        for level in levels {
            let mut policies = Vec::new();
            for name in &level.value {
                match docs.get(&name.value) {
                    Some(Some(p)) => policies.push(p.clone()),
                    Some(None) => {}
                    None => self.problems.push(Diagnostic::new(
                        &yaml_at(file, &name.referenced),
                        format!(
                            "unknown {what} `{}`: add `{dir}/{}.json`",
                            name.value, name.value
                        ),
                    )),
                }
            }
            sets.push(StatementSet::new(policies));
        }
        sets
    }

    fn policy_file(
        &mut self,
        doc: &DocumentSource,
        kind: PolicyKind,
        max: Option<usize>,
        limit_name: &str,
    ) -> Option<Arc<Policy>> {
        let DocumentSource {
            file,
            name,
            text,
            at,
        } = doc;
        let size = size_without_whitespace(text);
        let policy = match Policy::parse(&Source::new(file, text), kind) {
            Ok(p) => p,
            Err(e) => {
                match at {
                    // Embedded: the text's own lines mean nothing to the
                    // author; name the policy's place in the file.
                    Some(at) => {
                        let label = format!("managed policy `{name}`");
                        self.problems.extend(
                            e.diagnostics
                                .iter()
                                .map(|d| Diagnostic::embedded(at, &label, d)),
                        );
                    }
                    None => self
                        .problems
                        .extend(e.diagnostics.iter().map(Diagnostic::from)),
                }
                return None;
            }
        };
        if let Some(max) = max
            && size > max
        {
            let at = at.clone().unwrap_or_else(|| At {
                file: file.clone(),
                line: 1,
                column: 1,
            });
            self.problems.push(Diagnostic::new(&at, format!("managed policy `{name}` has {size} characters (white space not counted); the limit is {max} (AWS quota: managed policy size; raise `limits.{limit_name}`)")));
        }
        // The policy is known by its name, not its file.
        let policy = Arc::new(policy.with_name(name));
        let label = if kind == PolicyKind::Scp {
            format!("SCP `{name}`")
        } else if kind == PolicyKind::Rcp {
            format!("RCP `{name}`")
        } else {
            format!("managed policy `{name}`")
        };
        self.record(&label, kind, (file, text, at.as_ref()), &policy);
        Some(policy)
    }

    /// Catalogs a compiled document, when a catalog is asked for.
    fn record(
        &mut self,
        label: &str,
        kind: PolicyKind,
        (file, text, embedded_at): (&str, &str, Option<&At>),
        policy: &Arc<Policy>,
    ) {
        let Some(r) = &mut self.recorder else { return };
        let role = match kind {
            PolicyKind::Scp => DocumentRole::Scp,
            PolicyKind::Rcp => DocumentRole::Rcp,
            PolicyKind::Resource if policy.name().ends_with("#trust") => DocumentRole::Trust,
            PolicyKind::Resource => DocumentRole::Resource,
            _ if policy.name().contains('#') => DocumentRole::Inline,
            _ => DocumentRole::Managed,
        };
        let text = r.text(text);
        r.document(Document {
            label: label.to_owned(),
            role,
            kind,
            file: file.to_owned(),
            text,
            embedded_at: embedded_at.cloned(),
            policy: policy.clone(),
        });
    }
}

/// The names of one kind seen so far, lowercased (IAM names are
/// case-insensitive): with their first spelling, for messages; or, in a
/// load that reuses kept entries, as 64-bit digests only (no string per
/// name; a false repeat only makes the load run again whole).
enum Names {
    Spelled(PacedDrop<FxHashMap<String, String>>),
    Hashed(FxHashSet<u64>),
}

impl Names {
    fn new(hashed: bool, capacity: usize) -> Self {
        if hashed {
            Self::Hashed(FxHashSet::with_capacity_and_hasher(
                capacity,
                Default::default(),
            ))
        } else {
            Self::Spelled(PacedDrop(FxHashMap::with_capacity_and_hasher(
                capacity,
                Default::default(),
            )))
        }
    }

    /// Adds `name`; when it was seen before, the spelling it had then
    /// (empty if only digests are kept).
    fn add(&mut self, name: &str) -> Option<String> {
        match self {
            Self::Spelled(seen) => seen.insert(name.to_lowercase(), name.to_owned()),
            Self::Hashed(seen) => {
                use std::hash::{Hash as _, Hasher as _};
                let mut h = std::hash::DefaultHasher::new();
                for c in name.chars().flat_map(char::to_lowercase) {
                    c.hash(&mut h);
                }
                (!seen.insert(h.finish())).then(String::new)
            }
        }
    }

    /// How `name` was spelled where it was seen, if it was.
    fn spelled(&self, name: &str) -> Option<&String> {
        match self {
            Self::Spelled(seen) => seen.get(&name.to_lowercase()),
            Self::Hashed(_) => None,
        }
    }
}

/// Whether two lists of policies are the same policies: the same names,
/// kinds and compiled bodies, in the same order.
fn same_policies(a: &[Arc<Policy>], b: &[Arc<Policy>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            Arc::ptr_eq(a, b) || (a.name() == b.name() && a.kind() == b.kind() && a.shares_body(b))
        })
}

/// The dependency numbers of an entry: the managed policies `refs` name
/// (as [`managed_ref`] reads them), and the `documents/` files its inline
/// policies and `trust` name.
fn depends<'r>(
    deps: &mut crate::cache::Deps,
    (account, partition): (&str, &str),
    refs: impl Iterator<Item = &'r Spanned<String>>,
    inline: &BTreeMap<String, RawDocument>,
    trust: Option<&RawDocument>,
) -> Vec<u32> {
    let mut out: Vec<u32> = refs
        .filter_map(|r| managed_ref(&r.value, account, partition))
        .map(|name| deps.id('m', name))
        .collect();
    for doc in inline.values().chain(trust) {
        if let serde_json::Value::String(path) = &doc.value {
            out.push(deps.id('d', path));
        }
    }
    out
}

/// The managed policy name a reference names: `Name`, or the ARN
/// `arn:PARTITION:iam::ACCOUNT:policy/PATH/Name` of the bundle's account
/// (or `aws`, for AWS managed policies); `None` for any other ARN.
fn managed_ref<'r>(text: &'r str, account: &str, partition: &str) -> Option<&'r str> {
    if !text.starts_with("arn:") {
        return Some(text);
    }
    match iamd_policy::arn::split(text) {
        Some([_, p, "iam", "", acct, res])
            if p == partition && (acct == account || acct == "aws") =>
        {
            res.strip_prefix("policy/")?.rsplit('/').next()
        }
        _ => None,
    }
}

/// `o-` and 10 to 32 lowercase letters or digits (AWS Organizations).
fn is_organization_id(id: &str) -> bool {
    id.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn limits(raw: &RawLimits) -> Limits {
    let d = Limits::default();
    Limits {
        managed_policy_size: raw.managed_policy_size.unwrap_or(d.managed_policy_size),
        user_inline_size: raw.user_inline_size.unwrap_or(d.user_inline_size),
        group_inline_size: raw.group_inline_size.unwrap_or(d.group_inline_size),
        role_inline_size: raw.role_inline_size.unwrap_or(d.role_inline_size),
        trust_policy_size: raw.trust_policy_size.unwrap_or(d.trust_policy_size),
        attached_policies: raw.attached_policies.unwrap_or(d.attached_policies),
        group_attached_policies: raw
            .group_attached_policies
            .unwrap_or(d.group_attached_policies),
        groups_per_user: raw.groups_per_user.unwrap_or(d.groups_per_user),
        tags: raw.tags.unwrap_or(d.tags),
    }
}

/// Characters of a JSON document, white space outside strings not counted.
fn size_without_whitespace(text: &str) -> usize {
    let mut in_string = false;
    let mut escaped = false;
    let mut n = 0;
    for c in text.chars() {
        if in_string {
            n += 1;
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_whitespace() {
            n += 1;
            in_string = c == '"';
        }
    }
    n
}
