//! Where bundles come from: a [`BundleSource`] gives the reloader a
//! bundle's files (and so their digest); the reloader validates, compiles
//! and publishes. A directory (or an AWS export file) is one source; a
//! remote one only has to fetch bytes and hand them to
//! [`BundleFiles::from_files`], which applies the directory's rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use iamd_bundle::{BundleError, BundleFiles, ReadLimits};

/// A place the reloader reads bundles from.
pub trait BundleSource: Send + std::fmt::Debug {
    /// The bundle's files as they are now, read as one consistent
    /// snapshot; `settle` is how long a local file must go unmodified
    /// before it is read (zero at start). An error keeps the live bundle.
    fn read(&mut self, settle: Duration) -> Result<BundleFiles, BundleError>;

    /// Where the bundle comes from, for logs, `GetStatus` and `/status`
    /// (a directory's path as given). Never a secret.
    fn describe(&self) -> String;

    /// A local path whose changes the watcher should follow (file system
    /// events), if the source has one; otherwise the watcher's timer and
    /// `SIGHUP` alone ask for reloads.
    fn watch_path(&self) -> Option<&Path> {
        None
    }
}

/// A bundle directory, or an `aws iam get-account-authorization-details`
/// file, on the local file system (a mounted ConfigMap is one).
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
    fn read(&mut self, settle: Duration) -> Result<BundleFiles, BundleError> {
        BundleFiles::read_with(&self.dir, settle, &self.limits)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn watch_path(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}
