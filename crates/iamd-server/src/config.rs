//! The daemon's configuration file (`iamd serve --config FILE`): YAML, every
//! key optional. Flags and environment variables override it; defaults fill
//! the rest (`ServeConfig::resolve`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::{ConnectionLimits, Listen, RequestLimits};
use crate::telemetry::LogFormat;

/// The file as written.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// The bundle: a directory, an AWS export file or a URL, or a map
    /// with its settings ([`crate::source::FileBundle`]).
    #[serde(default, deserialize_with = "crate::source::deserialize_bundle")]
    pub bundle: Option<crate::source::FileBundle>,
    /// `HOST:PORT` or `unix:PATH`.
    pub listen: Option<String>,
    /// The admin HTTP listener's `HOST:PORT`.
    pub admin_listen: Option<String>,
    /// Threads answering calls.
    pub workers: Option<usize>,
    /// gRPC limits.
    #[serde(default)]
    pub limits: FileLimits,
    /// Bundle reloading.
    #[serde(default)]
    pub reload: FileReload,
    /// Logging.
    #[serde(default)]
    pub log: FileLog,
    /// The decision log (off when absent).
    #[serde(default)]
    pub decision_log: Option<FileDecisionLog>,
    /// TLS on the gRPC listener (off when absent).
    #[serde(default)]
    pub tls: FileTls,
    /// Envoy's external authorization (off when absent).
    #[serde(default)]
    pub envoy: Option<crate::envoy::FileMapping>,
    /// The AuthZEN API (off unless it has a listener).
    #[serde(default)]
    pub authzen: Option<FileAuthZen>,
    /// The credentials source (off when absent).
    #[serde(default)]
    pub credentials: Option<FileCredentials>,
    /// The local STS (off unless it has a listener).
    #[serde(default)]
    pub sts: Option<FileSts>,
}

/// `sts:`: the local STS's listener.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileSts {
    /// `HOST:PORT` (`--sts-listen`).
    pub listen: Option<String>,
    /// The issuers whose tokens `AssumeRoleWithWebIdentity` takes.
    #[serde(default)]
    pub web_identity: Vec<FileWebIdentity>,
}

/// A trusted issuer of web identity tokens (a SPIRE server's JWT-SVIDs).
#[derive(Debug, Default, Deserialize, PartialEq, Eq, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileWebIdentity {
    /// The tokens' `iss`.
    pub issuer: String,
    /// The issuer's keys: a JWKS document, read at each call (a rotation
    /// needs no restart).
    pub jwks_file: PathBuf,
    /// The audiences accepted: a token's `aud` must hold one.
    pub audiences: Vec<String>,
}

/// `credentials:`: the directory of access keys (the secret side), and
/// how often it is checked for a change.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileCredentials {
    /// The directory holding `credentials.json` (`--credentials`).
    pub dir: Option<PathBuf>,
    /// Milliseconds between checks of the file [default: 2000].
    pub poll_interval_ms: Option<u64>,
}

/// `authzen:`: its listener and the callers' tokens; the mapping's keys
/// are in [`crate::authzen::FileMapping`].
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileAuthZen {
    /// `HOST:PORT` (`--authzen-listen`).
    pub listen: Option<String>,
    /// The base URL the metadata names (`https://pdp.example.com`).
    pub base_url: Option<String>,
    /// The largest request body, in bytes (1 MiB).
    pub max_body_bytes: Option<usize>,
    /// A file of the tokens callers may send, one a line (`#` comments):
    /// `Authorization: Bearer TOKEN`, or the `apiKeyHeader`.
    pub token_file: Option<PathBuf>,
    /// A header carrying an API key, beside `Authorization`.
    pub api_key_header: Option<String>,
    /// From AuthZEN's entities to iamd's terms.
    #[serde(default)]
    pub mapping: crate::authzen::FileMapping,
}

/// `tls:`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileTls {
    /// The certificate chain, PEM.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM.
    pub key_file: Option<PathBuf>,
    /// CAs for client certificates: mutual TLS when given.
    pub client_ca_file: Option<PathBuf>,
    /// Seconds between checks of the files.
    pub reload_interval_seconds: Option<u64>,
}

/// `decisionLog:`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileDecisionLog {
    /// A file (appended) or `stdout`.
    pub path: Option<String>,
    /// The fraction of decisions logged, 0 to 1.
    pub sample_rate: Option<f64>,
    /// Log denies only.
    pub denies_only: Option<bool>,
    /// Context keys whose values are masked.
    #[serde(default)]
    pub mask_keys: Vec<String>,
    /// Records waiting to be written before records are dropped.
    pub queue: Option<usize>,
    /// Bytes waiting to be written before records are dropped.
    pub queue_bytes: Option<usize>,
    /// Bytes of each context value kept in a record.
    pub value_bytes: Option<usize>,
    /// The audit mode: wait for room instead of dropping.
    pub backpressure: Option<bool>,
}

/// `limits:`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileLimits {
    /// Requests in one `AuthorizeBatch`.
    pub max_batch: Option<usize>,
    /// Bytes in one message.
    pub max_message_bytes: Option<usize>,
    /// Calls in flight.
    pub max_concurrent_requests: Option<usize>,
    /// Milliseconds a call may take.
    pub request_timeout_ms: Option<u64>,
    /// Milliseconds a shutdown waits for open calls and connections.
    pub drain_timeout_ms: Option<u64>,
    /// Keys in one request's context.
    pub max_context_keys: Option<usize>,
    /// Values in one request's context.
    pub max_context_values: Option<usize>,
    /// Bytes in any one string of a request.
    pub max_field_bytes: Option<usize>,
    /// Connections open at once, per listener.
    pub max_connections: Option<usize>,
    /// Streams at once on one HTTP/2 connection.
    pub max_streams_per_connection: Option<usize>,
    /// Milliseconds a new connection has for its handshake and first bytes.
    pub handshake_timeout_ms: Option<u64>,
    /// Milliseconds between HTTP/2 pings.
    pub keepalive_interval_ms: Option<u64>,
    /// Milliseconds a ping may wait for its answer.
    pub keepalive_timeout_ms: Option<u64>,
    /// Milliseconds a connection may stay open before it is asked to close.
    pub max_connection_age_ms: Option<u64>,
}

