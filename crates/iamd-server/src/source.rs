//! Where bundles come from: the [`BundleSource`]s of `iamd-source` (a
//! directory, an archive over HTTP(S) or in an OCI registry), and which one
//! a `--bundle` names.

pub use iamd_source::{BundleSource, DirectorySource, Fetched};

use std::path::PathBuf;
use std::time::Duration;

use iamd_bundle::ReadLimits;
use iamd_source::http::{HttpOptions, HttpSource, Polling};
use iamd_source::oci::{Credentials, OciOptions, OciSource};
use iamd_source::signature::Verifier;
use serde::Deserialize;

/// `bundle:` in the configuration file: where the bundle comes from, as a
/// string (a directory, an AWS export file, an `https://` URL) or with
/// its settings. A later list of named bundles (`bundles:`, tenants) takes
/// entries of this same shape.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileBundle {
    /// A directory, an AWS export file, an `https://`/`http://` URL of a
    /// bundle archive, or an OCI reference (`oci://REGISTRY/REPO:TAG`,
    /// `...@sha256:DIGEST`).
    pub source: Option<String>,
    /// Seconds between polls of a remote source, at least (30).
    pub poll_min_seconds: Option<u64>,
    /// And at most (60): each wait is drawn between the two.
    pub poll_max_seconds: Option<u64>,
    /// The longest wait after failures (120).
    pub max_backoff_seconds: Option<u64>,
    /// Ask the server to hold each poll this long (`Prefer: wait`).
    pub long_poll_seconds: Option<u64>,
    /// The longest a download may take (30).
    pub timeout_seconds: Option<u64>,
    /// The longest a connection may take (5).
    pub connect_timeout_seconds: Option<u64>,
    /// The largest download, in bytes (256 MiB).
    pub max_bytes: Option<u64>,
    /// A file holding the bearer token sent to the server (or registry).
    pub bearer_token_file: Option<PathBuf>,
    /// A file holding `user:password` for an OCI registry.
    pub basic_auth_file: Option<PathBuf>,
    /// CAs for the server's certificate (PEM); default: the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for servers that require one.
    pub client_cert_file: Option<PathBuf>,
    /// Its key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// Where the last bundle that went live is kept, to serve at a start
    /// while the source is down.
    pub persist_dir: Option<PathBuf>,
    /// Bytes in one file of the bundle, at most (64 MiB).
    pub max_file_bytes: Option<u64>,
    /// Bytes in all the bundle's files together, at most (1 GiB).
    pub max_total_bytes: Option<u64>,
    /// Files in the bundle, at most (100,000).
    pub max_files: Option<usize>,
    /// Signatures required.
    #[serde(default)]
    pub verify: FileVerify,
    /// The staleness policy.
    #[serde(default)]
    pub staleness: FileStaleness,
}

/// `bundle.verify:`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileVerify {
    /// Public keys (PEM): a bundle must be signed by one of them.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
}

/// `bundle.staleness:`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileStaleness {
    /// Stop serving after this long without a successful read (absent:
    /// serve the last good bundle forever).
    pub max_age_seconds: Option<u64>,
}

/// `bundle: PATH` is `bundle: {source: PATH}`.
pub(crate) fn deserialize_bundle<'de, D>(d: D) -> Result<Option<FileBundle>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<FileBundle>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a directory, a file or a URL, or a map with `source:`")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(FileBundle {
                source: Some(v.to_owned()),
                ..FileBundle::default()
            }))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            FileBundle::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}

/// Where the bundle comes from, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory or an AWS export file.
    Local(PathBuf),
    /// A bundle archive at a URL.
    Http(Box<HttpOptions>),
    /// A bundle archive in an OCI registry.
    Oci(Box<OciOptions>),
}

/// The bundle's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleConfig {
    /// Where it comes from.
    pub location: Location,
    /// The public keys that must have signed it (none: not required).
    pub verify_keys: Vec<PathBuf>,
    /// The staleness policy.
    pub max_age: Option<Duration>,
    /// How much of a bundle is read.
    pub limits: ReadLimits,
}

