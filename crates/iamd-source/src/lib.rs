//! Where bundles come from. A [`BundleSource`] hands the reloader a
//! bundle's files (and their signatures, if any); the reloader verifies,
//! validates, compiles and publishes. Sources:
//!
//! - [`DirectorySource`]: a bundle directory or an AWS export file on the
//!   local file system (a mounted ConfigMap is one), watched for changes.
//! - [`http::HttpSource`]: a bundle archive at an `https://` (or
//!   `http://`) URL, polled with conditional requests, jitter and back-off.
//! - [`oci::OciSource`]: the same archive as an OCI artifact in a
//!   registry, by tag (re-resolved each poll) or pinned by digest.
//!
//! An [`archive`] is a gzipped tar of a bundle directory, read in memory
//! with the directory's rules and limits; a [`signature`] (ed25519) covers
//! the bundle's digest and revision and travels inside it. A remote
//! source keeps the last bundle that went live in a [`persist`]ed copy, so
//! that a daemon starts even when the server is down.
//!
//! Nothing here knows gRPC or the daemon: the reloader (in `iamd-server`)
//! drives a source from its own thread, and the command line builds,
//! signs and pushes archives with the same code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use iamd_bundle::{BundleError, BundleFiles, ReadLimits};

pub mod archive;
pub mod client;
pub mod http;
pub mod oci;
pub mod persist;
pub mod remote;
pub mod signature;
#[cfg(test)]
mod testing;

pub use client::ClientOptions;

/// What a source read: the bundle's files, and what the reloader needs to
/// verify and report them.
#[derive(Debug)]
pub struct Fetched {
    /// The files.
    pub files: BundleFiles,
    /// The text of the bundle's signature file ([`signature::FILE`]), if it
    /// has one.
    pub signatures: Option<String>,
    /// Read from the persisted copy because the source could not be
    /// reached: reported as such until the source answers again.
    pub persisted: bool,
}

/// A place the reloader reads bundles from.
pub trait BundleSource: Send + std::fmt::Debug {
    /// The bundle as it is now, read as one consistent snapshot, or `None`
    /// when the source says it has not changed since the last bundle that
    /// went live (an HTTP 304: no work at all). `settle` is how long a
    /// local file must go unmodified before it is read (zero at start).
    /// An error keeps the live bundle.
    fn read(&mut self, settle: Duration) -> Result<Option<Fetched>, BundleError>;

    /// Told after each read that returned files whether those files are
    /// now live (published, or the same as the live ones) or were refused.
    /// A remote source remembers its validator (an ETag) and persists the
    /// archive only for files that went live, so that a refused bundle is
    /// fetched and judged again rather than skipped by a 304.
    fn settled(&mut self, live: bool) {
        let _ = live;
    }

    /// How long to wait before the next read, after a read that failed or
    /// not; `None`: the watcher's own interval. A remote source answers with
    /// its polling interval and jitter, or its back-off.
    fn next_read(&mut self, failed: bool) -> Option<Duration> {
        let _ = failed;
        None
    }

    /// Where the bundle comes from, for logs, `GetStatus` and `/status`
    /// (a directory's path as given, a URL without its credentials).
    /// Never a secret.
    fn describe(&self) -> String;

    /// A local path whose changes the watcher should follow (file system
    /// events), if the source has one; otherwise the watcher's timer and
    /// `SIGHUP` alone ask for reloads.
    fn watch_path(&self) -> Option<&Path> {
        None
    }
}

/// A bundle directory, or an `aws iam get-account-authorization-details`
/// file, on the local file system (a mounted ConfigMap is one). A
/// directory's signatures are in its [`signature::FILE`].
#[derive(Debug, Clone)]
pub struct DirectorySource {
    dir: PathBuf,
    limits: ReadLimits,
}

impl DirectorySource {
    /// The bundle in `dir`, read with the default [`ReadLimits`].
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            limits: ReadLimits::default(),
        }
    }

    /// The same, read with `limits`.
    pub fn with_limits(mut self, limits: ReadLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl BundleSource for DirectorySource {
    fn read(&mut self, settle: Duration) -> Result<Option<Fetched>, BundleError> {
        let files = BundleFiles::read_with(&self.dir, settle, &self.limits)?;
        let signatures = if files.is_export() {
            None
        } else {
            signature::read_beside(&self.dir)?
        };
        Ok(Some(Fetched {
            files,
            signatures,
            persisted: false,
        }))
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn watch_path(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}

/// One error line about `origin` (a URL, an archive), in the form the
/// reloader reports.
pub(crate) fn error(origin: &str, message: impl Into<String>) -> BundleError {
    BundleError::new(vec![iamd_bundle::Diagnostic::file(origin, message.into())])
}

/// A bundle on the local file system, whatever its form: an archive file
/// (`iamd bundle build`'s), a bundle directory, or an AWS export file;
/// for the command line's `sign` and `verify`.
pub fn read_local(path: &Path, limits: &ReadLimits) -> Result<Fetched, BundleError> {
    let shown = path.display().to_string();
    if path.is_file() {
        let head = iamd_bundle::regular_file::read(path, limits.bundle_bytes)
            .map_err(|e| error(&shown, e.to_string()))?;
        if head.starts_with(&[0x1f, 0x8b]) {
            return archive::read(&shown, &head, limits);
        }
    }
    match DirectorySource::new(path)
        .with_limits(*limits)
        .read(Duration::ZERO)?
    {
        Some(f) => Ok(f),
        None => Err(error(&shown, "cannot be read")),
    }
}