/// `reload:`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileReload {
    /// Seconds between digest checks.
    pub poll_interval_seconds: Option<u64>,
    /// Milliseconds without file events before reloading.
    pub debounce_ms: Option<u64>,
    /// Milliseconds a file must go unmodified before a reload reads it.
    pub settle_ms: Option<u64>,
}

/// `log:`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileLog {
    /// `human` or `json`.
    pub format: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: Option<String>,
}

/// The configuration could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, or is not valid YAML for a configuration:
    /// where, and what is wrong.
    #[error("{0}")]
    File(iamd_bundle::Diagnostic),
    /// Settings that cannot be used together or at all, every one at once,
    /// each a line that names its setting.
    #[error("{}", .0.join("\n"))]
    Settings(Vec<String>),
}

impl ConfigError {
    /// The problems, one line each.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::File(d) => vec![d.to_string()],
            Self::Settings(lines) => lines.clone(),
        }
    }
}

/// The largest configuration file read: a few kilobytes is typical.
const CONFIG_BYTES: u64 = 1 << 20;

/// Reads a configuration file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let name = path.display().to_string();
    let bytes = iamd_bundle::regular_file::read(path, CONFIG_BYTES)
        .map_err(|e| ConfigError::File(iamd_bundle::Diagnostic::file(&*name, e.to_string())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::File(iamd_bundle::Diagnostic::file(&*name, "not UTF-8 text")))?;
    serde_saphyr::from_str(&text)
        .map_err(|e| ConfigError::File(iamd_bundle::yaml_diagnostic(&name, &e)))
}

