//! What every remote source shares, whatever it speaks (HTTP, an OCI
//! registry): the validator of the bundle that went live, remembered only
//! once it did; the archive persisted after it did, and served at a start
//! while the source cannot be reached; polling with jitter and back-off.
//! A [`Fetch`] only has to answer one poll.

use std::time::Duration;

use iamd_bundle::{BundleError, ReadLimits};

use crate::http::Polling;
use crate::persist::{Persisted, Record};
use crate::{BundleSource, Fetched};

/// What tells the source which bundle the daemon has: an ETag (for an OCI
/// registry, the manifest's digest), or a Last-Modified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validator {
    /// The server's ETag, or the manifest's digest.
    pub etag: Option<String>,
    /// The server's Last-Modified.
    pub last_modified: Option<String>,
}

impl Validator {
    pub(crate) fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// One poll's answer.
#[derive(Debug)]
pub enum Answer {
    /// The source's archive, and what validates it.
    Archive {
        /// The archive's bytes.
        bytes: Vec<u8>,
        /// Its validator.
        validator: Validator,
    },
    /// The same as the validator asked with.
    NotModified,
}

/// One poll of a remote source.
pub trait Fetch: Send + std::fmt::Debug {
    /// Asks for the bundle, conditional on `validator` (the live bundle's,
    /// or the persisted copy's); an operator's message on failure.
    fn fetch(&mut self, validator: Option<&Validator>) -> Result<Answer, String>;

    /// The server held the last poll until something changed (long
    /// polling): the next may follow at once.
    fn held(&self) -> bool {
        false
    }

    /// The source, for logs and status: never a secret.
    fn describe(&self) -> String;
}

/// What the last read handed over, waiting for the reloader's verdict.
#[derive(Debug)]
struct Pending {
    validator: Validator,
    digest: String,
    /// The archive, to persist (none when it came from the persisted copy).
    archive: Option<Vec<u8>>,
}

/// A remote source: a [`Fetch`] with validators, persistence and polling.
#[derive(Debug)]
pub struct Remote<F> {
    fetch: F,
    shown: String,
    polling: Polling,
    limits: ReadLimits,
    /// The largest persisted copy read back.
    max_bytes: u64,
    persisted: Option<Persisted>,
    /// The validator of the bundle that is live.
    live: Option<Validator>,
    pending: Option<Pending>,
    /// A bundle from this source went live in this process.
    activated: bool,
    failures: u32,
}

impl<F: Fetch> Remote<F> {
    pub(crate) fn with(
        fetch: F,
        polling: Polling,
        limits: ReadLimits,
        max_bytes: u64,
        persist: Option<&std::path::Path>,
    ) -> Self {
        Self {
            shown: fetch.describe(),
            fetch,
            polling,
            limits,
            max_bytes,
            persisted: persist.map(Persisted::new),
            live: None,
            pending: None,
            activated: false,
            failures: 0,
        }
    }

    /// One poll: `Ok(None)` when not modified.
    fn poll(&mut self) -> Result<Option<Fetched>, String> {
        // Before anything went live, the persisted copy's validator: "not
        // modified" means the copy is current, and it serves without a
        // download.
        let saved = if self.activated {
            None
        } else {
            self.load_persisted()
        };
        let saved_validator = saved
            .as_ref()
            .and_then(|(_, r)| r.as_ref())
            .map(|r| Validator {
                etag: r.etag.clone(),
                last_modified: r.last_modified.clone(),
            })
            .filter(|v| !v.is_empty());
        let validator = self.live.clone().or(saved_validator);
        match self.fetch.fetch(validator.as_ref())? {
            Answer::NotModified if self.live.is_some() => Ok(None),
            Answer::NotModified => {
                let ((archive, _), Some(validator)) =
                    (saved.ok_or("not modified, and no copy")?, validator)
                else {
                    return Err(format!(
                        "`{}` answered \"not modified\" to an unconditional request",
                        self.shown
                    ));
                };
                let fetched = crate::archive::read(&self.persisted_name(), &archive, &self.limits)
                    .map_err(|e| e.lines().join("; "))?;
                self.pending = Some(Pending {
                    validator,
                    digest: fetched.files.digest().to_owned(),
                    archive: None,
                });
                Ok(Some(fetched))
            }
            Answer::Archive { bytes, validator } => {
                let fetched = crate::archive::read(&self.shown, &bytes, &self.limits)
                    .map_err(|e| e.lines().join("; "))?;
                self.pending = Some(Pending {
                    validator,
                    digest: fetched.files.digest().to_owned(),
                    archive: Some(bytes),
                });
                Ok(Some(fetched))
            }
        }
    }

