//! The persisted copy of a remote source's last bundle that went live: its
//! archive (signature inside) and what the server said of it (its ETag),
//! written atomically to a directory of the operator's choosing, so that a
//! daemon starting while the server is down serves it (verified again)
//! instead of denying everything.
//!
//! The directory holds `bundle.tar.gz` and `bundle.json`; each is written
//! to a temporary file, flushed to disk and renamed over the old one, then
//! the directory itself is flushed. A copy that cannot be read or does not
//! match its record is ignored with a log line, never served half.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The archive's file name in the directory.
pub const ARCHIVE: &str = "bundle.tar.gz";
/// The record's file name.
pub const RECORD: &str = "bundle.json";

/// What is kept beside the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The source it came from ([`crate::BundleSource::describe`]).
    pub source: String,
    /// The bundle's digest.
    pub digest: String,
    /// The server's ETag for it, if any.
    pub etag: Option<String>,
    /// The server's Last-Modified for it, if any.
    pub last_modified: Option<String>,
    /// When it was saved (RFC 3339).
    pub saved_at: String,
}

/// A saved archive and its record (none when missing or unreadable).
pub type Copy = (Vec<u8>, Option<Record>);

/// A directory holding the persisted copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    dir: PathBuf,
}

impl Persisted {
    /// The copy in `dir` (made on first save).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `archive` and its `record`, replacing the previous copy.
    pub fn save(&self, archive: &[u8], record: &Record) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomically(&self.dir, ARCHIVE, archive)?;
        write_atomically(&self.dir, RECORD, &text)?;
        // The renames themselves reach the disk.
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// The saved archive and its record, if there is a copy; the record is
    /// `None` when it is missing or unreadable (the archive alone still
    /// serves: it is verified like any other).
    pub fn load(&self, max_bytes: u64) -> Result<Option<Copy>, String> {
        let path = self.dir.join(ARCHIVE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
            Ok(_) => {}
        }
        let archive = iamd_bundle::regular_file::read(&path, max_bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let record = iamd_bundle::regular_file::read(&self.dir.join(RECORD), 1 << 20)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(Some((archive, record)))
    }
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::{Persisted, Record};

    #[test]
    fn a_saved_copy_is_loaded_back_and_a_missing_record_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = Persisted::new(&dir.path().join("state"));
        assert_eq!(p.load(1 << 20).unwrap(), None);
        let record = Record {
            source: "https://h/b.tar.gz".into(),
            digest: "ab".into(),
            etag: Some("\"1\"".into()),
            last_modified: None,
            saved_at: "2026-12-03T00:00:00Z".into(),
        };
        p.save(b"archive", &record).unwrap();
        assert_eq!(
            p.load(1 << 20).unwrap(),
            Some((b"archive".to_vec(), Some(record)))
        );
        std::fs::write(p.dir().join(super::RECORD), b"{broken").unwrap();
        assert_eq!(p.load(1 << 20).unwrap(), Some((b"archive".to_vec(), None)));
        assert!(p.load(3).unwrap_err().contains("bundle.tar.gz"));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(p.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