/// What the command line and the environment gave (`None`: not given):
/// the flags of `iamd serve` other than `--config`, each with its
/// environment variable. A new setting is a field here, one in the file's
/// types above, and its line in [`ServeConfig::resolve`].
#[derive(Debug, Default, Clone, PartialEq, clap::Args)]
pub struct Overrides {
    /// The bundle: a directory, an `aws iam get-account-authorization-details`
    /// file, the `https://` (or `http://`) URL of a bundle archive, or an
    /// OCI reference `oci://REGISTRY/REPO:TAG` or `...@sha256:DIGEST`
    /// (docs/bundles.md).
    #[arg(long, env = "IAMD_BUNDLE", value_name = "PATH|URL|REF")]
    pub bundle: Option<String>,
    /// Serve only bundles signed by this public key (PEM; repeatable:
    /// any of them).
    #[arg(long = "bundle-verify-key", value_name = "FILE")]
    pub bundle_verify_keys: Vec<PathBuf>,
    /// Keep the last remote bundle that went live here, and serve it at a
    /// start while the source is down.
    #[arg(long, env = "IAMD_BUNDLE_PERSIST_DIR", value_name = "DIR")]
    pub bundle_persist_dir: Option<PathBuf>,
    /// gRPC address: `HOST:PORT` or `unix:PATH` [default: 127.0.0.1:50051].
    #[arg(long, env = "IAMD_LISTEN")]
    pub listen: Option<String>,
    /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`, `/status`)
    /// [default: 127.0.0.1:9464].
    #[arg(long, env = "IAMD_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Threads answering calls: 1 serves every connection on one thread,
    /// the fastest per core (docs/operations.md); more, for more cores
    /// [default: 1].
    #[arg(long, env = "IAMD_WORKERS")]
    pub workers: Option<usize>,
    /// Most requests in one AuthorizeBatch [default: 1000].
    #[arg(long, env = "IAMD_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Largest message, in bytes, either way [default: 4194304].
    #[arg(long, env = "IAMD_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Calls handled at once, over all connections; more wait their turn
    /// [default: 1024].
    #[arg(long, env = "IAMD_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// The longest a call may take, in milliseconds; a shorter client
    /// deadline wins [default: 5000].
    #[arg(long, env = "IAMD_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// How long a shutdown waits for open calls and connections, in
    /// milliseconds, before it closes them [default: 20000].
    #[arg(long, env = "IAMD_DRAIN_TIMEOUT_MS")]
    pub drain_timeout_ms: Option<u64>,
    /// Seconds between digest checks of the bundle, a backstop for missed
    /// file events [default: 10].
    #[arg(
        long = "poll-interval",
        env = "IAMD_POLL_INTERVAL",
        value_name = "POLL_INTERVAL"
    )]
    pub poll_interval_seconds: Option<u64>,
    /// Log format: `human` or `json` [default: human].
    #[arg(long, env = "IAMD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Least severe level logged: error, warn, info, debug or trace
    /// [default: info].
    #[arg(long, env = "IAMD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Write the decision log to this file (appended), or `stdout` [default: off].
    #[arg(long, env = "IAMD_DECISION_LOG", value_name = "PATH")]
    pub decision_log: Option<String>,
    /// The fraction of decisions logged, from 0 to 1 [default: 1].
    #[arg(long, env = "IAMD_DECISION_LOG_SAMPLE_RATE")]
    pub decision_log_sample_rate: Option<f64>,
    /// Log denies only.
    #[arg(long, env = "IAMD_DECISION_LOG_DENIES_ONLY")]
    pub decision_log_denies_only: Option<bool>,
    /// A context key whose values the decision log masks (repeatable).
    #[arg(long = "decision-log-mask", value_name = "KEY")]
    pub decision_log_mask: Vec<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM, leaf first);
    /// reloaded when the file changes.
    #[arg(long, env = "IAMD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "IAMD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS.
    #[arg(long, env = "IAMD_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve the AuthZEN API (HTTP) on this `HOST:PORT`, over TLS when the
    /// gRPC listener has it [default: off].
    #[arg(long, env = "IAMD_AUTHZEN_LISTEN")]
    pub authzen_listen: Option<String>,
    /// The credentials directory (`credentials.json`, access keys for
    /// SigV4), checked for changes every 2 s [default: off].
    #[arg(long, env = "IAMD_CREDENTIALS", value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    /// Serve the local STS (AWS's Query protocol: GetCallerIdentity,
    /// GetSessionToken) on this `HOST:PORT`, over TLS when the gRPC
    /// listener has it; needs the credentials [default: off].
    #[arg(long, env = "IAMD_STS_LISTEN")]
    pub sts_listen: Option<String>,
}

/// The AuthZEN API's settings, resolved.
#[derive(Clone, PartialEq)]
pub struct AuthZenConfig {
    /// Where it listens.
    pub listen: std::net::SocketAddr,
    /// Its mapping.
    pub mapping: std::sync::Arc<crate::authzen::Mapping>,
    /// The base URL the metadata names, when set.
    pub base_url: Option<String>,
    /// The largest body.
    pub max_body_bytes: usize,
    /// The tokens callers may send (none: no check).
    pub tokens: Vec<String>,
    /// The API-key header, if any.
    pub api_key_header: Option<hyper::header::HeaderName>,
}

impl std::fmt::Debug for AuthZenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens are secrets: their count only.
        f.debug_struct("AuthZenConfig")
            .field("listen", &self.listen)
            .field("base_url", &self.base_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tokens", &self.tokens.len())
            .field("api_key_header", &self.api_key_header)
            .finish_non_exhaustive()
    }
}

/// The daemon's configuration, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The bundle: where from, signatures, staleness.
    pub bundle: crate::source::BundleConfig,
    /// Where to listen.
    pub listen: Listen,
    /// Where the admin HTTP endpoints listen.
    pub admin_listen: std::net::SocketAddr,
    /// Threads answering calls: 1 (the default) runs every connection on
    /// one thread (tokio's current-thread scheduler); more run that many
    /// such threads, the connections dealt to them in turn
    /// (docs/operations.md).
    pub workers: usize,
    /// gRPC limits.
    pub limits: RequestLimits,
    /// How long a shutdown waits for open calls and connections.
    pub drain: Duration,
    /// Seconds between digest checks.
    pub poll_interval: Duration,
    /// Quiet time before a reload.
    pub debounce: Duration,
    /// How long a file must go unmodified before a reload reads it.
    pub settle: Duration,
    /// Log output.
    pub log_format: LogFormat,
    /// Least severe level logged.
    pub log_level: tracing::Level,
    /// The decision log: where, and what.
    pub decision_log: Option<(String, crate::decision_log::Options)>,
    /// TLS on the gRPC listener, and how often its files are checked.
    pub tls: Option<(crate::tls::TlsFiles, Duration)>,
    /// Envoy's `Check`, with its mapping.
    pub envoy: Option<std::sync::Arc<crate::envoy::Mapping>>,
    /// The AuthZEN API, when it has a listener.
    pub authzen: Option<AuthZenConfig>,
    /// The credentials directory, and how often it is checked.
    pub credentials: Option<(PathBuf, Duration)>,
    /// Where the local STS listens, if it does.
    pub sts: Option<std::net::SocketAddr>,
    /// The issuers the STS takes web identity tokens from.
    pub web_identity: Vec<FileWebIdentity>,
}

impl ServeConfig {
    /// Flags and environment over the file over the defaults; every problem
    /// at once.
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let d = RequestLimits::default();
        let bundle = crate::source::BundleConfig::resolve(
            file.bundle,
            o.bundle,
            o.bundle_verify_keys,
            o.bundle_persist_dir,
            &mut problems,
        );
        let listen_text = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:50051".to_owned());
        let listen = listen_text
            .parse::<Listen>()
            .map_err(|e| problems.push(format!("listen: {e}")))
            .ok();
        let admin_text = o
            .admin_listen
            .or(file.admin_listen)
            .unwrap_or_else(|| "127.0.0.1:9464".to_owned());
        let admin_listen = admin_text
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                problems.push(format!(
                    "adminListen: `{admin_text}` is not an address: write `127.0.0.1:9464`"
                ))
            })
            .ok();
        let positive = |problems: &mut Vec<String>, name: &str, v: usize| {
            if v == 0 {
                problems.push(format!("{name} is 0: give a positive number"));
            }
            v
        };
        let limits = RequestLimits {
            max_batch: positive(
                &mut problems,
                "maxBatch",
                o.max_batch.or(file.limits.max_batch).unwrap_or(d.max_batch),
            ),
            max_message_bytes: positive(
                &mut problems,
                "maxMessageBytes",
                o.max_message_bytes
                    .or(file.limits.max_message_bytes)
                    .unwrap_or(d.max_message_bytes),
            ),
            max_concurrent: positive(
                &mut problems,
                "maxConcurrentRequests",
                o.max_concurrent_requests
                    .or(file.limits.max_concurrent_requests)
                    .unwrap_or(d.max_concurrent),
            ),
            request_timeout: Duration::from_millis(positive(
                &mut problems,
                "requestTimeoutMs",
                o.request_timeout_ms
                    .or(file.limits.request_timeout_ms)
                    .map_or(d.request_timeout.as_millis() as usize, |v| v as usize),
            ) as u64),
            max_context_keys: positive(
                &mut problems,
                "maxContextKeys",
                file.limits.max_context_keys.unwrap_or(d.max_context_keys),
            ),
            max_context_values: positive(
                &mut problems,
                "maxContextValues",
                file.limits
                    .max_context_values
                    .unwrap_or(d.max_context_values),
            ),
            max_field_bytes: positive(
                &mut problems,
                "maxFieldBytes",
                file.limits.max_field_bytes.unwrap_or(d.max_field_bytes),
            ),
            connections: {
                let c = d.connections;
                let ms = |problems: &mut Vec<String>, name: &str, v: Option<u64>, d: Duration| {
                    Duration::from_millis(positive(
                        problems,
                        name,
                        v.map_or(d.as_millis() as usize, |v| v as usize),
                    ) as u64)
                };
                let l = &file.limits;
                ConnectionLimits {
                    max_connections: positive(
                        &mut problems,
                        "maxConnections",
                        l.max_connections.unwrap_or(c.max_connections),
                    ),
                    max_streams: positive(
                        &mut problems,
                        "maxStreamsPerConnection",
                        l.max_streams_per_connection
                            .unwrap_or(c.max_streams as usize)
                            .min(u32::MAX as usize),
                    ) as u32,
                    handshake_timeout: ms(
                        &mut problems,
                        "handshakeTimeoutMs",
                        l.handshake_timeout_ms,
                        c.handshake_timeout,
                    ),
                    keepalive_interval: ms(
                        &mut problems,
                        "keepaliveIntervalMs",
                        l.keepalive_interval_ms,
                        c.keepalive_interval,
                    ),
                    keepalive_timeout: ms(
                        &mut problems,
                        "keepaliveTimeoutMs",
                        l.keepalive_timeout_ms,
                        c.keepalive_timeout,
                    ),
                    max_age: ms(
                        &mut problems,
                        "maxConnectionAgeMs",
                        l.max_connection_age_ms,
                        c.max_age,
                    ),
                }
            },
        };
        let workers = positive(
            &mut problems,
            "workers",
            o.workers.or(file.workers).unwrap_or(1),
        );
        let poll = o
            .poll_interval_seconds
            .or(file.reload.poll_interval_seconds)
            .unwrap_or(10);
        let poll = positive(&mut problems, "pollIntervalSeconds", poll as usize) as u64;
        let debounce = file.reload.debounce_ms.unwrap_or(100);
        let settle = file
            .reload
            .settle_ms
            .map_or(crate::reload::SETTLE, Duration::from_millis);
        let log_format = match o
            .log_format
            .or(file.log.format)
            .as_deref()
            .unwrap_or("human")
        {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                problems.push(format!("log format `{other}`: write `human` or `json`"));
                LogFormat::Human
            }
        };
        let level_text = o
            .log_level
            .or(file.log.level)
            .unwrap_or_else(|| "info".to_owned());
        let log_level = level_text.parse::<tracing::Level>().unwrap_or_else(|_| {
            problems.push(format!(
                "log level `{level_text}`: write `error`, `warn`, `info`, `debug` or `trace`"
            ));
            tracing::Level::INFO
        });
        let flags = [o.tls_cert, o.tls_key, o.tls_client_ca];
        let tls = resolve_tls(file.tls, flags, listen.as_ref(), &mut problems);
        let envoy = file.envoy.as_ref().and_then(|m| {
            crate::envoy::Mapping::compile(m)
                .map_err(|e| problems.extend(e.0))
                .ok()
                .map(std::sync::Arc::new)
        });
        let authzen = resolve_authzen(file.authzen, o.authzen_listen, &mut problems);
        let file_credentials = file.credentials.unwrap_or_default();
        let poll_ms = file_credentials.poll_interval_ms.unwrap_or(2000);
        if poll_ms == 0 {
            problems.push(
                "credentials.pollIntervalMs: 0: give milliseconds between checks, such as 2000"
                    .to_owned(),
            );
        }
        let credentials = o
            .credentials
            .or(file_credentials.dir)
            .map(|dir| (dir, Duration::from_millis(poll_ms)));
        let file_sts = file.sts.unwrap_or_default();
        for (i, w) in file_sts.web_identity.iter().enumerate() {
            if w.issuer.is_empty() || w.audiences.is_empty() {
                problems.push(format!("sts.webIdentity[{i}]: give the issuer (the tokens' `iss`) and at least one audience"));
            }
        }
        let web_identity = file_sts.web_identity;
        let sts_text = o.sts_listen.or(file_sts.listen);
        let sts = sts_text.and_then(|text| {
            text.parse::<std::net::SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "sts.listen: `{text}` is not an address: write `127.0.0.1:8444`"
                    ))
                })
                .ok()
        });
        if sts.is_some() && credentials.is_none() {
            problems.push(
                "sts: the STS needs the credentials: set `credentials.dir` or `--credentials DIR`"
                    .to_owned(),
            );
        }
        if credentials.is_none() && envoy.as_ref().is_some_and(|m| m.verifies_signatures()) {
            problems.push("envoy.principal: a `sigv4` source needs the credentials: set `credentials.dir` or `--credentials DIR`".to_owned());
        }
        let file_log = file.decision_log.unwrap_or_default();
        let decision_log = o.decision_log.or(file_log.path).map(|path| {
            let d = crate::decision_log::Options::default();
            let sample_rate = o
                .decision_log_sample_rate
                .or(file_log.sample_rate)
                .unwrap_or(d.sample_rate);
            if !(0.0..=1.0).contains(&sample_rate) {
                problems.push(format!(
                    "decision log sample rate {sample_rate}: give a fraction from 0 to 1"
                ));
            }
            let mut mask_keys = file_log.mask_keys;
            mask_keys.extend(o.decision_log_mask);
            let options = crate::decision_log::Options {
                sample_rate,
                denies_only: o
                    .decision_log_denies_only
                    .or(file_log.denies_only)
                    .unwrap_or(false),
                mask_keys,
                queue: file_log.queue.unwrap_or(d.queue),
                queue_bytes: file_log.queue_bytes.unwrap_or(d.queue_bytes),
                value_bytes: file_log.value_bytes.unwrap_or(d.value_bytes),
                backpressure: file_log.backpressure.unwrap_or(d.backpressure),
            };
            (path, options)
        });
        let drain = Duration::from_millis(
            o.drain_timeout_ms
                .or(file.limits.drain_timeout_ms)
                .unwrap_or(crate::grpc::DRAIN_TIMEOUT.as_millis() as u64),
        );
        match (bundle, listen, admin_listen) {
            (Some(bundle), Some(listen), Some(admin_listen)) if problems.is_empty() => Ok(Self {
                bundle,
                listen,
                admin_listen,
                workers,
                limits,
                drain,
                poll_interval: Duration::from_secs(poll),
                debounce: Duration::from_millis(debounce),
                settle,
                log_format,
                log_level,
                decision_log,
                tls,
                envoy,
                authzen,
                credentials,
                sts,
                web_identity,
            }),
            _ => Err(ConfigError::Settings(problems)),
        }
    }
}

fn resolve_authzen(
    file: Option<FileAuthZen>,
    flag: Option<String>,
    problems: &mut Vec<String>,
) -> Option<AuthZenConfig> {
    let given = file.is_some();
    let file = file.unwrap_or_default();
    let Some(text) = flag.or(file.listen) else {
        if given {
            problems.push(
                "authzen: no listener: give `listen: HOST:PORT` or `--authzen-listen`".to_owned(),
            );
        }
        return None;
    };
    let listen = text
        .parse::<std::net::SocketAddr>()
        .map_err(|_| {
            problems.push(format!(
                "authzen.listen: `{text}` is not an address: write `127.0.0.1:8181`"
            ))
        })
        .ok();
    let mapping = crate::authzen::Mapping::compile(&file.mapping)
        .map_err(|e| problems.extend(e.0))
        .ok();
    let tokens = match &file.token_file {
        None => Vec::new(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let tokens: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect();
                if tokens.is_empty() {
                    problems.push(format!(
                        "authzen.tokenFile: `{}` holds no token: write one a line",
                        path.display()
                    ));
                }
                tokens
            }
            Err(e) => {
                problems.push(format!(
                    "authzen.tokenFile: cannot read `{}`: {e}",
                    path.display()
                ));
                Vec::new()
            }
        },
    };
    let api_key_header = file.api_key_header.as_ref().and_then(|h| {
        hyper::header::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| problems.push(format!("authzen.apiKeyHeader: `{h}` is not a header name")))
            .ok()
    });
    if file.api_key_header.is_some() && file.token_file.is_none() {
        problems
            .push("authzen.apiKeyHeader: set `tokenFile` too (the keys it may carry)".to_owned());
    }
    if let Some(base) = &file.base_url
        && !(base.starts_with("https://") || base.starts_with("http://"))
    {
        problems.push(format!(
            "authzen.baseUrl: `{base}` is not an HTTP(S) URL: write `https://pdp.example.com`"
        ));
    }
    Some(AuthZenConfig {
        listen: listen?,
        mapping: std::sync::Arc::new(mapping?),
        base_url: file.base_url,
        max_body_bytes: file.max_body_bytes.unwrap_or(1 << 20).max(1),
        tokens,
        api_key_header,
    })
}

