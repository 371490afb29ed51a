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
use iamd_bundle::ReadLimits;

use crate::client::{self, Client, ClientOptions, Request};
use crate::remote::{Answer, Fetch, Remote, Validator};

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

impl client::Response {
    fn validator(&self) -> Validator {
        Validator {
            etag: self.header(&header::ETAG).map(str::to_owned),
            last_modified: self.header(&header::LAST_MODIFIED).map(str::to_owned),
        }
    }
}

/// A bundle archive at a URL.
pub type HttpSource = Remote<HttpFetch>;

impl HttpSource {
    /// A source fetching `options.url`; an error for a URL that is not
    /// one, or TLS files that cannot be read.
    pub fn new(options: HttpOptions) -> Result<Self, String> {
        client::parse(&options.url)?;
        let client = Client::new(options.client.clone())?;
        let (polling, limits, max) = (options.polling, options.limits, options.client.max_bytes);
        let persist = options.persist.clone();
        let fetch = HttpFetch {
            shown: client::redact(&options.url),
            client,
            options,
            held: false,
        };
        Ok(Remote::with(
            fetch,
            polling,
            limits,
            max,
            persist.as_deref(),
        ))
    }
}

/// One poll of a URL.
#[derive(Debug)]
pub struct HttpFetch {
    options: HttpOptions,
    shown: String,
    client: Client,
    /// The server held the last poll (long polling works).
    held: bool,
}

/// The `Authorization` header's value from a bearer token file, read at
/// each request (a rotated token is used at the next); never shown.
pub(crate) fn bearer(path: &std::path::Path) -> Result<String, String> {
    let token = iamd_bundle::regular_file::read(path, 64 << 10)
        .map_err(|e| format!("the bearer token file {}: {e}", path.display()))?;
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    if token.is_empty() || token.chars().any(|c| c.is_control()) {
        return Err(format!(
            "the bearer token file {} is empty or not one line of text",
            path.display()
        ));
    }
    Ok(format!("Bearer {token}"))
}

impl HttpFetch {
    fn request(&self, validator: Option<&Validator>) -> Result<Request, String> {
        let mut request = Request::get(self.options.url.as_str());
        if let Some(v) = validator {
            if let Some(etag) = &v.etag {
                request = request.header(header::IF_NONE_MATCH, etag)?;
            } else if let Some(lm) = &v.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, lm)?;
            }
        }
        if let Some(path) = &self.options.bearer_token_file {
            request = request.header(header::AUTHORIZATION, &bearer(path)?)?;
        }
        if let Some(wait) = self.options.long_poll {
            request = request.header(PREFER, &format!("wait={}", wait.as_secs()))?;
            request.timeout = Some(self.options.client.timeout + wait);
        }
        Ok(request)
    }
}

impl Fetch for HttpFetch {
    fn fetch(&mut self, validator: Option<&Validator>) -> Result<Answer, String> {
        let request = self.request(validator)?;
        let response = self.client.send(request)?;
        self.held = self.options.long_poll.is_some()
            && response
                .header(&PREFERENCE_APPLIED)
                .is_some_and(|v| v.contains("wait"));
        match response.status {
            304 if validator.is_some() => Ok(Answer::NotModified),
            200 => Ok(Answer::Archive {
                validator: response.validator(),
                bytes: response.body.to_vec(),
            }),
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

    fn held(&self) -> bool {
        self.held
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

/// `Prefer` (RFC 7240).
const PREFER: HeaderName = HeaderName::from_static("prefer");
/// `Preference-Applied` (RFC 7240).
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

#[cfg(test)]
mod tests {
    use super::{HttpOptions, HttpSource, Polling};
    use crate::BundleSource as _;
    use crate::testing::serve;
    use std::time::Duration;

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
        let (addr, requests) = serve(vec![
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
        let url = format!("http://{addr}/b.tar.gz");
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
