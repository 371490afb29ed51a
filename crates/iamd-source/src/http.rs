//! A bundle archive at an `https://` (or `http://`) URL, polled.
//!
//! - Conditional requests: `If-None-Match` with the ETag of the bundle
//!   that went live (or `If-Modified-Since` with its `Last-Modified` when
//!   the server sends no ETag); a 304 is no work. A validator is only
//!   remembered once its bundle went live: a refused bundle is fetched and
//!   judged again at the next poll, never skipped by a 304.
//! - Polling at a random interval between a minimum and a maximum (a fleet
//!   started together spreads out), and after a failure an exponential
//!   back-off with jitter, from one second up to a maximum.
//! - Long polling, when configured and the server supports it: `Prefer:
//!   wait=N` (RFC 7240); a server that held the request answers with
//!   `Preference-Applied`, and the next poll follows at once.
//! - A bearer token read from a file at each request (rotated tokens are
//!   used at the next poll; never logged), a client certificate, a CA.
//! - A size limit on the download, timeouts, and the archive's own limits
//!   ([`crate::archive`]).
//! - The persisted copy ([`crate::persist`]): saved after each bundle that
//!   went live, served when the server cannot be reached before any bundle
//!   did.

use std::path::PathBuf;
use std::time::Duration;

use hyper::header::{self, HeaderName};
use iamd_bundle::{BundleError, ReadLimits};

use crate::client::{self, Client, ClientOptions, Request};
use crate::persist::{Persisted, Record};
use crate::{BundleSource, Fetched};

/// When to poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// The shortest wait between two polls.
    pub min: Duration,
    /// The longest (each wait is drawn at random between the two).
    pub max: Duration,
    /// The longest wait after failures (the back-off doubles from one
    /// second, with jitter, up to this).
    pub max_backoff: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(30),
            max: Duration::from_secs(60),
            max_backoff: Duration::from_secs(120),
        }
    }
}

impl Polling {
    /// The wait before the next poll: after `failures` failures in a row
    /// (zero: the last poll worked).
    pub fn next(&self, failures: u32) -> Duration {
        if failures == 0 {
            let spread = self.max.saturating_sub(self.min);
            return self.min + spread.mul_f64(random_fraction());
        }
        let base = Duration::from_secs(1).min(self.max_backoff);
        let exp = base.saturating_mul(1u32 << (failures - 1).min(20));
        let capped = exp.min(self.max_backoff);
        // Between half of it and all of it: failing daemons do not retry
        // in step.
        capped.mul_f64(0.5 + random_fraction() / 2.0)
    }
}

/// A uniform fraction in [0, 1).
fn random_fraction() -> f64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// An HTTP source's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The archive's URL.
    pub url: String,
    /// Connecting, TLS, timeouts, the download's size limit.
    pub client: ClientOptions,
    /// A file holding a bearer token sent as `Authorization`.
    pub bearer_token_file: Option<PathBuf>,
    /// When to poll.
    pub polling: Polling,
    /// Ask the server to hold a poll this long until the bundle changes.
    pub long_poll: Option<Duration>,
    /// Where the last bundle that went live is kept.
    pub persist: Option<PathBuf>,
    /// The archive's limits once unpacked.
    pub limits: ReadLimits,
}

impl HttpOptions {
    /// The defaults for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            client: ClientOptions::default(),
            bearer_token_file: None,
            polling: Polling::default(),
            long_poll: None,
            persist: None,
            limits: ReadLimits::default(),
        }
    }
}

/// What validates a cached bundle with the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Validator {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validator {
    fn of(response: &client::Response) -> Self {
        Self {
            etag: response.header(&header::ETAG).map(str::to_owned),
            last_modified: response.header(&header::LAST_MODIFIED).map(str::to_owned),
        }
    }

    fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// What the last read handed over, waiting for the reloader's verdict.
#[derive(Debug)]
struct Pending {
    validator: Validator,
    digest: String,
    /// The archive, to persist (none when it came from the persisted copy).
    archive: Option<Vec<u8>>,
}

/// A bundle archive at a URL.
#[derive(Debug)]
pub struct HttpSource {
    options: HttpOptions,
    shown: String,
    client: Client,
    persisted: Option<Persisted>,
    /// The validator of the bundle that is live.
    live: Option<Validator>,
    pending: Option<Pending>,
    /// A bundle from this source went live in this process.
    activated: bool,
    failures: u32,
    /// The server held the last poll (long polling works).
    held: bool,
}

