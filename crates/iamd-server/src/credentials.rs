//! The credentials source: the secret side, apart from the bundle.
//!
//! A directory (a Kubernetes Secret mounted read-only, in production)
//! holding `credentials.json`. The [`CredentialStore`] holds what is live
//! behind one `ArcSwap`, written only by its [`CredentialLoader`], which
//! checks the file's metadata on a timer (a Secret's update is a symlink
//! swap, which changes it) and loads it again when it changed. A file that
//! does not load never replaces the live credentials: the error is logged
//! and kept in the status, and the last good keys keep signing. Nothing
//! here logs a secret: the errors never quote values
//! ([`iamd_credentials::file`]), and the status shows a digest prefix and
//! counts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use iamd_credentials::Credentials;
use iamd_credentials::file::CredentialsFile;
use jiff::Timestamp;

use crate::decide::SessionPolicy;

/// The condition keys AWS sets for a request `v` verified, at `now`: the
/// signature's region; for temporary credentials, their MFA (present, and
/// its age in seconds when present), issue time and source identity. A long-term key has no
/// `aws:MultiFactorAuthPresent` at all, as in AWS.
pub fn signed_facts(v: &iamd_credentials::Verified, now: Timestamp) -> Vec<(&'static str, String)> {
    let mut facts = vec![("aws:RequestedRegion", v.region.clone())];
    if let Some(session) = &v.session {
        facts.push((
            "aws:MultiFactorAuthPresent",
            session.mfa_at.is_some().to_string(),
        ));
        if let Some(at) = session.mfa_at {
            let age = (now.as_second() - at.as_second()).max(0);
            facts.push(("aws:MultiFactorAuthAge", age.to_string()));
        }
        facts.push(("aws:TokenIssueTime", session.issued.to_string()));
        if let Some(si) = &session.source_identity {
            facts.push(("aws:SourceIdentity", si.clone()));
        }
    }
    facts
}

/// What the loader reports about the credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialStatus {
    /// The directory.
    pub dir: PathBuf,
    /// The first 12 hex digits of the live file's SHA-256.
    pub digest: Option<String>,
    /// Keys, and active keys, live.
    pub keys: (usize, usize),
    /// When the live credentials were loaded.
    pub loaded_at: Option<Timestamp>,
    /// The last failure, if it is newer than the live credentials: when,
    /// and what.
    pub last_failure: Option<(Timestamp, String)>,
    /// Loads that made new credentials live, and that failed.
    pub loads: (u64, u64),
}

/// What is live: the credentials, if any loaded, and the loader's report.
#[derive(Debug, Default)]
pub struct CredentialSnapshot {
    /// The live credentials: without them a signed request is answered
    /// 503, never allowed.
    pub credentials: Option<Arc<Credentials>>,
    /// The report.
    pub status: CredentialStatus,
}

/// The live [`CredentialSnapshot`]; only its [`CredentialLoader`] writes
/// it.
#[derive(Debug)]
pub struct CredentialStore {
    live: ArcSwap<CredentialSnapshot>,
    /// Session policies compiled, by their text (a session's requests
    /// share one).
    policies: moka::sync::Cache<Arc<str>, SessionPolicy>,
}

impl Default for CredentialStore {
    fn default() -> Self {
        Self {
            live: ArcSwap::default(),
            policies: moka::sync::Cache::builder()
                .max_capacity(SESSION_POLICIES_KEPT)
                .build(),
        }
    }
}

/// How many compiled session policies are kept.
const SESSION_POLICIES_KEPT: u64 = 10_000;

impl CredentialStore {
    /// The session policy `text`, compiled (once for all the requests that
    /// carry it).
    pub fn session_policy(&self, text: &str) -> Result<SessionPolicy, String> {
        if let Some(p) = self.policies.get(text) {
            return Ok(p);
        }
        let p = SessionPolicy::compile(text)?;
        self.policies.insert(text.into(), p.clone());
        Ok(p)
    }

    /// The live credentials, if any.
    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        self.live.load().credentials.clone()
    }

    /// The loader's report.
    pub fn status(&self) -> CredentialStatus {
        self.live.load().status.clone()
    }
}

/// What identifies a version of the file without reading it.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

/// The one writer of a [`CredentialStore`]: loads the directory at start
/// and whenever its file changes.
#[derive(Debug)]
pub struct CredentialLoader {
    dir: PathBuf,
    store: Arc<CredentialStore>,
    seen: Stamp,
    checked_once: bool,
}

impl CredentialLoader {
    /// A loader of `dir`, and the store it writes.
    pub fn new(dir: &Path) -> (Self, Arc<CredentialStore>) {
        let store = Arc::new(CredentialStore::default());
        store.live.store(Arc::new(CredentialSnapshot {
            credentials: None,
            status: CredentialStatus {
                dir: dir.to_owned(),
                ..CredentialStatus::default()
            },
        }));
        let loader = Self {
            dir: dir.to_owned(),
            store: store.clone(),
            seen: None,
            checked_once: false,
        };
        (loader, store)
    }