impl BundleConfig {
    /// The file's `bundle:`, the flags over it (`--bundle`,
    /// `--bundle-verify-key`, `--bundle-persist-dir`); every problem into
    /// `problems`.
    pub fn resolve(
        file: Option<FileBundle>,
        flag: Option<String>,
        flag_keys: Vec<PathBuf>,
        flag_persist: Option<PathBuf>,
        problems: &mut Vec<String>,
    ) -> Option<Self> {
        let file = file.unwrap_or_default();
        let Some(source) = flag.or(file.source.clone()) else {
            problems.push("no bundle: give `--bundle PATH`, `IAMD_BUNDLE` or `bundle:` in the configuration file".to_owned());
            return None;
        };
        let limits = read_limits(&file, problems);
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        let persist = flag_persist.or(file.persist_dir.clone());
        let http = source.starts_with("https://") || source.starts_with("http://");
        let oci = source.starts_with("oci://");
        let location = if http || oci {
            let polling = Polling {
                min: secs(file.poll_min_seconds, 30),
                max: secs(
                    file.poll_max_seconds,
                    file.poll_min_seconds.unwrap_or(30).max(60),
                ),
                max_backoff: secs(file.max_backoff_seconds, 120),
            };
            if polling.min > polling.max {
                problems.push(format!(
                    "bundle.pollMinSeconds ({}) is more than bundle.pollMaxSeconds ({})",
                    polling.min.as_secs(),
                    polling.max.as_secs()
                ));
            }
            let mut client = iamd_source::ClientOptions {
                timeout: secs(file.timeout_seconds, 30),
                connect_timeout: secs(file.connect_timeout_seconds, 5),
                ca_file: file.ca_file.clone(),
                client_cert: file.client_cert_file.clone(),
                client_key: file.client_key_file.clone(),
                ..iamd_source::ClientOptions::default()
            };
            client.max_bytes = file.max_bytes.unwrap_or(client.max_bytes);
            if oci {
                if let Err(e) = iamd_source::oci::Reference::parse(&source) {
                    problems.push(format!("bundle: {e}"));
                }
                if file.long_poll_seconds.is_some() {
                    problems.push("bundle.longPollSeconds is for an HTTP source: a registry does not hold polls".to_owned());
                }
                let mut options = OciOptions::new(&source);
                options.polling = polling;
                options.limits = limits;
                options.client = client;
                options.credentials = Credentials {
                    token_file: file.bearer_token_file.clone(),
                    basic_file: file.basic_auth_file.clone(),
                };
                options.persist = persist;
                Location::Oci(Box::new(options))
            } else {
                if file.basic_auth_file.is_some() {
                    problems.push("bundle.basicAuthFile is for an OCI registry: an HTTP source sends `bearerTokenFile`".to_owned());
                }
                let mut options = HttpOptions::new(&source);
                options.polling = polling;
                options.limits = limits;
                options.client = client;
                options.bearer_token_file = file.bearer_token_file.clone();
                options.long_poll = file
                    .long_poll_seconds
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
                options.persist = persist;
                Location::Http(Box::new(options))
            }
        } else {
            if source.contains("://") {
                problems.push(format!(
                    "bundle: `{source}`: iamd reads a directory, an AWS export file, an `https://` or `http://` URL, or an `oci://` reference"
                ));
            }
            let remote_only = [
                ("pollMinSeconds", file.poll_min_seconds.is_some()),
                ("pollMaxSeconds", file.poll_max_seconds.is_some()),
                ("longPollSeconds", file.long_poll_seconds.is_some()),
                ("bearerTokenFile", file.bearer_token_file.is_some()),
                ("basicAuthFile", file.basic_auth_file.is_some()),
                ("caFile", file.ca_file.is_some()),
                ("persistDir", persist.is_some()),
            ];
            for (key, given) in remote_only {
                if given {
                    problems.push(format!(
                        "bundle.{key} is for a remote source, and `{source}` is a local path: remove it"
                    ));
                }
            }
            Location::Local(PathBuf::from(&source))
        };
        let mut verify_keys = file.verify.keys;
        verify_keys.extend(flag_keys);
        Some(Self {
            location,
            verify_keys,
            max_age: file.staleness.max_age_seconds.map(Duration::from_secs),
            limits,
        })
    }

    /// The source and the verifier it describes; an error for a key or a
    /// TLS file that cannot be read.
    pub fn open(&self) -> Result<(Box<dyn BundleSource>, Option<Verifier>), String> {
        let source: Box<dyn BundleSource> = match &self.location {
            Location::Local(path) => Box::new(DirectorySource::new(path).with_limits(self.limits)),
            Location::Http(options) => Box::new(HttpSource::new((**options).clone())?),
            Location::Oci(options) => Box::new(OciSource::new((**options).clone())?),
        };
        let verifier = if self.verify_keys.is_empty() {
            None
        } else {
            Some(Verifier::read(&self.verify_keys).map_err(|e| e.0)?)
        };
        Ok((source, verifier))
    }
}

/// `bundle.maxFileBytes`, `maxTotalBytes` and `maxFiles` over the
/// defaults; a zero, or a file limit over the total, into `problems`.
fn read_limits(file: &FileBundle, problems: &mut Vec<String>) -> ReadLimits {
    let d = ReadLimits::default();
    let limits = ReadLimits {
        file_bytes: file.max_file_bytes.unwrap_or(d.file_bytes),
        bundle_bytes: file.max_total_bytes.unwrap_or(d.bundle_bytes),
        files: file.max_files.unwrap_or(d.files),
        ..d
    };
    for (key, zero) in [
        ("maxFileBytes", limits.file_bytes == 0),
        ("maxTotalBytes", limits.bundle_bytes == 0),
        ("maxFiles", limits.files == 0),
    ] {
        if zero {
            problems.push(format!(
                "bundle.{key} is 0: no bundle could be read; give a positive number or remove it"
            ));
        }
    }
    if limits.file_bytes > limits.bundle_bytes {
        problems.push(format!(
            "bundle.maxFileBytes ({}) is more than bundle.maxTotalBytes ({}): raise maxTotalBytes too",
            limits.file_bytes, limits.bundle_bytes
        ));
    }
    limits
}