impl HttpSource {
    /// A source fetching `options.url`; an error for a URL that is not
    /// one, or TLS files that cannot be read.
    pub fn new(options: HttpOptions) -> Result<Self, String> {
        client::parse(&options.url)?;
        let client = Client::new(options.client.clone())?;
        Ok(Self {
            shown: client::redact(&options.url),
            persisted: options.persist.as_deref().map(Persisted::new),
            client,
            options,
            live: None,
            pending: None,
            activated: false,
            failures: 0,
            held: false,
        })
    }

    fn request(&self, validator: Option<&Validator>) -> Result<Request<'_>, String> {
        let mut request = Request::get(&self.options.url);
        if let Some(v) = validator {
            if let Some(etag) = &v.etag {
                request = request.header(header::IF_NONE_MATCH, etag)?;
            } else if let Some(lm) = &v.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, lm)?;
            }
        }
        if let Some(path) = &self.options.bearer_token_file {
            let token = iamd_bundle::regular_file::read(path, 64 << 10)
                .map_err(|e| format!("the bearer token file {}: {e}", path.display()))?;
            let token = String::from_utf8_lossy(&token).trim().to_owned();
            if token.is_empty() {
                return Err(format!("the bearer token file {} is empty", path.display()));
            }
            request = request
                .header(header::AUTHORIZATION, &format!("Bearer {token}"))
                .map_err(|_| {
                    format!(
                        "the bearer token in {} is not a valid header value",
                        path.display()
                    )
                })?;
        }
        if let Some(wait) = self.options.long_poll {
            request = request.header(PREFER, &format!("wait={}", wait.as_secs()))?;
            request.timeout = Some(self.options.client.timeout + wait);
        }
        Ok(request)
    }

    /// One poll: `Ok(None)` for a 304.
    fn fetch(&mut self) -> Result<Option<Fetched>, String> {
        // Before anything went live, a persisted copy's validator: a 304
        // means the copy is current.
        let saved = if self.activated {
            None
        } else {
            self.load_persisted()
        };
        let validator = self.live.clone().or_else(|| {
            saved
                .as_ref()
                .and_then(|(_, r)| r.as_ref())
                .map(|r| Validator {
                    etag: r.etag.clone(),
                    last_modified: r.last_modified.clone(),
                })
                .filter(|v| !v.is_empty())
        });
        let request = self.request(validator.as_ref())?;
        let response = self.client.send(request)?;
        self.held = self.options.long_poll.is_some()
            && response
                .header(&PREFERENCE_APPLIED)
                .is_some_and(|v| v.contains("wait"));
        match response.status {
            304 if validator.is_some() => {
                if self.live.is_some() {
                    return Ok(None);
                }
                // The persisted copy is what the server has.
                let (archive, record) = saved.ok_or("a 304 without a copy")?;
                let fetched =
                    crate::archive::read(&self.persisted_name(), &archive, &self.options.limits)
                        .map_err(|e| e.lines().join("; "))?;
                self.pending = Some(Pending {
                    validator: record
                        .map(|r| Validator {
                            etag: r.etag,
                            last_modified: r.last_modified,
                        })
                        .unwrap_or_default(),
                    digest: fetched.files.digest().to_owned(),
                    archive: None,
                });
                Ok(Some(fetched))
            }
            200 => {
                let fetched =
                    crate::archive::read(&self.shown, &response.body, &self.options.limits)
                        .map_err(|e| e.lines().join("; "))?;
                self.pending = Some(Pending {
                    validator: Validator::of(&response),
                    digest: fetched.files.digest().to_owned(),
                    archive: Some(response.body.to_vec()),
                });
                Ok(Some(fetched))
            }
            401 | 403 => Err(format!(
                "`{}` answered {}: the server refused this daemon's credentials (`bearerTokenFile`, the client certificate)",
                self.shown, response.status
            )),
            404 => Err(format!(
                "`{}` answered 404: there is no bundle at that URL",
                self.shown
            )),
            status => Err(format!(
                "`{}` answered {status}{}: expected 200 with a bundle archive (or 304)",
                self.shown,
                if response.url != self.options.url {
                    format!(" (from `{}`)", client::redact(&response.url))
                } else {
                    String::new()
                }
            )),
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
        match p.load(self.options.client.max_bytes) {
            Ok(copy) => copy,
            Err(e) => {
                tracing::warn!(target: "iamd::reload", "the persisted bundle is ignored: {e}");
                None
            }
        }
    }

    /// The persisted copy, as the bundle to serve while the server cannot
    /// be reached, before any bundle went live.
    fn fallback(&mut self, why: &str) -> Option<Fetched> {
        if self.activated {
            return None;
        }
        let (archive, record) = self.load_persisted()?;
        match crate::archive::read(&self.persisted_name(), &archive, &self.options.limits) {
            Ok(mut fetched) => {
                tracing::warn!(target: "iamd::reload",
                    source = %self.shown,
                    "the bundle source cannot be reached ({why}): serving the persisted copy saved at {} until it answers",
                    record.as_ref().map_or("an unknown time", |r| r.saved_at.as_str())
                );
                fetched.persisted = true;
                self.pending = Some(Pending {
                    // Its validator is only trusted when the server confirms it.
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

/// `Prefer` (RFC 7240).
const PREFER: HeaderName = HeaderName::from_static("prefer");
/// `Preference-Applied` (RFC 7240).
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

impl BundleSource for HttpSource {
    fn read(&mut self, _settle: Duration) -> Result<Option<Fetched>, BundleError> {
        self.pending = None;
        match self.fetch() {
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
            if self.held {
                return Some(Duration::ZERO);
            }
        }
        Some(self.options.polling.next(self.failures))
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::{HttpOptions, HttpSource, Polling};
    use crate::BundleSource as _;
    use std::io::{BufRead as _, Read as _, Write as _};
    use std::time::Duration;

    /// A server answering each connection's one request with the next of
    /// `answers` (the head, then the body), and handing back each request's
    /// head, lower-cased.
    fn serve(answers: Vec<(String, Vec<u8>)>) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/b.tar.gz", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (head, body) in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    request.push_str(&line.to_ascii_lowercase());
                }
                tx.send(request).unwrap();
                let head = format!(
                    "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(&body).unwrap();
                let _ = s.read(&mut [0u8; 1]);
            }
        });
        (url, rx)
    }

    fn archive() -> Vec<u8> {
        let files = iamd_bundle::BundleFiles::from_files(
            "t".as_ref(),
            [(
                "bundle.yaml".to_owned(),
                b"account: \"123456789012\"\n".to_vec(),
            )],
            &iamd_bundle::ReadLimits::default(),
        )
        .unwrap();
        crate::archive::build(&files, None).unwrap()
    }

    #[test]
    fn a_long_poll_is_asked_for_and_a_server_that_holds_it_is_polled_again_at_once() {
        let (url, requests) = serve(vec![
            ("HTTP/1.1 200 OK\r\netag: \"a\"".into(), archive()),
            (
                "HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\npreference-applied: wait=20".into(),
                Vec::new(),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\netag: \"a\"".into(),
                Vec::new(),
            ),
        ]);
        let mut options = HttpOptions::new(&url);
        options.long_poll = Some(Duration::from_secs(20));
        let mut source = HttpSource::new(options).unwrap();
        let fetched = source.read(Duration::ZERO).unwrap().unwrap();
        assert!(!fetched.persisted);
        source.settled(true);
        let first = requests.recv().unwrap();
        assert!(
            first.contains("prefer: wait=20") && !first.contains("if-none-match"),
            "{first}"
        );
        assert!(source.read(Duration::ZERO).unwrap().is_none(), "a 304");
        let second = requests.recv().unwrap();
        assert!(second.contains("if-none-match: \"a\""), "{second}");
        // The server held the poll: the next one follows at once.
        assert_eq!(source.next_read(false), Some(Duration::ZERO));
        // A server that did not: the polling interval.
        assert!(source.read(Duration::ZERO).unwrap().is_none());
        assert!(source.next_read(false).unwrap() >= Duration::from_secs(30));
    }

    #[test]
    fn polls_spread_between_the_bounds_and_failures_back_off_to_the_cap() {
        let p = Polling {
            min: Duration::from_secs(10),
            max: Duration::from_secs(20),
            max_backoff: Duration::from_secs(60),
        };
        let waits: Vec<Duration> = (0..200).map(|_| p.next(0)).collect();
        assert!(waits.iter().all(|w| (p.min..=p.max).contains(w)));
        // Spread, not in step.
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 150);
        for (failures, cap) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            let w = p.next(failures);
            let cap = Duration::from_secs(cap);
            assert!(w <= cap && w >= cap / 2, "{failures}: {w:?} vs {cap:?}");
        }
    }
}