fn resolve_tls(
    file: FileTls,
    [cert, key, client_ca]: [Option<PathBuf>; 3],
    listen: Option<&Listen>,
    problems: &mut Vec<String>,
) -> Option<(crate::tls::TlsFiles, Duration)> {
    let cert = cert.or(file.cert_file);
    let key = key.or(file.key_file);
    let client_ca = client_ca.or(file.client_ca_file);
    let (cert, key) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            if client_ca.is_some() {
                problems.push("tls: a client CA needs the server's own certificate: give `--tls-cert` and `--tls-key` too".into());
            }
            return None;
        }
        (Some(_), None) => {
            problems.push(
                "tls: a certificate without its key: give `--tls-key` (`tls.keyFile`) too".into(),
            );
            return None;
        }
        (None, Some(_)) => {
            problems.push(
                "tls: a key without its certificate: give `--tls-cert` (`tls.certFile`) too".into(),
            );
            return None;
        }
    };
    if let Some(Listen::Unix(_)) = listen {
        problems.push("tls: TLS applies to TCP listeners; a Unix socket is protected by its file permissions: listen on a TCP address or drop the TLS settings".into());
    }
    let interval = file.reload_interval_seconds.unwrap_or(10);
    if interval == 0 {
        problems.push("tls.reloadIntervalSeconds is 0: give a positive number".into());
    }
    Some((
        crate::tls::TlsFiles {
            cert,
            key,
            client_ca,
        },
        Duration::from_secs(interval.max(1)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("iamd.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p).map_err(|e| {
            ConfigError::Settings(
                e.lines()
                    .iter()
                    .map(|l| l.replace(&p.display().to_string(), "iamd.yaml"))
                    .collect(),
            )
        })
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let f = file("bundle: /etc/iamd/bundle\nlisten: unix:/run/iamd.sock\nlimits: {maxBatch: 50, requestTimeoutMs: 250}\nlog: {format: json}\n").unwrap();
        let o = Overrides {
            max_batch: Some(7),
            log_level: Some("debug".into()),
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(f, o).unwrap();
        assert_eq!(
            c.bundle.location,
            crate::source::Location::Local("/etc/iamd/bundle".into())
        );
        assert_eq!(c.listen, Listen::Unix("/run/iamd.sock".into()));
        assert_eq!(c.limits.max_batch, 7);
        assert_eq!(c.limits.request_timeout, Duration::from_millis(250));
        assert_eq!(
            c.limits.max_concurrent,
            RequestLimits::default().max_concurrent
        );
        assert_eq!(
            (c.log_format, c.log_level),
            (LogFormat::Json, tracing::Level::DEBUG)
        );
        assert_eq!(c.poll_interval, Duration::from_secs(10));
        assert_eq!(c.workers, 1, "one thread unless asked");
    }

    #[test]
    fn connections_have_an_age_limit() {
        let c = ServeConfig::resolve(file("bundle: b\n").unwrap(), Overrides::default());
        assert_eq!(
            c.unwrap().limits.connections.max_age,
            Duration::from_secs(1800)
        );
        let text = "bundle: b\nlimits: {maxConnectionAgeMs: 60000}\n";
        let c = ServeConfig::resolve(file(text).unwrap(), Overrides::default());
        assert_eq!(
            c.unwrap().limits.connections.max_age,
            Duration::from_secs(60)
        );
        let text = "bundle: b\nlimits: {maxConnectionAgeMs: 0}\n";
        let e = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap_err();
        assert_eq!(
            e.lines(),
            ["maxConnectionAgeMs is 0: give a positive number"]
        );
    }

    #[test]
    fn the_bundle_read_limits_are_settings_of_every_source() {
        use crate::source::Location;
        let text = "bundle: {source: /srv/b, maxFileBytes: 200000000, maxTotalBytes: 300000000, maxFiles: 9}\n";
        let c = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap();
        let l = c.bundle.limits;
        assert_eq!(
            (l.file_bytes, l.bundle_bytes, l.files),
            (200_000_000, 300_000_000, 9)
        );
        assert_eq!(l.deadline, iamd_bundle::ReadLimits::default().deadline);
        let c = ServeConfig::resolve(file("bundle: /srv/b\n").unwrap(), Overrides::default());
        assert_eq!(c.unwrap().bundle.limits, iamd_bundle::ReadLimits::default());
        let text = "bundle: {source: 'https://h/b.tar.gz', maxFileBytes: 5}\n";
        let c = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap();
        let Location::Http(h) = &c.bundle.location else {
            panic!("{:?}", c.bundle)
        };
        assert_eq!(h.limits.file_bytes, 5, "an archive's files too");
        let text = "bundle: {source: 'oci://r/x:1', maxFiles: 5}\n";
        let c = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap();
        let Location::Oci(o) = &c.bundle.location else {
            panic!("{:?}", c.bundle)
        };
        assert_eq!(o.limits.files, 5);
        let bad = "bundle: {source: /srv/b, maxFiles: 0, maxFileBytes: 3000000000}\n";
        let e = ServeConfig::resolve(file(bad).unwrap(), Overrides::default()).unwrap_err();
        assert_eq!(
            e.lines(),
            [
                "bundle.maxFiles is 0: no bundle could be read; give a positive number or remove it",
                "bundle.maxFileBytes (3000000000) is more than bundle.maxTotalBytes (1073741824): raise maxTotalBytes too",
            ]
        );
    }

    #[test]
    fn a_remote_bundle_has_its_settings_in_a_map_and_the_flag_still_wins() {
        use crate::source::Location;
        let text = "bundle:\n  source: https://bundles.example.com/prod.tar.gz\n  pollMinSeconds: 5\n  pollMaxSeconds: 9\n  longPollSeconds: 30\n  bearerTokenFile: /run/token\n  persistDir: /var/lib/iamd\n  maxBytes: 1000\n  verify: {keys: [/k/a.pub, /k/b.pub]}\n  staleness: {maxAgeSeconds: 3600}\n";
        let c = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap();
        let Location::Http(h) = &c.bundle.location else {
            panic!("{:?}", c.bundle)
        };
        assert_eq!(h.url, "https://bundles.example.com/prod.tar.gz");
        assert_eq!(
            (h.polling.min, h.polling.max),
            (Duration::from_secs(5), Duration::from_secs(9))
        );
        assert_eq!(h.long_poll, Some(Duration::from_secs(30)));
        assert_eq!(h.bearer_token_file, Some(PathBuf::from("/run/token")));
        assert_eq!(h.persist, Some(PathBuf::from("/var/lib/iamd")));
        assert_eq!(h.client.max_bytes, 1000);
        assert_eq!(c.bundle.verify_keys.len(), 2);
        assert_eq!(c.bundle.max_age, Some(Duration::from_secs(3600)));
        // The flag's source over the file's, with the file's settings.
        let o = Overrides {
            bundle: Some("http://127.0.0.1:8080/b.tar.gz".into()),
            bundle_verify_keys: vec!["/k/c.pub".into()],
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(file(text).unwrap(), o).unwrap();
        let Location::Http(h) = &c.bundle.location else {
            panic!("{:?}", c.bundle)
        };
        assert_eq!(h.url, "http://127.0.0.1:8080/b.tar.gz");
        assert_eq!(c.bundle.verify_keys.len(), 3);
        // Settings that make no sense for a path, a scheme iamd does not
        // fetch, a typo.
        let bad = "bundle: {source: /srv/bundle, persistDir: /x, pollMinSeconds: 3}\n";
        let e = ServeConfig::resolve(file(bad).unwrap(), Overrides::default()).unwrap_err();
        assert!(
            e.lines()
                .iter()
                .any(|l| l.starts_with("bundle.persistDir is for a remote source")),
            "{e}"
        );
        assert!(
            e.lines()
                .iter()
                .any(|l| l.starts_with("bundle.pollMinSeconds is for a remote source")),
            "{e}"
        );
        let e = ServeConfig::resolve(file("bundle: ftp://h/b\n").unwrap(), Overrides::default())
            .unwrap_err();
        assert!(
            e.lines()[0].contains("an `https://` or `http://` URL"),
            "{e}"
        );
        let e = file("bundle: {source: b, pollMinSecond: 3}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pollMinSecond"), "{e}");
        let e = ServeConfig::resolve(
            file("bundle: {source: https://h/b, pollMinSeconds: 90, pollMaxSeconds: 60}\n")
                .unwrap(),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            e.lines()[0].contains("pollMinSeconds (90) is more than"),
            "{e}"
        );
    }

    #[test]
    fn workers_come_from_the_flag_or_the_file_and_are_positive() {
        let c = ServeConfig::resolve(
            file("bundle: b\nworkers: 4\n").unwrap(),
            Overrides::default(),
        );
        assert_eq!(c.unwrap().workers, 4);
        let o = Overrides {
            workers: Some(2),
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(file("bundle: b\nworkers: 4\n").unwrap(), o);
        assert_eq!(c.unwrap().workers, 2);
        let e = ServeConfig::resolve(
            file("bundle: b\nworkers: 0\n").unwrap(),
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(e.lines(), ["workers is 0: give a positive number"]);
    }

    #[test]
    fn the_settle_time_defaults_to_a_second_and_may_be_zero() {
        let c = ServeConfig::resolve(file("bundle: b\n").unwrap(), Overrides::default());
        assert_eq!(c.unwrap().settle, crate::reload::SETTLE);
        let c = ServeConfig::resolve(
            file("bundle: b\nreload: {settleMs: 0}\n").unwrap(),
            Overrides::default(),
        );
        assert_eq!(c.unwrap().settle, Duration::ZERO);
    }

    #[test]
    fn every_problem_is_reported() {
        let f = file("listen: localhost\nlimits: {maxBatch: 0}\nlog: {format: xml, level: loud}\n")
            .unwrap();
        let e = ServeConfig::resolve(f, Overrides::default()).unwrap_err();
        assert_eq!(e.lines().len(), 5, "{e}");
        assert!(
            e.lines()[0].starts_with("no bundle: give `--bundle PATH`"),
            "{e}"
        );
        assert!(
            e.lines()[1].starts_with("listen: `localhost` is not an address"),
            "{e}"
        );
        assert!(e.lines()[2].starts_with("maxBatch is 0"), "{e}");
        assert!(e.lines()[3].starts_with("log format `xml`"), "{e}");
        assert!(e.lines()[4].starts_with("log level `loud`"), "{e}");
    }

    #[test]
    fn tls_needs_both_files_and_a_tcp_listener() {
        let f = file("bundle: b\ntls: {certFile: /tls/tls.crt, keyFile: /tls/tls.key, clientCaFile: /tls/ca.crt}\n").unwrap();
        let c = ServeConfig::resolve(f, Overrides::default()).unwrap();
        let (files, every) = c.tls.unwrap();
        assert_eq!(files.cert, PathBuf::from("/tls/tls.crt"));
        assert_eq!(files.client_ca, Some(PathBuf::from("/tls/ca.crt")));
        assert_eq!(every, Duration::from_secs(10));
        let o = Overrides {
            bundle: Some("b".into()),
            tls_cert: Some("c.pem".into()),
            ..Overrides::default()
        };
        let e = ServeConfig::resolve(FileConfig::default(), o).unwrap_err();
        assert_eq!(
            e.lines(),
            ["tls: a certificate without its key: give `--tls-key` (`tls.keyFile`) too"]
        );
        let f = file("bundle: b\nlisten: unix:/run/iamd.sock\ntls: {certFile: c, keyFile: k, reloadIntervalSeconds: 0}\n").unwrap();
        let e = ServeConfig::resolve(f, Overrides::default()).unwrap_err();
        assert_eq!(e.lines().len(), 2, "{e}");
        assert!(
            e.lines()[0].starts_with("tls: TLS applies to TCP listeners"),
            "{e}"
        );
        assert!(
            e.lines()[1].starts_with("tls.reloadIntervalSeconds is 0"),
            "{e}"
        );
        let f = file("bundle: b\ntls: {clientCaFile: ca.crt}\n").unwrap();
        let e = ServeConfig::resolve(f, Overrides::default()).unwrap_err();
        assert!(e.lines()[0].starts_with("tls: a client CA needs"), "{e}");
    }

    #[test]
    fn the_authzen_section_needs_a_listener_and_keeps_its_tokens_out_of_debug() {
        let none = ServeConfig::resolve(file("bundle: b\n").unwrap(), Overrides::default());
        assert!(none.unwrap().authzen.is_none(), "off by default");
        let flag = Overrides {
            authzen_listen: Some("127.0.0.1:8181".into()),
            ..Overrides::default()
        };
        let a = ServeConfig::resolve(file("bundle: b\n").unwrap(), flag.clone())
            .unwrap()
            .authzen
            .unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8181");
        assert!(a.tokens.is_empty());
        assert_eq!(a.max_body_bytes, 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "# for the gateway\nt0ps3cret\n\n").unwrap();
        let text = format!(
            "bundle: b\nauthzen:\n  listen: 127.0.0.1:9\n  tokenFile: {}\n  apiKeyHeader: x-api-key\n  mapping:\n    action: \"todo:{{name}}\"\n",
            tokens.display()
        );
        let a = ServeConfig::resolve(file(&text).unwrap(), flag)
            .unwrap()
            .authzen
            .unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8181", "the flag wins");
        assert_eq!(a.tokens, ["t0ps3cret"]);
        assert_eq!(
            a.api_key_header.as_ref().map(|h| h.as_str()),
            Some("x-api-key")
        );
        let debug = format!("{a:?}");
        assert!(
            !debug.contains("t0ps3cret") && debug.contains("tokens: 1"),
            "{debug}"
        );
        let bad = "bundle: b\nauthzen:\n  listen: nowhere\n  baseUrl: pdp.example.com\n  apiKeyHeader: \"a b\"\n  mapping:\n    subjects: {user: \"people/{id}\"}\n";
        let e = ServeConfig::resolve(file(bad).unwrap(), Overrides::default()).unwrap_err();
        let lines = e.lines();
        for needle in [
            "authzen.listen: `nowhere` is not an address",
            "authzen.subjects.user: `people/{id}` does not name a principal",
            "authzen.apiKeyHeader: `a b` is not a header name",
            "authzen.apiKeyHeader: set `tokenFile` too",
            "authzen.baseUrl: `pdp.example.com` is not an HTTP(S) URL",
        ] {
            assert!(lines.iter().any(|l| l.starts_with(needle)), "{needle}: {e}");
        }
        let e = ServeConfig::resolve(
            file("bundle: b\nauthzen:\n  mapping: {}\n").unwrap(),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(e.lines()[0].starts_with("authzen: no listener"), "{e}");
    }

    #[test]
    fn a_sigv4_source_needs_the_credentials() {
        let text = "bundle: b\nenvoy:\n  principal:\n    - sigv4: {}\n  routes:\n    - {method: GET, path: \"/{bucket}\", action: s3:ListBucket, resource: \"arn:aws:s3:::{bucket}\"}\n";
        let e = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap_err();
        assert!(
            e.lines()[0].starts_with("envoy.principal: a `sigv4` source needs the credentials"),
            "{e}"
        );
        let flag = Overrides {
            credentials: Some("/run/secrets/iamd".into()),
            ..Overrides::default()
        };
        let c = ServeConfig::resolve(file(text).unwrap(), flag).unwrap();
        assert_eq!(
            c.credentials,
            Some(("/run/secrets/iamd".into(), Duration::from_secs(2)))
        );
        let with_section =
            format!("{text}credentials: {{dir: /run/secrets/iamd, pollIntervalMs: 500}}\n");
        let c = ServeConfig::resolve(file(&with_section).unwrap(), Overrides::default()).unwrap();
        assert_eq!(c.credentials.unwrap().1, Duration::from_millis(500));
        let web = format!(
            "{text}credentials: {{dir: d}}\nsts:\n  listen: 127.0.0.1:8444\n  webIdentity:\n    - {{issuer: https://spire.acme.example, jwksFile: /run/spire/bundle.jwks, audiences: [iamd]}}\n    - {{issuer: \"\", jwksFile: k, audiences: []}}\n"
        );
        let e = ServeConfig::resolve(file(&web).unwrap(), Overrides::default()).unwrap_err();
        assert!(
            e.lines()[0].starts_with("sts.webIdentity[1]: give the issuer"),
            "{e}"
        );
        let good = web.replace("    - {issuer: \"\", jwksFile: k, audiences: []}\n", "");
        let c = ServeConfig::resolve(file(&good).unwrap(), Overrides::default()).unwrap();
        assert_eq!(c.web_identity[0].audiences, ["iamd"]);
        let zero = format!("{text}credentials: {{dir: d, pollIntervalMs: 0}}\n");
        let e = ServeConfig::resolve(file(&zero).unwrap(), Overrides::default()).unwrap_err();
        assert!(
            e.lines()[0].starts_with("credentials.pollIntervalMs: 0"),
            "{e}"
        );
    }

    #[test]
    fn an_envoy_mapping_is_compiled_with_the_rest() {
        let text = "bundle: b\nenvoy:\n  principal:\n    - jwt: {claim: sub}\n  routes:\n    - method: GET\n      path: /docs/{id}\n      action: docs:GetDocument\n      resource: arn:acme:docs:eu-1:123456789012:doc/{id}\n";
        let c = ServeConfig::resolve(file(text).unwrap(), Overrides::default()).unwrap();
        assert!(c.envoy.is_some());
        let bad = "bundle: b\nenvoy:\n  principal: []\n  routes: []\n";
        let e = ServeConfig::resolve(file(bad).unwrap(), Overrides::default()).unwrap_err();
        assert_eq!(e.lines().len(), 2, "{e}");
        assert!(e.lines()[0].starts_with("envoy.principal:"), "{e}");
        let e = file("bundle: b\nenvoy:\n  principal:\n    - cookie: {name: s}\n").unwrap_err();
        assert!(e.lines()[0].starts_with("iamd.yaml:4:"), "{e}");
        assert!(
            ServeConfig::resolve(file("bundle: b\n").unwrap(), Overrides::default())
                .unwrap()
                .envoy
                .is_none()
        );
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let e = file("bundle: b\nlimits:\n  maxBatches: 3\n").unwrap_err();
        assert!(
            e.lines()[0].starts_with("iamd.yaml:3:3: unknown field `maxBatches`"),
            "{e}"
        );
    }
}