    fn persisted_name(&self) -> String {
        match &self.persisted {
            Some(p) => format!(
                "{} (the persisted copy of {})",
                p.dir().join(crate::persist::ARCHIVE).display(),
                self.shown
            ),
            None => self.shown.clone(),
        }
    }

    fn load_persisted(&self) -> Option<crate::persist::Copy> {
        let p = self.persisted.as_ref()?;
        match p.load(self.max_bytes) {
            Ok(copy) => copy,
            Err(e) => {
                tracing::warn!(target: "iamd::reload", "the persisted bundle is ignored: {e}");
                None
            }
        }
    }

    /// The persisted copy, as the bundle to serve while the source cannot
    /// be reached, before any bundle went live.
    fn fallback(&mut self, why: &str) -> Option<Fetched> {
        if self.activated {
            return None;
        }
        let (archive, record) = self.load_persisted()?;
        match crate::archive::read(&self.persisted_name(), &archive, &self.limits) {
            Ok(mut fetched) => {
                tracing::warn!(target: "iamd::reload",
                    source = %self.shown,
                    "the bundle source cannot be reached ({why}): serving the persisted copy saved at {} until it answers",
                    record.as_ref().map_or("an unknown time", |r| r.saved_at.as_str())
                );
                fetched.persisted = true;
                self.pending = Some(Pending {
                    // Its validator is only trusted once the source confirms it.
                    validator: Validator::default(),
                    digest: fetched.files.digest().to_owned(),
                    archive: None,
                });
                Some(fetched)
            }
            Err(e) => {
                tracing::warn!(target: "iamd::reload",
                    "the persisted bundle is ignored: {}",
                    e.lines().join("; ")
                );
                None
            }
        }
    }
}

impl<F: Fetch> BundleSource for Remote<F> {
    fn read(&mut self, _settle: Duration) -> Result<Option<Fetched>, BundleError> {
        self.pending = None;
        match self.poll() {
            Ok(f) => Ok(f),
            Err(why) => match self.fallback(&why) {
                Some(f) => Ok(Some(f)),
                None => Err(crate::error(&self.shown, why)),
            },
        }
    }

    fn settled(&mut self, live: bool) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if !live {
            return;
        }
        self.activated = true;
        if let (Some(p), Some(archive)) = (&self.persisted, &pending.archive) {
            let record = Record {
                source: self.shown.clone(),
                digest: pending.digest.clone(),
                etag: pending.validator.etag.clone(),
                last_modified: pending.validator.last_modified.clone(),
                saved_at: jiff::Timestamp::now().to_string(),
            };
            if let Err(e) = p.save(archive, &record) {
                tracing::warn!(target: "iamd::reload",
                    dir = %p.dir().display(),
                    "cannot persist the bundle: {e} (it is served; a restart while the source is down would have no copy)"
                );
            }
        }
        self.live = Some(pending.validator).filter(|v| !v.is_empty());
    }

    fn next_read(&mut self, failed: bool) -> Option<Duration> {
        if failed {
            self.failures = self.failures.saturating_add(1);
        } else {
            self.failures = 0;
            if self.fetch.held() {
                return Some(Duration::ZERO);
            }
        }
        Some(self.polling.next(self.failures))
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