    /// Loads the file if it changed since the last look (always, the first
    /// time): `Ok(true)` when new credentials went live, `Err` with the
    /// reason when the file did not load (the live ones stay).
    pub fn load(&mut self) -> Result<bool, String> {
        let now = stamp(&self.dir.join(iamd_credentials::file::FILE));
        if self.checked_once && now == self.seen {
            return Ok(false);
        }
        self.checked_once = true;
        self.seen = now;
        let current = self.store.live.load_full();
        let mut status = current.status.clone();
        match CredentialsFile::read(&self.dir) {
            Ok((file, digest)) => {
                let short = digest.get(..12).unwrap_or_default().to_owned();
                if status.digest.as_deref() == Some(short.as_str()) && current.credentials.is_some()
                {
                    return Ok(false);
                }
                let credentials = Credentials::new(&file, digest);
                if let Some(older) = &current.credentials {
                    credentials.carry_last_used(older);
                }
                status.digest = Some(short);
                status.keys = credentials.counts();
                status.loaded_at = Some(Timestamp::now());
                status.last_failure = None;
                status.loads.0 += 1;
                tracing::info!(target: "iamd::credentials",
                    dir = %self.dir.display(),
                    keys = status.keys.0,
                    active = status.keys.1,
                    digest = status.digest.as_deref().unwrap_or_default(),
                    "credentials loaded"
                );
                self.store.live.store(Arc::new(CredentialSnapshot {
                    credentials: Some(Arc::new(credentials)),
                    status,
                }));
                Ok(true)
            }
            Err(e) => {
                let text = e.to_string();
                status.last_failure = Some((Timestamp::now(), text.clone()));
                status.loads.1 += 1;
                let kept = if current.credentials.is_some() {
                    "the last good credentials stay live"
                } else {
                    "no credentials are live: signed requests are refused"
                };
                tracing::error!(target: "iamd::credentials",
                    dir = %self.dir.display(),
                    "credentials not loaded ({kept}):\n{text}"
                );
                self.store.live.store(Arc::new(CredentialSnapshot {
                    credentials: current.credentials.clone(),
                    status,
                }));
                Err(text)
            }
        }
    }

    /// Checks the file every `every` on a thread of its own, until the
    /// returned guard is dropped.
    pub fn watch(mut self, every: Duration) -> std::io::Result<CredentialWatcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("iamd-credentials".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(every);
                    let _ = self.load();
                }
            })?;
        Ok(CredentialWatcher { stop })
    }
}

/// The credentials watcher's thread; dropping it stops the thread.
#[derive(Debug)]
pub struct CredentialWatcher {
    stop: Arc<AtomicBool>,
}

impl Drop for CredentialWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamd_credentials::file::{AccessKey, Status};
    use iamd_credentials::key::{self, KeyKind};

    fn file(n: usize) -> CredentialsFile {
        CredentialsFile {
            access_keys: (0..n)
                .map(|i| {
                    let (id, secret) = key::generate(KeyKind::LongTerm).unwrap();
                    AccessKey {
                        id,
                        user: format!("user{i}"),
                        secret,
                        status: Status::Active,
                        created: None,
                    }
                })
                .collect(),
            ..CredentialsFile::default()
        }
    }

    #[test]
    fn a_bad_file_keeps_the_last_good_keys_and_says_why_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let (mut loader, store) = CredentialLoader::new(dir.path());
        let good = file(2);
        good.write(dir.path()).unwrap();
        assert_eq!(loader.load(), Ok(true));
        assert_eq!(store.status().keys, (2, 2));
        let first = store.credentials().unwrap();
        // Unchanged: nothing to do.
        assert_eq!(loader.load(), Ok(false));
        // A secret in the wrong place and a syntax error later: refused,
        // the two keys stay, and no message quotes the secret.
        let secret = good.access_keys[0].secret.expose().to_owned();
        let broken = good
            .to_json()
            .replacen("\"accessKeyId\"", "\"accessKeyID\"", 1);
        std::fs::write(dir.path().join("credentials.json"), &broken).unwrap();
        let e = loader.load().unwrap_err();
        assert!(
            e.contains("accessKeys[0]: unknown field `accessKeyID`"),
            "{e}"
        );
        assert!(!e.contains(&secret), "{e}");
        let status = store.status();
        assert_eq!(status.keys, (2, 2));
        assert_eq!(status.loads, (1, 1));
        assert!(Arc::ptr_eq(&store.credentials().unwrap(), &first));
        assert!(!format!("{status:?}").contains(&secret));
        // A good file again: live, the failure cleared.
        file(3).write(dir.path()).unwrap();
        assert_eq!(loader.load(), Ok(true));
        let status = store.status();
        assert_eq!((status.keys, status.last_failure), ((3, 3), None));
    }

    #[test]
    fn no_directory_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let (mut loader, store) = CredentialLoader::new(&dir.path().join("missing"));
        assert!(loader.load().is_err());
        assert!(store.credentials().is_none());
        // The directory appears (a Secret mounted late): loaded.
        file(1).write(&dir.path().join("missing")).unwrap();
        assert_eq!(loader.load(), Ok(true));
        assert!(store.credentials().is_some());
    }
}
